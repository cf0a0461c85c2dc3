"""Retention of the compliance ledger: archive old events into signed segments, honour legal holds.

``registry/retention.yaml`` (JSON Schema ``registry/schema/retention.schema.json``) gives a retention period
per event class (an action prefix: ``credential`` covers ``credential.mint`` and ``credential.refuse``; the
longest prefix wins; ``default_days`` otherwise) and the legal holds (by correlation id or by PR, each with
a reason, who placed it and when).

:func:`archive` moves a **contiguous prefix** of the live ledger into ``<ledger>.archive/``:
``segment-<first>-<last>.jsonl.gz`` (the exact ledger lines, gzip) and ``segment-<first>-<last>.manifest.dsse.json``
(a DSSE envelope over the manifest: segment and content SHA-256, first/last seq, the digest the segment's
first event chains to and the digest of its last event). It stops at the first event that must stay (not
before the cut-off, inside its retention period, under a legal hold, or the live ledger's last event, which
anchors the next append), so the chain stays verifiable across the cut: the live ledger's first event's
``prev`` is the last archived digest. The live file is rewritten atomically (temp file + rename) under the
ledger's writer lock, the index rebuilt, and an ``audit.archive`` event appended saying what was done.

:func:`verify_archive` checks every manifest signature, segment digest, every archived event (sequence,
chain, digest, signature) and then the live ledger from where the archive ends.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from bot.errors import IntegrityError, UserError
from bot.records import (
    GENESIS,
    Actor,
    ActorKind,
    AuditEvent,
    Outcome,
    Record,
    UtcDateTime,
    canonical_json,
    digest,
    sha256_hex,
)
from bot.registry import config_schema, load_config
from bot.trust.keys import Signer, sign_json, verify_bytes, verify_json_envelope
from bot.trust.ledger import EVENT_PAYLOAD_TYPE, Ledger, LedgerKeys, LedgerReport

log = logging.getLogger("glassbox.retention")

MANIFEST_PAYLOAD_TYPE = "application/vnd.glassbox.archive-manifest.v1+json"
_SEGMENT = re.compile(r"^segment-(\d+)-(\d+)\.manifest\.dsse\.json$")

# --------------------------------------------------------------------------------------------------
# config


class RetentionClass(Record):
    prefix: str = Field(pattern=r"^[a-z][a-z0-9_.-]*$", description="Action or action prefix, e.g. credential.")
    days: int = Field(ge=0, description="Keep events of this class in the live ledger at least this long.")


class LegalHold(Record):
    id: str = Field(min_length=1)
    correlation_id: str | None = None
    pr: int | None = Field(default=None, ge=1)
    repo: str | None = Field(default=None, description="With pr: the PR's repository (owner/name); any when absent.")
    reason: str = Field(min_length=1)
    placed_by: str = Field(min_length=1)
    placed_at: UtcDateTime
    expires: UtcDateTime | None = Field(default=None, description="Absent: until removed from this file.")

    @model_validator(mode="after")
    def _target(self) -> LegalHold:
        if self.correlation_id is None and self.pr is None:
            raise ValueError("a legal hold names a correlation_id or a pr")
        return self

    def covers(self, event: AuditEvent, now: datetime) -> bool:
        if self.expires is not None and self.expires <= now:
            return False
        if self.correlation_id is not None and event.correlation_id == self.correlation_id:
            return True
        return (
            self.pr is not None
            and event.subject.pr == self.pr
            and (self.repo is None or event.subject.repo == self.repo)
        )


class RetentionPolicy(Record):
    schema_version: Literal[1] = 1
    default_days: int = Field(default=2557, ge=0, description="For actions no class covers (default: 7 years).")
    classes: list[RetentionClass] = Field(default_factory=list)
    legal_holds: list[LegalHold] = Field(default_factory=list)

    def retention_for(self, action: str) -> tuple[str, int]:
        """(class prefix, days) for ``action``; the longest matching prefix wins."""
        best: RetentionClass | None = None
        for c in self.classes:
            if (action == c.prefix or action.startswith(c.prefix.rstrip(".") + ".")) and (
                best is None or len(c.prefix) > len(best.prefix)
            ):
                best = c
        return (best.prefix, best.days) if best else ("default", self.default_days)

    def hold_for(self, event: AuditEvent, now: datetime) -> LegalHold | None:
        return next((h for h in self.legal_holds if h.covers(event, now)), None)


def retention_schema() -> dict[str, Any]:
    return config_schema(RetentionPolicy, "retention")


def load_retention(path: Path) -> RetentionPolicy:
    """The retention policy at ``path``, schema-checked then parsed."""
    if not path.exists():
        raise UserError(f"{path}: retention config not found (pass --retention FILE)")
    return load_config(path, RetentionPolicy, name="retention", what="retention config")


# --------------------------------------------------------------------------------------------------
# archiving


def archive_dir(ledger: Ledger) -> Path:
    return ledger.path.with_name(ledger.path.name + ".archive")


@dataclass
class ArchiveResult:
    archived: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    segment: Path | None = None
    manifest: Path | None = None
    stopped_at: dict[str, Any] | None = None  # {seq, reason}: the first event that had to stay
    event: AuditEvent | None = None  # the audit.archive ledger event

    def as_dict(self) -> dict[str, Any]:
        return {
            "archived": self.archived,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "segment": str(self.segment) if self.segment else None,
            "manifest": str(self.manifest) if self.manifest else None,
            "stopped_at": self.stopped_at,
            "event_seq": self.event.seq if self.event else None,
        }


def _must_stay(event: AuditEvent, policy: RetentionPolicy, before: datetime, now: datetime) -> str | None:
    if event.time >= before:
        return f"not before the cut-off {before.isoformat()}"
    hold = policy.hold_for(event, now)
    if hold is not None:
        return f"under legal hold {hold.id} placed by {hold.placed_by}: {hold.reason}"
    prefix, days = policy.retention_for(event.action)
    if now - event.time < timedelta(days=days):
        return f"within its retention period ({days} days for class {prefix!r})"
    return None


def _manifests(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _SEGMENT.match(p.name))]
    return [p for _, p in sorted(found)]


def _unverified_payload(path: Path) -> dict[str, Any]:
    envelope = json.loads(path.read_text(encoding="utf-8"))
    data: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return data


def archive_anchor(ledger: Ledger, trusted: LedgerKeys | None = None) -> tuple[int, str]:
    """(seq, prev) the live ledger's first event must have: after the last archived segment, or (1, GENESIS).

    With ``trusted`` keys the last manifest's signature must verify (IntegrityError otherwise), so a verifier
    can anchor ``Ledger.verify(start_seq=..., start_prev=...)`` on it; the segments themselves are checked by
    :func:`verify_archive`.
    """
    manifests = _manifests(archive_dir(ledger))
    if not manifests:
        return 1, GENESIS
    if trusted is None:
        last = _unverified_payload(manifests[-1])
    else:
        envelope = json.loads(manifests[-1].read_text(encoding="utf-8"))
        last, _ = verify_json_envelope(envelope, trusted, payload_type=MANIFEST_PAYLOAD_TYPE)
    return int(last["last_seq"]) + 1, str(last["last_digest"])


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def archive(
    ledger: Ledger,
    signer: Signer,
    *,
    before: datetime,
    policy: RetentionPolicy,
    now: datetime | None = None,
    actor_kind: ActorKind = ActorKind.BOT,
    trusted: LedgerKeys | None = None,
) -> ArchiveResult:
    """Archive the longest prefix of ``ledger`` whose events may leave; record it as ``audit.archive``.

    Refuses (IntegrityError) to archive a ledger that does not verify: archiving must never launder an edit.
    With ``trusted`` keys the signatures are checked too; without, the sequence, chain and digests.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    before = before.astimezone(UTC)
    result = ArchiveResult()
    directory = archive_dir(ledger)
    with ledger.exclusive():
        if not ledger.path.exists():
            raise UserError(f"{ledger.path}: no ledger to archive")
        raw = ledger.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            raise UserError(f"{ledger.path}: the last line is torn; append once (it recovers) or restore the ledger")
        lines = raw.splitlines(keepends=True)
        start_seq, start_prev = archive_anchor(ledger, trusted)
        _check_live(ledger, lines, start_seq, start_prev, trusted)
        events = [AuditEvent.model_validate_json(line) for line in lines]
        count = 0
        for i, event in enumerate(events):
            if i == len(events) - 1:
                result.stopped_at = {"seq": event.seq, "reason": "the last event stays: it anchors the next append"}
                break
            why = _must_stay(event, policy, before, now)
            if why is not None:
                result.stopped_at = {"seq": event.seq, "reason": why}
                break
            count += 1
        if count == 0:
            return result
        archived = events[:count]
        first, last = archived[0], archived[-1]
        stem = f"segment-{first.seq:010d}-{last.seq:010d}"
        segment = directory / f"{stem}.jsonl.gz"
        manifest_path = directory / f"{stem}.manifest.dsse.json"
        if segment.exists() or manifest_path.exists():
            raise UserError(f"{segment}: an archive segment with these sequence numbers already exists")
        content = b"".join(lines[:count])
        compressed = gzip.compress(content, mtime=0)  # mtime 0: the same events give the same bytes
        manifest = {
            "schema_version": 1,
            "ledger": ledger.path.name,
            "segment": segment.name,
            "first_seq": first.seq,
            "last_seq": last.seq,
            "count": count,
            "first_prev": first.prev,
            "last_digest": last.digest,
            "segment_sha256": sha256_hex(compressed),
            "content_sha256": sha256_hex(content),
            "first_time": first.time.isoformat(),
            "last_time": last.time.isoformat(),
            "before": before.isoformat(),
            "archived_at": now.isoformat(),
            "archived_by": signer.identity,
            "policy_digest": digest(policy),
        }
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(segment, compressed)
        envelope = sign_json(manifest, MANIFEST_PAYLOAD_TYPE, signer)
        _write_atomic(manifest_path, (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        # the live ledger keeps the rest, byte for byte
        _write_atomic(ledger.path, b"".join(lines[count:]))
        ledger.reindex()  # offsets moved; the high-water mark survives a rebuild
    result.archived, result.first_seq, result.last_seq = count, first.seq, last.seq
    result.segment, result.manifest = segment, manifest_path
    log.info("archived ledger events %d-%d to %s", first.seq, last.seq, segment)
    result.event = ledger.append(
        signer,
        actor=Actor(id=signer.identity, kind=actor_kind),
        action="audit.archive",
        outcome=Outcome.ALLOW,
        reason=f"archived events {first.seq}-{last.seq} to {segment.name}",
        details={
            "first_seq": first.seq,
            "last_seq": last.seq,
            "count": count,
            "segment": segment.name,
            "segment_sha256": manifest["segment_sha256"],
            "last_digest": last.digest,
            "manifest": manifest_path.name,
            "before": before.isoformat(),
            "stopped_at": result.stopped_at,
        },
    )
    return result


def _check_live(
    ledger: Ledger, lines: list[bytes], start_seq: int, start_prev: str, trusted: LedgerKeys | None
) -> None:
    if trusted is not None:
        report = ledger.verify(trusted, start_seq=start_seq, start_prev=start_prev)
        if not report.ok:
            p = report.problems[0]
            raise IntegrityError(f"{ledger.path} does not verify (line {p.line}: {p.kind}: {p.message}); not archiving")
        return
    problems = _chain_problems(lines, start_seq, start_prev, None, where=str(ledger.path))
    if problems:
        raise IntegrityError(f"{problems[0]}; not archiving")


def _chain_problems(lines: list[bytes], seq: int, prev: str, trusted: LedgerKeys | None, *, where: str) -> list[str]:
    """Sequence, chain, digest (and signature, with ``trusted``) of consecutive ledger lines."""
    problems = []
    for n, line in enumerate(lines, 1):
        try:
            event = AuditEvent.model_validate_json(line)
        except ValidationError:
            problems.append(f"{where}: line {n}: not a ledger event")
            seq += 1
            continue
        if event.seq != seq:
            problems.append(f"{where}: line {n}: seq {event.seq} where {seq} was due")
        if event.prev != prev:
            problems.append(f"{where}: line {n}: seq {event.seq}: prev does not chain to the event before it")
        body = event.body()
        if digest(body) != event.digest:
            problems.append(f"{where}: line {n}: seq {event.seq}: content does not match its digest (edited)")
        if trusted is not None:
            key = trusted.get(event.signature.keyid)
            if key is None:
                problems.append(f"{where}: line {n}: seq {event.seq}: signed by an untrusted key")
            elif not verify_bytes(key, EVENT_PAYLOAD_TYPE, canonical_json(body), event.signature.sig):
                problems.append(f"{where}: line {n}: seq {event.seq}: signature does not verify")
            elif (unbound := trusted.binding_problem(event)) is not None:
                problems.append(f"{where}: line {n}: seq {event.seq}: {unbound[1]}")
        seq, prev = event.seq + 1, event.digest
    return problems


# --------------------------------------------------------------------------------------------------
# verifying


@dataclass
class ArchiveReport:
    segments: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    live: LedgerReport | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and (self.live is None or self.live.ok)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "segments": self.segments,
            "problems": self.problems,
            "live": self.live.as_dict() if self.live else None,
        }


def verify_archive(ledger: Ledger, trusted: LedgerKeys) -> ArchiveReport:
    """Verify every archive segment and manifest, then the live ledger from where the archive ends."""
    report = ArchiveReport()
    seq, prev = 1, GENESIS
    for path in _manifests(archive_dir(ledger)):
        try:
            payload, keyid = verify_json_envelope(
                json.loads(path.read_text(encoding="utf-8")), trusted, payload_type=MANIFEST_PAYLOAD_TYPE
            )
        except (IntegrityError, ValueError) as exc:
            report.problems.append(f"{path.name}: manifest signature: {getattr(exc, 'message', exc)}")
            continue
        segment = path.with_name(str(payload.get("segment", "")))
        report.segments.append({"segment": segment.name, "first_seq": payload.get("first_seq"), "signed_by": keyid})
        if int(payload.get("first_seq", -1)) != seq or payload.get("first_prev") != prev:
            report.problems.append(
                f"{path.name}: starts at seq {payload.get('first_seq')} but the chain continues at seq {seq} "
                "(a segment is missing or out of order)"
            )
        try:
            compressed = segment.read_bytes()
        except FileNotFoundError:
            report.problems.append(f"{segment.name}: segment file is missing")
            seq, prev = int(payload["last_seq"]) + 1, str(payload["last_digest"])
            continue
        if sha256_hex(compressed) != payload.get("segment_sha256"):
            report.problems.append(f"{segment.name}: SHA-256 does not match its signed manifest (tampered)")
        try:
            content = gzip.decompress(compressed)
        except (OSError, EOFError) as exc:
            report.problems.append(f"{segment.name}: not a readable gzip file: {exc}")
            seq, prev = int(payload["last_seq"]) + 1, str(payload["last_digest"])
            continue
        if sha256_hex(content) != payload.get("content_sha256"):
            report.problems.append(f"{segment.name}: content SHA-256 does not match its signed manifest (tampered)")
        lines = content.splitlines(keepends=True)
        report.problems += _chain_problems(lines, seq, prev, trusted, where=segment.name)
        last = AuditEvent.model_validate_json(lines[-1]) if lines else None
        if last is None or last.seq != payload.get("last_seq") or last.digest != payload.get("last_digest"):
            report.problems.append(f"{segment.name}: its last event is not the one its manifest names")
        seq, prev = int(payload["last_seq"]) + 1, str(payload["last_digest"])
    first_live = next(ledger.events(), None)
    if first_live is not None and (first_live.prev != prev or first_live.seq != seq):
        report.problems.append(
            f"{ledger.path.name}: the first live event (seq {first_live.seq}) does not chain to the archive's "
            f"last event (expected seq {seq}, prev {prev})"
        )
    report.live = ledger.verify(trusted, start_seq=seq, start_prev=prev)
    return report
