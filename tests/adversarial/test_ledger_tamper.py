"""Hostile history: whoever can write the ledger file still cannot edit, drop, reorder or cut it unnoticed (I7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.records import Actor, ActorKind, AuditEvent, Outcome, canonical_json, digest
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger, LedgerKeys, event_signature
from tests.factories import bound_keys


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Signer]:
    root = tmp_path_factory.mktemp("keys")
    return {name: generate_key(root, name) for name in ("glassbox-ci", "glassbox-bot", "mallory")}


@pytest.fixture
def ledger(tmp_path: Path, keys: dict[str, Signer]) -> Ledger:
    led = Ledger(tmp_path / "ledger.jsonl")
    for i, (who, kind, action) in enumerate(
        [
            ("glassbox-ci", ActorKind.CI, "check"),
            ("glassbox-bot", ActorKind.BOT, "approvals"),
            ("glassbox-bot", ActorKind.BOT, "merge"),
            ("glassbox-ci", ActorKind.CI, "check"),
            ("glassbox-bot", ActorKind.BOT, "merge"),
        ]
    ):
        led.append(
            keys[who],
            actor=Actor(id=who, kind=kind),
            action=action,
            outcome=Outcome.DENY if i == 1 else Outcome.ALLOW,
            reason=f"event {i}",
            details={"n": i},
        )
    return led


def _trusted(keys: dict[str, Signer]) -> LedgerKeys:
    return bound_keys((keys["glassbox-ci"], ActorKind.CI), (keys["glassbox-bot"], ActorKind.BOT))


def _lines(ledger: Ledger) -> list[bytes]:
    return ledger.path.read_bytes().splitlines(keepends=True)


def _problems(ledger: Ledger, keys: dict[str, Signer]) -> list[tuple[int | None, str, str]]:
    report = ledger.verify(_trusted(keys))
    assert not report.ok
    return [(p.seq, p.kind, p.message) for p in report.problems]


def test_the_untouched_ledger_verifies(ledger: Ledger, keys: dict[str, Signer]) -> None:
    assert ledger.verify(_trusted(keys)).ok


def test_attacker_flips_a_deny_into_an_allow(ledger: Ledger, keys: dict[str, Signer]) -> None:
    lines = _lines(ledger)
    lines[1] = lines[1].replace(b'"outcome":"deny"', b'"outcome":"allow"')
    ledger.path.write_bytes(b"".join(lines))
    assert (2, "edited", "content does not match its digest (edited)") in _problems(ledger, keys)


def test_attacker_edits_and_recomputes_the_digest(ledger: Ledger, keys: dict[str, Signer]) -> None:
    lines = _lines(ledger)
    event = json.loads(lines[1])
    event["reason"] = "approved by everyone"
    event["digest"] = digest({k: v for k, v in event.items() if k not in ("digest", "signature")})
    lines[1] = canonical_json(event) + b"\n"
    ledger.path.write_bytes(b"".join(lines))
    kinds = {(seq, kind) for seq, kind, _ in _problems(ledger, keys)}
    assert (2, "signature") in kinds  # the old signature no longer covers the body
    assert (3, "chain") in kinds  # and the next event still names the old digest


def test_attacker_re_signs_an_edited_event_with_his_own_key(ledger: Ledger, keys: dict[str, Signer]) -> None:
    lines = _lines(ledger)
    event = AuditEvent.model_validate_json(lines[4])
    body = {**event.body(), "reason": "nothing to see"}
    forged = event.model_copy(
        update={"reason": "nothing to see", "digest": digest(body), "signature": event_signature(keys["mallory"], body)}
    )
    lines[4] = canonical_json(forged) + b"\n"
    ledger.path.write_bytes(b"".join(lines))
    problems = _problems(ledger, keys)
    assert (5, "unknown-key", f"signed by an untrusted key {keys['mallory'].keyid}") in problems


def test_attacker_deletes_an_event_in_the_middle(ledger: Ledger, keys: dict[str, Signer]) -> None:
    lines = _lines(ledger)
    ledger.path.write_bytes(b"".join(lines[:2] + lines[3:]))
    problems = _problems(ledger, keys)
    assert (4, "sequence", "seq 4 where 3 was due: events missing (deleted)") in problems
    assert any(kind == "chain" for _, kind, _ in problems)


def test_attacker_reorders_two_events(ledger: Ledger, keys: dict[str, Signer]) -> None:
    lines = _lines(ledger)
    lines[2], lines[3] = lines[3], lines[2]
    ledger.path.write_bytes(b"".join(lines))
    problems = _problems(ledger, keys)
    assert (4, "sequence", "seq 4 where 3 was due: events missing (deleted)") in problems
    assert (3, "sequence", "seq 3 where 5 was due: event out of order or repeated") in problems


def test_attacker_replays_an_allow_event(ledger: Ledger, keys: dict[str, Signer]) -> None:
    lines = _lines(ledger)
    ledger.path.write_bytes(b"".join([*lines, lines[2]]))
    assert (3, "sequence", "seq 3 where 6 was due: event out of order or repeated") in _problems(ledger, keys)


def test_attacker_truncates_the_tail(ledger: Ledger, keys: dict[str, Signer]) -> None:
    lines = _lines(ledger)
    ledger.path.write_bytes(b"".join(lines[:3]))
    [(_, kind, message), (_, mark, noticed)] = _problems(ledger, keys)
    assert kind == "truncated" and "the index saw 5 events but the file ends at seq 3" in message
    assert mark == "high-water" and "names seq 5 but the file ends at seq 3" in noticed


def test_attacker_truncates_the_tail_and_the_index_is_rebuilt(ledger: Ledger, keys: dict[str, Signer]) -> None:
    ledger.path.write_bytes(b"".join(_lines(ledger)[:2]))
    ledger.reindex()  # the index's count survives a rebuild, and the signed mark is a file of its own
    assert [kind for _, kind, _ in _problems(ledger, keys)] == ["truncated", "high-water"]


def test_attacker_cuts_a_line_in_half(ledger: Ledger, keys: dict[str, Signer]) -> None:
    raw = ledger.path.read_bytes()
    ledger.path.write_bytes(raw[: len(raw) - 40])
    kinds = {kind for _, kind, _ in _problems(ledger, keys)}
    assert "torn" in kinds and "malformed" in kinds


def test_attacker_forges_a_whole_ledger_with_his_own_key(
    tmp_path: Path, ledger: Ledger, keys: dict[str, Signer]
) -> None:
    fake = Ledger(tmp_path / "forged" / "ledger.jsonl")
    for event in ledger.events():
        fake.append(keys["mallory"], actor=event.actor, action=event.action, outcome=Outcome.ALLOW, reason=event.reason)
    shutil.copy(fake.path, ledger.path)
    problems = _problems(ledger, keys)
    assert [kind for _, kind, _ in problems] == ["unknown-key"] * 5 + ["high-water"]  # the old mark: rewritten
