"""GitHub's webhook payloads replayed through `glassbox ci`, job by job, against the embedded forge.

Each step is what a workflow's one `glassbox ci` step does on a runner: the runner's variables, the event file,
``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY``, the job's own token and key. The check job's verdict reaches the
approvals job of its own run as that run's artifact (its ``attestations/`` store); the approvals workflow and the
deploy job read it from the audit trail branch in their checkout, as the workflows do. The deploy job's OIDC token
comes from a stand-in for the runner's token endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest

from bot.cli import main
from bot.deploy.applier import PulumiAutomationApplier
from bot.forge.model import StatusState
from bot.propose import propose
from bot.records import Outcome
from bot.trust.attestations import stored_verdict
from bot.trust.conventions import APPROVALS_CONTEXT, CHECK_CONTEXT
from bot.trust.trail import trail_ref
from tests.flow_helpers import REPO, ROOT, Flow, ci_check, flow_env, merge, request
from tests.runner_helpers import FakeTokenService, Job, obeyed_commands, pull_request_payload, token_service, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    yield from flow_env(tmp_path, required_approvals=0)


@pytest.fixture
def oidc() -> Iterator[FakeTokenService]:
    yield from token_service(REPO)


def job(flow: Flow, tmp_path: Path, name: str, identity: str, mp: pytest.MonkeyPatch, cap: Any) -> Job:
    return Job(
        root=tmp_path / "runner" / name,
        monkeypatch=mp,
        capsys=cap,
        repository=REPO,
        api_url=flow.url,
        env={
            "GLASSBOX_TOKEN": flow.tokens[identity],
            "GLASSBOX_KEYS": str(flow.keys),
            "GLASSBOX_LEDGER": str(flow.ledger.path),
        },
    )


def base_registry(flow: Flow) -> tuple[str, str]:
    """The approvals jobs check out the base commit: its registry/ holds the keys the forge was set up with."""
    return ("--registry", str(flow.registry.root))


def test_a_change_goes_from_pull_request_to_deploy_and_audit_through_glassbox_ci(
    flow: Flow,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proposal = propose(request(), flow.propose_context("cost-optimizer"))
    pull = flow.forge("glassbox-ci").get_pull_request(proposal.pr_number)
    n = pull.number
    opened = pull_request_payload("pull_request.opened", REPO, n, pull.head_sha, pull.base_sha)
    pr_ref = f"refs/pull/{n}/merge"
    out = tmp_path / "glassbox-check"

    # glassbox-check.yml, job `check`
    check = job(flow, tmp_path, "check", "glassbox-ci", monkeypatch, capsys).run(
        "pull_request",
        opened,
        *("ci", "pull-request", "--repo-path", str(flow.bare), "--out", str(out)),
        sha="f" * 40,  # the runner's merge commit; glassbox judges the PR's head
        ref=pr_ref,
    )
    assert check.code == 0, check.err
    assert check.outputs["result"] == "PASSED" and check.outputs["head_sha"] == pull.head_sha
    assert check.outputs["pr"] == str(n) and check.outputs["title"] == pull.title
    store = Path(check.outputs["attestations"])
    verdict = stored_verdict(store, pull.head_sha, flow.registry)
    assert verdict is not None and verdict.change.pr == n
    sarif = json.loads(Path(check.outputs["sarif"]).read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["tool"]["driver"]["name"]
    # the job summary is the check's, and says where the job's events went: the audit trail
    assert check.summary.startswith(Path(check.outputs["summary"]).read_text())
    assert "Audit trail: events" in check.summary and check.outputs["trail"] == trail_ref(flow.bare)
    predicate = json.loads(Path(check.outputs["predicate"]).read_text())
    assert predicate["verificationResult"] == "PASSED" and check.outputs["predicate_type"].startswith("https://")
    statuses = {s.context: s for s in flow.forge("glassbox-ci").list_statuses(pull.head_sha)}
    assert statuses[CHECK_CONTEXT].state is StatusState.SUCCESS
    assert obeyed_commands(check.out) == []

    # glassbox-check.yml, job `approvals` (same event): the auto agent's low-risk change merges
    gate = job(flow, tmp_path, "approvals", "glassbox-bot", monkeypatch, capsys).run(
        "pull_request",
        opened,
        "ci",
        "review",
        *base_registry(flow),
        "--attestations",
        str(store),
        "--merge",
        sha="f" * 40,
        ref=pr_ref,
    )
    assert gate.code == 0, gate.out + gate.err
    assert gate.outputs["decision"] == "satisfied" and gate.outputs["merged"] == "true"
    merge_sha = gate.outputs["merge_sha"]
    assert flow.main_head().hexsha == merge_sha
    assert {s.context: s for s in flow.forge("glassbox-bot").list_statuses(pull.head_sha)}[
        APPROVALS_CONTEXT
    ].state is StatusState.SUCCESS

    # glassbox-approvals.yml on the closed (merged) PR: nothing to re-evaluate, nothing recorded
    events_before = len(list(flow.ledger.events()))
    closed = pull_request_payload(
        "pull_request.closed", REPO, n, pull.head_sha, pull.base_sha, pull_request__merged=True
    )
    after_merge = job(flow, tmp_path, "closed", "glassbox-bot", monkeypatch, capsys).run(
        "pull_request",
        closed,
        "ci",
        "review",
        *base_registry(flow),
        "--attestations",
        str(store),
        sha="f" * 40,
        ref=pr_ref,
    )
    assert after_merge.code == 0 and after_merge.outputs["decision"] == "skipped"
    assert len(list(flow.ledger.events())) == events_before

    # glassbox-deploy.yml: the push of the merge commit to main, deployed with the job's OIDC token
    pushed = webhook("push", repository__full_name=REPO, before=pull.base_sha, after=merge_sha, ref="refs/heads/main")
    deploy = job(flow, tmp_path, "deploy", "glassbox-deployer", monkeypatch, capsys).run(
        "push",
        pushed,
        # no --attestations: the merged head's verdict comes from the audit trail, as glassbox-deploy.yml runs it
        *("ci", "push", "--repo-path", str(flow.bare), "--state", str(tmp_path / "deploy-state")),
        sha=merge_sha,
        ref="refs/heads/main",
        env={**oidc.variables(), "GLASSBOX_APPLIER": "local"},
    )
    assert deploy.code == 0, deploy.out + deploy.err
    assert deploy.outputs["result"] == "deployed" and deploy.outputs["commit"] == merge_sha
    assert deploy.outputs["stacks"] == "network/dev" and deploy.outputs["pr"] == str(n)
    assert deploy.outputs["simulated"] == "true"
    assert deploy.outputs["oidc_subject"] == f"repo:{REPO}:environment:production"
    (asked,) = oidc.requests
    assert asked["query"]["audience"] == ["sts.amazonaws.com"] and asked["query"]["api-version"] == ["2.0"]
    assert "deployed" in deploy.summary and "sts.amazonaws.com" in deploy.summary
    deploys = [e for e in flow.ledger.events() if e.action == "deploy"]
    assert [(e.outcome, e.subject.commit) for e in deploys] == [(Outcome.ALLOW, merge_sha)]

    # glassbox-audit.yml: the nightly verify and the OCSF export
    audit = job(flow, tmp_path, "audit", "glassbox-bot", monkeypatch, capsys).run(
        "schedule",
        webhook("schedule"),
        *("ci", "schedule", "--repo-path", str(flow.bare), "--attestations", str(store)),
        *("--deploy-state", str(tmp_path / "deploy-state"), "--out", str(tmp_path / "ocsf.jsonl")),
        *("--siem-config", str(ROOT / "registry" / "siem.yaml")),
        sha=merge_sha,
        ref="refs/heads/main",
    )
    assert audit.code == 0, audit.out + audit.err
    assert audit.outputs["result"] == "verified" and audit.outputs["violations"] == "0"
    exported = Path(audit.outputs["ocsf"]).read_text().splitlines()
    assert len(exported) == int(audit.outputs["exported"]) > 0
    assert int(audit.outputs["events"]) == len(list(flow.ledger.events()))
    assert all(json.loads(line)["class_uid"] for line in exported)

    # the same nightly job with nothing but the checkout: every job appended to the audit trail branch, so the
    # ledger, the attestations and the deploy records come from the repository itself
    from_trail = job(flow, tmp_path, "audit-from-trail", "glassbox-bot", monkeypatch, capsys).run(
        "schedule",
        webhook("schedule"),
        *("ci", "schedule", "--repo-path", str(flow.bare), "--out", str(tmp_path / "ocsf-trail.jsonl")),
        *("--siem-config", str(ROOT / "registry" / "siem.yaml")),
        sha=merge_sha,
        ref="refs/heads/main",
        unset=("GLASSBOX_LEDGER",),
    )
    assert from_trail.code == 0, from_trail.out + from_trail.err
    assert from_trail.outputs["result"] == "verified" and from_trail.outputs["violations"] == "0"
    assert int(from_trail.outputs["events"]) == len(list(flow.ledger.events()))
    assert Path(from_trail.outputs["ocsf"]).read_text().splitlines() == exported
    # and one decision, every link verified, from a fresh clone alone
    clone = tmp_path / "auditor-clone"
    git.Repo.clone_from(flow.bare, clone, no_checkout=True)
    monkeypatch.delenv("GLASSBOX_LEDGER", raising=False)
    capsys.readouterr()
    assert main(["audit", "show", str(n), "--repo", str(clone), "--output", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ok"] and shown["merge_commit"] == merge_sha


def test_a_review_event_re_evaluates_the_gate_and_a_later_push_supersedes_the_check(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    proposal = propose(request(), flow.propose_context("cost-optimizer"))
    pull = flow.forge("glassbox-ci").get_pull_request(proposal.pr_number)
    n, pr_ref = pull.number, f"refs/pull/{pull.number}/merge"

    # no verdict downloaded yet: the gate says why, records it, and the job fails
    review = pull_request_payload("pull_request_review.submitted", REPO, n, pull.head_sha, pull.base_sha)
    gate = job(flow, tmp_path, "review", "glassbox-bot", monkeypatch, capsys).run(
        "pull_request_review",
        review,
        *("ci", "review", *base_registry(flow), "--attestations", str(tmp_path / "none")),
        sha="f" * 40,
        ref=pr_ref,
    )
    assert gate.code == 1
    assert gate.outputs["decision"] == "not-satisfied" and gate.outputs["merged"] == "false"
    (event,) = [e for e in flow.ledger.events() if e.action == "approvals"]
    assert event.outcome is Outcome.DENY and event.subject.pr == n

    # an event for a head the PR has since left: the run for the new head judges it, this one writes so
    stale = pull_request_payload("pull_request.synchronize", REPO, n, "0" * 40, pull.base_sha)
    check = job(flow, tmp_path, "stale", "glassbox-ci", monkeypatch, capsys).run(
        "pull_request", stale, "ci", "pull-request", "--repo-path", str(flow.bare), sha="f" * 40, ref=pr_ref
    )
    assert check.code == 0 and check.outputs["result"] == "superseded"
    assert not [e for e in flow.ledger.events() if e.action == "check"]

    # the check of the real head appends its verdict to the audit trail; glassbox-approvals.yml's next run finds
    # it there (no artifact, no --attestations) and the gate is satisfied
    opened = pull_request_payload("pull_request.opened", REPO, n, pull.head_sha, pull.base_sha)
    checked = job(flow, tmp_path, "check", "glassbox-ci", monkeypatch, capsys).run(
        "pull_request", opened, "ci", "pull-request", "--repo-path", str(flow.bare), sha="f" * 40, ref=pr_ref
    )
    assert checked.code == 0 and checked.outputs["result"] == "PASSED", checked.err
    again = job(flow, tmp_path, "review-again", "glassbox-bot", monkeypatch, capsys).run(
        "pull_request_review",
        review,
        *("ci", "review", *base_registry(flow), "--repo-path", str(flow.bare)),
        sha="f" * 40,
        ref=pr_ref,
    )
    assert again.code == 0, again.out + again.err
    assert again.outputs["decision"] == "satisfied" and again.outputs["head_sha"] == pull.head_sha


def test_a_checkout_without_the_audit_trail_finds_no_verdict_and_the_gate_records_why(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    proposal = propose(request(), flow.propose_context("cost-optimizer"))
    assert ci_check(flow, proposal.pr_number).result.value == "PASSED"  # a verdict exists, but not in this checkout
    pull = flow.forge("glassbox-ci").get_pull_request(proposal.pr_number)
    bare_main = tmp_path / "main-only"
    git.Repo.clone_from(flow.bare, bare_main, bare=True, single_branch=True, branch="main")
    review = pull_request_payload("pull_request_review.submitted", REPO, pull.number, pull.head_sha, pull.base_sha)
    gate = job(flow, tmp_path, "review", "glassbox-bot", monkeypatch, capsys).run(
        "pull_request_review",
        review,
        *("ci", "review", *base_registry(flow), "--repo-path", str(bare_main)),
        sha="f" * 40,
        ref=f"refs/pull/{pull.number}/merge",
    )
    assert gate.code == 1 and gate.outputs["decision"] == "not-satisfied"
    assert "glassbox-trail" in gate.out + gate.err
    (event,) = [e for e in flow.ledger.events() if e.action == "approvals"]
    assert event.outcome is Outcome.DENY


def test_in_github_actions_a_runner_without_the_pulumi_cli_fails_the_deploy_and_says_so(
    flow: Flow,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proposal = propose(request(), flow.propose_context("cost-optimizer"))
    assert ci_check(flow, proposal.pr_number).result.value == "PASSED"
    outcome = merge(flow, proposal.pr_number)
    assert outcome.merged and outcome.merge_sha
    monkeypatch.setattr(PulumiAutomationApplier, "available", staticmethod(lambda: False))  # no CLI on this runner
    pushed = webhook("push", repository__full_name=REPO, after=outcome.merge_sha)
    state = tmp_path / "deploy-state"
    result = job(flow, tmp_path, "deploy", "glassbox-deployer", monkeypatch, capsys).run(
        "push",
        pushed,
        *("ci", "push", "--repo-path", str(flow.bare), "--attestations", str(flow.attestations)),
        *("--state", str(state)),
        sha=outcome.merge_sha,
        ref="refs/heads/main",
        env={
            **oidc.variables(),
            "GITHUB_ACTIONS": "true",
            "GLASSBOX_DEPLOY_ROLE_ARN": "arn:aws:iam::123456789012:role/glassbox-deploy-{project}-{stack}",
        },
    )
    assert result.code == 1
    assert "the pulumi CLI is not on PATH, so nothing was applied" in result.err
    assert result.outputs["result"] == "refused" and result.outputs["simulated"] == "false"
    assert "pulumi CLI is not on PATH" in result.summary
    (event,) = [e for e in flow.ledger.events() if e.action == "deploy"]
    assert event.outcome is Outcome.DENY and "pulumi CLI is not on PATH" in event.reason
    assert not list(state.glob("stacks/*/*/state.json")), "nothing was simulated in its place"
    assert len(oidc.requests) == 1, "no stack got as far as its cloud role"
