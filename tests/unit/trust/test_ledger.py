from __future__ import annotations

import itertools
import json
import multiprocessing
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.records import Actor, ActorKind, Outcome, Subject, canonical_json, digest
from bot.trust.keys import Signer, generate_key, load_signer
from bot.trust.ledger import Ledger, LedgerKeys
from tests.factories import bound_keys


def _append(ledger: Ledger, signer: Signer, n: int, *, prefix: str = "e") -> None:
    for i in range(n):
        ledger.append(
            signer,
            actor=Actor(id=signer.identity, kind=ActorKind.AGENT),
            action="propose",
            outcome=Outcome.ALLOW if i % 3 else Outcome.DENY,
            reason=f"{prefix}{i}",
            correlation_id=f"cid-{i % 4}",
            subject=Subject(repo="acme/infra", pr=i % 5, commit=f"{i:040x}"),
            details={"i": i},
        )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Signer, Signer]:
    d = tmp_path_factory.mktemp("keys")
    return generate_key(d, "cost-optimizer"), generate_key(d, "mallory")


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Signer, Signer]) -> list[bytes]:
    """The lines of a valid 8-event ledger, built once."""
    ledger = Ledger(tmp_path_factory.mktemp("ledger") / "ledger.jsonl")
    _append(ledger, keys[0], 8)
    return ledger.path.read_bytes().splitlines(keepends=True)


def _trusted(signer: Signer) -> LedgerKeys:
    return bound_keys((signer, ActorKind.AGENT))


def test_appended_events_chain_and_verify(tmp_path: Path, keys: tuple[Signer, Signer]) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    _append(ledger, keys[0], 5)
    report = ledger.verify(_trusted(keys[0]))
    assert report.ok, report.problems
    assert report.events == 5
    events = list(ledger.events())
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert all(b.prev == a.digest for a, b in itertools.pairwise(events))
    assert report.head == events[-1].digest


def test_index_finds_events_by_correlation_pr_and_commit(tmp_path: Path, keys: tuple[Signer, Signer]) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    _append(ledger, keys[0], 12)
    assert [e.seq for e in ledger.find(correlation_id="cid-1")] == [2, 6, 10]
    assert [e.seq for e in ledger.find(pr=0)] == [1, 6, 11]
    assert [e.seq for e in ledger.find(commit=f"{3:040x}")] == [4]
    ledger.index_path.unlink()
    assert [e.seq for e in ledger.find(correlation_id="cid-1", pr=1)] == [2]


def test_untrusted_signer_is_reported(tmp_path: Path, keys: tuple[Signer, Signer]) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    _append(ledger, keys[1], 2)
    report = ledger.verify(_trusted(keys[0]))
    assert report.first_problem is not None and report.first_problem.kind == "unknown-key"


def _writer(path: str, keydir: str, n: int, prefix: str) -> None:
    _append(Ledger(Path(path)), load_signer(Path(keydir), "cost-optimizer"), n, prefix=prefix)


def test_concurrent_writers_from_processes_and_threads_never_tear_or_fork(tmp_path: Path) -> None:
    keydir = tmp_path / "keys"
    signer = generate_key(keydir, "cost-optimizer")
    path = tmp_path / "ledger.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), str(keydir), 15, f"p{i}-")) for i in range(3)]
    threads = [threading.Thread(target=_writer, args=(str(path), str(keydir), 15, f"t{i}-")) for i in range(2)]
    for w in [*procs, *threads]:
        w.start()
    for w in [*procs, *threads]:
        w.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    report = Ledger(path).verify(_trusted(signer))
    assert report.ok, report.problems[:3]
    assert report.events == 75


def test_torn_tail_is_quarantined_and_recorded(tmp_path: Path, keys: tuple[Signer, Signer]) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    _append(ledger, keys[0], 3)
    with ledger.path.open("ab") as fh:
        fh.write(b'{"seq":4,"half a line')
    broken = ledger.verify(_trusted(keys[0]))
    assert [p.kind for p in broken.problems][:1] == ["torn"]
    _append(ledger, keys[0], 1)
    report = ledger.verify(_trusted(keys[0]))
    assert report.ok, report.problems
    actions = [e.action for e in ledger.events()]
    assert actions == ["propose", "propose", "propose", "ledger.recover", "propose"]
    assert b"half a line" in ledger.torn_path.read_bytes()


def test_truncation_of_the_tail_is_detected_through_the_index(tmp_path: Path, keys: tuple[Signer, Signer]) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    _append(ledger, keys[0], 4)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    ledger.path.write_bytes(b"".join(lines[:-1]))
    report = ledger.verify(_trusted(keys[0]))
    assert report.first_problem is not None and report.first_problem.kind == "truncated"


def _resign(line: bytes, signer: Signer, **changes: object) -> bytes:
    """An attacker who edits an event and recomputes its digest (but holds only their own key)."""
    from bot.trust.ledger import event_signature

    data = json.loads(line)
    data.update(changes)
    body = {k: v for k, v in data.items() if k not in ("digest", "signature")}
    data["digest"] = digest(body)
    data["signature"] = event_signature(signer, body).model_dump()
    return canonical_json(data) + b"\n"


mutation = st.sampled_from(["edit", "edit-and-rehash", "delete", "insert-copy", "swap", "resign-foreign"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=mutation, index=st.integers(min_value=0, max_value=7), other=st.integers(min_value=0, max_value=7))
def test_every_mutation_of_the_ledger_is_detected(
    tmp_path_factory: pytest.TempPathFactory,
    sealed: list[bytes],
    keys: tuple[Signer, Signer],
    kind: str,
    index: int,
    other: int,
) -> None:
    lines = list(sealed)
    if kind == "edit":
        data = json.loads(lines[index])
        data["outcome"] = "allow" if data["outcome"] == "deny" else "deny"
        lines[index] = canonical_json(data) + b"\n"
    elif kind == "edit-and-rehash":
        lines[index] = _resign(lines[index], keys[1], reason="nothing to see here")
    elif kind == "resign-foreign":
        lines[index] = _resign(lines[index], keys[1])
    elif kind == "delete":
        del lines[index]
    elif kind == "insert-copy":
        lines.insert(other, lines[index])
    elif kind == "swap":
        if index == other:
            other = (index + 1) % len(lines)
        lines[index], lines[other] = lines[other], lines[index]
    path = tmp_path_factory.mktemp("mut") / "ledger.jsonl"
    path.write_bytes(b"".join(lines))
    ledger = Ledger(path)
    # the index of the original ledger travels with it (it is what recorded the head)
    ledger.index_path.write_bytes(b"")
    good = Ledger(tmp_path_factory.mktemp("orig") / "ledger.jsonl")
    good.path.write_bytes(b"".join(sealed))
    good.reindex()
    ledger.index_path.write_bytes(good.index_path.read_bytes())
    report = ledger.verify(_trusted(keys[0]))
    assert not report.ok, f"{kind} at {index}/{other} went unnoticed"
