"""Hostile deploys of real merged changes: a crash at each apply step then a rerun, a replayed attestation,
a verdict for another tree, a break-glass grant offered against a bad verdict, a stack the plan never touched."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from github import InputGitAuthor, InputGitTreeElement

from bot.deploy.applier import LocalApplier
from bot.deploy.breakglass import GrantStore, open_grant
from bot.deploy.broker import deploy_trust
from bot.deploy.events import EventSink
from bot.deploy.gate import DeployReport, deploy
from bot.deploy.model import GrantStatus
from bot.errors import Denied
from bot.policy.checkov import CheckovWorker
from bot.propose import Proposal, propose
from bot.records import AuditEvent, Outcome, Verdict, VerdictResult
from bot.trust.attestations import attestation_path, verify_attestation
from tests.adversarial._support import attest, unprotect
from tests.flow_helpers import (
    Flow,
    _dev_network_config,
    approve,
    ci_check,
    deploy_context,
    flow_env,
    merge,
    prod_backup_request,
    request,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass
class Merged:
    proposal: Proposal
    merge_sha: str
    verdict: Verdict


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    yield from flow_env(tmp_path_factory.mktemp("deploy"), required_approvals=0)


@pytest.fixture(scope="module")
def checked(flow: Flow) -> Merged:
    """The cost-optimizer's dev change, really checked (plan, rego, checkov), signed by the CI and merged."""
    proposal = propose(request(), flow.propose_context("cost-optimizer"))
    with CheckovWorker() as worker:
        verdict = ci_check(flow, proposal.pr_number, worker)
    assert verdict.result is VerdictResult.PASSED, verdict.findings
    outcome = merge(flow, proposal.pr_number)
    assert outcome.merged and outcome.merge_sha, outcome.reasons
    return Merged(proposal, outcome.merge_sha, verdict)


def _propose(flow: Flow, days: int) -> Proposal:
    req = request(changes=[{"path": "infra/network/Pulumi.dev.yaml", "content": _dev_network_config(days)}])
    return propose(req, flow.propose_context("cost-optimizer"))


@pytest.fixture(scope="module")
def replayed(flow: Flow, checked: Merged) -> Merged:
    """A second change whose attestation slot holds the first change's genuine attestation; an admin merges it."""
    proposal = _propose(flow, 60)
    first = attestation_path(flow.attestations, checked.proposal.head_sha)
    attestation_path(flow.attestations, proposal.head_sha).write_text(first.read_text())
    refused = merge(flow, proposal.pr_number)
    assert not refused.merged
    assert any(f"verdict is for {checked.proposal.head_sha[:12]}, not head" in r for r in refused.reasons)
    unprotect(flow)
    forced = flow.forge("glassbox-bot").merge(proposal.pr_number, expected_head_sha=proposal.head_sha)
    assert forced.merged and forced.sha
    return Merged(proposal, forced.sha, checked.verdict)


def _deploy_events(flow: Flow, commit: str) -> list[AuditEvent]:
    return [e for e in flow.ledger.find(commit=commit) if e.action == "deploy"]


def _refused_deploy(flow: Flow, commit: str, **kwargs: object) -> tuple[list[str], AuditEvent]:
    with pytest.raises(Denied) as info:
        deploy(deploy_context(flow), commit, **kwargs)  # type: ignore[arg-type]
    last = _deploy_events(flow, commit)[-1]
    assert last.outcome is Outcome.DENY and last.details["reasons"] == info.value.reasons
    return info.value.reasons, last


def _crash_at(stage: str) -> Callable[[str], None]:
    def hook(at: str) -> None:
        if at == stage:
            raise RuntimeError(f"deployer killed at {at}")

    return hook


def test_deployer_crashes_at_each_apply_step_and_is_rerun(flow: Flow, checked: Merged) -> None:
    ctx = deploy_context(flow)
    sink = EventSink(ctx.ledger, ctx.signer)
    trusted = deploy_trust(flow.registry)
    stack_dir = ctx.state_dir / "stacks" / "network" / "dev"
    for stage in ("locked", "inflight-written", "state-written"):
        ctx.applier = LocalApplier(ctx.state_dir, trusted=trusted, sink=sink, hook=_crash_at(stage))
        with pytest.raises(RuntimeError, match=f"killed at {stage}"):
            deploy(ctx, checked.merge_sha)
    crashed = json.loads((stack_dir / "inflight.json").read_text())
    assert json.loads((stack_dir / "state.json").read_text())["deployment_id"] == crashed["deployment_id"]

    ctx.applier = LocalApplier(ctx.state_dir, trusted=trusted, sink=sink)
    report: DeployReport = deploy(ctx, checked.merge_sha)
    [deployment] = report.deployments
    assert deployment.result == "succeeded"
    # rolled back to the state before the crashed run (none: it was the first deploy), then applied once
    assert deployment.recovery is not None and deployment.recovery.action == "rolled-back"
    assert deployment.recovery.found_deployment_id == crashed["deployment_id"]
    assert deployment.recovery.restored_state_digest is None
    assert {a.action for a in deployment.actions} == {"create"}
    assert not (stack_dir / "inflight.json").exists()
    state = json.loads((stack_dir / "state.json").read_text())
    assert state["deployment_id"] == deployment.deployment_id and state["commit"] == checked.merge_sha
    # the crashed runs left no deploy event, each spent its own credential; one allow for commit + stack
    allows = [e for e in _deploy_events(flow, checked.merge_sha) if e.outcome is Outcome.ALLOW]
    assert [(e.subject.commit, e.subject.stack) for e in allows] == [(checked.merge_sha, "network/dev")]
    mints = [e for e in flow.ledger.find(commit=checked.merge_sha) if e.action == "credential.mint"]
    assert len(mints) == 4 and len({e.details["credential_id"] for e in mints}) == 4
    assert flow.ledger.verify(flow.ledger_keys()).ok


def test_attacker_replays_another_changes_attestation_at_deploy(flow: Flow, replayed: Merged) -> None:
    reasons, event = _refused_deploy(flow, replayed.merge_sha)
    assert any(r.startswith("verdict is for this PR head: attested head") for r in reasons), reasons
    assert any(r.startswith("tree is the verified tree: attested tree") for r in reasons), reasons
    failed = {c["name"] for c in event.details["checks"] if not c["ok"]}
    assert {"verdict is for this PR head", "tree is the verified tree"} <= failed


def test_break_glass_cannot_stand_in_for_a_replayed_attestation(flow: Flow, replayed: Merged) -> None:
    ctx = deploy_context(flow)
    store = GrantStore.under(ctx.state_dir)
    grant = open_grant(
        flow.registry,
        flow.signer("carol"),
        ticket="INC-9",
        reason="flow logs fill the disk",
        stack="network/dev",
        ledger=flow.ledger,
        store=store,
    ).grant
    reasons, event = _refused_deploy(flow, replayed.merge_sha, break_glass=grant.grant_id)
    assert any(r.startswith("verdict is for this PR head") for r in reasons), reasons
    assert event.details["break_glass"] == grant.grant_id
    # integrity failed first: the grant was neither consumed nor logged as used
    [row] = [r for r in store.rows() if r.grant.grant_id == grant.grant_id]
    assert row.status is GrantStatus.OPEN
    assert not [e for e in flow.ledger.events() if e.action == "breakglass.use"]


def test_ci_verdict_for_another_tree_is_presented_for_this_head(flow: Flow, checked: Merged) -> None:
    proposal = _propose(flow, 61)
    # the first change's verdict relabelled for this head: commit and evidence match, the tree and plan do not
    change = checked.verdict.change.model_copy(
        update={
            "pr": proposal.pr_number,
            "head_commit": proposal.head_sha,
            "correlation_id": proposal.correlation_id,
            "evidence_digest": proposal.evidence_digest,
        }
    )
    attest(flow, checked.verdict.model_copy(update={"change": change}))
    outcome = merge(flow, proposal.pr_number)
    assert outcome.merged and outcome.merge_sha, outcome.reasons  # merge trusts the CI; deploy re-verifies
    reasons, event = _refused_deploy(flow, outcome.merge_sha)
    assert any(r.startswith("tree is the verified tree: attested tree") for r in reasons), reasons
    assert any(r.startswith("plan recomputed: recomputed") for r in reasons), reasons
    envelope = json.loads(attestation_path(flow.attestations, proposal.head_sha).read_text())
    assert verify_attestation(envelope, flow.registry)[0].change.head_commit == proposal.head_sha  # a valid signature
    assert event.details["tree"] != checked.verdict.change.head_tree


def test_deployer_asks_for_a_stack_the_plan_never_touched(flow: Flow, checked: Merged) -> None:
    reasons, _event = _refused_deploy(flow, checked.merge_sha, stacks=["network/prod"])
    assert any(
        r == "stacks are the planned ones: deploying network/prod; the plan touched network/dev" for r in reasons
    ), reasons


def _push_as(flow: Flow, person: str, email: str, branch: str, parent: str) -> str:
    """One more commit on a PR branch, pushed through the API with ``person``'s token and authored as them."""
    api = flow.forge(person)
    gh = api._repo  # the PyGithub repository the port wraps: git data calls a person can make
    base_tree = gh.get_git_commit(parent).tree
    blob = InputGitTreeElement("infra/data/NOTES.md", "100644", "blob", content="tuning notes\n")
    tree = gh.create_git_tree([blob], base_tree)
    who = InputGitAuthor(person, email, "2026-01-02T03:04:05Z")
    commit = gh.create_git_commit("notes", tree, [gh.get_git_commit(parent)], author=who, committer=who)
    gh._requester.requestJsonAndCheck("PATCH", f"{gh.url}/git/refs/heads/{branch}", input={"sha": commit.sha})
    return str(commit.sha)


def test_contributor_approval_discarded_at_merge_counts_at_deploy(flow: Flow, checked: Merged) -> None:
    """dan pushes a commit to an agent's prod PR, then approves it as platform. The merge gate discards his
    approval (a contributor never counts); an admin merges anyway. Deploy re-evaluates approvals with the PR's
    commits, so it discards dan's approval too and refuses, instead of counting what the merge gate did not."""
    req = prod_backup_request(flow, 28)
    proposal = propose(req, flow.propose_context("patch-agent"))
    head = _push_as(flow, "dan", "dan@example.com", proposal.branch, proposal.head_sha)
    with CheckovWorker() as worker:
        verdict = ci_check(flow, proposal.pr_number, worker)
    assert verdict.change.head_commit == head and verdict.result is VerdictResult.PASSED, verdict.findings
    approve(flow, proposal.pr_number, "dan")  # platform, for the tier; but he contributed a commit
    approve(flow, proposal.pr_number, "erin")  # data, for CODEOWNERS
    refused = merge(flow, proposal.pr_number)
    assert not refused.merged, refused
    unprotect(flow)
    forced = flow.forge("glassbox-bot").merge(proposal.pr_number, expected_head_sha=head)
    assert forced.merged and forced.sha
    reasons, event = _refused_deploy(flow, forced.sha)
    assert any(r.startswith("approvals satisfied on the head") for r in reasons), reasons
    [approvals] = [c for c in event.details["checks"] if c["name"] == "approvals satisfied on the head"]
    assert not approvals["ok"] and "platform" in approvals["detail"], approvals
