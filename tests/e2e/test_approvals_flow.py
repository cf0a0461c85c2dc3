"""End to end over real HTTP on 127.0.0.1: the approvals gate and merge against the embedded forge.

The agent opens a PR with its evidence record, reviewers approve through the forge API, and the bot
evaluates (reading CODEOWNERS from the base commit), publishes ``glassbox/approvals`` and merges, with
every decision in the ledger. A second flow is the auto-merge path of an ``auto`` agent.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.approvals.model import DiscardReason
from bot.approvals.service import evaluate_pr, merge_pr
from bot.forge.github import GitHubForge
from bot.forge.model import PullRequest, StatusState
from bot.forge.server import init_forge, load_tokens, start_forge
from bot.records import EvidenceRecord, FileChange, Verdict
from bot.registry import Registry, load_registry
from bot.trust.conventions import APPROVALS_CONTEXT, CHECK_CONTEXT
from bot.trust.keys import load_signer
from bot.trust.ledger import Ledger
from tests.factories import REPO_ROOT
from tests.forge_helpers import REPO, ForgeEnv, LockedLog, make_source
from tests.unit.approvals._builders import evidence, verdict

pytestmark = pytest.mark.e2e


def _forge(tmp: Path, required_approvals: int) -> Iterator[tuple[ForgeEnv, Registry]]:
    src = make_source(tmp)
    (src / ".github").mkdir()
    shutil.copy(REPO_ROOT / ".github" / "CODEOWNERS", src / ".github" / "CODEOWNERS")
    data = tmp / "forge"
    init_forge(data, REPO, src, required_approvals=required_approvals)
    log = LockedLog()
    url, stop = start_forge(data, log=log)
    try:
        yield (
            ForgeEnv(data=data, url=url, tokens=load_tokens(data), stop=stop, log=log),
            load_registry(src / "registry"),
        )
    finally:
        stop()


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[ForgeEnv, Registry]]:
    yield from _forge(tmp_path, required_approvals=1)


@pytest.fixture
def auto(tmp_path: Path) -> Iterator[tuple[ForgeEnv, Registry]]:
    # the forge's own review count is 0 so the auto path can merge; glassbox/approvals is the gate
    yield from _forge(tmp_path, required_approvals=0)


def _open(agent: GitHubForge, agent_id: str, path: str, content: str, ev: EvidenceRecord) -> PullRequest:
    cid = ev.request.correlation_id
    return agent.open_pull_request(
        base="main",
        branch=f"glassbox/{agent_id}/{cid}",
        title=ev.request.intent,
        body="rationale",
        changes=[
            FileChange(path=path, content=content),
            FileChange(path=f".glassbox/decisions/2026/11/{cid}.json", content=ev.model_dump_json(indent=2)),
        ],
    )


def _ci_verdict(risk: str, ev: EvidenceRecord, ci: GitHubForge) -> Any:
    """What CI does on every head: a verdict for that exact commit, and the glassbox/check status."""

    def load(head: str) -> Verdict:
        ci.set_status(head, context=CHECK_CONTEXT, state=StatusState.SUCCESS, description="verdict PASSED")
        return verdict(risk, head=head, evidence_digest=ev.digest)

    return load


def _approve(client: GitHubForge, number: int) -> None:
    client._write("approve", "POST", f"/pulls/{number}/reviews", {"event": "APPROVE"})


def _events(ledger: Ledger) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ledger.path.read_text(encoding="utf-8").splitlines()]


def test_gated_agent_pr_requester_stale_and_owner_approvals_then_merge(
    gated: tuple[ForgeEnv, Registry], tmp_path: Path
) -> None:
    env, reg = gated
    agent, ci, bot = env.client("patch-agent"), env.client("glassbox-ci"), env.client("glassbox-bot")
    signer = load_signer(env.data / "keys", "glassbox-bot")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ev = evidence(agent="patch-agent", requester="dan")
    pr = _open(agent, "patch-agent", "infra/network/__main__.py", "print('network v2')\n", ev)
    load = _ci_verdict("medium", ev, ci)

    # the requester is on the owning team, but never counts
    _approve(env.client("dan"), pr.number)
    state = evaluate_pr(bot, reg, pr.number, load, ledger, signer)
    assert not state.satisfied
    assert [d.reason for d in state.discarded_with_reason] == [DiscardReason.REQUESTER]
    assert [r.id for r in state.required] == ["codeowners:4", "matrix:platform"]  # from the base's CODEOWNERS
    status = {s.context: s for s in bot.list_statuses(pr.head_sha)}[APPROVALS_CONTEXT]
    assert status.state is StatusState.FAILURE and status.creator == "glassbox-bot"

    # an owner approves the head: satisfied
    carol = env.client("carol")
    _approve(carol, pr.number)
    assert evaluate_pr(bot, reg, pr.number, load, ledger, signer).satisfied

    # a new push makes that approval stale (I3)
    tree = agent._get("tree", f"/git/commits/{pr.head_sha}")["tree"]["sha"]
    pushed = agent._write("commit", "POST", "/git/commits", {"message": "more", "tree": tree, "parents": [pr.head_sha]})
    agent._write("push", "PATCH", f"/git/refs/heads/{pr.head_ref}", {"sha": pushed["sha"]})
    stale = evaluate_pr(bot, reg, pr.number, load, ledger, signer)
    assert stale.head_sha == pushed["sha"] and not stale.satisfied
    assert DiscardReason.STALE in [d.reason for d in stale.discarded_with_reason]
    assert not merge_pr(bot, reg, pr.number, load, ledger, signer).merged

    # a fresh approval on the new head, then the bot merges pinned to that head
    _approve(carol, pr.number)
    outcome = merge_pr(bot, reg, pr.number, load, ledger, signer)
    assert outcome.merged and not outcome.auto_merge and outcome.head_sha == pushed["sha"]
    assert bot.get_pull_request(pr.number).merged
    actions = [(e["action"], e["outcome"]) for e in _events(ledger)]
    assert actions == [
        ("approvals", "deny"),
        ("approvals", "allow"),
        ("approvals", "deny"),
        ("approvals", "deny"),
        ("merge", "deny"),
        ("approvals", "allow"),
        ("merge", "allow"),
    ]


def test_auto_agent_low_risk_change_auto_merges(auto: tuple[ForgeEnv, Registry], tmp_path: Path) -> None:
    env, reg = auto
    agent, ci, bot = env.client("cost-optimizer"), env.client("glassbox-ci"), env.client("glassbox-bot")
    signer = load_signer(env.data / "keys", "glassbox-bot")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ev = evidence(agent="cost-optimizer", requester="erin", confidence=0.93)
    pr = _open(agent, "cost-optimizer", "infra/network/Pulumi.dev.yaml", "config:\n  network:cidr: 10.2.0.0/16\n", ev)
    outcome = merge_pr(bot, reg, pr.number, _ci_verdict("low", ev, ci), ledger, signer)
    assert outcome.merged and outcome.auto_merge
    assert outcome.approvals.required == [] and outcome.approvals.counted == []
    merge_event = _events(ledger)[-1]
    assert merge_event["action"] == "merge" and merge_event["details"]["auto_merge"] is True
    assert bot.read_file("infra/network/Pulumi.dev.yaml", "main") == b"config:\n  network:cidr: 10.2.0.0/16\n"


def test_auto_agent_below_threshold_waits_for_a_human(auto: tuple[ForgeEnv, Registry], tmp_path: Path) -> None:
    env, reg = auto
    agent, ci, bot = env.client("cost-optimizer"), env.client("glassbox-ci"), env.client("glassbox-bot")
    signer = load_signer(env.data / "keys", "glassbox-bot")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ev = evidence(agent="cost-optimizer", requester="erin", confidence=0.6)
    pr = _open(agent, "cost-optimizer", "infra/network/Pulumi.dev.yaml", "config:\n  network:cidr: 10.3.0.0/16\n", ev)
    load = _ci_verdict("low", ev, ci)
    refused = merge_pr(bot, reg, pr.number, load, ledger, signer)
    assert not refused.merged and [r.id for r in refused.approvals.required] == ["autonomy:human"]
    _approve(env.client("grace"), pr.number)
    outcome = merge_pr(bot, reg, pr.number, load, ledger, signer)
    assert outcome.merged and not outcome.auto_merge
