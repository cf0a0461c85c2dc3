"""Break-glass: a signed, single-use, short-lived grant that lets one deploy skip approvals (never integrity).

:func:`open_grant` is run by a person who belongs to a team with ``break_glass: true`` in the registry;
anyone else is refused. The grant names one stack, a ticket, a reason and an expiry (TTL default 1 hour,
at most the configured maximum, 4 hours unless set otherwise); it is a DSSE envelope signed with that
person's own key, kept in SQLite (``breakglass/grants.sqlite`` under the deploy state directory) and
recorded as ``breakglass.open``. The person hands the envelope to the deploy (on GitHub: the deploy workflow's
``workflow_dispatch`` input, read by ``glassbox ci push`` through :func:`read_presented_grant`: bounded, strict
JSON, the envelope's shape and the grant's schema, each failure a ``breakglass.refuse``).

:func:`use_grant` is what deploy calls: the grant must verify against a trusted key of the person it
names (who must still be in a break-glass team), must not have expired, must be for the stack being
deployed, and is consumed atomically so it works exactly once. Each use raises a high-severity
:class:`~bot.deploy.model.BreakGlassAlert` (queued in ``alerts.jsonl`` for the SIEM export), opens a
post-incident review (``reviews/<grant_id>.json``) and appends ``breakglass.use``. Every refusal
(expired, reused, wrong stack, forged, not a break-glass member) appends ``breakglass.refuse`` (I6).

**Single use across runners: the audit trail is the lock.** A deploy job on a hosted runner starts from an empty
state directory, so the local SQLite store cannot know that another runner used the grant. With a trail
(:class:`TrailGrantLock`, what ``glassbox ci push`` passes), consuming the grant is one fast-forward append to the
``glassbox-trail`` branch of the governed repository, made *before* anything is applied, of three files: the
grant envelope as presented (``breakglass/<grant id>.dsse.json``), the use claim signed by the deploy identity
(``breakglass/<grant id>.used.json``: grant id, the grant envelope's sha256, stack, commit, run, time) and the
post-incident review (``breakglass/<grant id>.review.json``). The append is made on the head just read and only
while the claim path is absent there (:func:`bot.forge.trail.append_once`); a job that loses the race for the
branch reads the new head, finds the winner's claim and is refused as ``reused``. Exactly one job holds the
claim, so exactly one applies. The local store stays as a cache and index (``breakglass list``, the offline
``glassbox deploy --break-glass``); when a trail is given it decides, and a use the local cache already holds is
refused as well.

What is trusted: the trail's content is only as good as the signatures it carries. A grant on the trail is
verified against the opener's keys in the registry at the trust anchor (the registry before the deployed commit)
and that person must be in a ``break_glass`` team there; a claim is verified against the deploy identity's
deploy-signer keys. Nobody can forge either by writing to the trail. What makes a claim a *lock* is the trail's
protection: only the service identities push to it, fast-forward only, never deleted or force-pushed (``glassbox
forge init``; on GitHub the branch rules in docs/github-setup.md). Someone who could rewrite the branch could
remove a claim and replay the grant; ``audit verify`` then reports ``trail-tampered`` (the rewrite) and the
second use (:func:`trail_grant_problems`).

**The review is forced.** Each use's post-incident review is closed by :func:`close_review`: a
:class:`~bot.deploy.model.ReviewClosure` (outcome kept, reverted or fixed-forward, a summary, a follow-up) signed with
the reviewer's own key, by a person in a ``reviews_break_glass: true`` team who did not open the grant
(:func:`may_review_break_glass`: nobody reviews their own break-glass), recorded as ``breakglass.review``. Offline the
deploy state holds it beside the review (``reviews/<grant id>.closed.dsse.json``, the review rewritten as closed); on
GitHub the reviewer hands the envelope to the audit workflow, whose job reads it like a grant
(:func:`read_presented_closure`) and appends it to the trail as ``breakglass/<grant id>.closed.dsse.json``
(:func:`append_closure`) once it verifies and the trail holds a verified claim of that grant. The bot's commit only
carries it: the reviewer's signature is what ``audit verify`` checks (:func:`verify_closure`). A closure that does not
verify is ``trail-tampered``; a use whose review is past due with no valid closure fails as
``breakglass-review-overdue`` (:func:`trail_breakglass_audit`, and without a trail :func:`state_breakglass_audit`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from bot.deploy.events import EventSink
from bot.deploy.model import (
    CLAIM_PAYLOAD_TYPE,
    CLOSURE_PAYLOAD_TYPE,
    GRANT_PAYLOAD_TYPE,
    BreakGlassAlert,
    BreakGlassGrant,
    ClosedReview,
    GrantClaim,
    GrantRow,
    GrantStatus,
    OpenedGrant,
    PostIncidentReview,
    ReviewClosure,
    ReviewOutcome,
)
from bot.deploy.state import StackRef, alerts_file, grants_db, reviews_dir, write_json_atomic
from bot.errors import Denied, GlassboxError, IntegrityError, UserError
from bot.forge.trail import TrailForge, append_once
from bot.records import ActorKind, Outcome, canonical_json, new_correlation_id
from bot.redaction import redact_text
from bot.registry import Registry
from bot.trust.conventions import TRAIL_BRANCH
from bot.trust.keys import Signer, sign_json, trusted_keys, verify_json_envelope
from bot.trust.ledger import Ledger
from bot.trust.trail import BREAKGLASS_DIR, claim_entry, closure_entry, grant_entry, grant_name, review_entry

DEFAULT_GRANT_TTL = timedelta(hours=1)
DEFAULT_MAX_GRANT_TTL = timedelta(hours=4)
DEFAULT_REVIEW_DUE = timedelta(days=5)
MAX_GRANT_BYTES = 16 * 1024
"""The largest grant envelope a deploy reads (a real one is about 1 KiB; the reason is the only free text), and the
largest review closure the audit workflow reads (its summary and follow-up are its free text)."""

_TTL = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


class BreakGlassRefused(Denied):
    """A grant was not opened or not accepted. ``code`` names the rule for callers and tests."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, reasons=[code])
        self.code = code


def parse_ttl(text: str) -> timedelta:
    """``30m``, ``1h``, ``2h30m`` (and ``90s``) as a timedelta; anything else is bad input."""
    value = text.strip().lower()
    match = _TTL.match(value)
    if not value or match is None:
        raise UserError(f"--ttl {text!r}: write a duration like 30m, 1h or 2h30m")
    hours, minutes, seconds = (int(match.group(g) or 0) for g in ("h", "m", "s"))
    ttl = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if ttl <= timedelta(0):
        raise UserError(f"--ttl {text!r}: a grant must live longer than zero")
    return ttl


def format_ttl(ttl: timedelta) -> str:
    total = int(ttl.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else ""]
    return "".join(parts) or "0s"


def break_glass_teams(registry: Registry) -> list[str]:
    return [t.id for t in registry.teams.teams if t.break_glass]


def may_break_glass(registry: Registry, identity: str) -> bool:
    """A person (never an agent or a service identity) who belongs to a ``break_glass: true`` team."""
    if registry.identity_kind(identity) != "human":
        return False
    return any(identity in registry.members(team) for team in break_glass_teams(registry))


def person_trust(registry: Registry, identity: str) -> dict[str, bytes]:
    """keyid → public key of every key the registry trusts for ``identity``."""
    return trusted_keys((k.keyid, k.public_key) for k in registry.keys_for(identity))


def untrusted_key(registry: Registry, signer: Signer, what: str) -> str | None:
    """Why ``what`` signed by ``signer`` would never verify (its key is not one the registry trusts for the
    signer's identity), or None."""
    if signer.keyid in person_trust(registry, signer.identity):
        return None
    return (
        f"key {signer.keyid} is not a trusted key of {signer.identity!r} in {registry.root}/trust.yaml; "
        f"a {what} signed with it would never verify"
    )


# --------------------------------------------------------------------------------------------------
# the grants store


class GrantStore:
    """Grants and their single use, in SQLite. The signed envelope is the grant; the columns index it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def under(cls, state_dir: Path) -> GrantStore:
        return cls(grants_db(state_dir))

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS grants (grant_id TEXT PRIMARY KEY, opened_by TEXT NOT NULL, "
            "stack TEXT NOT NULL, ticket TEXT NOT NULL, opened_at TEXT NOT NULL, expires_at TEXT NOT NULL, "
            "envelope TEXT NOT NULL, used_at TEXT, used_by TEXT, used_commit TEXT)"
        )
        return conn

    def insert(self, grant: BreakGlassGrant, envelope: Mapping[str, Any]) -> None:
        self._store(grant, envelope, "INSERT")

    def remember(self, grant: BreakGlassGrant, envelope: Mapping[str, Any]) -> None:
        """Index a grant presented to this host (a deploy on another machine than the one that opened it); a grant
        already known keeps its row. The envelope is verified when it is used, never because it is stored."""
        self._store(grant, envelope, "INSERT OR IGNORE")

    def _store(self, grant: BreakGlassGrant, envelope: Mapping[str, Any], verb: str) -> None:
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    f"{verb} INTO grants (grant_id, opened_by, stack, ticket, opened_at, expires_at, envelope) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (
                        grant.grant_id,
                        grant.opened_by,
                        grant.stack,
                        grant.ticket,
                        grant.opened_at.isoformat(),
                        grant.expires_at.isoformat(),
                        canonical_json(dict(envelope)).decode("utf-8"),
                    ),
                )
        finally:
            conn.close()

    def used(self, grant_id: str) -> bool:
        conn = self._connect()
        try:
            row = conn.execute("SELECT used_at FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
        finally:
            conn.close()
        return bool(row and row[0] is not None)

    def envelope(self, grant_id: str) -> dict[str, Any] | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT envelope FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
        finally:
            conn.close()
        return json.loads(row[0]) if row else None

    def claim(self, grant_id: str, *, used_by: str, commit: str, now: datetime) -> bool:
        """Mark the grant used; False when it already was. The conditional UPDATE is the atomic test-and-set."""
        conn = self._connect()
        try:
            with conn:
                cur = conn.execute(
                    "UPDATE grants SET used_at = ?, used_by = ?, used_commit = ? "
                    "WHERE grant_id = ? AND used_at IS NULL",
                    (now.isoformat(), used_by, commit, grant_id),
                )
                return cur.rowcount == 1
        finally:
            conn.close()

    def rows(self, now: datetime | None = None) -> list[GrantRow]:
        """Every grant, newest first, with its status at ``now`` (decoded for display, not verified)."""
        when = (now or datetime.now(UTC)).astimezone(UTC)
        conn = self._connect()
        try:
            raw = conn.execute(
                "SELECT envelope, used_at, used_by, used_commit FROM grants ORDER BY opened_at DESC, grant_id"
            ).fetchall()
        finally:
            conn.close()
        out = []
        for envelope, used_at, used_by, used_commit in raw:
            grant = BreakGlassGrant.model_validate(_unverified_payload(json.loads(envelope)))
            if used_at is not None:
                status = GrantStatus.USED
            elif when >= grant.expires_at:
                status = GrantStatus.EXPIRED
            else:
                status = GrantStatus.OPEN
            out.append(GrantRow(grant=grant, status=status, used_at=used_at, used_by=used_by, used_commit=used_commit))
        return out


def _verified_grant(
    envelope: Any, grant_id: str, registry: Registry, refuse: Callable[[str, str], BreakGlassRefused]
) -> BreakGlassGrant:
    """The grant ``envelope`` holds, signed by the person it names as its opener and stored under its own id;
    anything else is refused as ``forged``."""
    # who the grant claims to be from decides which keys may have signed it; the signature then proves it
    try:
        claimed = _unverified_payload(envelope)
        opener = str(claimed.get("opened_by", "")) if isinstance(claimed, Mapping) else ""
        payload, _ = verify_json_envelope(envelope, person_trust(registry, opener), payload_type=GRANT_PAYLOAD_TYPE)
        grant = BreakGlassGrant.model_validate(payload)
    except IntegrityError as exc:
        raise refuse("forged", f"grant {grant_id} does not verify: {exc.message}") from None
    except ValidationError as exc:
        raise refuse("forged", f"grant {grant_id} is malformed: {exc.error_count()} problem(s)") from None
    if grant.grant_id != grant_id:
        raise refuse("forged", f"grant stored as {grant_id} is signed as {grant.grant_id}")
    return grant


def _unverified_payload(envelope: Mapping[str, Any]) -> Any:
    try:
        return json.loads(base64.b64decode(str(envelope["payload"]), validate=True))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise IntegrityError(f"malformed grant envelope: {exc}") from None


# --------------------------------------------------------------------------------------------------
# open


def open_grant(
    registry: Registry,
    signer: Signer,
    *,
    ticket: str,
    reason: str,
    stack: str,
    ledger: Ledger,
    store: GrantStore,
    ttl: timedelta = DEFAULT_GRANT_TTL,
    max_ttl: timedelta = DEFAULT_MAX_GRANT_TTL,
    now: datetime | None = None,
) -> OpenedGrant:
    """Open a grant as ``signer``'s identity; refuse (with ``breakglass.refuse``) anyone not allowed."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    identity = signer.identity
    ref = StackRef.parse(stack)
    if not ticket.strip():
        raise UserError("--ticket: give the incident or ticket reference the grant is for")
    if not reason.strip():
        raise UserError("--reason: say why the governed path cannot wait")
    # free text leaves this function only with secrets redacted (I9)
    safe_reason, _ = redact_text(reason.strip(), "reason")
    safe_ticket, _ = redact_text(ticket.strip(), "ticket")
    sink = EventSink(ledger, signer, kind=ActorKind.HUMAN)
    base = {"ticket": safe_ticket, "grant_id": None, "ttl_seconds": int(ttl.total_seconds()), "stage": "open"}

    def refuse(code: str, message: str, **extra: Any) -> BreakGlassRefused:
        sink.emit(
            "breakglass.refuse",
            Outcome.DENY,
            message,
            stack=str(ref),
            details={**base, "expires": None, "code": code, **extra},
        )
        return BreakGlassRefused(message, code=code)

    if not may_break_glass(registry, identity):
        teams = ", ".join(break_glass_teams(registry)) or "none"
        raise refuse(
            "not-break-glass",
            f"{identity!r} may not open break-glass grants: only members of a break_glass team ({teams}) may",
        )
    untrusted = untrusted_key(registry, signer, "grant")
    if untrusted:
        raise refuse("untrusted-key", untrusted)
    if ttl > max_ttl:
        raise refuse(
            "ttl-over-max",
            f"asked for a grant of {format_ttl(ttl)}; the maximum is {format_ttl(max_ttl)}",
            max_ttl_seconds=int(max_ttl.total_seconds()),
        )
    if ttl <= timedelta(0):
        raise UserError("--ttl: a grant must live longer than zero")
    grant = BreakGlassGrant(
        grant_id=new_correlation_id(),
        opened_by=identity,
        ticket=safe_ticket,
        reason=safe_reason,
        stack=str(ref),
        opened_at=when,
        expires_at=when + ttl,
        ttl_seconds=int(ttl.total_seconds()),
    )
    envelope = sign_json(grant.model_dump(mode="json"), GRANT_PAYLOAD_TYPE, signer)
    if len(grant_bytes(envelope)) > MAX_GRANT_BYTES:
        raise UserError(f"--reason/--ticket: the grant would exceed {MAX_GRANT_BYTES} bytes; say it shorter")
    store.insert(grant, envelope)
    sink.emit(
        "breakglass.open",
        Outcome.ALLOW,
        f"break-glass grant for {ref} opened by {identity} for ticket {safe_ticket}, valid {format_ttl(ttl)}",
        stack=str(ref),
        details={
            **base,
            "grant_id": grant.grant_id,
            "expires": grant.expires_at.isoformat(),
            "reason": safe_reason,
            "opened_by": identity,
        },
    )
    return OpenedGrant(grant=grant, envelope=envelope)


# --------------------------------------------------------------------------------------------------
# use


def _append_alert(path: Path, alert: BreakGlassAlert) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, canonical_json(alert) + b"\n")  # one write on O_APPEND: lines never interleave
        os.fsync(fd)
    finally:
        os.close(fd)


def grant_bytes(envelope: Mapping[str, Any]) -> bytes:
    """The grant envelope as the trail holds it: its canonical JSON (the same fields and signature, key order fixed)."""
    return canonical_json(dict(envelope)) + b"\n"


def grant_digest(envelope: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(grant_bytes(envelope)).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("a key appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


R = TypeVar("R", BreakGlassGrant, ReviewClosure)


@dataclass(frozen=True)
class _Presented(Generic[R]):
    """What an envelope handed to a job carries: its payload type and record, and the words its refusals use."""

    payload_type: str
    model: type[R]
    noun: str
    writer: str  # the command that wrote it


_GRANT: _Presented[BreakGlassGrant] = _Presented(
    GRANT_PAYLOAD_TYPE, BreakGlassGrant, "grant", "`glassbox breakglass open`"
)
_CLOSURE: _Presented[ReviewClosure] = _Presented(
    CLOSURE_PAYLOAD_TYPE, ReviewClosure, "review closure", "`glassbox breakglass close --envelope-out`"
)


def _envelope_shape(text: str, max_bytes: int, kind: _Presented[R]) -> tuple[dict[str, Any], R]:
    """The envelope and its (unverified) record, or ValueError saying what is wrong, never what was found."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ValueError(f"it has {size} bytes; a {kind.noun} envelope has at most {max_bytes}")
    if not text.strip():
        raise ValueError(f"it is empty: paste the envelope {kind.writer} wrote")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("it nests too deeply") from None
    except ValueError as exc:
        raise ValueError(f"it is not strict JSON ({str(exc).split(':')[0]})") from None
    if not isinstance(data, dict) or set(data) != {"payloadType", "payload", "signatures"}:
        raise ValueError("it is not a DSSE envelope (payloadType, payload, signatures)")
    if data["payloadType"] != kind.payload_type:
        raise ValueError(f"its payloadType is not {kind.payload_type}")
    signatures = data["signatures"]
    if (
        not isinstance(signatures, list)
        or not 1 <= len(signatures) <= 4
        or not all(
            isinstance(sig, dict) and set(sig) == {"keyid", "sig"} and all(isinstance(v, str) for v in sig.values())
            for sig in signatures
        )
    ):
        raise ValueError("its signatures are not 1 to 4 {keyid, sig} entries")
    if not isinstance(data["payload"], str):
        raise ValueError("its payload is not base64 text")
    try:
        claims = json.loads(
            base64.b64decode(data["payload"], validate=True),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
        )
    except (ValueError, binascii.Error, RecursionError):
        raise ValueError("its payload is not base64 of a JSON object") from None
    try:
        record = kind.model.model_validate(claims)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "(payload)" for err in exc.errors()})[:5]
        raise ValueError(f"its payload is not a {kind.noun} ({', '.join(fields)})") from None
    try:
        grant_name(record.grant_id)
    except IntegrityError:
        raise ValueError("its grant id is not a plain name") from None
    return data, record


def read_presented_grant(
    text: str, *, sink: EventSink, commit: str | None, max_bytes: int = MAX_GRANT_BYTES
) -> tuple[str, dict[str, Any]]:
    """A grant envelope handed to a deploy (the dispatch input): (grant id, envelope). Bounded, strict JSON, the
    DSSE shape and the grant's schema; anything else is refused (``malformed``, a ``breakglass.refuse`` event) with
    a message that never repeats the input. The signature, the opener and the expiry are checked by
    :func:`use_grant`, against the registry of the commit being deployed."""
    try:
        envelope, grant = _envelope_shape(text, max_bytes, _GRANT)
    except ValueError as exc:
        message = f"the break-glass grant given to the deploy is malformed: {exc}"
        sink.emit(
            "breakglass.refuse",
            Outcome.DENY,
            message,
            stack=None,
            commit=commit,
            details={"code": "malformed", "stage": "present", "grant_id": None, "ticket": None, "expires": None},
        )
        raise BreakGlassRefused(message, code="malformed") from None
    return grant.grant_id, envelope


@dataclass(frozen=True)
class TrailGrantLock:
    """Consumes grants on the audit trail: the claim, the grant and its review in one guarded append."""

    forge: TrailForge
    signer: Signer

    def claim(self, grant_id: str, files: Mapping[str, str]) -> str | None:
        """The trail's head after appending ``files`` (they include the claim), or None: another job claimed it."""
        return append_once(
            self.forge,
            self.signer,
            guard=claim_entry(grant_id),
            files=files,
            message=f"glassbox trail: break-glass grant {grant_id} used by {self.signer.identity}\n",
        )


def use_grant(
    grant_id: str,
    stack: str,
    commit: str,
    *,
    registry: Registry,
    store: GrantStore,
    sink: EventSink,
    state_dir: Path,
    run_id: str | None = None,
    max_ttl: timedelta = DEFAULT_MAX_GRANT_TTL,
    review_due: timedelta = DEFAULT_REVIEW_DUE,
    now: datetime | None = None,
    envelope: Mapping[str, Any] | None = None,
    trail: TrailGrantLock | None = None,
) -> BreakGlassAlert:
    """Consume ``grant_id`` for deploying ``stack`` at ``commit``; return the high-severity alert it raises.

    ``envelope`` is the grant as presented to this deploy (else the one in ``store``). With ``trail`` the use is
    claimed on the audit trail before this returns (the lock: a grant another runner claimed is ``reused``).

    Refused (``BreakGlassRefused`` + a ``breakglass.refuse`` event) when the grant is unknown, forged,
    opened by someone no longer allowed, not yet valid, expired, longer than ``max_ttl``, for another
    stack, or already used. A refusal never consumes the grant.
    """
    when = (now or datetime.now(UTC)).astimezone(UTC)
    grant: BreakGlassGrant | None = None

    def refuse(code: str, message: str) -> BreakGlassRefused:
        sink.emit(
            "breakglass.refuse",
            Outcome.DENY,
            message,
            stack=stack,
            commit=commit,
            details={
                "code": code,
                "stage": "use",
                "grant_id": grant_id,
                "ticket": grant.ticket if grant else None,
                "expires": grant.expires_at.isoformat() if grant else None,
                "evaluated_at": when.isoformat(),
            },
        )
        return BreakGlassRefused(message, code=code)

    if envelope is None:
        envelope = store.envelope(grant_id)
    if envelope is None:
        raise refuse("unknown", f"no break-glass grant {grant_id}")
    grant = _verified_grant(envelope, grant_id, registry, refuse)
    if not may_break_glass(registry, grant.opened_by):
        raise refuse("not-break-glass", f"{grant.opened_by!r} is no longer in a break_glass team")
    if when < grant.opened_at:
        raise refuse("not-yet-valid", f"grant {grant_id} is not valid before {grant.opened_at.isoformat()}")
    if when >= grant.expires_at:
        raise refuse("expired", f"grant {grant_id} expired at {grant.expires_at.isoformat()}")
    if grant.expires_at - grant.opened_at > max_ttl:
        raise refuse("ttl-over-max", f"grant {grant_id} lives longer than the maximum {format_ttl(max_ttl)}")
    if grant.stack != stack:
        raise refuse("wrong-stack", f"grant {grant_id} is for stack {grant.stack}, not {stack}")

    review_path = reviews_dir(state_dir) / f"{grant_id}.json"
    review = PostIncidentReview(
        grant_id=grant_id,
        ticket=grant.ticket,
        reason=grant.reason,
        stack=stack,
        commit=commit,
        run_id=run_id,
        opened_by=grant.opened_by,
        used_by=sink.signer.identity,
        used_at=when,
        due=when + review_due,
    )
    trail_head: str | None = None
    if trail is None:
        store.remember(grant, envelope)
        if not store.claim(grant_id, used_by=sink.signer.identity, commit=commit, now=when):
            raise refuse("reused", f"grant {grant_id} was already used; a grant works once")
    else:
        if store.used(grant_id):
            raise refuse("reused", f"grant {grant_id} was already used on this host; a grant works once")
        claim = GrantClaim(
            grant_id=grant_id,
            grant_digest=grant_digest(envelope),
            stack=stack,
            commit=commit,
            run_id=run_id,
            used_by=sink.signer.identity,
            used_at=when,
        )
        signed = sign_json(claim.model_dump(mode="json"), CLAIM_PAYLOAD_TYPE, trail.signer)
        files = {
            grant_entry(grant_id): grant_bytes(envelope).decode("utf-8"),
            claim_entry(grant_id): (canonical_json(signed) + b"\n").decode("utf-8"),
            review_entry(grant_id): (canonical_json(review.model_dump(mode="json")) + b"\n").decode("utf-8"),
        }
        try:
            trail_head = trail.claim(grant_id, files)
        except IntegrityError as exc:
            raise refuse("forged", f"grant {grant_id}: {exc.message}") from None
        except GlassboxError as exc:
            # no lock, no use: a grant that cannot be claimed on the trail is not used anywhere
            text = f"grant {grant_id} could not be claimed on {TRAIL_BRANCH}: {exc.message}"
            raise refuse("trail-unavailable", text) from None
        if trail_head is None:
            raise refuse(
                "reused", f"grant {grant_id} was already used (its claim is on {TRAIL_BRANCH}); a grant works once"
            )
        store.remember(grant, envelope)  # the local cache follows the trail's decision
        store.claim(grant_id, used_by=sink.signer.identity, commit=commit, now=when)

    write_json_atomic(review_path, review.model_dump(mode="json"))
    alert = BreakGlassAlert(
        alert_id=new_correlation_id(),
        time=when,
        grant_id=grant_id,
        ticket=grant.ticket,
        reason=grant.reason,
        stack=stack,
        commit=commit,
        opened_by=grant.opened_by,
        used_by=sink.signer.identity,
        expires_at=grant.expires_at,
        review_path=str(review_path),
        review_due=review.due,
        message=(
            f"BREAK-GLASS: {stack} deployed at {commit[:12]} without approvals under grant {grant_id} "
            f"(ticket {grant.ticket}, opened by {grant.opened_by}); post-incident review due {review.due.date()}"
        ),
    )
    _append_alert(alerts_file(state_dir), alert)
    details: dict[str, Any] = {
        "grant_id": grant_id,
        "ticket": grant.ticket,
        "expires": grant.expires_at.isoformat(),
        "opened_by": grant.opened_by,
        "severity": alert.severity,
        "alert_id": alert.alert_id,
        "review": str(review_path),
        "review_due": review.due.isoformat(),
        "run_id": run_id,
    }
    if trail_head is not None:
        details |= {"claim": claim_entry(grant_id), "trail_review": review_entry(grant_id), "trail": trail_head}
    sink.emit("breakglass.use", Outcome.ALLOW, alert.message, stack=stack, commit=commit, details=details)
    return alert


# --------------------------------------------------------------------------------------------------
# close: the post-incident review


def review_teams(registry: Registry) -> list[str]:
    return [t.id for t in registry.teams.teams if t.reviews_break_glass]


def _in_review_team(registry: Registry, identity: str) -> bool:
    if registry.identity_kind(identity) != "human":
        return False
    return any(identity in registry.members(team) for team in review_teams(registry))


def may_review_break_glass(registry: Registry, identity: str, grant: BreakGlassGrant) -> bool:
    """A person (never an agent or a service identity) in a ``reviews_break_glass: true`` team who did not open
    ``grant``: nobody closes the review of their own break-glass."""
    return identity != grant.opened_by and _in_review_team(registry, identity)


class ClosureRejected(IntegrityError):
    """A closure envelope that does not close the review it names. ``code`` names the rule, as refusals do."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def verify_closure(envelope: Mapping[str, Any], registry: Registry, grant: BreakGlassGrant) -> ReviewClosure:
    """The closure ``envelope`` carries, once it verifies: signed by a key ``registry`` trusts for the reviewer it
    names (:func:`person_trust`), a :class:`ReviewClosure` of ``grant``'s review, and that reviewer allowed
    (:func:`may_review_break_glass`). Anything else raises :class:`ClosureRejected`."""
    try:
        claimed = _unverified_payload(envelope)
    except IntegrityError:
        raise ClosureRejected("the closure is not a DSSE envelope", code="malformed") from None
    reviewer = str(claimed.get("closed_by", "")) if isinstance(claimed, Mapping) else ""
    try:
        payload, _ = verify_json_envelope(envelope, person_trust(registry, reviewer), payload_type=CLOSURE_PAYLOAD_TYPE)
        closure = ReviewClosure.model_validate(payload)
    except IntegrityError as exc:
        raise ClosureRejected(f"the closure by {reviewer!r} does not verify: {exc.message}", code="forged") from None
    except ValidationError as exc:
        raise ClosureRejected(f"the closure is malformed: {exc.error_count()} problem(s)", code="malformed") from None
    if closure.grant_id != grant.grant_id:
        text = f"the closure is signed for grant {closure.grant_id}, not {grant.grant_id}"
        raise ClosureRejected(text, code="wrong-grant")
    if closure.closed_by == grant.opened_by:
        text = f"{closure.closed_by!r} opened grant {grant.grant_id}: the review of a break-glass is never its opener's"
        raise ClosureRejected(text, code="self-review")
    if not may_review_break_glass(registry, closure.closed_by, grant):
        teams = ", ".join(review_teams(registry)) or "none"
        text = f"{closure.closed_by!r} may not close break-glass reviews (only people in {teams} may)"
        raise ClosureRejected(text, code="not-reviewer")
    return closure


def _closure_under(envelope: Mapping[str, Any], registries: list[Registry], grant: BreakGlassGrant) -> ReviewClosure:
    """:func:`verify_closure` at the first of ``registries`` it verifies at; the first one's rejection otherwise."""
    first: ClosureRejected | None = None
    for registry in registries:
        try:
            return verify_closure(envelope, registry, grant)
        except ClosureRejected as exc:
            first = first or exc
    assert first is not None
    raise first


def closure_bytes(envelope: Mapping[str, Any]) -> bytes:
    """The closure envelope as the trail and the deploy state hold it, and as ``--envelope-out`` writes it."""
    return canonical_json(dict(envelope)) + b"\n"


def _state_review(state_dir: Path | None, grant_id: str) -> tuple[Path, PostIncidentReview] | None:
    if state_dir is None:
        return None
    path = reviews_dir(state_dir) / f"{grant_id}.json"
    if not path.is_file():
        return None
    try:
        return path, PostIncidentReview.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise IntegrityError(f"{path} is not a post-incident review: {exc.error_count()} problem(s)") from None


def close_review(
    registry: Registry,
    signer: Signer,
    grant_id: str,
    *,
    outcome: ReviewOutcome,
    summary: str,
    ledger: Ledger,
    follow_up: str | None = None,
    state_dir: Path | None = None,
    trail: Mapping[str, bytes] | None = None,
    now: datetime | None = None,
) -> ClosedReview:
    """Close the post-incident review of ``grant_id``'s use as ``signer``'s identity: a :class:`ReviewClosure` signed
    with the reviewer's own key, recorded as ``breakglass.review``.

    The grant and its review are looked up in the deploy state ``state_dir`` (its grant store and ``reviews/``), else
    in ``trail`` (the ``breakglass/`` files of the audit trail, as a clone holds them). When the deploy state holds the
    open review it is closed there too: the closure envelope is written beside it (``reviews/<id>.closed.dsse.json``)
    and ``reviews/<id>.json`` is rewritten with status closed. On GitHub the envelope goes to the audit workflow's
    ``review`` input, which appends it to the trail (:func:`append_closure`).

    Refused (``BreakGlassRefused`` + ``breakglass.refuse``) when the reviewer is not a person in a
    ``reviews_break_glass`` team or signs with a key that is not theirs, the grant is unknown or does not verify, the
    reviewer opened it (no self-review), it was never used (no review to close), or its review is already closed."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    identity = signer.identity
    try:
        grant_name(grant_id)
    except IntegrityError:
        raise UserError(f"GRANT_ID {grant_id[:40]!r}: a grant id is letters, digits, '-' and '_'") from None
    if not summary.strip():
        raise UserError("--summary: say what the review found and what was decided")
    if follow_up is not None and not follow_up.strip():
        raise UserError("--follow-up: name the follow-up (a PR URL, a commit), or leave the option out")
    sink = EventSink(ledger, signer, kind=ActorKind.HUMAN)
    objects = trail or {}
    grant: BreakGlassGrant | None = None

    def refuse(code: str, message: str) -> BreakGlassRefused:
        sink.emit(
            "breakglass.refuse",
            Outcome.DENY,
            message,
            stack=grant.stack if grant else None,
            details={
                "code": code,
                "stage": "review",
                "grant_id": grant_id,
                "ticket": grant.ticket if grant else None,
                "expires": None,
                "closed_by": identity,
            },
        )
        return BreakGlassRefused(message, code=code)

    if not _in_review_team(registry, identity):
        teams = ", ".join(review_teams(registry)) or "none"
        raise refuse(
            "not-reviewer",
            f"{identity!r} may not close break-glass reviews: only people in a reviews_break_glass team ({teams}) may",
        )
    untrusted = untrusted_key(registry, signer, "closure")
    if untrusted:
        raise refuse("untrusted-key", untrusted)
    envelope: Any = None
    if state_dir is not None and grants_db(state_dir).exists():
        envelope = GrantStore.under(state_dir).envelope(grant_id)
    if envelope is None and grant_entry(grant_id) in objects:
        try:
            envelope = json.loads(objects[grant_entry(grant_id)])
        except ValueError:
            raise refuse("forged", f"{grant_entry(grant_id)} on {TRAIL_BRANCH} is not JSON") from None
    if envelope is None:
        where = " or ".join([*([str(state_dir)] if state_dir else []), *([TRAIL_BRANCH] if trail is not None else [])])
        raise refuse("unknown", f"no break-glass grant {grant_id} in {where or 'the deploy state'}")
    grant = _verified_grant(envelope, grant_id, registry, refuse)
    if identity == grant.opened_by:
        raise refuse(
            "self-review",
            f"{identity!r} opened grant {grant_id}: the post-incident review is closed by another reviewer",
        )
    local = _state_review(state_dir, grant_id)
    if local is None and review_entry(grant_id) not in objects:
        raise refuse("not-used", f"grant {grant_id} was never used: it has no post-incident review to close")
    closed_path = reviews_dir(state_dir) / f"{grant_id}.closed.dsse.json" if state_dir is not None else None
    if (
        (local is not None and local[1].status == "closed")
        or (closed_path is not None and closed_path.exists())
        or closure_entry(grant_id) in objects
    ):
        raise refuse("already-closed", f"the post-incident review of grant {grant_id} is already closed")
    # free text leaves this function only with secrets redacted (I9)
    safe_summary, _ = redact_text(summary.strip(), "summary")
    safe_follow_up = redact_text(follow_up.strip(), "follow_up")[0] if follow_up is not None else None
    try:
        closure = ReviewClosure(
            grant_id=grant_id,
            closed_by=identity,
            closed_at=when,
            outcome=outcome,
            summary=safe_summary,
            follow_up=safe_follow_up,
        )
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        text = f"the closure is not valid: {', '.join(fields)} (summary 1-4000, follow-up 1-500 characters)"
        raise UserError(text) from None
    signed = sign_json(closure.model_dump(mode="json"), CLOSURE_PAYLOAD_TYPE, signer)
    if len(closure_bytes(signed)) > MAX_GRANT_BYTES:
        raise UserError(f"--summary/--follow-up: the closure would exceed {MAX_GRANT_BYTES} bytes; say it shorter")
    review: PostIncidentReview | None = None
    review_path: Path | None = None
    if local is not None and closed_path is not None:
        review_path, open_review = local
        write_json_atomic(closed_path, signed)  # the signed closure first: a review file says closed only beside it
        review = PostIncidentReview.model_validate(
            {
                **open_review.model_dump(mode="json"),
                "status": "closed",
                "closed_by": identity,
                "closed_at": when.isoformat(),
                "outcome": outcome,
                "follow_up": safe_follow_up,
            }
        )
        write_json_atomic(review_path, review.model_dump(mode="json"))
    sink.emit(
        "breakglass.review",
        Outcome.ALLOW,
        f"post-incident review of break-glass grant {grant_id} (ticket {grant.ticket}, {grant.stack}) closed by "
        f"{identity}: {outcome}",
        stack=grant.stack,
        details={
            "grant_id": grant_id,
            "ticket": grant.ticket,
            "stage": "review",
            "opened_by": grant.opened_by,
            "closed_by": identity,
            "review_outcome": outcome,
            "follow_up": safe_follow_up,
            "review": str(review_path) if review_path else None,
        },
    )
    return ClosedReview(
        grant=grant,
        closure=closure,
        envelope=signed,
        review=review,
        review_path=str(review_path) if review_path else None,
    )


def read_presented_closure(
    text: str, *, sink: EventSink, max_bytes: int = MAX_GRANT_BYTES
) -> tuple[str, dict[str, Any]]:
    """A closure envelope handed to the audit workflow (its ``review`` input): (grant id, envelope). Bounded, strict
    JSON, the DSSE shape and the closure's schema, as :func:`read_presented_grant` reads a grant; anything else is
    refused (``malformed``, a ``breakglass.refuse`` event) with a message that never repeats the input. The signature
    and the reviewer are checked by :func:`append_closure`."""
    try:
        envelope, closure = _envelope_shape(text, max_bytes, _CLOSURE)
    except ValueError as exc:
        message = f"the review closure given to the audit workflow is malformed: {exc}"
        sink.emit(
            "breakglass.refuse",
            Outcome.DENY,
            message,
            stack=None,
            details={"code": "malformed", "stage": "present-review", "grant_id": None, "ticket": None, "expires": None},
        )
        raise BreakGlassRefused(message, code="malformed") from None
    return closure.grant_id, envelope


@dataclass(frozen=True)
class RecordedClosure:
    closure: ReviewClosure
    entry: str  # the closure's path on the trail
    trail: str  # the trail's head once it holds the closure
    ticket: str
    stack: str


def append_closure(
    forge: TrailForge,
    signer: Signer,
    envelope: Mapping[str, Any],
    registry_for: Callable[[str | None], Registry],
    *,
    sink: EventSink,
    max_ttl: timedelta = DEFAULT_MAX_GRANT_TTL,
) -> RecordedClosure:
    """Append a reviewer's closure ``envelope`` to the audit trail as ``breakglass/<grant id>.closed.dsse.json``, in one
    commit signed by ``signer`` (the service identity carrying it: it vouches for nothing but the append).

    Before the append the trail must hold a verified claim for that grant (:func:`_check_claim`: the deploy identity's
    signature, the grant beside it verifying with its opener's key), and the closure must verify
    (:func:`verify_closure`) at ``registry_for(None)``, the registry of the protected branch now: a reviewer taken out
    of the reviewing teams since the deploy closes nothing (the audit later also accepts a closure at the registry
    the use was checked against, so a reviewer who leaves afterwards does not undo it). The append is guarded
    (:func:`bot.forge.trail.append_once`): of two closures of one review exactly one lands. Each refusal is
    ``BreakGlassRefused`` + ``breakglass.refuse``; the append is ``breakglass.review``."""
    try:
        claimed = _unverified_payload(envelope)
        gid = grant_name(str(claimed.get("grant_id", "")) if isinstance(claimed, Mapping) else "")
    except IntegrityError:
        gid = ""
    grant: BreakGlassGrant | None = None

    def refuse(code: str, message: str) -> BreakGlassRefused:
        sink.emit(
            "breakglass.refuse",
            Outcome.DENY,
            message,
            stack=grant.stack if grant else None,
            details={
                "code": code,
                "stage": "record-review",
                "grant_id": gid or None,
                "ticket": grant.ticket if grant else None,
                "expires": None,
            },
        )
        return BreakGlassRefused(message, code=code)

    if not gid:
        raise refuse("malformed", "the review closure names no grant id that can name a trail object")
    try:
        head = forge.branch_head(TRAIL_BRANCH)
        objects: dict[str, bytes] = {}
        if head is not None:
            for path in (grant_entry(gid), claim_entry(gid), closure_entry(gid)):
                data = forge.read_file(path, head)
                if data is not None:
                    objects[path] = data
    except GlassboxError as exc:
        raise refuse("trail-unavailable", f"{TRAIL_BRANCH} could not be read: {exc.message}") from None
    if claim_entry(gid) not in objects:
        raise refuse("no-claim", f"{TRAIL_BRANCH} holds no use claim for grant {gid}: there is no review to close")
    checked = _check_claim(objects, gid, registry_for, max_ttl)
    if checked.claim is None or checked.grant is None:
        why = "; ".join(p.message for p in checked.problems if p.tampered)
        raise refuse("no-claim", f"{TRAIL_BRANCH} holds no verified use of grant {gid}: {why}")
    grant = checked.grant
    try:
        closure = _closure_under(envelope, [registry_for(None)], grant)
    except ClosureRejected as exc:
        raise refuse(exc.code, f"the closure of grant {gid}'s review is refused: {exc.message}") from None
    entry = closure_entry(gid)
    data = closure_bytes(envelope)
    held = objects.get(entry)
    if held is not None and held != data:
        raise refuse("already-closed", f"the post-incident review of grant {gid} is already closed on {TRAIL_BRANCH}")
    try:
        trail_head = append_once(
            forge,
            signer,
            guard=entry,
            files={entry: data.decode("utf-8")},
            message=f"glassbox trail: post-incident review of break-glass grant {gid} closed by {closure.closed_by}\n",
        )
    except GlassboxError as exc:
        raise refuse(
            "trail-unavailable", f"the closure could not be appended to {TRAIL_BRANCH}: {exc.message}"
        ) from None
    if trail_head is None:
        raise refuse("already-closed", f"the post-incident review of grant {gid} is already closed on {TRAIL_BRANCH}")
    sink.emit(
        "breakglass.review",
        Outcome.ALLOW,
        f"post-incident review of break-glass grant {gid} (ticket {grant.ticket}, {grant.stack}) closed by "
        f"{closure.closed_by}: {closure.outcome}; recorded on {TRAIL_BRANCH}",
        stack=grant.stack,
        commit=checked.claim.commit,
        details={
            "grant_id": gid,
            "ticket": grant.ticket,
            "stage": "record-review",
            "opened_by": grant.opened_by,
            "closed_by": closure.closed_by,
            "review_outcome": closure.outcome,
            "follow_up": closure.follow_up,
            "closure": entry,
            "trail": trail_head,
        },
    )
    return RecordedClosure(closure, entry, trail_head, grant.ticket, grant.stack)


# --------------------------------------------------------------------------------------------------
# the break-glass objects on the trail, as `audit verify` reads them


@dataclass(frozen=True)
class GrantUse:
    """One ``breakglass.use`` event, as the audit reads it."""

    seq: int
    grant_id: str
    commit: str
    stack: str | None
    claimed: bool = True  # the event names its trail claim; False: an offline use, the local store was the lock
    review_due: datetime | None = None  # when the use's post-incident review is due, as the event says


@dataclass(frozen=True)
class TrailGrantProblem:
    """What is wrong with a break-glass object or use. ``tampered``: the trail holds something its signatures do not
    support (only a write past the trail's protection, or a leaked service key, puts it there); ``overdue``: a use
    whose post-incident review is past due and not closed by a permitted reviewer; otherwise a use the trail does not
    back (no claim, a second use, expired at use): the deploy it excused stands unexcused."""

    grant_id: str
    message: str
    tampered: bool
    commit: str | None = None
    seq: int | None = None
    overdue: bool = False


@dataclass(frozen=True)
class BreakGlassAudit:
    """What the audit found about break-glass: the problems, and the reviews a permitted reviewer closed."""

    problems: list[TrailGrantProblem]
    closures: dict[str, ReviewClosure]  # grant id → the verified closure of its use's review


@dataclass(frozen=True)
class _Checked:
    """One claim on the trail as checked: the claim and the grant once each verifies, and what is wrong."""

    claim: GrantClaim | None
    grant: BreakGlassGrant | None
    problems: list[TrailGrantProblem]


def _check_claim(
    objects: Mapping[str, bytes],
    gid: str,
    registry_for: Callable[[str | None], Registry],
    max_ttl: timedelta,
) -> _Checked:
    """``breakglass/<gid>.used.json`` verifies (the deploy identity's deploy-signer key at ``registry_for(commit)``),
    names the grant the trail holds next to it by digest, and that grant verifies (its opener's key, a break-glass
    member), for the claimed stack, used while it was valid."""
    from bot.deploy.broker import deploy_trust

    where = claim_entry(gid)
    try:
        envelope = json.loads(objects[where])
        if not isinstance(envelope, dict):
            raise IntegrityError("not a DSSE envelope")
        claimed = _unverified_payload(envelope)
        registry = registry_for(str(claimed.get("commit")) if isinstance(claimed, Mapping) else None)
        payload, _ = verify_json_envelope(envelope, deploy_trust(registry), payload_type=CLAIM_PAYLOAD_TYPE)
        claim = GrantClaim.model_validate(payload)
    except (KeyError, ValueError, IntegrityError, ValidationError) as exc:
        text = exc.message if isinstance(exc, IntegrityError) else type(exc).__name__
        return _Checked(
            None, None, [TrailGrantProblem(gid, f"{where} is not a claim the deploy identity signed: {text}", True)]
        )
    if claim.grant_id != gid:
        return _Checked(
            None, None, [TrailGrantProblem(gid, f"{where} is signed for grant {claim.grant_id}", True, claim.commit)]
        )
    grant_path = grant_entry(gid)
    data = objects.get(grant_path)
    if data is None:
        text = f"{where} claims a grant the trail does not hold"
        return _Checked(claim, None, [TrailGrantProblem(gid, text, True, claim.commit)])
    if "sha256:" + hashlib.sha256(data).hexdigest() != claim.grant_digest:
        text = f"{grant_path} is not the grant {where} consumed (its digest differs)"
        return _Checked(claim, None, [TrailGrantProblem(gid, text, True, claim.commit)])
    try:
        grant_env = json.loads(data)
        unverified = _unverified_payload(grant_env)
        opener = str(unverified.get("opened_by", "")) if isinstance(unverified, Mapping) else ""
        registry = registry_for(claim.commit)
        grant_payload, _ = verify_json_envelope(
            grant_env, person_trust(registry, opener), payload_type=GRANT_PAYLOAD_TYPE
        )
        grant = BreakGlassGrant.model_validate(grant_payload)
    except (ValueError, IntegrityError, ValidationError) as exc:
        text = exc.message if isinstance(exc, IntegrityError) else type(exc).__name__
        return _Checked(
            claim, None, [TrailGrantProblem(gid, f"{grant_path} does not verify: {text}", True, claim.commit)]
        )
    if grant.grant_id != gid or not may_break_glass(registry, grant.opened_by):
        text = f"{grant_path} is not a grant {gid} a break_glass team member opened"
        return _Checked(claim, None, [TrailGrantProblem(gid, text, True, claim.commit)])
    problems = []
    if grant.stack != claim.stack:
        text = f"grant {gid} is for {grant.stack}, its claim uses it for {claim.stack}"
        problems.append(TrailGrantProblem(gid, text, False, claim.commit))
    if not grant.opened_at <= claim.used_at < grant.expires_at or grant.expires_at - grant.opened_at > max_ttl:
        text = (
            f"grant {gid} (valid {grant.opened_at.isoformat()} to {grant.expires_at.isoformat()}) was used at "
            f"{claim.used_at.isoformat()}: expired or not valid at use"
        )
        problems.append(TrailGrantProblem(gid, text, False, claim.commit))
    return _Checked(claim, grant, problems)


def _review_due(data: bytes | None, fallback: datetime) -> datetime:
    """When a review is due: its ``due`` (the review file), else ``fallback``."""
    if data is not None:
        try:
            return PostIncidentReview.model_validate_json(data).due
        except ValidationError:
            pass
    return fallback


def _overdue(gid: str, grant: BreakGlassGrant, commit: str, due: datetime, why: str = "") -> TrailGrantProblem:
    text = (
        f"the post-incident review of break-glass grant {gid} (ticket {grant.ticket}, {grant.stack} at {commit[:12]}, "
        f"opened by {grant.opened_by}) was due {due.isoformat()} and no permitted reviewer closed it{why}"
    )
    return TrailGrantProblem(gid, text, False, commit, overdue=True)


def trail_breakglass_audit(
    objects: Mapping[str, bytes],
    uses: list[GrantUse],
    registry_for: Callable[[str | None], Registry],
    *,
    max_ttl: timedelta = DEFAULT_MAX_GRANT_TTL,
    now: datetime | None = None,
) -> BreakGlassAudit:
    """Check the trail's ``breakglass/`` files and the ledger's uses against each other: every claim verifies (the
    deploy identity's deploy-signer key), names the grant the trail holds next to it (its digest), and that grant
    verifies (its opener's key, a break-glass member at ``registry_for(claim.commit)``), for the claimed stack, used
    while it was valid; every use claimed on the trail has its claim there, for the same commit and stack; no grant is
    used twice (offline uses included: their lock was one host's store, the ledger shows any second use).

    Every closure (``<grant id>.closed.dsse.json``) closes a claimed use and verifies with :func:`verify_closure` at the
    trust anchor's registry (``registry_for(None)``) or the registry the use was checked against, else the trail is
    tampered; a claimed use whose review is past due at ``now`` and has no valid closure is overdue."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    problems: list[TrailGrantProblem] = []
    claims: dict[str, GrantClaim] = {}
    grants: dict[str, BreakGlassGrant] = {}
    closures: dict[str, ReviewClosure] = {}
    prefix = f"{BREAKGLASS_DIR}/"
    names = {path.removeprefix(prefix) for path in objects}
    for name in sorted(names):
        if not name.endswith(".used.json"):
            continue
        gid = name.removesuffix(".used.json")
        checked = _check_claim(objects, gid, registry_for, max_ttl)
        problems += checked.problems
        if checked.claim is not None:
            claims[gid] = checked.claim
        if checked.grant is not None:
            grants[gid] = checked.grant
    for name in sorted(names):
        if not name.endswith(".closed.dsse.json"):
            continue
        gid = name.removesuffix(".closed.dsse.json")
        where = f"{prefix}{name}"
        claim, grant = claims.get(gid), grants.get(gid)
        if claim is None:
            text = f"{where} closes the review of grant {gid}, but the trail holds no verified use claim for it"
            problems.append(TrailGrantProblem(gid, text, True))
            continue
        if grant is None:
            continue  # the grant's own problem is reported: there is no opener to check the reviewer against
        try:
            envelope = json.loads(objects[where])
            if not isinstance(envelope, dict):
                raise IntegrityError("not a DSSE envelope")
            closures[gid] = _closure_under(envelope, [registry_for(None), registry_for(claim.commit)], grant)
        except (ValueError, IntegrityError) as exc:
            text = exc.message if isinstance(exc, IntegrityError) else type(exc).__name__
            problems.append(
                TrailGrantProblem(gid, f"{where} is not a closure a permitted reviewer signed: {text}", True)
            )
    for gid, claim in sorted(claims.items()):
        grant = grants.get(gid)
        if grant is None or gid in closures:
            continue
        due = _review_due(objects.get(review_entry(gid)), claim.used_at + DEFAULT_REVIEW_DUE)
        if when > due:
            problems.append(_overdue(gid, grant, claim.commit, due))
    seen: dict[str, GrantUse] = {}
    for use in sorted(uses, key=lambda u: u.seq):
        first = seen.setdefault(use.grant_id, use)
        if first is not use:
            text = f"grant {use.grant_id} used again at seq {use.seq} (first at seq {first.seq}): a grant works once"
            problems.append(TrailGrantProblem(use.grant_id, text, False, use.commit, use.seq))
            continue
        held = claims.get(use.grant_id)
        if held is None and not use.claimed:
            continue  # `glassbox deploy --break-glass` on one host: no trail claim to look for
        if held is None:
            text = f"break-glass use of grant {use.grant_id} at seq {use.seq} has no claim on {TRAIL_BRANCH}"
            problems.append(TrailGrantProblem(use.grant_id, text, False, use.commit, use.seq))
        elif held.commit != use.commit or (use.stack is not None and held.stack != use.stack):
            text = (
                f"break-glass use of grant {use.grant_id} at seq {use.seq} ({use.stack} at {use.commit[:12]}) is not "
                f"what its claim names ({held.stack} at {held.commit[:12]})"
            )
            problems.append(TrailGrantProblem(use.grant_id, text, False, use.commit, use.seq))
    return BreakGlassAudit(problems, closures)


def trail_grant_problems(
    objects: Mapping[str, bytes],
    uses: list[GrantUse],
    registry_for: Callable[[str | None], Registry],
    *,
    max_ttl: timedelta = DEFAULT_MAX_GRANT_TTL,
    now: datetime | None = None,
) -> list[TrailGrantProblem]:
    """The problems :func:`trail_breakglass_audit` finds."""
    return trail_breakglass_audit(objects, uses, registry_for, max_ttl=max_ttl, now=now).problems


def state_breakglass_audit(
    state_dir: Path,
    uses: list[GrantUse],
    registry_for: Callable[[str | None], Registry],
    *,
    now: datetime | None = None,
) -> BreakGlassAudit:
    """The review rule without a trail, from a deploy state: each used grant's review (``reviews/<grant id>.json``) is
    closed by a closure beside it (``reviews/<grant id>.closed.dsse.json``) that verifies against the grant in the
    state's grant store (:func:`verify_closure`, at ``registry_for(None)`` or the registry before the used commit),
    else it is overdue once past due at ``now``. A closure that does not verify closes nothing."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    problems: list[TrailGrantProblem] = []
    closures: dict[str, ReviewClosure] = {}
    store = GrantStore.under(state_dir) if grants_db(state_dir).exists() else None
    first: dict[str, GrantUse] = {}
    for use in sorted(uses, key=lambda u: u.seq):
        first.setdefault(use.grant_id, use)
    for gid, use in sorted(first.items()):
        try:
            grant_name(gid)
        except IntegrityError:
            continue
        folder = reviews_dir(state_dir)
        review = folder / f"{gid}.json"
        data = review.read_bytes() if review.is_file() else None
        due = _review_due(data, use.review_due or datetime.max.replace(tzinfo=UTC))
        envelope = store.envelope(gid) if store is not None else None
        registries = [registry_for(None), registry_for(use.commit)]
        grant = _state_grant(envelope, registries[1])
        why = ""
        path = folder / f"{gid}.closed.dsse.json"
        if grant is not None and path.is_file():
            try:
                closed = json.loads(path.read_bytes())
                if not isinstance(closed, dict):
                    raise IntegrityError("not a DSSE envelope")
                closures[gid] = _closure_under(closed, registries, grant)
                continue
            except (ValueError, IntegrityError) as exc:
                text = exc.message if isinstance(exc, IntegrityError) else type(exc).__name__
                why = f" ({path} does not verify: {text})"
        if when > due and grant is not None:
            problems.append(_overdue(gid, grant, use.commit, due, why))
        elif when > due:
            text = (
                f"the post-incident review of break-glass grant {gid} ({use.stack or '?'} at {use.commit[:12]}) was "
                f"due {due.isoformat()}; {state_dir} holds no grant to check a closure against"
            )
            problems.append(TrailGrantProblem(gid, text, False, use.commit, use.seq, overdue=True))
    return BreakGlassAudit(problems, closures)


def _state_grant(envelope: Mapping[str, Any] | None, registry: Registry) -> BreakGlassGrant | None:
    if envelope is None:
        return None
    try:
        claimed = _unverified_payload(envelope)
        opener = str(claimed.get("opened_by", "")) if isinstance(claimed, Mapping) else ""
        payload, _ = verify_json_envelope(envelope, person_trust(registry, opener), payload_type=GRANT_PAYLOAD_TYPE)
        return BreakGlassGrant.model_validate(payload)
    except (IntegrityError, ValidationError):
        return None


def list_grants(store: GrantStore, now: datetime | None = None) -> list[GrantRow]:
    return store.rows(now)
