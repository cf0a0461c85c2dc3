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
from typing import Any

from pydantic import ValidationError

from bot.deploy.events import EventSink
from bot.deploy.model import (
    CLAIM_PAYLOAD_TYPE,
    GRANT_PAYLOAD_TYPE,
    BreakGlassAlert,
    BreakGlassGrant,
    GrantClaim,
    GrantRow,
    GrantStatus,
    OpenedGrant,
    PostIncidentReview,
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
from bot.trust.trail import BREAKGLASS_DIR, claim_entry, grant_entry, grant_name, review_entry

DEFAULT_GRANT_TTL = timedelta(hours=1)
DEFAULT_MAX_GRANT_TTL = timedelta(hours=4)
DEFAULT_REVIEW_DUE = timedelta(days=5)
MAX_GRANT_BYTES = 16 * 1024
"""The largest grant envelope a deploy reads (a real one is about 1 KiB; the reason is the only free text)."""

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
    if signer.keyid not in person_trust(registry, identity):
        raise refuse(
            "untrusted-key",
            f"key {signer.keyid} is not a trusted key of {identity!r} in {registry.root}/trust.yaml; "
            "a grant signed with it would never verify",
        )
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


def _envelope_shape(text: str, max_bytes: int) -> tuple[dict[str, Any], BreakGlassGrant]:
    """The envelope and its (unverified) grant, or ValueError saying what is wrong, never what was found."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ValueError(f"it has {size} bytes; a grant envelope has at most {max_bytes}")
    if not text.strip():
        raise ValueError("it is empty: paste the envelope `glassbox breakglass open` wrote")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("it nests too deeply") from None
    except ValueError as exc:
        raise ValueError(f"it is not strict JSON ({str(exc).split(':')[0]})") from None
    if not isinstance(data, dict) or set(data) != {"payloadType", "payload", "signatures"}:
        raise ValueError("it is not a DSSE envelope (payloadType, payload, signatures)")
    if data["payloadType"] != GRANT_PAYLOAD_TYPE:
        raise ValueError(f"its payloadType is not {GRANT_PAYLOAD_TYPE}")
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
        grant = BreakGlassGrant.model_validate(claims)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "(payload)" for err in exc.errors()})[:5]
        raise ValueError(f"its payload is not a grant ({', '.join(fields)})") from None
    try:
        grant_name(grant.grant_id)
    except IntegrityError:
        raise ValueError("its grant id is not a plain name") from None
    return data, grant


def read_presented_grant(
    text: str, *, sink: EventSink, commit: str | None, max_bytes: int = MAX_GRANT_BYTES
) -> tuple[str, dict[str, Any]]:
    """A grant envelope handed to a deploy (the dispatch input): (grant id, envelope). Bounded, strict JSON, the
    DSSE shape and the grant's schema; anything else is refused (``malformed``, a ``breakglass.refuse`` event) with
    a message that never repeats the input. The signature, the opener and the expiry are checked by
    :func:`use_grant`, against the registry of the commit being deployed."""
    try:
        envelope, grant = _envelope_shape(text, max_bytes)
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
# the break-glass objects on the trail, as `audit verify` reads them


@dataclass(frozen=True)
class GrantUse:
    """One ``breakglass.use`` event, as the audit reads it."""

    seq: int
    grant_id: str
    commit: str
    stack: str | None
    claimed: bool = True  # the event names its trail claim; False: an offline use, the local store was the lock


@dataclass(frozen=True)
class TrailGrantProblem:
    """What is wrong with a break-glass object or use. ``tampered``: the trail holds something its signatures do not
    support (only a write past the trail's protection, or a leaked service key, puts it there); otherwise a use the
    trail does not back (no claim, a second use, expired at use): the deploy it excused stands unexcused."""

    grant_id: str
    message: str
    tampered: bool
    commit: str | None = None
    seq: int | None = None


def trail_grant_problems(
    objects: Mapping[str, bytes],
    uses: list[GrantUse],
    registry_for: Callable[[str | None], Registry],
    *,
    max_ttl: timedelta = DEFAULT_MAX_GRANT_TTL,
) -> list[TrailGrantProblem]:
    """Check the trail's ``breakglass/`` files and the ledger's uses against each other: every claim verifies (the
    deploy identity's deploy-signer key), names the grant the trail holds next to it (its digest), and that grant
    verifies (its opener's key, a break-glass member at ``registry_for(claim.commit)``), for the claimed stack,
    used while it was valid; every use claimed on the trail has its claim there, for the same commit and stack; no
    grant is used twice (offline uses included: their lock was one host's store, the ledger shows any second use)."""
    from bot.deploy.broker import deploy_trust

    problems: list[TrailGrantProblem] = []
    claims: dict[str, GrantClaim] = {}
    prefix = f"{BREAKGLASS_DIR}/"
    names = {path.removeprefix(prefix) for path in objects}
    for name in sorted(names):
        if not name.endswith(".used.json"):
            continue
        gid = name.removesuffix(".used.json")
        where = f"{prefix}{name}"
        try:
            envelope = json.loads(objects[where])
            if not isinstance(envelope, dict):
                raise IntegrityError("not a DSSE envelope")
            claimed = _unverified_payload(envelope)
            registry = registry_for(str(claimed.get("commit")) if isinstance(claimed, Mapping) else None)
            payload, _ = verify_json_envelope(envelope, deploy_trust(registry), payload_type=CLAIM_PAYLOAD_TYPE)
            claim = GrantClaim.model_validate(payload)
        except (ValueError, IntegrityError, ValidationError) as exc:
            text = exc.message if isinstance(exc, IntegrityError) else type(exc).__name__
            problems.append(TrailGrantProblem(gid, f"{where} is not a claim the deploy identity signed: {text}", True))
            continue
        if claim.grant_id != gid:
            problems.append(TrailGrantProblem(gid, f"{where} is signed for grant {claim.grant_id}", True, claim.commit))
            continue
        claims[gid] = claim
        grant_path = f"{prefix}{gid}.dsse.json"
        data = objects.get(grant_path)
        if data is None:
            problems.append(
                TrailGrantProblem(gid, f"{where} claims a grant the trail does not hold", True, claim.commit)
            )
            continue
        if "sha256:" + hashlib.sha256(data).hexdigest() != claim.grant_digest:
            text = f"{grant_path} is not the grant {where} consumed (its digest differs)"
            problems.append(TrailGrantProblem(gid, text, True, claim.commit))
            continue
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
            problems.append(TrailGrantProblem(gid, f"{grant_path} does not verify: {text}", True, claim.commit))
            continue
        if grant.grant_id != gid or not may_break_glass(registry, grant.opened_by):
            text = f"{grant_path} is not a grant {gid} a break_glass team member opened"
            problems.append(TrailGrantProblem(gid, text, True, claim.commit))
            continue
        if grant.stack != claim.stack:
            text = f"grant {gid} is for {grant.stack}, its claim uses it for {claim.stack}"
            problems.append(TrailGrantProblem(gid, text, False, claim.commit))
        if not grant.opened_at <= claim.used_at < grant.expires_at or grant.expires_at - grant.opened_at > max_ttl:
            text = (
                f"grant {gid} (valid {grant.opened_at.isoformat()} to {grant.expires_at.isoformat()}) was used at "
                f"{claim.used_at.isoformat()}: expired or not valid at use"
            )
            problems.append(TrailGrantProblem(gid, text, False, claim.commit))
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
    return problems


def list_grants(store: GrantStore, now: datetime | None = None) -> list[GrantRow]:
    return store.rows(now)
