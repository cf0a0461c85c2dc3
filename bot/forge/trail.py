"""Writing the audit trail (``bot.trust.trail``) through the forge: appends with optimistic concurrency.

A job's local ledger is a cache of the trail. :func:`seed` starts an empty cache at the trail's newest event, so
the job's own events chain on it; :func:`publish` adds the events the trail does not have yet, the attestations
and deploy records it is given, and the ledger's signed high-water mark, in one commit signed by the publishing
service identity, moving the trail branch fast-forward only. When another job won the race for the branch's
head (the forge refuses the non-fast-forward update), the pending events are re-chained after the winner's
newest event (:meth:`Ledger.rebase`) and the append is tried again: parallel jobs lose nothing and the chain
never forks.

:func:`append_once` is the trail's test-and-set: it adds files in one commit only while a guard path is absent,
re-reading the branch after every lost race, so of two jobs adding the same guard exactly one succeeds (the
break-glass single-use claim, ``bot.deploy.breakglass``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.errors import IntegrityError, UserError
from bot.forge.model import GitIdentity
from bot.forge.port import AppendPort, BranchMoved
from bot.records import GENESIS, AuditEvent
from bot.trust.conventions import TRAIL_BRANCH
from bot.trust.gitsign import ssh_sign
from bot.trust.keys import Signer
from bot.trust.ledger import Ledger
from bot.trust.trail import (
    HIGH_WATER_FILE,
    attestation_entry,
    deployment_entry,
    event_path,
    high_water_of,
)

DEFAULT_ATTEMPTS = 12


class TrailForge(AppendPort, Protocol):
    def branch_head(self, branch: str) -> str | None: ...

    def read_file(self, path: str, ref: str) -> bytes | None: ...


@dataclass
class PublishReport:
    commit: str | None  # the trail's head after publishing (None: there is no trail and nothing to add)
    events: list[int] = field(default_factory=list)  # sequence numbers added
    attestations: int = 0
    deployments: int = 0
    attempts: int = 1
    rebased: int = 0  # events re-chained after losing a race

    def as_dict(self) -> dict[str, object]:
        return {
            "commit": self.commit,
            "events": self.events,
            "attestations": self.attestations,
            "deployments": self.deployments,
            "attempts": self.attempts,
            "rebased": self.rebased,
        }


def _tip(forge: TrailForge, head: str | None) -> tuple[int, str]:
    """(seq, digest) of the trail's newest event at ``head``, from its high-water mark; (0, GENESIS) if none."""
    if head is None:
        return 0, GENESIS
    data = forge.read_file(HIGH_WATER_FILE, head)
    if data is None:
        return 0, GENESIS
    mark = high_water_of(data)
    try:
        return int(str(mark["seq"])), str(mark["digest"])
    except (KeyError, ValueError) as exc:
        raise IntegrityError(f"the trail's {HIGH_WATER_FILE} at {head[:12]} names no event: {exc}") from None


def _tip_line(forge: TrailForge, head: str, seq: int, digest: str) -> bytes:
    line = forge.read_file(event_path(seq), head)
    if line is None:
        raise IntegrityError(f"the trail at {head[:12]} has a high-water mark for event {seq} but not the event")
    event = AuditEvent.model_validate_json(line)
    if event.digest != digest or event.computed_digest() != digest:
        raise IntegrityError(f"the trail's event {seq} at {head[:12]} does not match its high-water mark")
    return line


def seed(forge: TrailForge, ledger: Ledger) -> int:
    """Start an empty local ledger at the trail's newest event; the seq it starts at (0: the trail is empty)."""
    if ledger.path.exists() and ledger.path.stat().st_size > 0:
        return 0
    head = forge.branch_head(TRAIL_BRANCH)
    seq, digest = _tip(forge, head)
    if head is None or seq == 0:
        return 0
    ledger.seed(_tip_line(forge, head, seq, digest))
    return seq


def _lines(ledger: Ledger) -> list[tuple[AuditEvent, bytes]]:
    if not ledger.path.exists():
        return []
    out = []
    with ledger.path.open("rb") as fh:
        for raw in fh:
            if raw.endswith(b"\n"):
                out.append((AuditEvent.model_validate_json(raw), raw))
    return out


def _marker(ledger: Ledger) -> Path:
    return ledger.path.with_name(ledger.path.name + ".trail.json")


def _published(ledger: Ledger) -> tuple[int, str] | None:
    try:
        data = json.loads(_marker(ledger).read_text(encoding="utf-8"))
        return int(data["seq"]), str(data["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _side_files(store: Path | None, deploy_state: Path | None) -> tuple[dict[str, str], int, int]:
    files: dict[str, str] = {}
    attestations = deployments = 0
    if store is not None and store.is_dir():
        for path in sorted(store.glob("*.dsse.json")):
            data = path.read_bytes()
            files[attestation_entry(path.name.removesuffix(".dsse.json"), data)] = data.decode("utf-8")
            attestations += 1
    records = deploy_state / "deployments" if deploy_state is not None else None
    if records is not None and records.is_dir():
        for path in sorted(records.glob("*.json")):
            data = path.read_bytes()
            files[deployment_entry(path.stem, data)] = data.decode("utf-8")
            deployments += 1
    return files, attestations, deployments


def publish(
    forge: TrailForge,
    ledger: Ledger,
    signer: Signer,
    *,
    attestations: Path | None = None,
    deploy_state: Path | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishReport:
    """Append what the trail lacks (events after the last published one, the given attestations and deploy
    records, the high-water mark) in one signed commit; retried after re-chaining when another job won."""
    author = GitIdentity(name=signer.identity, email=f"{signer.identity}@glassbox.invalid")
    report = PublishReport(commit=None)
    for attempt in range(1, attempts + 1):
        report.attempts = attempt
        head = forge.branch_head(TRAIL_BRANCH)
        tip_seq, tip_digest = _tip(forge, head)
        lines = _lines(ledger)
        done = _published(ledger)
        first_local = lines[0][0].seq if lines else 0
        floor = done[0] if done else (first_local if lines and lines[0][0].seq > 1 else 0)
        pending = [(e, raw) for e, raw in lines if e.seq > floor]
        if pending and head is not None and pending[0][0].seq <= tip_seq:
            # some are in the trail already (published before, or a publish whose answer was lost), or this
            # cache forked from the trail: keep only what the trail lacks, after the newest event both have
            at_tip = next((e for e, _ in pending if e.seq == tip_seq), None)
            common = tip_seq if at_tip is not None and at_tip.digest == tip_digest else floor
            if common != tip_seq:
                for e, raw in reversed([p for p in pending if p[0].seq < tip_seq]):
                    if forge.read_file(event_path(e.seq), head) == raw:
                        common = e.seq
                        break
            pending = [(e, raw) for e, raw in pending if e.seq > common]
        if pending and (pending[0][0].prev != tip_digest or pending[0][0].seq != tip_seq + 1):
            if head is None or tip_seq == 0:
                raise IntegrityError(
                    f"{ledger.path}: events {pending[0][0].seq}.. chain on {pending[0][0].prev[:19]}, which the "
                    "trail does not have"
                )
            rebased = ledger.rebase(_tip_line(forge, head, tip_seq, tip_digest), [e for e, _ in pending], signer)
            report.rebased = len(rebased)
            continue
        side, report.attestations, report.deployments = _side_files(attestations, deploy_state)
        files = {event_path(e.seq): raw.decode("utf-8") for e, raw in pending} | side
        if not files:
            report.commit = head
            return report
        mark = ledger.high_water()
        if pending and mark is not None:
            files[HIGH_WATER_FILE] = json.dumps(mark, sort_keys=True) + "\n"
        seqs = [e.seq for e, _ in pending]
        what = f"events {seqs[0]}..{seqs[-1]}" if seqs else "records"
        message = f"glassbox trail: {what} by {signer.identity}\n"
        try:
            report.commit = forge.append_commit(
                TRAIL_BRANCH,
                parent=head,
                files=files,
                message=message,
                author=author,
                signer=lambda payload: ssh_sign(signer, payload),
            )
        except BranchMoved:
            sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter, not a secret
            continue
        report.events = seqs
        if pending:
            last = pending[-1][0]
            _marker(ledger).write_text(json.dumps({"seq": last.seq, "digest": last.digest}) + "\n", encoding="utf-8")
        return report
    raise UserError(f"the trail kept moving: {attempts} attempts to append to {TRAIL_BRANCH} lost the race")


def append_once(
    forge: TrailForge,
    signer: Signer,
    *,
    guard: str,
    files: Mapping[str, str],
    message: str,
    attempts: int = DEFAULT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Append ``files`` (which include ``guard``) in one signed commit, fast-forward only, unless ``guard`` is on the
    trail already: the new trail head, or None when another job's ``guard`` was there first (the same bytes as ours
    are ours: an earlier attempt landed though its answer was lost).

    The branch head is the lock: the commit is made on the head just read and the branch moves only if that is
    still its head; when another job moved it first (:class:`BranchMoved`) the head is read again, and with it
    whether ``guard`` now exists. A file of ``files`` the trail already holds with other content is refused."""
    if guard not in files:
        raise ValueError("append_once: the guard must be one of the files it adds")
    author = GitIdentity(name=signer.identity, email=f"{signer.identity}@glassbox.invalid")
    for attempt in range(1, attempts + 1):
        head = forge.branch_head(TRAIL_BRANCH)
        if head is not None:
            held = forge.read_file(guard, head)
            if held is not None:
                # ours, when an append whose answer was lost did land (the guard's bytes are this job's own)
                return head if held == files[guard].encode("utf-8") else None
            for path, content in files.items():
                found = forge.read_file(path, head)
                if found is not None and found != content.encode("utf-8"):
                    raise IntegrityError(f"the trail at {head[:12]} holds another {path}: it only adds, never rewrites")
        try:
            return forge.append_commit(
                TRAIL_BRANCH,
                parent=head,
                files=dict(files),
                message=message,
                author=author,
                signer=lambda payload: ssh_sign(signer, payload),
            )
        except BranchMoved:
            sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter, not a secret
    raise UserError(f"the trail kept moving: {attempts} attempts to append to {TRAIL_BRANCH} lost the race")
