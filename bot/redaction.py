"""Finding secrets and redacting them from evidence, keeping a salted hash as proof (invariant I9).

A redaction replaces the secret with ``[REDACTED:<kind>]`` and records the field path, the kind, a fresh
random salt and ``sha256(salt || secret)``: whoever later holds the secret can prove it was the one
removed, and nobody can recover it from the record.

What is found:

- a token whose shape gives it away (``_RULES``): cloud keys, vendor tokens with a fixed prefix, private
  keys, authorization headers, passwords in URLs, values assigned to secret-named settings;
- the same inside an encoded value: base64 (standard or URL-safe), hex and percent-encoded values are
  decoded and scanned again, a bounded number of levels deep. A hit redacts the whole encoded value, and
  the proof is over the encoded text as it appeared;
- the same split into pieces: adjacent quoted fragments (``"sk-ant-" + "api03-..."``, a JSON list of
  parts), consecutive YAML / env lines, and, in :func:`redact_tree` and :func:`secrets_in_tree`, adjacent
  sibling strings of one list or mapping. Every piece that contributed is redacted; in the tree, each
  piece's proof is over the joined secret;
- the whole value of a secret-named field (``db_password``, ``apiToken``) when it looks random and is not
  one of the shapes that only look random (digests, ids, ARNs, URNs, paths, versions, timestamps...).

Every regex is bounded, and anchored on a literal where it can be, so a scan stays linear in its input:
find_secrets runs over every changed file of every proposal.
"""

from __future__ import annotations

import binascii
import bisect
import hashlib
import itertools
import math
import os
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bot.records import Redaction

# --------------------------------------------------------------------------------------------------
# value shapes

_LOWER = re.compile(r"[a-z]")
_UPPER = re.compile(r"[A-Z]")
_DIGIT = re.compile(r"[0-9]")


def shannon_entropy(text: str) -> float:
    if not text:
        return 0.0
    return -sum(c / len(text) * math.log2(c / len(text)) for c in Counter(text).values())


def _char_classes(value: str) -> int:
    return sum(1 for cls in (_LOWER, _UPPER, _DIGIT) if cls.search(value))


def _random_looking(value: str) -> bool:
    """Two or more of lower / upper / digit, spread out: a generated token, not a word or a name."""
    return _char_classes(value) >= 2 and shannon_entropy(value) >= 3.0


def _high_entropy(value: str) -> bool:
    return len(value) >= 16 and " " not in value and shannon_entropy(value) >= 3.5


_PLACEHOLDER_TEXT = re.compile(r"\[REDACTED:[a-z-]+\]")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# Values that look random and are not secrets.
_BENIGN_VALUE = re.compile(
    r"""(?x)
      (?:sha(?:1|224|256|384|512)|md5|blake2[bs]?|sha3-(?:224|256|384|512))[:=-][0-9a-fA-F]{32,128}  # digest
    | sha(?:256|384|512)-[A-Za-z0-9+/]{40,88}={0,2}                                   # subresource integrity
    | (?:ami|aki|ari|vpc|subnet|sg|i|vol|snap|eni|igw|nat|rtb|acl|eipalloc|lt|tgw|tgw-attach|pcx|vpce|dopt
        |cgw|vgw|fs|fsap|db|cluster|key|mrk|r|ou|o|p|pl|elb)-[0-9a-f]{8,32}            # AWS resource id
    | arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:(?:[0-9]{12})?:\S+                          # ARN
    | urn:pulumi:\S+                                                                  # Pulumi URN
    | v1:[A-Za-z0-9+/]+={0,2}                                                         # Pulumi ciphertext
    | v?[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.-]+)?                                 # semantic version
    | [0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T\ ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?
    """
)
_DNS_NAME = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)+")  # a DNS / Kubernetes name
_PATH_VALUE = re.compile(r"(?:~|\.{1,2})?/[\w.@+~-]+(?:/[\w.@+~-]*)+|[\w.@+~-]+(?:/[\w.@+~-]+)*\.[a-z][a-z0-9]{0,5}")
_TEMPLATE = re.compile(r"[$%#]\{|\{\{|^\$[A-Za-z_]|^<[^>]*>$|^%\(|^!\w")


def _benign(value: str) -> bool:
    """A digest, an id, an ARN, a URN, a version, a timestamp, a name, a path, a template or a placeholder."""
    if _PLACEHOLDER_TEXT.fullmatch(value) or _TEMPLATE.search(value):
        return True
    if _UUID.fullmatch(value):
        return False  # UUIDs serve as API keys often enough; only a secret-named field or a rule gets here
    if _BENIGN_VALUE.fullmatch(value):
        return True
    if _DNS_NAME.fullmatch(value):
        # benign unless one of its labels is itself a generated token
        return not any(len(p) >= 20 and _random_looking(p) for p in re.split(r"[-.]", value))
    if _PATH_VALUE.fullmatch(value):
        return not any(len(p) >= 16 and _char_classes(p) == 3 for p in re.split(r"[/.]", value))
    return False


# A field holds a secret when its name has a secret word and its last word does not make it metadata about
# one: ``token_count``, ``secret_arn`` and ``password_updated_at`` are not secrets.
_NAME_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_WORDS = frozenset(
    {"password", "passwd", "passphrase", "secret", "secrets", "token", "tokens", "apikey", "credential"}
    | {"credentials", "creds", "privatekey", "secretkey", "accesstoken", "authtoken", "pat"}
)
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("private", "key"), ("secret", "key"), ("signing", "key"), ("encryption", "key")}
    | {("master", "key"), ("session", "key"), ("shared", "key"), ("account", "key"), ("client", "secret")}
)
_SECRET_SUFFIXES = ("password", "passwd", "secret", "token", "apikey", "credential", "credentials")
_METADATA_WORDS = frozenset(
    {"count", "counts", "id", "ids", "type", "types", "kind", "name", "names", "arn", "arns", "url", "uri"}
    | {"urls", "endpoint", "ttl", "expiry", "expires", "expiration", "at", "length", "len", "size", "limit"}
    | {"path", "paths", "file", "files", "dir", "ref", "refs", "hash", "hashes", "digest", "sha", "version"}
    | {"policy", "rotation", "enabled", "required", "header", "prefix", "suffix", "format", "scope", "scopes"}
    | {"field", "fields", "hint", "label", "description", "usage", "source", "provider", "store", "manager"}
    | {"backend", "location", "created", "updated", "issued", "used", "min", "max", "budget", "env", "var"}
    | {"mode", "algorithm", "alg", "status", "state", "method", "template", "owner", "region", "commit"}
)


_NOT_SECRET_TOKEN_WORDS = frozenset(
    {"next", "page", "pagination", "continuation", "sync", "resume", "cursor", "request", "client", "idempotency"}
)


def _is_secret_field(name: str) -> bool:
    words: list[str] = [w.lower() for w in _NAME_WORDS.findall(name)]
    while words and words[-1].isdigit():
        words.pop()  # ``password2``, ``token_sha256``
    if not words or words[-1] in _METADATA_WORDS:
        return False
    if words[-1] in ("token", "tokens") and len(words) > 1 and words[-2] in _NOT_SECRET_TOKEN_WORDS:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    if any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words)):
        return True
    return words[-1].endswith(_SECRET_SUFFIXES)


# --------------------------------------------------------------------------------------------------
# rules

Validator = Callable[[str, "re.Match[str]"], bool]
Finder = Callable[[str], Iterator[tuple[int, int]]]


@dataclass(frozen=True)
class _Rule:
    """One kind of secret. One of ``keywords`` (lower case) must occur in the text for the rule to run.

    The secret is the whole match, or runs from the named group ``pre`` (or ``s``) to the end of ``s``.
    A rule too irregular for one regex has a ``finder`` instead. A contextual rule (``password: ...``) does
    not run over joined fragments, where the words around a value are an artefact of the joining. A
    case-insensitive rule runs over the lower-cased text: the engine can then jump to its literal.
    """

    kind: str
    pattern: re.Pattern[str] | None
    keywords: tuple[str, ...]
    valid: Validator | None = None
    finder: Finder | None = None
    contextual: bool = False  # recognised by the words around it, not by its own shape
    lowered: bool = False  # the pattern is lower case and runs over the lower-cased text

    def spans(self, text: str, lowered: str) -> Iterator[tuple[int, int]]:
        if self.finder is not None:
            yield from self.finder(text)
            return
        assert self.pattern is not None
        groups = self.pattern.groupindex
        for m in self.pattern.finditer(lowered if self.lowered else text):
            start = m.start("pre") if "pre" in groups else m.start("s") if "s" in groups else m.start()
            end = m.end("s") if "s" in groups else m.end()
            if start < end and (self.valid is None or self.valid(text[start:end], m)):
                yield start, end


_ALNUM = "A-Za-z0-9"
_WORD = "A-Za-z0-9_-"


def _prefixed(prefix: str, body: str, *, before: str = _ALNUM, after: str = _WORD) -> re.Pattern[str]:
    """The literal ``prefix`` then ``body``, not glued to a longer word on either side.

    The look at the character before sits after the literal, so the engine still jumps from one occurrence
    of the prefix to the next instead of testing every position of the text.
    """
    lit = re.escape(prefix)
    return re.compile(f"{lit}(?<![{before}]{lit}){body}(?![{after}])")


def _random(secret: str, m: re.Match[str]) -> bool:
    return _random_looking(secret)


def _not_template(secret: str, m: re.Match[str]) -> bool:
    return not _TEMPLATE.search(secret) and len(set(secret)) > 2


def _header_value(secret: str, m: re.Match[str]) -> bool:
    """A token after ``Authorization:`` or ``Bearer``, not a name in code (``aws.route53.VpcAssociation``)."""
    before = m.string[m.start() - 1] if m.start() else " "
    if before.isalnum() or before == "_" or _code_name(secret):
        return False
    return _not_template(secret, m) and _random_looking(secret)


def _basic_credentials(secret: str, m: re.Match[str]) -> bool:
    """``Basic <base64>`` is a credential when the value decodes to ``user:password``."""
    decoded = _b64decode(secret)
    if decoded is None:
        return False
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return ":" in text and text.isprintable() and len(text) >= 3


_SAS_CONTEXT = re.compile(r"(?:^|[?&;\s\"'])s[vepr]=")


def _sas_signature(secret: str, m: re.Match[str]) -> bool:
    """A ``sig=`` is an Azure SAS signature when the query around it has the SAS version, expiry or rights."""
    window = m.string[max(0, m.start() - 1024) : m.end() + 1024]
    return bool(_SAS_CONTEXT.search(window)) and _random_looking(secret)


_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_PLAIN_WORD = re.compile(r"[A-Za-z_-]+")
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
_CONSTANT = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_SNAKE_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
_HEXISH = re.compile(r"[0-9a-fA-F-]{32,}")


def _code_name(value: str) -> bool:
    """A name in code: ``config.db``, ``Ed25519PrivateKey``, ``CKV_SECRET_1``, ``db_password_v2``."""
    if _DOTTED_NAME.fullmatch(value) or _CONSTANT.fullmatch(value):
        return True
    return bool(_TYPE_NAME.fullmatch(value) or _SNAKE_NAME.fullmatch(value)) and all(
        len(w) > 1 for w in _NAME_WORDS.findall(value)
    )


def _assigned_value(secret: str, m: re.Match[str]) -> bool:
    """A value given to a secret-named setting, unless it is code, a template, a reference or a plain word."""
    tail, before = m.group("tail"), max(0, m.start() - 20)
    if tail == "key" and not _KEY_OWNER.search(m.string, before, m.start()):
        return False  # ``key`` alone names anything; ``api_key``, ``secret-key`` and the like name a secret
    if tail == "token" and _NOT_A_SECRET_TOKEN.search(m.string, before, m.start()):
        return False  # ``NextToken``, ``ClientRequestToken``: pagination and idempotency tokens
    if any(ch in secret for ch in "()[]{}<>$") or _TEMPLATE.search(secret):
        return False
    if _PLAIN_WORD.fullmatch(secret) or len(set(secret)) <= 2:
        return False
    if _code_name(secret):
        return False
    if secret.count(" ") > 4 or secret.lower().startswith(("redacted", "changeme", "example", "your")):
        return False
    return bool(_HEXISH.fullmatch(secret)) or not _benign(secret)


_URL_NOT_USERINFO = re.compile(r"[\[\]{}\\^|]")
_NOT_A_PASSWORD = re.compile(r"[*x.]+|pass(?:word|wd)?|secret|redacted", re.IGNORECASE)


def _url_password(secret: str, m: re.Match[str]) -> bool:
    """A password in a URL's user info; brackets and braces cannot be in one unencoded, only in a pattern."""
    return _not_template(secret, m) and not _NOT_A_PASSWORD.fullmatch(secret) and not _URL_NOT_USERINFO.search(secret)


def _word_start(m: re.Match[str]) -> bool:
    return m.start() == 0 or not m.string[m.start() - 1].isalnum()


_TELEGRAM = re.compile(r":AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])")


def _telegram_tokens(text: str) -> Iterator[tuple[int, int]]:
    """``<bot id>:AA<33>``, found from the literal ``:AA`` and extended back over the 8 to 10 digit id."""
    for m in _TELEGRAM.finditer(text):
        start = m.start()
        while start > 0 and m.start() - start < 11 and text[start - 1].isdigit():
            start -= 1
        if 8 <= m.start() - start <= 10 and (start == 0 or not text[start - 1].isalnum()):
            yield start, m.end()


# PEM private keys (RSA, EC, DSA, OpenSSH, encrypted PKCS#8, PGP), paired with their END line by position so
# that a text full of BEGIN lines stays linear; a key cut off before its END is redacted up to where its body
# stops.
_PEM_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = re.compile(
    r"(?:(?:\r?\n|\\r?\\n|[ \t])[ \t]*+(?:[A-Za-z0-9+/=]{1,4096}|[A-Za-z-]{1,32}: [^\r\n\\]{1,128}))*"
)
# a BEGIN line alone (a parser's marker) or around a placeholder (``[......]``) is no key
_PEM_BODY_RUN = re.compile(r"[A-Za-z0-9+/]{16}")
_PEM_LINE = re.compile(r"[A-Za-z0-9+/]{40}")
_PEM_MAX = 65536


def _private_keys(text: str) -> Iterator[tuple[int, int]]:
    begins = list(_PEM_BEGIN.finditer(text))
    if not begins:
        return
    ends = list(_PEM_END.finditer(text))
    end_starts = [e.start() for e in ends]
    for i, begin in enumerate(begins):
        j = bisect.bisect_left(end_starts, begin.end())
        if j < len(ends) and end_starts[j] - begin.end() <= _PEM_MAX:
            if _PEM_BODY_RUN.search(text, begin.end(), end_starts[j]):
                yield begin.start(), ends[j].end()
            continue
        limit = min(begins[i + 1].start() if i + 1 < len(begins) else len(text), begin.end() + _PEM_MAX)
        body = _PEM_BODY.match(text, begin.end(), limit)
        if body and _PEM_LINE.search(text, body.start(), body.end()):
            yield begin.start(), body.end()  # a key cut off before its END line


# Names a secret gets assigned to: a secret word ends the name (``db_password``, ``githubToken``, ``X-API-Key``).
# The regex finds the last word (lower case); ``_assigned_value`` checks the words before it.
_NAME_TAIL = r"(?P<tail>password|passwd|passphrase|secret|token|key|credentials?)"
_NOT_A_SECRET_TOKEN = re.compile(
    r"(?:next|page|pagination|continuation|sync|resume|cursor|request|client|idempotency)[_.-]?\Z"
)
_KEY_OWNER = re.compile(r"(?:api|private|secret|secret[_.-]?access|signing|encryption|master|account)[_.-]?\Z")
# ``name = v``, ``name := v``, ``name => v``, ``"name": v``, ``name: v`` (YAML wants the space) and ``name:"v"``;
# not ``arn:...:secret:prod/db``. CEF escapes the equals sign.
_ASSIGN = r"(?:[\"']?[ \t]*\\?(?:=>|:?=)[ \t]*|[\"'][ \t]*:[ \t]*|[ \t]*:[ \t]+|:(?=[\"']))"
_ASSIGN_KEYWORDS = ("pass", "secret", "token", "key", "credential")


def _rule(
    kind: str,
    pattern: str,
    keywords: tuple[str, ...],
    valid: Validator | None = None,
    *,
    contextual: bool = False,
    lowered: bool = False,
) -> _Rule:
    return _Rule(kind, re.compile(pattern), keywords, valid, contextual=contextual, lowered=lowered)


def _token(kind: str, prefix: str, body: str, valid: Validator | None = _random, **kw: str) -> _Rule:
    return _Rule(kind, _prefixed(prefix, body, **kw), (prefix.lower(),), valid)


_RULES: list[_Rule] = [
    # structured keys first: a hit inside them takes their kind
    _rule(
        "gcp-service-account-key",
        r"\"private_key\"[ \t]*:[ \t]*\"(?P<s>-----BEGIN[^\"]{1,65536})\"",
        ("private_key",),
    ),
    _Rule("private-key", None, ("private key",), finder=_private_keys),
    _rule("private-key", r"Private-Lines: [0-9]{1,3}\r?\n(?:[A-Za-z0-9+/=]{1,128}\r?\n?){1,128}", ("private-lines",)),
    _rule(
        "aws-access-key-id",
        r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])(?<![A-Za-z0-9](?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9]))"
        r"[A-Z0-9]{16}(?![A-Za-z0-9])",
        ("akia", "asia", "abia", "acca", "a3t"),
    ),
    _rule(
        "aws-secret-access-key",
        r"secret[_.-]?(?:access[_.-]?)?key" + _ASSIGN + r"[\"']?(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        ("secret",),
        contextual=True,
        lowered=True,
    ),
    _rule(
        "github-token",
        r"(?:gh[pousr]_(?<![A-Za-z0-9]gh[pousr]_)[A-Za-z0-9]{36,255}"
        r"|github_pat_(?<![A-Za-z0-9]github_pat_)[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])",
        ("gh", "github_pat_"),
    ),
    _rule(
        "gitlab-token",
        r"gl(?:pat|dt|rt|ptt|cbt|ft|imt|agent|oas|soat|ffct)-[A-Za-z0-9_-]{20,300}(?:\.[A-Za-z0-9]{2,12})?"
        r"(?![A-Za-z0-9_-])",
        ("gl",),
        lambda secret, m: _word_start(m) and _random_looking(secret),
    ),
    _token("gitlab-token", "GR1348941", r"[A-Za-z0-9_-]{20,64}", None),
    _rule(
        "slack-webhook",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{20,160}",
        ("hooks.slack.com",),
    ),
    _token("slack-app-token", "xapp-", r"[0-9]-[A-Za-z0-9]{6,16}-[0-9]{6,16}-[A-Za-z0-9]{20,128}", None),
    _token("slack-token", "xox", r"[abposre]-[A-Za-z0-9-]{10,250}", None),
    _token("anthropic-admin-key", "sk-ant-admin", r"[0-9]{2}-[A-Za-z0-9_-]{32,200}"),
    _token("anthropic-api-key", "sk-ant-", r"[a-z]{2,6}[0-9]{2}-[A-Za-z0-9_-]{32,200}"),
    _token(
        "openai-api-key",
        "sk-",
        r"(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,250}|[A-Za-z0-9]{48}"
        r"|[A-Za-z0-9_-]{8,200}T3BlbkFJ[A-Za-z0-9_-]{8,200})",
    ),
    _token("huggingface-token", "hf_", r"[A-Za-z0-9]{34,40}"),
    _token("huggingface-token", "api_org_", r"[A-Za-z0-9]{34}"),
    _token("google-api-key", "AIza", r"[A-Za-z0-9_-]{35}", None),
    _token("google-oauth-client-secret", "GOCSPX-", r"[A-Za-z0-9_-]{24,40}", None),
    _token("google-oauth-token", "ya29.", r"[A-Za-z0-9_-]{30,2048}"),
    _rule(
        "azure-storage-key",
        r"key(?:(?<=accountkey)|(?<=sharedaccesskey))[ \t]*=[ \t]*(?P<s>[a-z0-9+/]{40,100}={0,2})(?![a-z0-9+/=])",
        ("accountkey", "sharedaccesskey"),
        lowered=True,
    ),
    _rule("azure-sas-token", r"sig=(?P<s>[A-Za-z0-9%+/]{30,200}(?:=|%3[Dd]){0,2})", ("sig=",), _sas_signature),
    _rule(
        "azure-client-secret",
        r"Q~(?<=(?P<pre>(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}[0-9]Q~))[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
        ("q~",),
        _random,
    ),
    _rule(
        "stripe-secret-key",
        r"k_(?:live|test|prod)_(?<=(?P<pre>(?<![A-Za-z0-9])[rs]k_(?:live|test|prod)_))[A-Za-z0-9]{16,250}"
        r"(?![A-Za-z0-9_-])",
        ("_live_", "_test_", "_prod_"),
        _random,
    ),
    _token("stripe-webhook-secret", "whsec_", r"[A-Za-z0-9+/=]{24,100}"),
    _token("npm-token", "npm_", r"[A-Za-z0-9]{36}"),
    _token("sendgrid-api-key", "SG.", r"[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{30,64}"),
    _token("twilio-api-key", "SK", r"[0-9a-fA-F]{32}"),
    _token("twilio-account-sid", "AC", r"[0-9a-f]{32}"),
    _token("mailgun-api-key", "key-", r"[0-9a-f]{32}", before=_WORD),
    _rule(
        "mailchimp-api-key",
        r"-us(?<=(?P<pre>(?<![A-Za-z0-9])[0-9a-f]{32})-us)[0-9]{1,2}(?![A-Za-z0-9])",
        ("-us",),
        _random,
    ),
    _rule("shopify-token", r"shp(?:at|ss|ca|pa)_(?<![A-Za-z0-9]shp[a-z]{2}_)[a-fA-F0-9]{32}(?![A-Za-z0-9])", ("shp",)),
    _rule("digitalocean-token", r"do[opr]_v1_(?<![A-Za-z0-9]do[opr]_v1_)[a-f0-9]{64}(?![A-Za-z0-9])", ("_v1_",)),
    _token("doppler-token", "dp.", r"(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}"),
    _token("databricks-token", "dapi", r"[a-f0-9]{32}(?:-[0-9])?"),
    _token("pypi-token", "pypi-AgE", r"(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,1000}", None),
    _rule(
        "docker-hub-token",
        r"dckr_(?:pat|oat)_(?<![A-Za-z0-9]dckr_[po]at_)[A-Za-z0-9_-]{20,64}(?![A-Za-z0-9_-])",
        ("dckr_",),
        _random,
    ),
    _rule(
        "atlassian-api-token",
        r"AT(?:ATT|CTT)3(?<![A-Za-z0-9]AT[AC]TT3)[A-Za-z0-9_=-]{150,300}(?![A-Za-z0-9_=-])",
        ("att3", "ctt3"),
    ),
    _token("heroku-api-key", "HRKU-", r"[A-Za-z0-9_-]{60}", None),
    _rule(
        "heroku-api-key",
        r"heroku[a-z0-9_.-]{0,24}" + _ASSIGN + r"[\"']?"
        r"(?P<s>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![a-z0-9-])",
        ("heroku",),
        contextual=True,
        lowered=True,
    ),
    _token("postman-api-key", "PMAK-", r"[A-Fa-f0-9]{24}-[A-Fa-f0-9]{34}", None),
    _token("linear-api-key", "lin_api_", r"[A-Za-z0-9]{40}"),
    _token("grafana-token", "glc_", r"[A-Za-z0-9+/]{32,400}={0,3}", after="A-Za-z0-9+/="),
    _token("grafana-token", "glsa_", r"[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}", None),
    _token("grafana-token", "eyJrIjoi", r"[A-Za-z0-9+/]{40,400}={0,3}", None, after="A-Za-z0-9+/="),
    _rule(
        "new-relic-key",
        r"NR(?:AK|II)-(?<![A-Za-z0-9]NR[AI][KI]-)[A-Za-z0-9_-]{27,32}(?![A-Za-z0-9_-])",
        ("nrak-", "nrii-"),
        _random,
    ),
    _rule(
        "vault-token",
        r"hv[sbr]\.(?<![A-Za-z0-9]hv[sbr]\.)[A-Za-z0-9_-]{24,300}(?![A-Za-z0-9_-])",
        ("hvs.", "hvb.", "hvr."),
        _random,
    ),
    _token("age-secret-key", "AGE-SECRET-KEY-1", r"[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", None),
    _token("pulumi-access-token", "pul-", r"[a-f0-9]{40}"),
    _rule(
        "terraform-cloud-token",
        r"\.atlasv1\.(?<=(?P<pre>(?<![A-Za-z0-9])[A-Za-z0-9]{14})\.atlasv1\.)[A-Za-z0-9_=-]{60,70}(?![A-Za-z0-9_=-])",
        (".atlasv1.",),
    ),
    _token("tailscale-key", "tskey-", r"(?:auth|api|client|scim|webhook)-[A-Za-z0-9]{6,32}-[A-Za-z0-9]{16,64}"),
    _token("supabase-token", "sbp_", r"[a-f0-9]{40}"),
    _rule(
        "sentry-token",
        r"sntry[us]_(?<![A-Za-z0-9]sntry[us]_)[A-Za-z0-9+/=_]{40,400}(?![A-Za-z0-9+/=_])",
        ("sntry",),
        _random,
    ),
    _token("rubygems-token", "rubygems_", r"[a-f0-9]{48}"),
    _rule(
        "square-token",
        r"sq0(?:atp|csp)-(?<![A-Za-z0-9]sq0[a-z]{3}-)[A-Za-z0-9_-]{22,60}(?![A-Za-z0-9_-])",
        ("sq0",),
        _random,
    ),
    _token("onepassword-token", "ops_eyJ", r"[A-Za-z0-9+/]{100,4096}={0,3}", None, after="A-Za-z0-9+/="),
    _token("flyio-token", "fo1_", r"[A-Za-z0-9_-]{43}"),
    _token("planetscale-token", "pscale_", r"(?:tkn|pw|oauth)_[A-Za-z0-9_=.-]{32,64}"),
    _token("brevo-api-key", "xkeysib-", r"[a-f0-9]{64}-[A-Za-z0-9]{16}", None),
    _token("groq-api-key", "gsk_", r"[A-Za-z0-9]{52}"),
    _token("perplexity-api-key", "pplx-", r"[A-Za-z0-9]{48}"),
    _token("xai-api-key", "xai-", r"[A-Za-z0-9]{80}"),
    _token("replicate-token", "r8_", r"[A-Za-z0-9]{37}"),
    _token("notion-token", "ntn_", r"[0-9]{11}[A-Za-z0-9]{35}", None),
    _token("dynatrace-token", "dt0c01.", r"[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}", None),
    _token("artifactory-token", "AKCp", r"[A-Za-z0-9]{69}"),
    _token("prefect-token", "pnu_", r"[A-Za-z0-9]{36}"),
    _token("buildkite-token", "bkua_", r"[a-f0-9]{40}"),
    _Rule("telegram-bot-token", None, (":aa",), finder=_telegram_tokens),
    _token(
        "jwt",
        "eyJ",
        r"[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,65536}\.(?:[A-Za-z0-9_-]{8,4096})?",
        None,
        before=_WORD,
    ),
    # credentials recognised by their context
    _rule(
        "url-password",
        r"://[^/\s:@\"'<>]{1,256}:(?P<s>[^/\s@\"'<>]{1,256})@",
        ("://",),
        _url_password,
        contextual=True,
    ),
    _rule(
        "basic-auth",
        r"curl[^\n]{0,256}?[ \t](?:-u|--user)[ =][\"']?(?P<s>[^\s\"':]{1,64}:[^\s\"']{3,128})",
        ("curl",),
        _not_template,
        contextual=True,
    ),
    _rule(
        "authorization-header",
        r"authorization" + _ASSIGN + r"[\"']?(?:(?:bearer|token|bot|apikey|sso-key)[ \t]+)?"
        r"(?P<s>[A-Za-z0-9._~+/=:-]{16,4096})",
        ("authorization",),
        _header_value,
        contextual=True,
        lowered=True,
    ),
    _rule(
        "bearer-token",
        r"bearer[ \t]+(?P<s>[A-Za-z0-9._~+/-]{16,4096}=*)",
        ("bearer",),
        _header_value,
        contextual=True,
        lowered=True,
    ),
    _rule(
        "basic-auth",
        r"basic[ \t]+(?P<s>[A-Za-z0-9+/]{8,1024}={0,2})(?![A-Za-z0-9+/=])",
        ("basic",),
        _basic_credentials,
        contextual=True,
        lowered=True,
    ),
    _rule(
        "assigned-secret",
        _NAME_TAIL + _ASSIGN + r"[\"'`]?(?P<s>(?!\[redacted:)[^\s\"'`,;\\]{8,})",
        _ASSIGN_KEYWORDS,
        _assigned_value,
        contextual=True,
        lowered=True,
    ),
]


def _by_keyword(rules: list[_Rule]) -> dict[str, list[int]]:
    """keyword → ranks of the rules it gates: a text is searched once per keyword, not once per rule."""
    index: dict[str, list[int]] = {}
    for rank, rule in enumerate(rules):
        for keyword in rule.keywords:
            index.setdefault(keyword, []).append(rank)
    return index


_RULES_BY_KEYWORD = _by_keyword(_RULES)
_KEYWORDS = sorted(_RULES_BY_KEYWORD)

# --------------------------------------------------------------------------------------------------
# scanning

_MAX_DEPTH = 3  # levels of decoding / joining below the text itself

Span = tuple[int, int, int, str]  # start, end, rank of the rule (lower wins the kind), kind


def _scan(text: str, depth: int, *, split: bool = True) -> list[Span]:
    """Raw spans: every rule over the text, then over its decoded values and its joined fragments."""
    spans: list[Span] = []
    if not text:
        return spans
    lowered = text.lower()
    if len(lowered) != len(text):  # a few non-ASCII letters lower-case to two characters
        lowered = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
    placeholders = [m.span() for m in _PLACEHOLDER_TEXT.finditer(text)] if "[REDACTED:" in text else []
    for rank in sorted({r for k in _KEYWORDS if k in lowered for r in _RULES_BY_KEYWORD[k]}):
        rule = _RULES[rank]
        if rule.contextual and not split:
            continue
        for start, end in rule.spans(text, lowered):
            if placeholders and _only_placeholders(text, start, end, placeholders):
                continue
            spans.append((start, end, rank, rule.kind))
    if depth < _MAX_DEPTH:
        spans += _encoded_spans(text, depth)
        if split:  # joined fragments are not joined again
            spans += _split_spans(text, depth)
    return spans


def _only_placeholders(text: str, start: int, end: int, placeholders: list[tuple[int, int]]) -> bool:
    """Whether a span is (inside) our own placeholders: redacting twice must change nothing."""
    i = bisect.bisect_right(placeholders, (start, len(text))) - 1
    if i >= 0 and end <= placeholders[i][1]:
        return True  # inside the placeholder that starts at or before it
    next_clear = i + 1 >= len(placeholders) or placeholders[i + 1][0] >= end
    if next_clear and (i < 0 or placeholders[i][1] <= start):
        return False  # overlaps none
    rest = _PLACEHOLDER_TEXT.sub("", text[start:end])
    return not any(ch.isalnum() for ch in rest)


def _merge(spans: list[Span]) -> list[Span]:
    """Overlapping spans become one, covering both, with the kind of the highest-ranked rule."""
    merged: list[Span] = []
    for start, end, rank, kind in sorted(spans, key=lambda s: (s[0], -s[1], s[2])):
        if merged and start < merged[-1][1]:
            s0, e0, r0, k0 = merged[-1]
            merged[-1] = (s0, max(e0, end), *((rank, kind) if rank < r0 else (r0, k0)))
        else:
            merged.append((start, end, rank, kind))
    return merged


@dataclass(frozen=True)
class _Segment:
    """A piece of a derived text (decoded or joined) and where it came from in the original."""

    start: int  # in the derived text
    end: int
    orig_start: int
    orig_end: int
    group: int
    exact: bool  # character for character (joined fragments), or the whole original span (decoded values)


def _derived(pieces: list[tuple[str, int, int, int, bool]], depth: int, *, split: bool) -> list[Span]:
    """Scan the pieces, one derived text, and map what is found back onto the original text.

    ``pieces`` are (text, orig_start, orig_end, group, exact); groups are separated by a newline, pieces of
    one group are adjacent. An exact piece maps a hit character for character, and a hit over several pieces
    of a group covers them and whatever glue lay between; any other piece is redacted whole.
    """
    segments: list[_Segment] = []
    parts: list[str] = []
    pos, last_group = 0, None
    for piece, orig_start, orig_end, group, exact in pieces:
        if last_group is not None and group != last_group:
            parts.append("\n")
            pos += 1
        parts.append(piece)
        segments.append(_Segment(pos, pos + len(piece), orig_start, orig_end, group, exact))
        pos += len(piece)
        last_group = group
    starts = [s.start for s in segments]
    out: list[Span] = []
    for start, end, rank, kind in _merge(_scan("".join(parts), depth + 1, split=split)):
        by_group: dict[int, tuple[int, int]] = {}
        i = max(bisect.bisect_right(starts, start) - 1, 0)
        while i < len(segments) and segments[i].start < end:
            seg = segments[i]
            i += 1
            if seg.end <= start:
                continue
            if not seg.exact:
                out.append((seg.orig_start, seg.orig_end, rank, kind))
                continue
            lo = seg.orig_start + max(start - seg.start, 0)
            hi = seg.orig_start + min(end, seg.end) - seg.start
            if seg.group in by_group:
                lo, hi = min(lo, by_group[seg.group][0]), max(hi, by_group[seg.group][1])
            by_group[seg.group] = (lo, hi)
        out += [(lo, hi, rank, kind) for lo, hi in by_group.values() if lo < hi]
    return out


# encoded values

_B64_RUN = re.compile(r"[^A-Za-z0-9+/_-][A-Za-z0-9+/_-]{20,}={0,2}")
_B64_NEXT_LINE = re.compile(r"[ \t]*\r?\n[ \t]*([A-Za-z0-9+/_-]{1,4096}={0,2})(?=\s|$)")
_HEX_RUN = re.compile(r"[0-9a-fA-F]+")
_URLSAFE = str.maketrans("-_", "+/")
_PRINTABLE_RUN = re.compile(rb"[\t\n\r\x20-\x7e]{12,}")
_B64_CHUNK = 65536  # longer values are decoded in overlapping chunks (multiples of 4 characters)
_B64_OVERLAP = 1024
_PCT_HIT = re.compile(r"%[0-9A-Fa-f]{2}")
_URL_RUN = re.compile(r"[A-Za-z0-9._~%+!*'()-]*")


def _b64decode(value: str) -> bytes | None:
    s = value.rstrip("=").translate(_URLSAFE)
    if len(s) % 4 == 1:
        s = s[:-1]
    s += "=" * (-len(s) % 4)
    try:
        return binascii.a2b_base64(s, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _printable(data: bytes) -> str:
    return "\n".join(run.decode("ascii") for run in _PRINTABLE_RUN.findall(data))


def _decode_b64_value(value: str) -> str:
    digits = value[2:] if value[:2] in ("0x", "0X") else value
    if _HEX_RUN.fullmatch(digits):
        return _printable(bytes.fromhex(digits[: len(digits) // 2 * 2])) if len(digits) >= 32 else ""
    if value.islower() or value.isupper() or _two_alphabets(value):
        return ""  # one case only, or two alphabets at once: a name or a path, not base64
    out = []
    for i in range(0, len(value), _B64_CHUNK - _B64_OVERLAP):
        decoded = _b64decode(value[i : i + _B64_CHUNK])
        if decoded:
            out.append(_printable(decoded))
        if i + _B64_CHUNK >= len(value):
            break
    return "\n".join(p for p in out if p)


def _two_alphabets(value: str) -> bool:
    return ("+" in value or "/" in value) and ("-" in value or "_" in value)


def _run_end(text: str, pos: int) -> int:
    m = _URL_RUN.match(text, pos)
    return m.end() if m else pos


def _encoded_pieces(text: str) -> Iterator[tuple[str, int, int]]:
    """(decoded text, start, end) of every base64 / hex / percent-encoded value that decodes to some text.

    Base64 wrapped over several lines (a full line is a multiple of 4 characters, unpadded) is one value.
    """
    covered = 0
    for m in _B64_RUN.finditer(" " + text):
        start, end = m.start(), m.end() - 1  # offsets in ``text``: the match includes one character before
        if start < covered:
            continue
        lines = [text[start:end]]
        while len(lines[-1]) >= 40 and len(lines[-1]) % 4 == 0 and not lines[-1].endswith("="):
            more = _B64_NEXT_LINE.match(text, end)
            if not more:
                break
            lines.append(more.group(1))
            end = more.end(1)
        covered = end
        decoded = _decode_b64_value("".join(lines))
        if decoded:
            yield decoded, start, end
    if "%" not in text:
        return
    covered, rev, n = -1, "", len(text)
    for hit in _PCT_HIT.finditer(text):
        if hit.start() < covered:
            continue
        rev = rev or text[::-1]  # a run is extended leftwards by matching the reversed text
        left = n - _run_end(rev, n - hit.start())
        right = _run_end(text, hit.start())
        covered = right
        value = text[left:right]
        decoded = urllib.parse.unquote(value, errors="replace")
        if len(value) >= 12 and decoded != value:
            yield decoded, left, right


def _encoded_spans(text: str, depth: int) -> list[Span]:
    pieces = [(d, s, e, i, False) for i, (d, s, e) in enumerate(_encoded_pieces(text))]
    return _derived(pieces, depth, split=True) if pieces else []


# split fragments

_FRAGMENT = r"[A-Za-z0-9_+/=.:~%-]{1,512}"  # no spaces: prose is not a piece of a token
_QUOTED = f"(?:\"{_FRAGMENT}\"|'{_FRAGMENT}'|`{_FRAGMENT}`)"
_QUOTED_ONE = re.compile(_QUOTED)
_QUOTED_RUN = re.compile(_QUOTED + r"(?:[ \t\r\n+.,&|()\\]{0,64}" + _QUOTED + r"){1,256}")
_LINE_VALUE = re.compile(
    r"\n(?P<indent>[ \t]*)(?:-[ \t]+|[A-Za-z0-9_.:/-]{1,128}(?::[ \t]+|[ \t]*=[ \t]*))"
    r"(?P<q>[\"']?)(?P<v>" + _FRAGMENT + r")(?P=q)[ \t]*(?=\r?\n|$)"
)


def _fragment_groups(text: str) -> Iterator[list[tuple[int, int]]]:
    """Spans of pieces that may be one secret cut up: adjacent quoted strings, consecutive YAML / env values."""
    if any(q in text for q in "\"'`"):
        for run in _QUOTED_RUN.finditer(text):
            yield [(m.start() + 1, m.end() - 1) for m in _QUOTED_ONE.finditer(text, run.start(), run.end())]
    if "\n" not in text:
        return
    group: list[tuple[int, int]] = []
    last_end, indent = -2, ""
    for m in _LINE_VALUE.finditer("\n" + text):
        if m.start() - last_end > 1 or m.group("indent") != indent:
            if len(group) > 1:
                yield group
            group = []
        group.append((m.start("v") - 1, m.end("v") - 1))
        last_end, indent = m.end(), m.group("indent")
    if len(group) > 1:
        yield group


def _split_spans(text: str, depth: int) -> list[Span]:
    pieces = [
        (text[s:e], s, e, g, True) for g, spans in enumerate(_fragment_groups(text)) if len(spans) > 1 for s, e in spans
    ]
    return _derived(pieces, depth, split=False) if pieces else []


# --------------------------------------------------------------------------------------------------
# the API


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int

    def secret(self, text: str) -> str:
        return text[self.start : self.end]


def find_secrets(text: str, *, field_name: str | None = None) -> list[Finding]:
    """Non-overlapping secrets in ``text``, in order: by rule, decoded, joined, or the whole value of a
    random-looking secret-named field."""
    found = [Finding(kind, start, end) for start, end, _, kind in _merge(_scan(text, 0))]
    if not found and field_name and _is_secret_field(field_name):
        value = text.strip()
        if _high_entropy(value) and not _PLACEHOLDER_TEXT.search(value) and not _benign(value):
            found.append(Finding("high-entropy-secret-field", 0, len(text)))
    return found


def salted_hash(secret: str, salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


def proves(redaction: Redaction, candidate: str) -> bool:
    """Whether ``candidate`` is the secret this redaction removed."""
    return salted_hash(candidate, redaction.salt) == redaction.salted_sha256


SaltFn = Callable[[str, str], str]
"""(field path, kind) → 32 hex chars of salt. The default is random; propose derives salts from its key."""


def _random_salt(path: str, kind: str) -> str:
    return os.urandom(16).hex()


@dataclass(frozen=True)
class _Part:
    """A stretch of one field to redact, and the secret its proof is over."""

    start: int
    end: int
    kind: str
    secret: str
    joined: bool = False  # a piece of a secret split across sibling fields


def _redact(text: str, field_path: str, parts: Sequence[_Part], salt_fn: SaltFn) -> tuple[str, list[Redaction]]:
    if not parts:
        return text, []
    merged: list[_Part] = []
    for p in sorted(parts, key=lambda p: (p.start, -p.end)):
        if merged and p.start < merged[-1].end:
            last = merged[-1]
            end = max(last.end, p.end)
            if last.joined or p.joined:
                secret = last.secret if last.joined else p.secret
                merged[-1] = _Part(last.start, end, last.kind, secret, True)
            else:
                merged[-1] = _Part(last.start, end, last.kind, text[last.start : end])
        else:
            merged.append(p)
    out, redactions, last_end = [], [], 0
    for i, p in enumerate(merged):
        salt = salt_fn(f"{field_path}#{i}", p.kind)
        redactions.append(
            Redaction(field_path=field_path, kind=p.kind, salt=salt, salted_sha256=salted_hash(p.secret, salt))
        )
        out.append(text[last_end : p.start])
        out.append(f"[REDACTED:{p.kind}]")
        last_end = p.end
    out.append(text[last_end:])
    return "".join(out), redactions


def _own_parts(text: str, field_name: str | None) -> list[_Part]:
    return [_Part(f.start, f.end, f.kind, f.secret(text)) for f in find_secrets(text, field_name=field_name)]


def redact_text(
    text: str, field_path: str, *, field_name: str | None = None, salt_fn: SaltFn = _random_salt
) -> tuple[str, list[Redaction]]:
    return _redact(text, field_path, _own_parts(text, field_name), salt_fn)


def _sibling_parts(values: Sequence[Any]) -> dict[int, list[_Part]]:
    """Secrets split across adjacent sibling strings: index of each contributing sibling → its pieces."""
    parts: dict[int, list[_Part]] = {}
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and isinstance(values[j], str):
            j += 1
        if j - i > 1:
            run = list(range(i, j))
            offsets = [0]
            for k in run:
                offsets.append(offsets[-1] + len(values[k]))
            joined = "".join(values[k] for k in run)
            for start, end, _, kind in _merge(_scan(joined, 0, split=False)):
                first = bisect.bisect_right(offsets, start) - 1
                last = bisect.bisect_left(offsets, end) - 1
                if last <= first:
                    continue  # inside one value: that value's own scan finds it
                for n in range(first, last + 1):
                    lo, hi = max(start, offsets[n]) - offsets[n], min(end, offsets[n + 1]) - offsets[n]
                    if lo < hi:
                        parts.setdefault(run[n], []).append(_Part(lo, hi, kind, joined[start:end], True))
        i = j + 1
    return parts


def redact_tree(data: Any, path: str = "", *, salt_fn: SaltFn = _random_salt) -> tuple[Any, list[Redaction]]:
    """A copy of JSON-like ``data`` with every secret in every string (keys included) redacted, and every
    piece of a secret split across adjacent sibling strings."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        found: list[Redaction] = []
        split = _sibling_parts(list(data.values()))
        for i, (key, value) in enumerate(data.items()):
            sub = f"{path}.{key}" if path else str(key)
            clean_key, key_red = redact_text(str(key), sub + "(key)", salt_fn=salt_fn)
            if isinstance(value, str):
                parts = _own_parts(value, str(key)) + split.get(i, [])
                clean, red = _redact(value, sub, parts, salt_fn)
            else:
                clean, red = redact_tree(value, sub, salt_fn=salt_fn)
            out[clean_key] = clean
            found += key_red + red
        return out, found
    if isinstance(data, list):
        items, found = [], []
        split = _sibling_parts(data)
        for i, value in enumerate(data):
            if isinstance(value, str):
                clean, red = _redact(value, f"{path}.{i}", _own_parts(value, None) + split.get(i, []), salt_fn)
            else:
                clean, red = redact_tree(value, f"{path}.{i}", salt_fn=salt_fn)
            items.append(clean)
            found += red
        return items, found
    if isinstance(data, str):
        return redact_text(data, path, salt_fn=salt_fn)
    return data, []


def _walk(value: Any, path: str, name: str | None) -> Iterator[tuple[str, str | None, str, list[_Part]]]:
    """(path, field name, text, pieces of secrets split across siblings) of every string, keys included."""
    if isinstance(value, dict):
        split = _sibling_parts(list(value.values()))
        for i, (k, v) in enumerate(value.items()):
            sub = f"{path}.{k}" if path else str(k)
            yield sub + "(key)", None, str(k), []
            if isinstance(v, str):
                yield sub, str(k), v, split.get(i, [])
            else:
                yield from _walk(v, sub, str(k))
    elif isinstance(value, list):
        split = _sibling_parts(value)
        for i, v in enumerate(value):
            if isinstance(v, str):
                yield f"{path}.{i}", name, v, split.get(i, [])
            else:
                yield from _walk(v, f"{path}.{i}", name)
    elif isinstance(value, str):
        yield path, name, value, []


def secrets_in_tree(data: Any) -> list[tuple[str, str]]:
    """(field path, kind) of every secret found, without changing anything."""
    hits = []
    for path, name, text, split in _walk(data, "", None):
        hits += [(path, f.kind) for f in find_secrets(text, field_name=name)]
        hits += [(path, p.kind) for p in split]
    return hits
