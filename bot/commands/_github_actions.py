"""The GitHub Actions runner, as ``glassbox ci`` meets it: its environment, its event payload, its output files.

Everything here treats what the runner hands over as input to check, never as instructions:

- **the environment** — the runner's standard variables (:data:`RUNNER_VARIABLES`), all required; a missing or
  malformed one is a :class:`~bot.errors.UserError` naming every variable at once;
- **the event payload** (``GITHUB_EVENT_PATH``) — read from a regular file of at most :data:`MAX_EVENT_BYTES`,
  strict JSON (no duplicate keys, no NaN), then validated against the few fields a job needs. Its strings (PR
  titles, branch names, logins) are written by whoever opened the PR: they are never echoed raw in an error, and
  never reach a command line or a shell;
- **the output files** — ``GITHUB_OUTPUT`` gets every value in the heredoc form with a fresh random delimiter, so a
  value with newlines (or with ``name=value`` / ``<<EOF`` text in it) stays one value; ``GITHUB_STEP_SUMMARY`` gets
  one bounded append. Both are written once, at the end of a job, so a failed job leaves neither half-written;
- **the log** — what glassbox prints while rendering untrusted text is framed by ``::stop-commands::`` with a random
  token, so a ``::set-output``/``::add-mask::`` line inside a PR title or a rule message is shown, not obeyed;
- **the OIDC token** — :func:`request_id_token` asks the runner's token endpoint
  (``ACTIONS_ID_TOKEN_REQUEST_URL``/``_TOKEN``) for the job's token for one audience, bounded and over HTTPS (plain
  HTTP only on loopback), and never puts the request token in a message.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from bot.errors import ForgeError, UserError

EVENT_NAME = "GITHUB_EVENT_NAME"
EVENT_PATH = "GITHUB_EVENT_PATH"
REPOSITORY = "GITHUB_REPOSITORY"
SHA = "GITHUB_SHA"
REF = "GITHUB_REF"
RUN_ID = "GITHUB_RUN_ID"
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
OUTPUT = "GITHUB_OUTPUT"
API_URL = "GITHUB_API_URL"
ID_TOKEN_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"  # noqa: S105 - the variable's name
ID_TOKEN_REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 - the variable's name

RUNNER_VARIABLES = (EVENT_NAME, EVENT_PATH, REPOSITORY, SHA, REF, RUN_ID, STEP_SUMMARY, OUTPUT, API_URL)
"""Set by the runner for every job; ``glassbox ci`` needs each of them."""
OIDC_VARIABLES = (ID_TOKEN_URL, ID_TOKEN_REQUEST_TOKEN)
"""Set only for a job with ``permissions: id-token: write``."""

MAX_EVENT_BYTES = 25 * 1024 * 1024
"""GitHub caps a webhook payload at 25 MB; an event file larger than that is not one GitHub wrote."""
MAX_SUMMARY_BYTES = 1024 * 1024
"""GitHub shows at most 1 MiB of job summary per step."""
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024

_SHA = re.compile(r"^[0-9a-f]{40}$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_RUN_ID = re.compile(r"^[0-9]{1,20}$")
_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def quoted(value: object, limit: int = 80) -> str:
    """An untrusted value as it may appear in a message: repr (so no newline survives), cut to ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------
# the environment


@dataclass(frozen=True)
class Runner:
    """The runner's standard variables for one job, checked."""

    event_name: str
    event_path: Path
    repository: str
    sha: str
    ref: str
    run_id: str
    step_summary: Path
    output: Path
    api_url: str
    id_token_url: str | None = None
    id_token_request_token: str | None = None
    temp: str | None = None  # RUNNER_TEMP: the job's scratch directory, emptied after every job

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, oidc: bool = False) -> Runner:
        env = os.environ if environ is None else environ
        wanted = RUNNER_VARIABLES + (OIDC_VARIABLES if oidc else ())
        missing = [name for name in wanted if not env.get(name, "").strip()]
        if missing:
            hint = (
                "; the OIDC variables exist only in a job with `permissions: id-token: write`"
                if set(missing) & set(OIDC_VARIABLES)
                else ""
            )
            raise UserError(
                f"not a GitHub Actions job: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set "
                f"(glassbox ci reads the runner's environment){hint}"
            )
        problems = []
        if not _REPOSITORY.match(env[REPOSITORY]):
            problems.append(f"{REPOSITORY} {quoted(env[REPOSITORY])} is not OWNER/NAME")
        if not _SHA.match(env[SHA]):
            problems.append(f"{SHA} {quoted(env[SHA])} is not a 40-hex commit SHA")
        if not _RUN_ID.match(env[RUN_ID]):
            problems.append(f"{RUN_ID} {quoted(env[RUN_ID])} is not a run number")
        if problems:
            raise UserError("; ".join(problems))
        return cls(
            event_name=env[EVENT_NAME],
            event_path=Path(env[EVENT_PATH]),
            repository=env[REPOSITORY],
            sha=env[SHA],
            ref=env[REF],
            run_id=env[RUN_ID],
            step_summary=Path(env[STEP_SUMMARY]),
            output=Path(env[OUTPUT]),
            api_url=env[API_URL],
            id_token_url=env.get(ID_TOKEN_URL) if oidc else None,
            id_token_request_token=env.get(ID_TOKEN_REQUEST_TOKEN) if oidc else None,
            temp=env.get("RUNNER_TEMP", "").strip() or None,
        )


def same_repository(a: str, b: str) -> bool:
    """GitHub names repositories case-insensitively: ``Acme/Infra`` and ``acme/infra`` are one repository."""
    return a.casefold() == b.casefold()


# --------------------------------------------------------------------------------------------------
# the event payload


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {quoted(key)} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_event(path: Path, *, limit: int | None = None) -> dict[str, Any]:
    """The event payload at ``path``: a regular file of at most ``limit`` (default :data:`MAX_EVENT_BYTES`) bytes
    holding one strict JSON object."""
    limit = MAX_EVENT_BYTES if limit is None else limit
    where = f"{EVENT_PATH} {path}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise UserError(f"{where}: cannot open the event payload: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{where}: the event payload is not a regular file")
        if info.st_size > limit:
            raise UserError(f"{where}: the event payload has {info.st_size} bytes; at most {limit} are read")
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise UserError(f"{where}: the event payload grew past {limit} bytes while it was read")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise UserError(f"{where}: the event payload is not UTF-8") from None
    except RecursionError:
        raise UserError(f"{where}: the event payload nests too deeply") from None
    except ValueError as exc:
        raise UserError(f"{where}: the event payload is not strict JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: the event payload is {type(data).__name__}, not a JSON object")
    return data


class Payload(BaseModel):
    """A part of an event payload: only the fields a job reads, each checked; the rest is ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


CommitSha = Annotated[str, StringConstraints(pattern=_SHA.pattern)]
RepositoryName = Annotated[str, StringConstraints(pattern=_REPOSITORY.pattern)]
RefName = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class RepositoryRef(Payload):
    full_name: RepositoryName


class BranchTip(Payload):
    sha: CommitSha
    ref: RefName
    repo: RepositoryRef | None = None  # null when the fork a PR came from was deleted


class PullRequestPart(Payload):
    number: int = Field(ge=1)
    state: str
    draft: bool = False
    merged: bool | None = None
    head: BranchTip
    base: BranchTip


class PullRequestEvent(Payload):
    action: str
    number: int = Field(ge=1)
    pull_request: PullRequestPart
    repository: RepositoryRef
    changes: dict[str, Any] | None = None


class ReviewPart(Payload):
    id: int
    state: str
    commit_id: CommitSha | None = None


class PullRequestReviewEvent(Payload):
    action: str
    review: ReviewPart
    pull_request: PullRequestPart
    repository: RepositoryRef


class PushEvent(Payload):
    ref: RefName
    before: CommitSha
    after: CommitSha
    deleted: bool = False
    repository: RepositoryRef


class ScheduledEvent(Payload):
    """``schedule`` (GitHub documents no payload beyond the cron line) or ``workflow_dispatch``."""

    schedule: str | None = None
    repository: RepositoryRef | None = None


P = TypeVar("P", bound=Payload)


def parse_payload(model: type[P], data: Mapping[str, Any], event: str) -> P:
    """``data`` as ``model``; a mismatch names each field and what is wrong, never the value found there."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_input=False, include_url=False)[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "(the payload)"
            lines.append(f"{where}: {err['msg']}")
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise UserError(f"the event payload does not match a {event} event: " + "; ".join(lines) + more) from None


# --------------------------------------------------------------------------------------------------
# GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and the log


def output_block(outputs: Mapping[str, str]) -> str:
    """``outputs`` in the runner's heredoc form, each value under its own random delimiter."""
    parts = []
    for name, value in outputs.items():
        if not _OUTPUT_NAME.match(name):
            raise ValueError(f"output name {name!r} is not a plain identifier")
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in value:  # never in practice; a value must not be able to end its own heredoc
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        parts.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(parts)


def _append(path: Path, text: str, what: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise UserError(f"{what} {path}: cannot append: {exc.strerror}") from None


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append every output in one write: a job that fails before this leaves no output behind."""
    _append(path, output_block(outputs), OUTPUT)


def append_summary(path: Path, markdown: str) -> None:
    data = markdown.encode("utf-8")
    if len(data) > MAX_SUMMARY_BYTES:
        cut = data[: MAX_SUMMARY_BYTES - 200].decode("utf-8", errors="ignore")
        markdown = cut + "\n\n_(summary cut at 1 MiB; the full text is in the job's files)_\n"
    _append(path, markdown if markdown.endswith("\n") else markdown + "\n", STEP_SUMMARY)


@contextmanager
def commands_paused(stream: TextIO | None = None) -> Iterator[None]:
    """While inside, the runner shows every line printed and obeys none of them as a workflow command."""
    out = stream or sys.stdout
    token = secrets.token_hex(16)
    out.write(f"::stop-commands::{token}\n")
    out.flush()
    try:
        yield
    finally:
        out.flush()
        out.write(f"::{token}::\n")
        out.flush()


# --------------------------------------------------------------------------------------------------
# the job's OIDC token


@dataclass(frozen=True)
class IdToken:
    value: str = field(repr=False)
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str | None:
        sub = self.claims.get("sub")
        return sub if isinstance(sub, str) else None


def _claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT: its audience and subject are checked here, its signature by the cloud."""
    parts = token.split(".")
    if len(parts) != 3 or not all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts):
        raise ForgeError("the runner's OIDC token service answered something that is not a JWT")
    try:
        body = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(body)
    except ValueError:
        raise ForgeError("the runner's OIDC token has unreadable claims") from None
    if not isinstance(claims, dict):
        raise ForgeError("the runner's OIDC token has unreadable claims")
    return claims


def request_id_token(url: str, request_token: str, *, audience: str, repository: str, timeout: float = 10.0) -> IdToken:
    """The job's OIDC token for ``audience`` from the runner's token endpoint, its claims checked for sense."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "https" and not (parsed.scheme == "http" and parsed.hostname in _LOOPBACK):
        raise UserError(f"{ID_TOKEN_URL} is not an https URL")
    query = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k != "audience"] + [("audience", audience)]
    target = urllib.parse.urlunsplit(parsed._replace(query=urllib.parse.urlencode(query)))
    req = urllib.request.Request(target, method="GET")  # noqa: S310 - scheme checked above
    req.add_header("Authorization", f"Bearer {request_token}")
    req.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
            raw = resp.read(MAX_TOKEN_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # its body is the service's, never shown
        raise ForgeError(
            f"the runner's OIDC token service answered HTTP {exc.code}", status=exc.code, retryable=exc.code >= 500
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ForgeError(f"the runner's OIDC token service could not be reached: {reason}", retryable=True) from None
    if len(raw) > MAX_TOKEN_RESPONSE_BYTES:
        raise ForgeError(f"the runner's OIDC token service answered more than {MAX_TOKEN_RESPONSE_BYTES} bytes")
    try:
        value = json.loads(raw).get("value")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value:
        raise ForgeError("the runner's OIDC token service answered without a token (no `value`)")
    claims = _claims(value)
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise ForgeError(f"the runner's OIDC token is for audience {quoted(aud)}, not {audience!r}")
    named = claims.get("repository")
    if isinstance(named, str) and not same_repository(named, repository):
        raise ForgeError(f"the runner's OIDC token names repository {quoted(named)}, not {repository}")
    return IdToken(value=value, claims=claims)


def private_file(directory: Path, name: str, content: str) -> Path:
    """Write ``content`` to a new 0600 file (the directory is made 0700): for a token a child process reads."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    path.chmod(0o600)
    return path
