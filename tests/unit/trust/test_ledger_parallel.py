"""``Ledger.verify`` over worker processes reports exactly what the one-process check reports."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bot.trust.ledger as ledger_module
from bot.records import ActorKind, canonical_json
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger, LedgerKeys, LedgerReport
from tests.factories import bound_keys
from tests.unit.trust.test_ledger import _append, _resign

EVENTS = 240
# spread over the file: the first line, lines at and around where 2 workers' ranges meet, the last line
SPOTS = (0, 1, 29, 30, 31, 59, 60, 119, 120, 179, 181, EVENTS - 1)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Signer, Signer, Signer]:
    d = tmp_path_factory.mktemp("keys")
    return generate_key(d, "cost-optimizer"), generate_key(d, "glassbox-ci"), generate_key(d, "mallory")


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Signer, Signer, Signer]) -> tuple[list[bytes], bytes]:
    """The lines of a valid ledger by two trusted signers, and the index that recorded it."""
    ledger = Ledger(tmp_path_factory.mktemp("ledger") / "ledger.jsonl")
    for i in range(EVENTS):
        _append(ledger, keys[i % 2], 1, prefix=f"r{i}-")
    return ledger.path.read_bytes().splitlines(keepends=True), ledger.index_path.read_bytes()


def _trusted(keys: tuple[Signer, Signer, Signer]) -> LedgerKeys:
    return bound_keys(*((k, ActorKind.AGENT) for k in keys[:2]))


def _write(tmp_path: Path, data: bytes, index: bytes | None) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.path.write_bytes(data)
    if index is not None:  # the index of the original ledger travels with it (it recorded the head)
        ledger.index_path.write_bytes(index)
    return ledger


def _both(ledger: Ledger, trusted: dict[str, bytes], *, workers: int = 2, **anchor: Any) -> LedgerReport:
    """The one-process report, after checking the parallel one equals it and really ran in workers."""
    sequential = ledger.verify(trusted, workers=1, **anchor)
    assert ledger.last_verify_workers == 1
    parallel = ledger.verify(trusted, workers=workers, **anchor)
    assert ledger.last_verify_workers == workers, "the parallel path fell back to one process"
    assert parallel == sequential
    assert parallel.as_dict() == sequential.as_dict()
    assert list(parallel.signers.items()) == list(sequential.signers.items())  # the same order, too
    return sequential


def _flip(line: bytes) -> bytes:
    data = json.loads(line)
    data["outcome"] = "allow" if data["outcome"] == "deny" else "deny"
    return canonical_json(data) + b"\n"


def _borrow_signature(line: bytes, donor: bytes) -> bytes:
    data = json.loads(line)
    data["signature"]["sig"] = json.loads(donor)["signature"]["sig"]
    return canonical_json(data) + b"\n"


def _each(change: Callable[[bytes], bytes]) -> Callable[[list[bytes], tuple[Signer, Signer, Signer]], bytes]:
    def tamper(lines: list[bytes], keys: tuple[Signer, Signer, Signer]) -> bytes:
        for i in SPOTS:
            lines[i] = change(lines[i])
        return b"".join(lines)

    return tamper


def _deleted(lines: list[bytes], keys: tuple[Signer, Signer, Signer]) -> bytes:
    for i in sorted(SPOTS, reverse=True):
        del lines[i]
    return b"".join(lines)


def _swapped(lines: list[bytes], keys: tuple[Signer, Signer, Signer]) -> bytes:
    for i, j in ((0, 1), (29, 30), (59, 119), (120, EVENTS - 1)):
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def _repeated(lines: list[bytes], keys: tuple[Signer, Signer, Signer]) -> bytes:
    for i in sorted(SPOTS, reverse=True):
        lines.insert(i, lines[(i * 7) % EVENTS])
    return b"".join(lines)


def _malformed_run(lines: list[bytes], keys: tuple[Signer, Signer, Signer]) -> bytes:
    lines[50:140] = [b"#" * (len(line) - 1) + b"\n" for line in lines[50:140]]  # whole ranges of them
    lines[0] = b"not json at all\n"
    return b"".join(lines)


TAMPERING: dict[str, tuple[Callable[[list[bytes], tuple[Signer, Signer, Signer]], bytes], set[str]]] = {
    "untouched": (lambda lines, keys: b"".join(lines), set()),
    "edited": (_each(_flip), {"edited", "signature"}),
    "deleted": (_deleted, {"sequence", "chain", "truncated"}),
    "swapped": (_swapped, {"sequence", "chain", "truncated"}),  # the last line moved up
    "repeated": (_repeated, {"sequence", "chain"}),
    "bad signature": (
        lambda lines, keys: _each(lambda line: _borrow_signature(line, lines[7]))(lines, keys),
        {"signature"},
    ),
    "untrusted key": (lambda lines, keys: _each(lambda line: _resign(line, keys[2]))(lines, keys), {"unknown-key"}),
    "edited and re-signed": (
        lambda lines, keys: _each(lambda line: _resign(line, keys[2], reason="nothing to see"))(lines, keys),
        {"unknown-key", "chain"},
    ),
    "malformed": (_each(lambda line: b"{" + line[: len(line) // 2] + b"\n"), {"malformed", "chain"}),
    "malformed run": (_malformed_run, {"malformed", "chain"}),
    "torn last line": (lambda lines, keys: b"".join(lines)[:-40], {"torn", "malformed"}),
    "truncated tail": (lambda lines, keys: b"".join(lines[:-10]), {"truncated"}),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_parallel_report_equals_the_sequential_one(
    tmp_path: Path, sealed: tuple[list[bytes], bytes], keys: tuple[Signer, Signer, Signer], kind: str
) -> None:
    tamper, expected = TAMPERING[kind]
    lines, index = sealed
    ledger = _write(tmp_path, tamper(list(lines), keys), index)
    report = _both(ledger, _trusted(keys))
    assert {p.kind for p in report.problems} == expected, report.problems[:5]
    if not expected:
        assert report.events == EVENTS and report.signers == {"cost-optimizer": 120, "glassbox-ci": 120}


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_parallel_report_is_the_same_for_any_worker_count(
    tmp_path: Path, sealed: tuple[list[bytes], bytes], keys: tuple[Signer, Signer, Signer], workers: int
) -> None:
    ledger = _write(tmp_path, TAMPERING["malformed"][0](list(sealed[0]), keys), None)
    assert not _both(ledger, _trusted(keys), workers=workers).ok


def test_parallel_verify_honours_the_archive_anchor(
    tmp_path: Path, sealed: tuple[list[bytes], bytes], keys: tuple[Signer, Signer, Signer]
) -> None:
    lines, _ = sealed
    ledger = _write(tmp_path, b"".join(lines[100:]), None)
    anchored = _both(ledger, _trusted(keys), start_seq=101, start_prev=json.loads(lines[99])["digest"])
    assert anchored.ok and anchored.events == EVENTS - 100
    unanchored = _both(ledger, _trusted(keys))
    assert [p.kind for p in unanchored.problems] == ["sequence", "chain"]


@pytest.mark.parametrize("count", [0, 1, 3])
def test_ledgers_with_fewer_lines_than_workers(
    tmp_path: Path, sealed: tuple[list[bytes], bytes], keys: tuple[Signer, Signer, Signer], count: int
) -> None:
    lines, _ = sealed
    ledger = _write(tmp_path, b"".join(lines[:count]), None)
    sequential = ledger.verify(_trusted(keys), workers=1)
    assert ledger.verify(_trusted(keys), workers=4) == sequential
    assert sequential.ok and sequential.events == count


def test_a_pool_that_cannot_start_falls_back_to_the_full_check_in_process(
    tmp_path: Path,
    sealed: tuple[list[bytes], bytes],
    keys: tuple[Signer, Signer, Signer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines, index = sealed
    ledger = _write(tmp_path, TAMPERING["edited"][0](list(lines), keys), index)
    sequential = ledger.verify(_trusted(keys), workers=1)

    def no_processes(*args: object, **kwargs: object) -> None:
        raise OSError("no process support here")

    monkeypatch.setattr(ledger_module, "ProcessPoolExecutor", no_processes)
    fallback = ledger.verify(_trusted(keys), workers=2)
    assert ledger.last_verify_workers == 1
    assert fallback == sequential and not fallback.ok


def test_a_worker_refuses_a_file_other_than_the_one_the_ranges_were_cut_from(
    tmp_path: Path, sealed: tuple[list[bytes], bytes]
) -> None:
    ledger = _write(tmp_path, b"".join(sealed[0]), None)
    with pytest.raises(ledger_module._LedgerReplaced):
        ledger_module._verify_range(str(ledger.path), 0, None, {}, None, (-1, -1))


def test_automatic_worker_count_only_for_large_ledgers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    threshold = ledger_module.PARALLEL_MIN_BYTES
    assert ledger_module._verify_workers(None, threshold - 1) == 1
    assert ledger_module._verify_workers(None, threshold) == ledger_module.MAX_VERIFY_WORKERS
    assert ledger_module._verify_workers(1, threshold * 10) == 1
    assert ledger_module._verify_workers(3, 10) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert ledger_module._verify_workers(None, threshold * 10) == 1


def test_automatic_parallel_verify_on_a_large_enough_ledger(
    tmp_path: Path,
    sealed: tuple[list[bytes], bytes],
    keys: tuple[Signer, Signer, Signer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines, index = sealed
    ledger = _write(tmp_path, TAMPERING["swapped"][0](list(lines), keys), index)
    sequential = ledger.verify(_trusted(keys))  # far below the threshold: one process
    assert ledger.last_verify_workers == 1
    monkeypatch.setattr(ledger_module, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert ledger.verify(_trusted(keys)) == sequential
    assert ledger.last_verify_workers == 2


def test_ranges_without_a_well_formed_line_carry_the_sequence_across(
    tmp_path: Path, sealed: tuple[list[bytes], bytes], keys: tuple[Signer, Signer, Signer]
) -> None:
    lines, index = sealed
    ledger = _write(tmp_path, _malformed_run(list(lines), keys), index)
    with ledger.path.open("rb") as fh:
        ranges = ledger_module._split_lines(fh, ledger.path.stat().st_size, 2 * ledger_module._RANGES_PER_WORKER)
    results = [ledger_module._verify_range(str(ledger.path), a, b, {}, None, None) for a, b in ranges]
    assert any(r.end is None and r.lines for r in results)  # the case this test is about
    assert sum(r.lines for r in results) == EVENTS
    report = _both(ledger, _trusted(keys))
    assert [p.kind for p in report.problems].count("malformed") == 91
