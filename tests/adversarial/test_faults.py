"""A flaky forge: every call made by ``propose`` and by ``merge_pr`` fails once in turn (502, 429 with
Retry-After, a dropped connection; before or after its side effect), and a crash at each step of ``propose``
is followed by a rerun. The outcome is always one PR with one commit, intact evidence, a verifying ledger and
exactly one allow for the change."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import git
import pytest

from bot.approvals.service import merge_pr
from bot.errors import ForgeError
from bot.forge.github import GitHubForge
from bot.propose import Proposal, propose
from bot.records import EvidenceRecord, Outcome
from bot.trust.ledger import Ledger
from tests.adversarial._support import admin, attest, context, fabricated_verdict, proposal_commits
from tests.flow_helpers import REPO, Flow, _dev_network_config, flow_env, request, verdict_loader

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# find PR (propose), find PR (adapter), base branch, tree, commit, ref, PR, labels
PROPOSE_CALLS = 8
# read PR, reviews, files, commits, lifecycle events, pushes, CODEOWNERS at base, evidence at head, approvals status,
# statuses, merge
MERGE_CALLS = 11
FAULTS: dict[str, dict[str, Any]] = {
    "502": {"kind": "502"},
    "429": {"kind": "429", "retry_after": 2},
    "drop": {"kind": "drop"},
}
_days = count(40)


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    # no forge-side review count: glassbox/approvals is the gate, and an auto agent's low-risk change needs none
    yield from flow_env(tmp_path_factory.mktemp("faults"), required_approvals=0)


def _request() -> Any:
    # each case changes the file differently, so every merge moves main by a real change
    return request(changes=[{"path": "infra/network/Pulumi.dev.yaml", "content": _dev_network_config(next(_days))}])


def _fault(flow: Flow, nth: int, kind: str, when: str) -> None:
    admin(flow).faults({**FAULTS[kind], "when": when, "nth": nth})


def _fired(flow: Flow) -> int:
    plan = admin(flow).admin("GET", "/_glassbox/faults")
    admin(flow).admin("DELETE", "/_glassbox/faults")
    return sum(int(r["fired"]) for r in plan["rules"])


def _pulls_for(flow: Flow, branch: str) -> list[dict[str, Any]]:
    pulls = admin(flow).admin("GET", f"/api/v3/repos/{REPO}/pulls?state=all&per_page=100")
    return [p for p in pulls if p["head"]["ref"] == branch]


def _assert_one_intact_change(flow: Flow, proposal: Proposal, ledger: Ledger) -> None:
    [pull] = _pulls_for(flow, proposal.branch)
    assert pull["number"] == proposal.pr_number
    assert sorted(label["name"] for label in pull["labels"]) == ["agent:cost-optimizer", "glassbox"]
    [commit] = proposal_commits(flow, proposal)
    assert commit.hexsha == proposal.head_sha
    record = EvidenceRecord.model_validate_json((commit.tree / proposal.evidence_path).data_stream.read())
    assert record.verify_digest() and record.digest == proposal.evidence_digest
    assert f"Glassbox-Evidence: {record.digest}" in str(commit.message)
    report = ledger.verify(flow.ledger_keys())
    assert report.ok, report.problems
    events = ledger.find(correlation_id=proposal.correlation_id)
    allows = [e for e in events if e.action == "propose" and e.outcome is Outcome.ALLOW]
    assert len(allows) == 1, allows


def test_the_calls_under_test_are_counted(flow: Flow, tmp_path: Path) -> None:
    # the parametrisation below targets each call by its rank: the adapter's counter says how many there are
    ctx = context(flow, "cost-optimizer", tmp_path)
    proposal = propose(_request(), ctx)
    assert isinstance(ctx.forge, GitHubForge) and ctx.forge.calls == PROPOSE_CALLS
    attest(flow, fabricated_verdict(flow, proposal))
    bot = flow.forge("glassbox-bot")
    outcome = merge_pr(
        bot, flow.registry, proposal.pr_number, verdict_loader(flow), ctx.ledger, flow.signer("glassbox-bot")
    )
    assert outcome.merged, outcome.reasons
    assert bot.calls == MERGE_CALLS


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("kind", list(FAULTS))
@pytest.mark.parametrize("nth", range(1, PROPOSE_CALLS + 1))
def test_forge_fails_one_propose_call(flow: Flow, tmp_path: Path, nth: int, kind: str, when: str) -> None:
    ctx = context(flow, "cost-optimizer", tmp_path)
    flow.sleeps.clear()
    _fault(flow, nth, kind, when)
    proposal = propose(_request(), ctx)
    assert _fired(flow) == 1
    assert isinstance(ctx.forge, GitHubForge) and ctx.forge.retries == 1
    if kind == "429":
        assert flow.sleeps == [2.0]  # Retry-After is honoured
    _assert_one_intact_change(flow, proposal, ctx.ledger)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("kind", list(FAULTS))
@pytest.mark.parametrize("nth", range(1, MERGE_CALLS + 1))
def test_forge_fails_one_merge_call(flow: Flow, tmp_path: Path, nth: int, kind: str, when: str) -> None:
    ctx = context(flow, "cost-optimizer", tmp_path)
    proposal = propose(_request(), ctx)
    attest(flow, fabricated_verdict(flow, proposal))
    main_before = flow.main_head().hexsha
    bot = flow.forge("glassbox-bot")
    flow.sleeps.clear()
    _fault(flow, nth, kind, when)
    outcome = merge_pr(
        bot, flow.registry, proposal.pr_number, verdict_loader(flow), ctx.ledger, flow.signer("glassbox-bot")
    )
    assert _fired(flow) == 1
    assert outcome.merged, outcome.reasons
    assert bot.retries == 1
    if kind == "429":
        assert flow.sleeps == [2.0]
    head = flow.main_head()
    assert head.hexsha == outcome.merge_sha and [p.hexsha for p in head.parents] == [main_before]  # merged once
    merges = [e for e in ctx.ledger.find(pr=proposal.pr_number) if e.action == "merge"]
    assert [e.outcome for e in merges] == [Outcome.ALLOW]
    gate = [e for e in ctx.ledger.find(correlation_id=proposal.correlation_id) if e.action == "approvals"]
    assert [e.outcome for e in gate] == [Outcome.ALLOW]
    assert ctx.ledger.verify(flow.ledger_keys()).ok
    _assert_one_intact_change(flow, proposal, ctx.ledger)


@pytest.mark.parametrize(
    ("step", "next_call"),
    [
        ("tree-written", r"/git/commits$"),
        ("commit-written", r"/git/refs$"),
        ("ref-written", r"/pulls$"),
        ("pr-opened", r"/labels$"),
    ],
)
def test_propose_crashes_after_each_step_and_is_rerun(flow: Flow, tmp_path: Path, step: str, next_call: str) -> None:
    # every retry of the next call fails, so propose gives up mid-way as a crashed process would
    ctx = context(flow, "cost-optimizer", tmp_path)
    req = _request()
    admin(flow).faults({"method": "POST", "path": next_call, "every": True, "kind": "502"})
    with pytest.raises(ForgeError, match="gave up after 6 attempts"):
        propose(req, ctx)
    admin(flow).admin("DELETE", "/_glassbox/faults")
    proposal = propose(req, context(flow, "cost-optimizer", tmp_path))
    events = ctx.ledger.find(correlation_id=req.correlation_id)
    assert [e.outcome for e in events] == [Outcome.ERROR, Outcome.ALLOW]  # the crash is on record too
    assert "opening the PR failed" in events[0].reason and events[0].details["stage"] == "forge"
    _assert_one_intact_change(flow, proposal, ctx.ledger)
    assert git.Repo(flow.bare).commit(f"refs/heads/{proposal.branch}").hexsha == proposal.head_sha
