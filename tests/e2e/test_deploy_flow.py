"""The whole governed flow over real HTTP: propose → check → approvals → merge → deploy, and every refusal of deploy."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from bot.deploy.gate import deploy
from bot.errors import Denied
from bot.policy.checkov import CheckovWorker
from bot.propose import propose
from bot.records import Outcome, VerdictResult
from bot.trust.attestations import attestation_path
from bot.trust.gitenv import commit_env
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


@pytest.fixture(scope="module")
def worker() -> Iterator[CheckovWorker]:
    with CheckovWorker() as w:
        yield w


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    # the forge's review count is 0: glassbox/approvals (risk matrix + CODEOWNERS) is the gate
    yield from flow_env(tmp_path, required_approvals=0)


def _merged_change(flow: Flow, worker: CheckovWorker) -> tuple[int, str]:
    proposal = propose(request(), flow.propose_context("cost-optimizer"))
    verdict = ci_check(flow, proposal.pr_number, worker)
    assert verdict.result is VerdictResult.PASSED, verdict.findings
    outcome = merge(flow, proposal.pr_number)
    assert outcome.merged, outcome
    assert outcome.merge_sha is not None
    return proposal.pr_number, outcome.merge_sha


def test_an_auto_agents_low_risk_change_merges_and_deploys(flow: Flow, worker: CheckovWorker) -> None:
    pr, sha = _merged_change(flow, worker)
    report = deploy(deploy_context(flow), sha)
    assert report.stacks == ["network/dev"] and report.pr == pr
    assert all(c.ok for c in report.checks), [c for c in report.checks if not c.ok]
    [deployment] = report.deployments
    assert deployment.result == "succeeded" and deployment.simulated
    state = json.loads((flow.data / "deploy-state/stacks/network/dev/state.json").read_text())
    assert state  # the local state store now holds the stack
    actions = [e.action for e in flow.ledger.events()]
    assert actions[0] == "propose" and "check" in actions and "merge" in actions
    assert actions[-1] == "deploy" and "credential.mint" in actions
    assert flow.ledger.verify(flow.ledger_keys()).ok


def test_deploy_refuses_a_commit_pushed_directly_to_main(flow: Flow) -> None:
    repo = git.Repo(flow.bare)
    head = repo.commit("refs/heads/main")
    tree = head.tree.hexsha
    sha = repo.git.commit_tree(
        tree, "-p", head.hexsha, "-m", "hotfix straight to main", env=commit_env("Frank", "frank@example.com")
    )
    repo.git.update_ref("refs/heads/main", sha)
    with pytest.raises(Denied) as info:
        deploy(deploy_context(flow), sha)
    assert any("merged from a PR" in r for r in info.value.reasons)
    last = list(flow.ledger.events())[-1]
    assert last.action == "deploy" and last.outcome is Outcome.DENY  # I6: refusals are logged like successes


def test_deploy_refuses_a_tampered_attestation(flow: Flow, worker: CheckovWorker) -> None:
    pr, sha = _merged_change(flow, worker)
    head = flow.forge("glassbox-bot").get_pull_request(pr).head_sha
    path = attestation_path(flow.attestations, head)
    env = json.loads(path.read_text())
    payload = base64.b64decode(env["payload"]).replace(b'"PASSED"', b'"PASSES"', 1)
    env["payload"] = base64.b64encode(payload).decode()
    path.write_text(json.dumps(env))
    with pytest.raises(Denied) as info:
        deploy(deploy_context(flow), sha)
    assert any("attestation signature" in r for r in info.value.reasons)


def test_deploy_refuses_an_attestation_of_another_tree(flow: Flow, worker: CheckovWorker) -> None:
    first_pr, _ = _merged_change(flow, worker)
    second = propose(
        request(changes=[{"path": "infra/network/Pulumi.dev.yaml", "content": _dev_network_config(60)}]),
        flow.propose_context("cost-optimizer"),
    )
    ci_check(flow, second.pr_number, worker)
    outcome = merge(flow, second.pr_number)
    assert outcome.merged, outcome.reasons  # a second auto-merge that fails is a failure, never a skip
    bot = flow.forge("glassbox-bot")
    # swap in the first PR's (valid, signed) attestation for the second PR's head
    first_head = bot.get_pull_request(first_pr).head_sha
    second_head = bot.get_pull_request(second.pr_number).head_sha
    attestation_path(flow.attestations, second_head).write_text(
        attestation_path(flow.attestations, first_head).read_text()
    )
    assert outcome.merge_sha is not None
    with pytest.raises(Denied) as info:
        deploy(deploy_context(flow), outcome.merge_sha)
    assert any("verdict is for this PR head" in r or "tree is the verified tree" in r for r in info.value.reasons)


def test_deploy_refuses_a_failed_verdict_and_missing_approvals(flow: Flow, worker: CheckovWorker) -> None:
    proposal = propose(
        request(
            agent_id="patch-agent",
            requested_by={"id": "carol", "kind": "human"},
            changes=[
                {
                    "path": "infra/network/Pulumi.prod.yaml",
                    "content": (flow.data.parent / "src/infra/network/Pulumi.prod.yaml")
                    .read_text()
                    .replace("flowLogRetentionDays: 365", "flowLogRetentionDays: 400"),
                }
            ],
            expected_changes=[],
        ),
        flow.propose_context("patch-agent"),
    )
    verdict = ci_check(flow, proposal.pr_number, worker)
    # a person with admin rights merges without the gate (the forge allows it for an admin token)
    assert not merge(flow, proposal.pr_number).merged  # the bot refuses: approvals are missing
    from tests.forge_helpers import ForgeEnv

    env = ForgeEnv(data=flow.data, url=flow.url, tokens=flow.tokens, stop=lambda: None, log=None)  # type: ignore[arg-type]
    env.admin(
        "PUT",
        "/api/v3/repos/acme/infra/branches/main/protection",
        {
            "required_status_checks": None,
            "enforce_admins": False,
            "required_pull_request_reviews": None,
            "restrictions": None,
        },
    )
    pr = flow.forge("glassbox-bot").get_pull_request(proposal.pr_number)
    merged = flow.forge("glassbox-bot").merge(proposal.pr_number, expected_head_sha=pr.head_sha)
    assert merged.merged and merged.sha
    with pytest.raises(Denied) as info:
        deploy(deploy_context(flow), merged.sha)
    reasons = " ".join(info.value.reasons)
    assert "approvals satisfied on the head" in reasons
    assert verdict.result is VerdictResult.FAILED  # GB-SCOPE-001: log groups are outside patch-agent's types
    assert "verdict PASSED: verdict is FAILED" in reasons


def test_approved_medium_change_deploys_after_owner_and_matrix_approvals(flow: Flow, worker: CheckovWorker) -> None:
    proposal = propose(
        prod_backup_request(flow, 21),
        flow.propose_context("patch-agent"),
    )
    verdict = ci_check(flow, proposal.pr_number, worker)
    assert verdict.result is VerdictResult.PASSED, [f.rule_id for f in verdict.findings if f.status.value == "deny"]
    approve(flow, proposal.pr_number, "carol")  # the requester: discarded
    approve(flow, proposal.pr_number, "dan")  # platform, for the risk tier
    assert not merge(flow, proposal.pr_number).merged  # CODEOWNERS: infra/data/ needs the data team
    approve(flow, proposal.pr_number, "erin")
    outcome = merge(flow, proposal.pr_number)
    assert outcome.merged and outcome.merge_sha, outcome
    report = deploy(deploy_context(flow), outcome.merge_sha)
    assert report.stacks == ["data/prod"]
    assert [d.result for d in report.deployments] == ["succeeded"]
