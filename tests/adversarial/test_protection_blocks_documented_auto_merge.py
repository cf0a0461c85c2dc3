"""Protection and auto-merge agree. Under the protection `glassbox protect` applies, an `auto` agent's low-risk PR
merges on glassbox's own gate (the bot is the one review-bypass actor), while a person merging, or the bot
merging a change its gate has not passed, still meets last-push approval and the required checks. Real forge
over HTTP, real git."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.approvals import protection
from bot.propose import propose
from bot.records import VerdictResult
from tests.adversarial._support import admin
from tests.flow_helpers import REPO, Flow, ci_check, flow_env, merge, request

pytestmark = pytest.mark.e2e


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    for f in flow_env(tmp_path, required_approvals=0):
        want = protection.desired(f.registry)
        protection.apply(f.forge("forge-admin"), want)
        assert protection.verify(f.forge("forge-admin"), want).in_sync
        yield f


def test_auto_agents_low_risk_change_merges_under_glassbox_protection(flow: Flow) -> None:
    proposal = propose(request(), flow.propose_context("cost-optimizer"))
    assert ci_check(flow, proposal.pr_number).result is VerdictResult.PASSED
    outcome = merge(flow, proposal.pr_number)
    assert outcome.merged and outcome.auto_merge, outcome.reasons


def test_a_person_merging_still_meets_last_push_approval(flow: Flow) -> None:
    proposal = propose(request(), flow.propose_context("cost-optimizer"))
    assert ci_check(flow, proposal.pr_number).result is VerdictResult.PASSED
    status, body = admin(flow).request("carol", "PUT", f"/repos/{REPO}/pulls/{proposal.pr_number}/merge", {})
    assert status == 405, body  # carol may not push to main at all; the bot alone merges
    live = flow.forge("forge-admin").get_branch_protection("main") or {}
    reviews = live["required_pull_request_reviews"]
    assert reviews["require_last_push_approval"] is True
    assert [u["login"] for u in reviews["bypass_pull_request_allowances"]["users"]] == ["glassbox-bot"]


def test_the_bot_cannot_merge_what_its_gate_has_not_passed(flow: Flow) -> None:
    proposal = propose(request(), flow.propose_context("cost-optimizer"))  # no check: no glassbox/* statuses
    status, body = admin(flow).request("glassbox-bot", "PUT", f"/repos/{REPO}/pulls/{proposal.pr_number}/merge", {})
    assert status == 405 and 'Required status check "glassbox/check" is expected.' in body["message"], body
