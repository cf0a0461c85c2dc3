"""CODEOWNERS with GitHub's semantics: where the file lives, how a pattern matches, who owns a path.

What is implemented (GitHub's documented behaviour, "About code owners"):

- Location: ``.github/CODEOWNERS``, then ``CODEOWNERS`` at the root, then ``docs/CODEOWNERS``; the first
  one found is the only one read.
- One rule per line: a pattern, then zero or more owners (``@user``, ``@org/team`` or an email). ``#``
  starts a comment (a whole line, or a token after whitespace); blank lines are ignored; ``\\#`` at the
  start of a pattern is a literal ``#``.
- Patterns follow gitignore: without a slash they match at any depth; a leading ``/`` or a slash inside
  anchors at the root; ``*`` and ``?`` never cross ``/``; ``**`` does; a trailing ``/`` means a directory
  and everything under it; a pattern naming a file or directory also covers everything below it, except
  that ``dir/*`` and ``/dir/*`` cover direct children only (GitHub's documented exception); ``dir/**``
  and ``dir/**/`` both cover everything below ``dir/``, direct children included.
- The LAST matching rule wins; a rule with no owners makes the paths it matches unowned.
- Paths are case-sensitive. ``!`` negation and ``[ ]`` ranges are not supported by GitHub: such lines,
  and lines with a malformed owner, are skipped (as GitHub skips them) and reported with their line
  number, so a typo never silently changes who must approve.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

from pydantic import Field

from bot.records import Record

LOCATIONS: tuple[str, ...] = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")

_USER = re.compile(r"^@[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_TEAM = re.compile(r"^@[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Rule(Record):
    line: int = Field(ge=1, description="1-based line number in the CODEOWNERS file.")
    pattern: str = Field(description="The pattern as matched (a leading '\\#' already unescaped).")
    owners: list[str] = Field(default_factory=list, description="Empty: the matched paths are unowned.")

    @property
    def text(self) -> str:
        return " ".join([self.pattern, *self.owners])


class Problem(Record):
    line: int = Field(ge=1)
    text: str
    message: str


class Ownership(Record):
    """Who owns one path, and the rule that decided it (None: no rule matched)."""

    path: str
    owners: list[str]
    rule: Rule | None


def owner_kind(owner: str) -> str | None:
    """``team``, ``user`` or ``email``; None when the token is not a valid owner."""
    if _TEAM.match(owner):
        return "team"
    if _USER.match(owner):
        return "user"
    if not owner.startswith("@") and _EMAIL.match(owner):
        return "email"
    return None


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression a (valid) CODEOWNERS pattern becomes, over a repository-relative path."""
    dir_only = pattern.endswith("/")
    body = pattern.strip("/")
    anchored = pattern.startswith("/") or "/" in body
    segments = body.split("/")
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            # "**" as a whole segment spans zero or more directories; a final "**" is everything
            # below what precedes it (so "dir/**/" owns dir/x as well as dir/a/x)
            out.append(".+" if last else "(?:.*/)?")
            continue
        part = ""
        j = 0
        while j < len(seg):
            ch = seg[j]
            if ch == "*":
                while j + 1 < len(seg) and seg[j + 1] == "*":
                    j += 1  # "**" inside a segment is an ordinary "*"
                part += "[^/]*"
            elif ch == "?":
                part += "[^/]"
            else:
                part += re.escape(ch)
            j += 1
        out.append(part if last else part + "/")
    regex = "".join(out)
    prefix = "" if anchored else "(?:.*/)?"
    last_seg = segments[-1]
    if last_seg == "**":
        suffix = ""  # already everything below: "dir/**" and "dir/**/" alike
    elif dir_only:
        suffix = "/.+"  # a directory: only paths below it
    elif last_seg == "*" and len(segments) > 1:
        suffix = ""  # GitHub: "docs/*" owns docs/x, not docs/sub/x
    else:
        suffix = "(?:/.*)?"  # a file, or a directory and everything under it
    return re.compile("^" + prefix + regex + suffix + "$")


def _pattern_problem(pattern: str) -> str | None:
    if pattern.startswith("!"):
        return "negation ('!') is not supported in CODEOWNERS; the line is ignored"
    if "[" in pattern or "]" in pattern:
        return "character ranges ('[ ]') are not supported in CODEOWNERS; the line is ignored"
    if pattern.strip("/") == "" and pattern != "/":
        return "empty pattern"
    if pattern == "/":
        return "pattern '/' matches nothing; use '*' for every file"
    return None


def _tokens(line: str) -> list[str]:
    """Whitespace-separated tokens up to an inline comment (a token starting with an unescaped '#')."""
    tokens: list[str] = []
    for i, token in enumerate(line.split()):
        if token.startswith("#") and i > 0:
            break
        tokens.append(token)
    return tokens


class CodeOwners(Record):
    """A parsed CODEOWNERS file: rules in file order, and the lines that were skipped, with why."""

    source: str = Field(default="CODEOWNERS", description="Where the file was read from.")
    rules: list[Rule] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)

    def match(self, path: str) -> Rule | None:
        """The rule that decides ``path``: the last one that matches."""
        clean = path.lstrip("/")
        for rule in reversed(self.rules):
            if compile_pattern(rule.pattern).match(clean):
                return rule
        return None

    def ownership(self, path: str) -> Ownership:
        rule = self.match(path)
        return Ownership(path=path, owners=list(rule.owners) if rule else [], rule=rule)

    def owners(self, path: str) -> list[str]:
        rule = self.match(path)
        return list(rule.owners) if rule else []


def parse(text: str, source: str = "CODEOWNERS") -> CodeOwners:
    """Parse CODEOWNERS text; never raises for a bad line (it is skipped and reported)."""
    rules: list[Rule] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = _tokens(line)
        pattern = tokens[0]
        if pattern.startswith("\\#"):
            pattern = pattern[1:]
        why = _pattern_problem(pattern)
        if why is None:
            bad = [o for o in tokens[1:] if owner_kind(o) is None]
            if bad:
                why = f"invalid owner {bad[0]!r}: use @user, @org/team or an email address; the line is ignored"
        if why is not None:
            problems.append(Problem(line=number, text=line, message=why))
            continue
        rules.append(Rule(line=number, pattern=pattern, owners=tokens[1:]))
    return CodeOwners(source=source, rules=rules, problems=problems)


def find(read: Callable[[str], bytes | None], locations: Sequence[str] = LOCATIONS) -> CodeOwners | None:
    """Read the first CODEOWNERS found at ``locations`` through ``read(path)``; None when there is none."""
    for location in locations:
        data = read(location)
        if data is not None:
            return parse(data.decode("utf-8", errors="replace"), source=location)
    return None
