"""The pieces `audit show` rests on: trailers, git objects that must hash to their names, single-event checks."""

from __future__ import annotations

import json
import subprocess
import zlib
from pathlib import Path

import git
import pytest

from bot.audit.reconstruct import EventVerifier, object_intact
from bot.records import GENESIS, Actor, ActorKind, Outcome, Subject
from bot.trust.conventions import trailers
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger
from tests.factories import bound_keys


def test_trailers_reads_the_glassbox_trailers_only() -> None:
    message = (
        "Tune flow logs\n\nProse.\n\nGlassbox-Correlation-Id: abc\nGlassbox-Agent: cost-optimizer\nSigned-off-by: x\n"
    )
    assert trailers(message) == {"Glassbox-Correlation-Id": "abc", "Glassbox-Agent": "cost-optimizer"}


def test_object_intact_notices_a_rewritten_loose_object(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path / "r.git", bare=True)
    sha = (
        subprocess.run(
            ["git", "--git-dir", str(repo.git_dir), "hash-object", "-w", "--stdin"],
            input=b"hello\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    assert object_intact(repo, sha)
    path = Path(repo.git_dir) / "objects" / sha[:2] / sha[2:]
    path.chmod(0o644)
    path.write_bytes(zlib.compress(b"blob 6\0jello\n"))
    assert not object_intact(repo, sha)


@pytest.fixture
def signers(tmp_path: Path) -> tuple[Signer, Signer]:
    return generate_key(tmp_path / "keys", "bot-a"), generate_key(tmp_path / "keys", "stranger")


def _ledger(tmp_path: Path, signer: Signer, n: int = 3) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for i in range(n):
        ledger.append(
            signer,
            actor=Actor(id=signer.identity, kind=ActorKind.BOT),
            action="approvals",
            outcome=Outcome.ALLOW,
            subject=Subject(pr=7),
            details={"i": i},
        )
    return ledger


def _verifier(ledger: Ledger, *trusted: Signer) -> EventVerifier:
    return EventVerifier(ledger, bound_keys(*((s, ActorKind.BOT) for s in trusted)), (1, GENESIS))


def test_intact_events_verify_on_their_own(tmp_path: Path, signers: tuple[Signer, Signer]) -> None:
    ledger = _ledger(tmp_path, signers[0])
    check = _verifier(ledger, signers[0])
    assert [check.problem(e) for e in ledger.find(pr=7)] == [None, None, None]


def test_an_edited_event_is_named_and_its_successor_still_chains(
    tmp_path: Path, signers: tuple[Signer, Signer]
) -> None:
    ledger = _ledger(tmp_path, signers[0])
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    event = json.loads(lines[1])
    event["details"]["i"] = 99
    lines[1] = json.dumps(event, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    ledger.path.write_bytes(b"".join(lines))
    check = _verifier(ledger, signers[0])
    problems = [check.problem(e) for e in ledger.find(pr=7)]
    assert problems[0] is None and problems[2] is None
    assert problems[1] is not None and "edited" in problems[1]


def test_a_deleted_predecessor_and_an_untrusted_signer_are_named(
    tmp_path: Path, signers: tuple[Signer, Signer]
) -> None:
    ledger = _ledger(tmp_path, signers[0])
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    ledger.path.write_bytes(lines[0] + lines[2])
    events = ledger.find(pr=7)
    problem = _verifier(ledger, signers[0]).problem(events[-1])
    assert problem is not None and "seq 2" in problem and "missing" in problem
    assert "not a ledger signer" in str(_verifier(ledger, signers[1]).problem(events[0]))


def test_an_event_whose_actor_is_not_its_signer_is_named(tmp_path: Path, signers: tuple[Signer, Signer]) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    event = ledger.append(
        signers[1], actor=Actor(id="bot-a", kind=ActorKind.BOT), action="merge", outcome=Outcome.ALLOW
    )
    problem = _verifier(ledger, *signers).problem(event)
    assert problem is not None and "signed by stranger's key but names actor bot-a" in problem
