"""The compliance ledger: an append-only JSONL file of signed, hash-chained ``AuditEvent``s.

Each event carries the digest of the one before it (``prev``), its own digest over its canonical body, and
an ed25519 signature by the identity that emitted it. Appends take an exclusive ``flock`` on a lock file
beside the ledger, write the whole line with one ``write`` on an ``O_APPEND`` descriptor and ``fsync`` it,
so concurrent writers (threads or processes) never interleave and a crash leaves at most a torn last
line; the next writer moves such a torn tail aside (``<ledger>.torn``) and records that it did.

A SQLite index beside the file (``<ledger>.index.sqlite``) answers look-ups by correlation id, PR, commit
and time. The JSONL file is the record; the index is derived, rebuilt on demand, and also remembers how
many events it has seen, which lets ``verify`` notice a ledger truncated behind its back.
"""

from __future__ import annotations

import fcntl
import json
import logging
import multiprocessing
import os
import sqlite3
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from bot.errors import IntegrityError, UserError
from bot.records import (
    GENESIS,
    Actor,
    ActorKind,
    AuditEvent,
    EventSignature,
    Outcome,
    Subject,
    canonical_json,
    digest,
    digest_bytes,
)
from bot.registry import KeyRole, Registry
from bot.trust.keys import Signer, sign_bytes, sign_json, trusted_keys, verify_bytes, verify_json_envelope

EVENT_PAYLOAD_TYPE = "application/vnd.glassbox.audit-event.v1+json"
HIGH_WATER_PAYLOAD_TYPE = "application/vnd.glassbox.ledger-high-water.v1+json"

log = logging.getLogger(__name__)


@contextmanager
def exclusive_lock(lock_path: Path, mode: int) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created with ``mode``) between processes."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@dataclass(frozen=True)
class LedgerProblem:
    line: int
    seq: int | None
    # malformed | noncanonical | edited | chain | sequence | signature | unknown-key | actor | action | torn
    # | truncated | high-water | high-water-key
    kind: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "seq": self.seq, "kind": self.kind, "message": self.message}


@dataclass
class LedgerReport:
    path: str
    events: int = 0
    head: str = GENESIS
    problems: list[LedgerProblem] = field(default_factory=list)
    signers: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> LedgerProblem | None:
        return self.problems[0] if self.problems else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
            "signers": self.signers,
            "first_problem": self.first_problem.as_dict() if self.first_problem else None,
            "problems": [p.as_dict() for p in self.problems],
        }


# --------------------------------------------------------------------------------------------------
# who may write what: a signature proves a key signed, the binding proves the key's owner may say so

ACTIONS_BY_KIND: Mapping[ActorKind, frozenset[str]] = {
    ActorKind.AGENT: frozenset({"propose"}),
    ActorKind.CI: frozenset({"check"}),
    ActorKind.BOT: frozenset({"approvals", "merge", "audit.archive", "breakglass.review", "breakglass.refuse"}),
    ActorKind.DEPLOYER: frozenset(
        {"deploy", "credential.mint", "credential.refuse", "breakglass.use", "breakglass.refuse"}
    ),
    ActorKind.HUMAN: frozenset({"breakglass.open", "breakglass.review", "breakglass.refuse", "audit.archive"}),
}
"""The actions each kind of identity may record. Every writer may record ``ledger.recover`` (moving a torn
tail aside happens on whichever append comes next)."""

ANY_KIND_ACTIONS = frozenset({"ledger.recover"})


class LedgerKeys(dict[str, bytes]):
    """keyid → raw public key of the trusted ledger signers, and keyid → (identity, kind) they are registered to.

    Built from the registry (``ledger_keys``), never from the ledger: a key trusted for one identity proves
    nothing about an event that names another.
    """

    def __init__(self, keys: Mapping[str, bytes], bindings: Mapping[str, tuple[str, ActorKind]]) -> None:
        super().__init__(keys)
        missing = sorted(set(keys) - set(bindings))
        if missing:
            raise ValueError(f"ledger keys without a registered identity: {missing}")
        self.bindings = {k: (identity, ActorKind(kind)) for k, (identity, kind) in bindings.items() if k in keys}

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for the verifying worker processes
        return (LedgerKeys, (dict(self), self.bindings))

    def identity(self, keyid: str) -> str | None:
        bound = self.bindings.get(keyid)
        return bound[0] if bound else None

    def binding_problem(self, event: AuditEvent) -> tuple[str, str] | None:
        """(``actor`` | ``action``, why) when ``event`` is not what its signing key's owner may record; or None."""
        identity, kind = self.bindings[event.signature.keyid]
        if event.actor.id != identity:
            return "actor", f"signed by {identity}'s key but names actor {event.actor.id}"
        if event.actor.kind is not kind:
            return "actor", f"names {identity} as a {event.actor.kind.value}; the registry knows it as a {kind.value}"
        if event.action not in ACTIONS_BY_KIND[kind] | ANY_KIND_ACTIONS:
            return "action", f"a {kind.value} may not record {event.action!r} (only {sorted(ACTIONS_BY_KIND[kind])})"
        return None


def ledger_keys(registry: Registry) -> LedgerKeys:
    """The registry's ledger-signer keys, each bound to its identity and that identity's kind."""
    keys = registry.keys_for(role=KeyRole.LEDGER_SIGNER)
    bindings: dict[str, tuple[str, ActorKind]] = {}
    for k in keys:
        kind = registry.identity_kind(k.identity)
        if kind is not None:  # the registry's own validation names a key of an unknown identity
            bindings[k.keyid] = (k.identity, ActorKind(kind))
    return LedgerKeys(trusted_keys((k.keyid, k.public_key) for k in keys if k.keyid in bindings), bindings)


def event_signature(signer: Signer, body: Mapping[str, Any]) -> EventSignature:
    return EventSignature(keyid=signer.keyid, sig=sign_bytes(signer, EVENT_PAYLOAD_TYPE, canonical_json(body)))


_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY, offset INTEGER NOT NULL, length INTEGER NOT NULL, digest TEXT NOT NULL,
  time TEXT NOT NULL, correlation_id TEXT, pr INTEGER, commit_sha TEXT, action TEXT NOT NULL,
  outcome TEXT NOT NULL, actor TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_correlation ON events(correlation_id);
CREATE INDEX IF NOT EXISTS events_pr ON events(pr);
CREATE INDEX IF NOT EXISTS events_commit ON events(commit_sha);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Ledger:
    """The ledger file at ``path``, its index, and its signed high-water mark.

    The high-water mark is a DSSE envelope over (ledger name, last seq, last digest), signed by whoever
    appended last and rewritten on every append. A copy kept apart from the ledger (``high_water``, the
    SIEM export, the GitHub trail) is what exposes a tail cut together with the index that would otherwise
    have noticed it.
    """

    def __init__(self, path: Path, *, high_water: Path | None = None) -> None:
        self.path = path
        self.high_water_path = high_water or path.with_name(path.name + ".high-water.json")
        self.index_path = path.with_name(path.name + ".index.sqlite")
        self.lock_path = path.with_name(path.name + ".lock")
        self.torn_path = path.with_name(path.name + ".torn")
        self.last_verify_workers = 1  # processes the last ``verify`` used (1: this one)

    # ---------------------------------------------------------------------------------------------- writing

    @classmethod
    def existing(cls, path: Path) -> Ledger:
        """The ledger at ``path``, which must exist (for readers: a missing ledger is bad input, not empty)."""
        ledger = cls(path)
        if not ledger.path.exists():
            raise UserError(f"{path}: ledger not found")
        return ledger

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with exclusive_lock(self.lock_path, 0o644):
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writers' lock for maintenance that rewrites the file (archiving). Never append inside it."""
        with self._locked():
            yield

    def append(
        self,
        signer: Signer,
        *,
        actor: Actor,
        action: str,
        outcome: Outcome,
        reason: str = "",
        correlation_id: str | None = None,
        subject: Subject | None = None,
        details: Mapping[str, Any] | None = None,
        time: datetime | None = None,
    ) -> AuditEvent:
        """Append one signed event and return it. Safe under concurrent writers."""
        with self._locked():
            torn = self._quarantine_torn_tail()
            seq, prev = self._tail()
            if torn:
                recovered = self._write_event(
                    signer,
                    seq + 1,
                    prev,
                    actor=actor,
                    action="ledger.recover",
                    outcome=Outcome.ERROR,
                    reason=f"a torn last line of {torn} bytes (an interrupted append) was moved to {self.torn_path}",
                    correlation_id=None,
                    subject=Subject(),
                    details={"torn_bytes": torn, "quarantine": str(self.torn_path)},
                    time=None,
                )
                seq, prev = recovered.seq, recovered.digest
            return self._write_event(
                signer,
                seq + 1,
                prev,
                actor=actor,
                action=action,
                outcome=outcome,
                reason=reason,
                correlation_id=correlation_id,
                subject=subject or Subject(),
                details=dict(details or {}),
                time=time,
            )

    def _write_event(
        self,
        signer: Signer,
        seq: int,
        prev: str,
        *,
        actor: Actor,
        action: str,
        outcome: Outcome,
        reason: str,
        correlation_id: str | None,
        subject: Subject,
        details: dict[str, Any],
        time: datetime | None,
    ) -> AuditEvent:
        when = (time or datetime.now(UTC)).astimezone(UTC)
        draft = AuditEvent(
            seq=seq,
            time=when,
            correlation_id=correlation_id,
            actor=actor,
            action=action,
            outcome=outcome,
            reason=reason,
            subject=subject,
            details=json.loads(canonical_json(details)),  # JSON-only values, normalised once
            prev=prev,
            digest=GENESIS,  # placeholders: neither is part of the signed body
            signature=EventSignature(keyid="-", sig="-"),
        )
        body = draft.body()
        event = draft.model_copy(update={"digest": digest(body), "signature": event_signature(signer, body)})
        line = canonical_json(event) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            offset = os.lseek(fd, 0, os.SEEK_END)
            written = os.write(fd, line)
            if written != len(line):  # pragma: no cover - a full disk; the torn tail is recovered next time
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._index_event(event, offset, len(line))
        self._write_high_water(signer, event)
        return event

    def seed(self, line: bytes) -> None:
        """Start an empty cache at someone else's newest event (the trail's tip), so appends chain on it."""
        AuditEvent.model_validate_json(line)  # bad input is refused before anything is written
        with self._locked():
            if self.path.exists() and self.path.stat().st_size > 0:
                raise UserError(f"{self.path}: not empty; a ledger is seeded only when it holds nothing")
            self._replace_with(line)

    def rebase(self, base_line: bytes, pending: list[AuditEvent], signer: Signer) -> list[AuditEvent]:
        """Replace this cache by ``base_line`` (the trail's newest event) with ``pending`` re-chained on top.

        An append that lost the race for the trail's head is made again after the winner's: each pending event
        keeps its actor, action, outcome, subject, details and time and gets the next sequence, the new chain
        link and a fresh signature by ``signer``, which must be the identity that signed it."""
        AuditEvent.model_validate_json(base_line)
        strangers = sorted({e.signature.keyid for e in pending if e.signature.keyid != signer.keyid})
        if strangers:
            raise UserError(
                f"{self.path}: pending events signed by other keys ({', '.join(strangers)}) cannot be re-chained "
                f"by {signer.identity}; publish them with their own identity"
            )
        with self._locked():
            self._replace_with(base_line)
            seq, prev = self._tail()
            out: list[AuditEvent] = []
            for e in pending:
                event = self._write_event(
                    signer,
                    seq + 1,
                    prev,
                    actor=e.actor,
                    action=e.action,
                    outcome=e.outcome,
                    reason=e.reason,
                    correlation_id=e.correlation_id,
                    subject=e.subject,
                    details=dict(e.details),
                    time=e.time,
                )
                out.append(event)
                seq, prev = event.seq, event.digest
        return out

    def _replace_with(self, data: bytes) -> None:
        tmp = self.path.with_name(self.path.name + ".replace")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data if data.endswith(b"\n") else data + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.index_path.unlink(missing_ok=True)
        self.reindex()

    def _write_high_water(self, signer: Signer, event: AuditEvent) -> None:
        mark = {"ledger": self.path.name, "seq": event.seq, "digest": event.digest, "time": event.time.isoformat()}
        data = (json.dumps(sign_json(mark, HIGH_WATER_PAYLOAD_TYPE, signer), sort_keys=True) + "\n").encode()
        self.high_water_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.high_water_path.with_name(self.high_water_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.high_water_path)

    def high_water(self) -> dict[str, Any] | None:
        """The signed high-water envelope beside this ledger, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.high_water_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _quarantine_torn_tail(self) -> int:
        """Move an unterminated last line aside; return its size (0 when the file ends cleanly)."""
        if not self.path.exists():
            return 0
        with self.path.open("rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return 0
            start = self._last_line_start(fh, size)
            fh.seek(start)
            fragment = fh.read()
            with self.torn_path.open("ab") as torn:
                torn.write(fragment + b"\n")
                torn.flush()
                os.fsync(torn.fileno())
            fh.truncate(start)
            fh.flush()
            os.fsync(fh.fileno())
            return len(fragment)

    @staticmethod
    def _last_line_start(fh: BinaryIO, end: int) -> int:
        """Offset where the line ending at ``end`` (exclusive, without its newline) starts."""
        pos = end
        chunk = 8192
        while pos > 0:
            step = min(chunk, pos)
            fh.seek(pos - step)
            data = fh.read(step)
            nl = data.rfind(b"\n", 0, len(data) - (1 if pos == end and data.endswith(b"\n") else 0))
            if nl != -1:
                return pos - step + nl + 1
            pos -= step
        return 0

    def _tail(self) -> tuple[int, str]:
        """(seq, digest) of the last event, or (0, GENESIS)."""
        if not self.path.exists():
            return 0, GENESIS
        with self.path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0, GENESIS
            start = self._last_line_start(fh, size)
            fh.seek(start)
            line = fh.read().rstrip(b"\n")
        try:
            data = json.loads(line)
            return int(data["seq"]), str(data["digest"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"{self.path}: the last line is not a ledger event ({exc}); run `glassbox ledger verify` "
                "and restore the ledger before appending"
            ) from None

    # ---------------------------------------------------------------------------------------------- index

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.index_path, timeout=30)
        conn.executescript(_INDEX_SCHEMA)
        return conn

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, key: str, value: int) -> None:
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, str(value)))

    def _index_event(self, event: AuditEvent, offset: int, length: int) -> None:
        with self._connect() as conn:
            self._insert(conn, event, offset, length)
            self._set_meta(conn, "max_seq", event.seq)
            self._set_meta(conn, "size", offset + length)
        conn.close()

    @staticmethod
    def _insert(conn: sqlite3.Connection, event: AuditEvent, offset: int, length: int) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                event.seq,
                offset,
                length,
                event.digest,
                event.time.isoformat(),
                event.correlation_id,
                event.subject.pr,
                event.subject.commit,
                event.action,
                event.outcome.value,
                event.actor.id,
            ),
        )

    def reindex(self) -> int:
        """Rebuild the index from the file; return the number of events indexed.

        The high-water mark (``max_seq``) never goes down, so a ledger truncated behind the index's back
        is still reported by ``verify`` after a rebuild.
        """
        high_water = self._meta("max_seq") or 0
        self.index_path.unlink(missing_ok=True)
        count, size = 0, 0
        with self._connect() as conn:
            for offset, length, event in self._scan():
                size = offset + length
                if event is not None:
                    self._insert(conn, event, offset, length)
                    count += 1
            self._set_meta(conn, "max_seq", max(high_water, count))
            self._set_meta(conn, "size", size)
        conn.close()
        return count

    def _meta(self, key: str) -> int | None:
        if not self.index_path.exists():
            return None
        conn = sqlite3.connect(self.index_path, timeout=30)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        except sqlite3.DatabaseError:
            return None
        finally:
            conn.close()
        return int(row[0]) if row else None

    def _indexed_max_seq(self) -> int | None:
        return self._meta("max_seq")

    def find(
        self,
        *,
        correlation_id: str | None = None,
        pr: int | None = None,
        commit: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEvent]:
        """Events matching every given key, in ledger order, read through the index."""
        if not self.path.exists():
            return []
        if self._meta("size") != self.path.stat().st_size:
            self.reindex()  # the file changed behind the index (edited, restored, or index missing)
        clauses, args = [], []
        for column, value in (("correlation_id", correlation_id), ("pr", pr), ("commit_sha", commit)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            clauses.append("time >= ?")
            args.append(since.astimezone(UTC).isoformat())
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        conn = sqlite3.connect(self.index_path, timeout=30)
        try:
            rows = conn.execute(f"SELECT offset, length FROM events{where} ORDER BY seq", args).fetchall()  # noqa: S608
        finally:
            conn.close()
        out = []
        with self.path.open("rb") as fh:
            for offset, length in rows:
                fh.seek(offset)
                out.append(AuditEvent.model_validate_json(fh.read(length)))
        return out

    def raw_line(self, seq: int) -> bytes | None:
        """The stored bytes of event ``seq`` (through the index, rebuilt if the file changed), or None."""
        if not self.path.exists():
            return None
        if self._meta("size") != self.path.stat().st_size:
            self.reindex()
        conn = sqlite3.connect(self.index_path, timeout=30)
        try:
            row = conn.execute("SELECT offset, length FROM events WHERE seq=?", (seq,)).fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        with self.path.open("rb") as fh:
            fh.seek(row[0])
            return fh.read(row[1])

    # ---------------------------------------------------------------------------------------------- reading

    def _scan(self) -> Iterator[tuple[int, int, AuditEvent | None]]:
        if not self.path.exists():
            return
        offset = 0
        with self.path.open("rb") as fh:
            for raw in fh:
                try:
                    event: AuditEvent | None = AuditEvent.model_validate_json(raw)
                except ValidationError:
                    event = None
                yield offset, len(raw), event
                offset += len(raw)

    def events(self) -> Iterator[AuditEvent]:
        for _, _, event in self._scan():
            if event is not None:
                yield event

    # ---------------------------------------------------------------------------------------------- verifying

    def verify(
        self,
        trusted: LedgerKeys,
        *,
        start_seq: int = 1,
        start_prev: str = GENESIS,
        workers: int | None = None,
        high_water: Mapping[str, Any] | None = None,
    ) -> LedgerReport:
        """Check every line: parses, canonical form, sequence, chain, digest, a signature by a trusted key whose
        registered identity is the event's actor and whose kind may take its action; then the tail.

        ``start_seq`` and ``start_prev`` anchor the first line when an archived prefix was cut off (see
        ``bot.audit.retention``): the live file then starts after the archive's last event.

        The high-water mark beside the ledger, and ``high_water`` (a signed mark kept elsewhere: a SIEM export,
        the GitHub trail), must be signed by a trusted ledger signer and name an event the file still holds,
        with the same digest.

        ``workers`` spreads the per-line work (parse, digest, signature) over that many processes; the
        sequence and chain links between the ranges are then checked here, in line order, so the report is
        the same as the one-process check. ``None`` (the default) picks a count from the usable CPUs, and only
        for a ledger of at least ``PARALLEL_MIN_BYTES``; ``1`` checks in this process. When worker processes
        cannot be started (or fail), the check runs again in this process: never a weaker check. Workers are
        spawned (never forked), so a script calling this on a large ledger needs the usual
        ``if __name__ == "__main__":`` guard, as with any spawn-based multiprocessing, or ``workers=1``.
        """
        self.last_verify_workers = 1
        report = LedgerReport(path=str(self.path), head=start_prev)
        if not self.path.exists():
            return report
        if not isinstance(trusted, LedgerKeys):
            raise TypeError("Ledger.verify needs LedgerKeys (keys bound to identities), not bare keys")
        keys = trusted
        anchor = (start_seq, start_prev)
        count = _verify_workers(workers, self.path.stat().st_size)
        results: list[_RangeResult] | None = None
        if count > 1:
            results = self._verify_parallel(keys, anchor, count)
        if results is None:
            results = [_verify_range(str(self.path), 0, None, keys, anchor, None)]
        else:
            self.last_verify_workers = count
        report = self._merge(report, results, anchor)
        marks = [("the high-water mark beside the ledger", self.high_water())]
        if high_water is not None:
            marks.append(("the given high-water mark", dict(high_water)))
        for where, mark in marks:
            if mark is not None:
                report.problems += self._high_water_problems(where, mark, keys, report)
        return report

    def _high_water_problems(
        self, where: str, envelope: Mapping[str, Any], keys: LedgerKeys, report: LedgerReport
    ) -> list[LedgerProblem]:
        def problem(message: str, kind: str = "high-water") -> list[LedgerProblem]:
            return [LedgerProblem(report.events, None, kind, f"{where} {message}")]

        try:
            mark, _ = verify_json_envelope(envelope, keys, payload_type=HIGH_WATER_PAYLOAD_TYPE)
            seq, mark_digest = int(mark["seq"]), str(mark["digest"])
        except (IntegrityError, ValueError, KeyError, TypeError) as exc:
            return problem(f"does not verify: {getattr(exc, 'message', exc)}", "high-water-key")
        if mark.get("ledger") != self.path.name:
            return problem(f"is for ledger {mark.get('ledger')!r}, not {self.path.name!r}")
        try:
            last = self._tail()[0]
        except UserError:
            return []  # a torn or malformed last line is reported by the line checks
        if seq > last:
            return problem(f"names seq {seq} but the file ends at seq {last}: events were removed from the end")
        if seq == last:
            held: str | None = report.head
        else:
            held = next((e.digest for e in self.events() if e.seq == seq), None)
        if held != mark_digest:
            return problem(f"names seq {seq} with digest {mark_digest}, which the file no longer holds (rewritten)")
        return []

    def _verify_parallel(self, keys: LedgerKeys, anchor: tuple[int, str], count: int) -> list[_RangeResult] | None:
        """Verify byte ranges of the file in ``count`` worker processes; None when that cannot be done."""
        if multiprocessing.current_process().daemon:
            return None  # a daemonic process may not have children
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                ranges = _split_lines(fh, st.st_size, count * _RANGES_PER_WORKER)
            identity = (st.st_dev, st.st_ino)
            context = multiprocessing.get_context("spawn")  # never fork: callers may run threads
            with ProcessPoolExecutor(max_workers=min(count, len(ranges)), mp_context=context) as pool:
                futures = [
                    pool.submit(_verify_range, str(self.path), begin, end, keys, anchor if i == 0 else None, identity)
                    for i, (begin, end) in enumerate(ranges)
                ]
                try:
                    return [future.result() for future in futures]
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        except Exception as exc:  # no processes here (sandbox, limits), a broken pool, the file replaced, ...
            log.debug("parallel ledger verification unavailable (%s); verifying in this process", exc)
            return None

    def _merge(self, report: LedgerReport, results: list[_RangeResult], anchor: tuple[int, str]) -> LedgerReport:
        """Join range results in file order: the pending links between ranges, line numbers, counts, the tail."""
        expected_seq, prev = anchor
        base = 0
        for result in results:
            problems = result.problems
            if result.pending is not None:
                line, seq, event_prev, skipped, at = result.pending
                links = _linkage(line, seq, event_prev, expected_seq + skipped, prev)
                problems = problems[:at] + links + problems[at:]
            report.problems.extend(LedgerProblem(base + line, seq, kind, msg) for line, seq, kind, msg in problems)
            report.events += result.events
            for actor, n in result.signers.items():
                report.signers[actor] = report.signers.get(actor, 0) + n
            if result.end is not None:
                expected_seq, prev = result.end
            else:  # every line of the range was malformed
                expected_seq += result.lines
            base += result.lines
        report.head = prev
        indexed = self._indexed_max_seq()
        if indexed is not None and indexed > expected_seq - 1:
            report.problems.append(
                LedgerProblem(
                    base,
                    None,
                    "truncated",
                    f"the index saw {indexed} events but the file ends at seq {expected_seq - 1}: "
                    "events were removed from the end",
                )
            )
        return report


# -------------------------------------------------------------------------------------------------- verifying
# Module-level, so that worker processes (spawned, not forked) can import and run them.

PARALLEL_MIN_BYTES = 16 * 1024 * 1024
"""Below this size ``verify(workers=None)`` stays in one process: starting workers costs more than it saves."""
MAX_VERIFY_WORKERS = 8
_RANGES_PER_WORKER = 4  # more ranges than workers: a slow range does not leave the others idle

# (line number within the range, seq, kind, message)
_Problem = tuple[int, int | None, str, str]


class _LedgerReplaced(Exception):
    """The file a worker opened is not the one the ranges were cut from."""


@dataclass
class _RangeResult:
    """What one range of lines yields: compact and picklable, no events.

    ``pending`` is set when the range was checked without knowing the state before it (every range but the
    first): its first well-formed line as (line, seq, prev, malformed lines before it, index in ``problems``
    where that line's sequence and chain problems belong). ``end`` is (expected seq, prev) after the range,
    None when no line of it was well-formed.
    """

    lines: int = 0
    events: int = 0
    problems: list[_Problem] = field(default_factory=list)
    signers: dict[str, int] = field(default_factory=dict)
    pending: tuple[int, int, str, int, int] | None = None
    end: tuple[int, str] | None = None


def _verify_workers(workers: int | None, size: int) -> int:
    if workers is not None:
        return max(1, workers)
    if size < PARALLEL_MIN_BYTES:
        return 1
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    return max(1, min(usable, MAX_VERIFY_WORKERS))


def _split_lines(fh: BinaryIO, size: int, parts: int) -> list[tuple[int, int | None]]:
    """About ``parts`` (begin, end) byte ranges that start on line starts; the last one runs to the end of file."""
    cuts = [0]
    for i in range(1, parts):
        target = size * i // parts
        if target <= cuts[-1]:
            continue
        fh.seek(target - 1)
        fh.readline()  # up to and including the newline at or after ``target - 1``
        cut = fh.tell()
        if cut >= size:
            break
        if cut > cuts[-1]:
            cuts.append(cut)
    ends: list[int | None] = [*cuts[1:], None]
    return list(zip(cuts, ends, strict=True))


def _verify_range(
    path: str,
    begin: int,
    end: int | None,
    trusted: LedgerKeys,
    anchor: tuple[int, str] | None,
    identity: tuple[int, int] | None,
) -> _RangeResult:
    """Check the lines from byte ``begin`` up to ``end`` (None: the end of file), as ``Ledger.verify`` does.

    With an ``anchor`` (expected seq, prev) every line's sequence and chain link is checked; without one the
    first well-formed line's link is left ``pending`` for the caller, who knows the range before it.
    """
    with open(path, "rb") as fh:
        if identity is not None:
            st = os.fstat(fh.fileno())
            if (st.st_dev, st.st_ino) != identity:
                raise _LedgerReplaced(f"{path} was replaced while it was being verified")
        fh.seek(begin)
        return _check_lines(fh, None if end is None else end - begin, trusted, anchor)


def _check_lines(fh: BinaryIO, limit: int | None, trusted: LedgerKeys, anchor: tuple[int, str] | None) -> _RangeResult:
    result = _RangeResult()
    problems = result.problems
    known = anchor is not None
    expected_seq, prev = anchor if anchor is not None else (0, GENESIS)
    skipped = 0  # malformed lines before the first well-formed one, while the state before the range is unknown
    consumed = 0
    line_no = 0
    for raw in fh:
        line_no += 1
        if not raw.endswith(b"\n"):
            problems.append((line_no, None, "torn", "the last line is unterminated (an interrupted append)"))
        try:
            event = AuditEvent.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            problems.append((line_no, None, "malformed", f"not a valid event: {where}: {first['msg']}"))
            expected_seq += 1
            skipped += not known
        else:
            if known:
                problems.extend(_linkage(line_no, event.seq, event.prev, expected_seq, prev))
            else:
                result.pending = (line_no, event.seq, event.prev, skipped, len(problems))
                known = True
            _check_content(problems, result.signers, line_no, event, trusted, raw)
            result.events += 1
            expected_seq, prev = event.seq + 1, event.digest
        if limit is not None:
            consumed += len(raw)
            if consumed >= limit:
                break
    result.lines = line_no
    result.end = (expected_seq, prev) if known else None
    return result


def _linkage(line_no: int, seq: int, event_prev: str, expected_seq: int, prev: str) -> list[_Problem]:
    """The sequence and chain problems of a well-formed line, given what the lines before it left due."""
    out: list[_Problem] = []
    if seq != expected_seq:
        kind = "events missing (deleted)" if seq > expected_seq else "event out of order or repeated"
        out.append((line_no, seq, "sequence", f"seq {seq} where {expected_seq} was due: {kind}"))
    if event_prev != prev:
        out.append((line_no, seq, "chain", "prev does not match the previous event's digest (removed or inserted)"))
    return out


def _check_content(
    problems: list[_Problem],
    signers: dict[str, int],
    line_no: int,
    event: AuditEvent,
    trusted: LedgerKeys,
    stored: bytes,
) -> None:
    """What a line proves on its own: canonical form, digest, a signature by a trusted key bound to the actor."""
    dumped = event.model_dump(mode="json")  # once: the canonical line and the signed body are both made of it
    if stored.rstrip(b"\n") != canonical_json(dumped):
        # a duplicate key, reordered keys, extra spaces: what a reader parses need not be what was signed
        problems.append((line_no, event.seq, "noncanonical", "the stored line is not the event's canonical form"))
    payload = canonical_json(AuditEvent.body_of(dumped))
    if digest_bytes(payload) != event.digest:
        problems.append((line_no, event.seq, "edited", "content does not match its digest (edited)"))
    raw = trusted.get(event.signature.keyid)
    if raw is None:
        problems.append((line_no, event.seq, "unknown-key", f"signed by an untrusted key {event.signature.keyid}"))
    elif not verify_bytes(raw, EVENT_PAYLOAD_TYPE, payload, event.signature.sig):
        problems.append((line_no, event.seq, "signature", "signature does not verify"))
    elif (unbound := trusted.binding_problem(event)) is not None:
        problems.append((line_no, event.seq, *unbound))
    else:
        signers[event.actor.id] = signers.get(event.actor.id, 0) + 1
