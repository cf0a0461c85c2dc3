"""Ledger signatures bound to their actors (I14). A trusted key proves only that its owner signed: an agent's
key signing the bot's approvals and merge, a kind claimed falsely, an action outside the actor's kind, a stored
line that is not what was signed, a tail cut together with its index, a deploy record nobody logged: each is
named by `ledger verify` and `audit verify`. Real keys, real files, the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.audit.findings import ViolationKind
from bot.audit.history import VerifyRequest, verify_history
from bot.cli import main
from bot.records import Actor, ActorKind, AuditEvent, Outcome, Subject
from bot.registry import load_registry
from bot.trust.ledger import Ledger, ledger_keys
from tests.audit_world import World, build_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def _problems(world: World, **kwargs: object) -> list[tuple[int | None, str, str]]:
    report = world.ledger.verify(ledger_keys(load_registry(world.repo_dir / "registry")), **kwargs)  # type: ignore[arg-type]
    return [(p.seq, p.kind, p.message) for p in report.problems]


def _ledger_cli(world: World, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    args = ["ledger", "verify", "--ledger", str(world.ledger.path), "--registry", str(world.repo_dir / "registry")]
    code = main([*args, *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_agent_key_signs_the_bots_approvals_and_merge(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # an out-of-band merge, then the agent's own (trusted) ledger key writes the events that would excuse it
    agent = world.signers["cost-optimizer"]
    merged = world.out_of_band_merge({"infra/data/Pulumi.prod.yaml": "size: 999\n"})
    bot = Actor(id="glassbox-bot", kind=ActorKind.BOT)
    approvals = world.ledger.append(
        agent, actor=bot, action="approvals", outcome=Outcome.ALLOW, subject=Subject(pr=2), details={"satisfied": True}
    )
    merge = world.ledger.append(
        agent, actor=bot, action="merge", outcome=Outcome.ALLOW, subject=Subject(pr=2, commit=merged)
    )
    message = "signed by cost-optimizer's key but names actor glassbox-bot"
    assert (approvals.seq, "actor", message) in _problems(world)
    assert (merge.seq, "actor", message) in _problems(world)
    code, out = _ledger_cli(world, capsys)
    assert code != 0 and message in out

    report = verify_history(
        VerifyRequest(ledger=world.ledger.path, repo=world.repo_dir, attestations=world.attestations)
    )
    assert not report.ok
    kinds = {(v.kind, v.commit) for v in report.violations}
    assert (ViolationKind.CHAIN_BREAK, None) in kinds
    assert any(k in (ViolationKind.OUT_OF_BAND_MERGE, ViolationKind.UNAPPROVED) and c == merged for k, c in kinds)


def test_agent_claims_to_be_a_bot_under_its_own_name(world: World) -> None:
    agent = world.signers["cost-optimizer"]
    event = world.ledger.append(
        agent, actor=Actor(id="cost-optimizer", kind=ActorKind.BOT), action="merge", outcome=Outcome.ALLOW
    )
    assert (event.seq, "actor", "names cost-optimizer as a bot; the registry knows it as a agent") in _problems(world)


def test_agent_records_an_action_its_kind_may_not_take(world: World) -> None:
    agent = world.signers["cost-optimizer"]
    event = world.ledger.append(
        agent, actor=Actor(id="cost-optimizer", kind=ActorKind.AGENT), action="deploy", outcome=Outcome.ALLOW
    )
    [(seq, kind, message)] = _problems(world)
    assert (seq, kind) == (event.seq, "action") and "a agent may not record 'deploy'" in message


def test_ci_records_a_merge(world: World) -> None:
    ci = world.signers["glassbox-ci"]
    event = world.ledger.append(
        ci, actor=Actor(id="glassbox-ci", kind=ActorKind.CI), action="merge", outcome=Outcome.ALLOW
    )
    assert [(s, k) for s, k, _ in _problems(world)] == [(event.seq, "action")]


def test_stored_line_with_a_duplicate_key_reads_other_than_it_was_signed(world: World) -> None:
    # JSON parsers keep the last duplicate: a reader would see "deny" while the signature covers "allow"
    lines = world.ledger.path.read_bytes().splitlines(keepends=True)
    last = lines[-1]
    assert b'"outcome":"allow"' in last
    lines[-1] = last.replace(b'"outcome":"allow"', b'"outcome":"deny","outcome":"allow"', 1)
    world.ledger.path.write_bytes(b"".join(lines))
    seq = AuditEvent.model_validate_json(last).seq
    assert (seq, "noncanonical", "the stored line is not the event's canonical form") in _problems(world)


def test_attacker_cuts_the_tail_and_deletes_the_index(world: World) -> None:
    lines = world.ledger.path.read_bytes().splitlines(keepends=True)
    world.ledger.path.write_bytes(b"".join(lines[:-2]))
    world.ledger.index_path.unlink()
    problems = _problems(world)
    assert [k for _, k, _ in problems] == ["high-water"]
    assert f"names seq {len(lines)} but the file ends at seq {len(lines) - 2}" in problems[0][2]


def test_attacker_cuts_the_tail_and_deletes_index_and_mark_but_the_siem_holds_one(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "siem.jsonl"
    assert main(["audit", "export", "--ledger", str(world.ledger.path), "--out", str(export)]) == 0
    capsys.readouterr()
    lines = world.ledger.path.read_bytes().splitlines(keepends=True)
    world.ledger.path.write_bytes(b"".join(lines[:-1]))
    world.ledger.index_path.unlink()
    world.ledger.high_water_path.unlink()
    assert _problems(world) == []  # nothing local is left to notice ...
    code, out = _ledger_cli(world, capsys, "--high-water", str(export))
    assert code != 0 and "high-water" in out and "events were removed from the end" in out  # ... the SIEM copy does


def test_attacker_rewrites_the_last_event_under_a_copied_mark(world: World, tmp_path: Path) -> None:
    # a whole new ledger, signed by trusted keys, put in place of the old one: the old mark names another digest
    saved = shutil.copy(world.ledger.high_water_path, tmp_path / "mark.json")
    fake = Ledger(tmp_path / "fake" / "ledger.jsonl")
    for event in world.ledger.events():
        signer = world.signers[event.actor.id]
        fake.append(signer, actor=event.actor, action=event.action, outcome=event.outcome, reason="rewritten")
    shutil.copy(fake.path, world.ledger.path)
    world.ledger.index_path.unlink()
    mark = json.loads(Path(saved).read_text())
    problems = _problems(world, high_water=mark)
    assert any(k == "high-water" and "rewritten" in m for _, k, m in problems), problems


def test_a_deploy_record_without_a_ledger_event_is_flagged(world: World, tmp_path: Path) -> None:
    state = tmp_path / "deploy-state"
    (state / "deployments").mkdir(parents=True)
    (state / "deployments" / f"{world.governed}.json").write_text("{}", encoding="utf-8")
    report = verify_history(
        VerifyRequest(
            ledger=world.ledger.path, repo=world.repo_dir, attestations=world.attestations, deploy_state=state
        )
    )
    orphan = [v for v in report.violations if v.kind is ViolationKind.ORPHAN_DEPLOY]
    assert [v.commit for v in orphan] == [world.governed]
    assert "has no deploy event in the ledger" in orphan[0].message
