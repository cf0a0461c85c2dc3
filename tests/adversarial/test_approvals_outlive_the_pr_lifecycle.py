"""Approvals follow the PR's life, and contributors are known by push. A reviewer closes a PR to reject it and the
agent reopens it; the base branch changes under approvals; a review is dismissed; a person pushes under an email
linked to no account and approves his own push. Each is refused with its reason, and nothing merges. Real forge
over HTTP, real git; the lifecycle rules themselves are also checked on the pure gate."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import git
import pytest

from bot.approvals.model import BlockerKind, DiscardReason
from bot.forge.model import IssueEvent, RefActivity
from bot.propose import Proposal, propose
from bot.records import VerdictResult
from bot.trust.gitenv import commit_env
from tests.adversarial._support import admin
from tests.flow_helpers import REPO, Flow, approve, ci_check, flow_env, merge, prod_backup_request
from tests.unit.approvals._builders import EV_TIME, T0, gate, reasons, review

pytestmark = pytest.mark.e2e


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    yield from flow_env(tmp_path, required_approvals=0)


def _approved(flow: Flow, days: int) -> Proposal:
    proposal = propose(prod_backup_request(flow, days), flow.propose_context("patch-agent"))
    verdict = ci_check(flow, proposal.pr_number)
    assert verdict.result is VerdictResult.PASSED, [f.rule_id for f in verdict.findings if f.status.value == "deny"]
    approve(flow, proposal.pr_number, "dan")
    approve(flow, proposal.pr_number, "erin")
    return proposal


def _patch(flow: Flow, who: str, number: int, body: dict[str, str]) -> None:
    admin(flow).ok(who, "PATCH", f"/repos/{REPO}/pulls/{number}", body)


def test_reviewer_closes_the_pr_and_the_agent_reopens_it(flow: Flow) -> None:
    proposal = _approved(flow, 21)
    _patch(flow, "carol", proposal.pr_number, {"state": "closed"})  # rejected
    _patch(flow, "patch-agent", proposal.pr_number, {"state": "open"})  # the agent's own token
    time.sleep(1.1)  # the forge keeps seconds: what follows is strictly after the reopening
    approve(flow, proposal.pr_number, "dan")
    approve(flow, proposal.pr_number, "erin")  # even fresh approvals do not undo a person's rejection
    outcome = merge(flow, proposal.pr_number)
    assert not outcome.merged
    assert any("a person closed PR" in r and "patch-agent reopened it" in r for r in outcome.reasons), outcome.reasons
    assert not flow.forge("glassbox-bot").get_pull_request(proposal.pr_number).merged
    events = [e for e in flow.ledger.events() if e.action == "merge" and e.subject.pr == proposal.pr_number]
    assert events and events[-1].outcome.value != "allow"


def test_approvals_given_before_a_close_and_reopen_by_a_person_do_not_count(flow: Flow) -> None:
    proposal = _approved(flow, 22)
    _patch(flow, "carol", proposal.pr_number, {"state": "closed"})
    _patch(flow, "carol", proposal.pr_number, {"state": "open"})  # a person reopens: no rejection stands ...
    outcome = merge(flow, proposal.pr_number)
    assert not outcome.merged  # ... but the approvals before it are spent
    spent = {d.user: d.detail for d in outcome.approvals.discarded_with_reason}
    assert "given before the PR was reopened by carol" in spent["dan"], spent
    time.sleep(1.1)
    approve(flow, proposal.pr_number, "dan")
    approve(flow, proposal.pr_number, "erin")
    assert merge(flow, proposal.pr_number).merged


def test_person_pushes_under_an_unlinked_email_and_approves_his_own_push(flow: Flow) -> None:
    proposal = propose(prod_backup_request(flow, 23), flow.propose_context("patch-agent"))
    bare = git.Repo(flow.bare)
    parent = bare.commit(f"refs/heads/{proposal.branch}")
    with tempfile.TemporaryDirectory() as tmp:
        work = git.Repo.clone_from(str(flow.bare), tmp, branch=proposal.branch)
        (Path(tmp) / "infra" / "data" / "NOTES.md").write_text("tuned by hand\n", encoding="utf-8")
        work.git.add("-A")
        # an email no forge account links to: the commit names nobody who could be excluded
        work.git.commit("--no-gpg-sign", "-m", "tune", env=commit_env("Somebody", "nobody@unlinked.invalid"))
        sha = work.head.commit.hexsha
        subprocess.run(["git", "-C", tmp, "push", "-q", str(flow.bare), f"{sha}:refs/heads/incoming"], check=True)
    admin(flow).ok("frank", "PATCH", f"/repos/{REPO}/git/refs/heads/{proposal.branch}", {"sha": sha})
    bare.git.update_ref("-d", "refs/heads/incoming")
    assert parent.hexsha != sha
    verdict = ci_check(flow, proposal.pr_number)
    assert verdict.result is VerdictResult.PASSED, [f.rule_id for f in verdict.findings if f.status.value == "deny"]
    approve(flow, proposal.pr_number, "frank")  # data team: the owner CODEOWNERS asks for ...
    approve(flow, proposal.pr_number, "dan")
    outcome = merge(flow, proposal.pr_number)
    assert not outcome.merged  # ... but he pushed the head, so his approval is his own change's
    why = {d.user: (d.reason, d.detail) for d in outcome.approvals.discarded_with_reason}
    assert why["frank"] == (DiscardReason.LAST_PUSHER, "frank pushed the head last; the last pusher never approves")


@pytest.mark.parametrize(
    "event", ["closed", "reopened", "base_ref_changed", "convert_to_draft", "ready_for_review", "review_dismissed"]
)
def test_a_lifecycle_event_after_the_approvals_spends_them(event: str) -> None:
    after = IssueEvent(id=1, event=event, actor="carol", created_at=T0 + timedelta(minutes=5))
    before = gate(reviews=[review(1, "dan")], ev=EV_TIME, events=[after])
    assert reasons(before) == {1: DiscardReason.RESET.value} and not before.satisfied
    later = gate(reviews=[review(9, "dan")], ev=EV_TIME, events=[after])  # reviewed at T0 + 9 min
    assert later.satisfied


def test_an_agent_reopening_a_pr_a_person_closed_blocks_it() -> None:
    events = [
        IssueEvent(id=1, event="closed", actor="carol", created_at=T0),
        IssueEvent(id=2, event="reopened", actor="patch-agent", created_at=T0 + timedelta(seconds=1)),
    ]
    state = gate(reviews=[review(9, "dan")], ev=EV_TIME, events=events)
    assert [b.kind for b in state.blocking] == [BlockerKind.REOPENED_BY_AGENT] and not state.satisfied


def test_a_pusher_never_approves_even_when_no_commit_names_him() -> None:
    pushes = [RefActivity(id=1, ref="refs/heads/glassbox/patch-agent/x", before="0" * 40, after="1" * 40, actor="dan")]
    state = gate(reviews=[review(1, "dan")], ev=EV_TIME, pushes=pushes)
    assert reasons(state) == {1: DiscardReason.LAST_PUSHER.value} and not state.satisfied
