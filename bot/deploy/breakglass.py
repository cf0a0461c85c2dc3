"""Break-glass: a signed, single-use, short-lived grant that lets one deploy skip approvals (never integrity).

:func:`open_grant` is run by a person who belongs to a team with ``break_glass: true`` in the registry;
anyone else is refused. The grant names one stack, a ticket, a reason and an expiry (TTL default 1 hour,
at most the configured maximum, 4 hours unless set otherwise); it is a DSSE envelope signed with that
person's own key, stored in SQLite (``breakglass/grants.sqlite`` under the deploy state directory) and
recorded as ``breakglass.open``.

:func:`use_grant` is what deploy calls: the grant must verify against a trusted key of the person it
names (who must still be in a break-glass team), must not have expired, must be for the stack being
deployed, and is consumed atomically so it works exactly once. Each use raises a high-severity
:class:`~bot.deploy.model.BreakGlassAlert` (queued in ``alerts.jsonl`` for the SIEM export), opens a
post-incident review (``reviews/<grant_id>.json``) and appends ``breakglass.use``. Every refusal
(expired, reused, wrong stack, forged, not a break-glass member) appends ``breakglass.refuse`` (I6).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.deploy.events import EventSink
from bot.deploy.model import (
    GRANT_PAYLOAD_TYPE,
    BreakGlassAlert,
    BreakGlassGrant,
    GrantRow,
    GrantStatus,
    OpenedGrant,
    PostIncidentReview,
)
from bot.deploy.state import StackRef, alerts_file, grants_db, reviews_dir, write_json_atomic
from bot.errors import Denied, IntegrityError, UserError
from bot.records import ActorKind, Outcome, canonical_json, new_correlation_id
from bot.redaction import redact_text
from bot.registry import Registry
from bot.trust.keys import Signer, sign_json, trusted_keys, verify_json_envelope
from bot.trust.ledger import Ledger

DEFAULT_GRANT_TTL = timedelta(hours=1)
DEFAULT_MAX_GRANT_TTL = timedelta(hours=4)
DEFAULT_REVIEW_DUE = timedelta(days=5)

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
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    "INSERT INTO grants (grant_id, opened_by, stack, ticket, opened_at, expires_at, envelope) "
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
) -> BreakGlassAlert:
    """Consume ``grant_id`` for deploying ``stack`` at ``commit``; return the high-severity alert it raises.

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
    if not store.claim(grant_id, used_by=sink.signer.identity, commit=commit, now=when):
        raise refuse("reused", f"grant {grant_id} was already used; a grant works once")

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
    sink.emit(
        "breakglass.use",
        Outcome.ALLOW,
        alert.message,
        stack=stack,
        commit=commit,
        details={
            "grant_id": grant_id,
            "ticket": grant.ticket,
            "expires": grant.expires_at.isoformat(),
            "opened_by": grant.opened_by,
            "severity": alert.severity,
            "alert_id": alert.alert_id,
            "review": str(review_path),
            "review_due": review.due.isoformat(),
            "run_id": run_id,
        },
    )
    return alert


def list_grants(store: GrantStore, now: datetime | None = None) -> list[GrantRow]:
    return store.rows(now)
