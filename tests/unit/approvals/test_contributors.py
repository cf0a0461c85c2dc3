"""Separation of duties over the PR's commits: whoever authored or committed a commit in the PR never approves it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.approvals.gate import PLATFORM_COMMITTERS
from bot.approvals.model import BlockerKind, DiscardReason
from bot.approvals.service import evaluate_pr
from bot.forge.model import ChangedFile, FileStatus, PullCommit, ReviewState
from bot.trust.keys import Signer
from bot.trust.ledger import Ledger
from tests.unit.approvals._builders import BASE, HEAD, OLD, evidence, gate, pull, reasons, registry, review, verdict
from tests.unit.approvals._forge import MemoryForge

CHANGES = ReviewState.CHANGES_REQUESTED
# erin requests (not a platform owner), so carol and dan are both eligible platform approvers by default
EV = [evidence(requester="erin")]
C1, C2 = "a" * 40, "b" * 40


def commit(
    sha: str = HEAD, author: str | None = "patch-agent", committer: str | None = "patch-agent", **emails: Any
) -> PullCommit:
    return PullCommit(
        sha=sha,
        author=author,
        committer=committer,
        author_email=emails.get("author_email", f"{author or 'nobody'}@example.com"),
        committer_email=emails.get("committer_email", f"{committer or 'nobody'}@example.com"),
    )


def test_without_commits_carol_alone_satisfies_the_network_change() -> None:
    # the baseline the tests below take away from
    assert gate(reviews=[review(1, "carol")], ev=EV).satisfied


def test_a_reviewer_who_authored_a_commit_in_the_pr_does_not_count() -> None:
    commits = [commit(C1), commit(HEAD, author="carol", committer="web-flow")]
    state = gate(reviews=[review(1, "carol")], ev=EV, commits=commits)
    assert reasons(state) == {1: "contributor"} and not state.satisfied
    assert not any(r.satisfied for r in state.required) and not state.blocking
    [d] = state.discarded_with_reason
    assert d.reason is DiscardReason.CONTRIBUTOR
    assert d.detail == (f"carol authored {HEAD[:12]} in this PR; a contributor never approves their own change")
    # another owner who touched nothing still can
    assert gate(reviews=[review(1, "carol"), review(2, "dan")], ev=EV, commits=commits).satisfied


def test_a_reviewer_who_committed_a_commit_in_the_pr_does_not_count() -> None:
    # e.g. carol rebased or amended the agent's commit: she committed it, the agent authored it
    commits = [commit(C1, author="patch-agent", committer="carol"), commit(C2, author="carol", committer="carol")]
    state = gate(reviews=[review(1, "carol")], ev=EV, commits=commits)
    assert reasons(state) == {1: "contributor"} and not state.satisfied
    detail = state.discarded_with_reason[0].detail
    assert detail.startswith(f"carol authored {C2[:12]} and committed {C1[:12]}, {C2[:12]} in this PR")


@pytest.mark.parametrize(("reviewer", "login"), [("CAROL", "carol"), ("carol", "Carol"), ("Carol", "CAROL")])
def test_logins_are_compared_case_insensitively(reviewer: str, login: str) -> None:
    for commits in ([commit(author=login)], [commit(committer=login)]):
        state = gate(reviews=[review(1, reviewer)], ev=EV, commits=commits)
        assert reasons(state) == {1: "contributor"} and not state.satisfied


@pytest.mark.parametrize("platform", ["web-flow", "Web-Flow"])
def test_the_platform_committer_disqualifies_nobody(platform: str) -> None:
    assert "web-flow" in PLATFORM_COMMITTERS
    commits = [commit(C1, author="patch-agent", committer=platform), commit(HEAD, author="patch-agent")]
    state = gate(reviews=[review(1, "carol")], ev=EV, commits=commits)
    assert state.satisfied and not state.discarded_with_reason


def test_commits_linked_to_no_account_disqualify_nobody_and_are_explained() -> None:
    commits = [commit(C1, author=None, committer=None, author_email="carol@laptop.local", committer_email=None)]
    state = gate(reviews=[review(1, "carol")], ev=EV, commits=commits)
    assert state.satisfied and not state.discarded_with_reason
    assert any("carol@laptop.local" in line and "disqualify nobody" in line for line in state.explanation)
    assert any("none with an account" in line for line in state.explanation)


def test_contributors_are_listed_in_the_explanation() -> None:
    state = gate(reviews=[review(1, "dan")], ev=EV, commits=[commit(C1, author="carol"), commit(HEAD)])
    assert state.satisfied
    line = next(x for x in state.explanation if x.startswith("2 commit(s) in the PR"))
    assert f"carol authored {C1[:12]}" in line and "patch-agent" in line


def test_a_contributor_who_requests_changes_still_blocks() -> None:
    # as for the requester: someone who may not approve may still veto
    commits = [commit(author="dan")]
    state = gate(reviews=[review(1, "carol"), review(2, "dan", CHANGES)], ev=EV, commits=commits)
    assert [b.kind for b in state.blocking] == [BlockerKind.CHANGES_REQUESTED] and not state.satisfied
    assert reasons(state) == {2: "changes_requested"}


def test_a_contributor_approval_stays_discarded_on_any_commit() -> None:
    # excluded comes before staleness, as for the author and the requester
    state = gate(reviews=[review(1, "carol", commit=OLD)], ev=EV, commits=[commit(author="carol")])
    assert reasons(state) == {1: "contributor"}


def test_a_service_identity_that_committed_keeps_its_own_reason() -> None:
    state = gate(reviews=[review(1, "glassbox-ci")], ev=EV, commits=[commit(committer="glassbox-ci")])
    assert reasons(state) == {1: "ci"}


# -- the service --------------------------------------------------------------------------------------


def make_forge(commits: list[PullCommit]) -> MemoryForge:
    forge = MemoryForge(pr=pull(), reviews=[review(1, "carol")])
    forge.files = [ChangedFile(path="infra/network/__main__.py", status=FileStatus.MODIFIED)]
    forge.contents[(".github/CODEOWNERS", BASE)] = b"/infra/network/ @acme/platform\n"
    forge.commits = commits
    return forge


def test_the_service_reads_the_commits_and_the_gate_uses_them(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge([commit(author="patch-agent", committer="carol")])
    state = evaluate_pr(forge, registry(), 7, lambda head: verdict(), ledger, bot_signer)
    assert not state.satisfied and reasons(state) == {1: "contributor"}
    [event] = [json.loads(line) for line in ledger.path.read_text(encoding="utf-8").splitlines()]
    assert event["outcome"] == "deny"
    assert event["details"]["discarded"][0]["reason"] == "contributor"
    forge.commits = [commit(author="patch-agent")]
    assert evaluate_pr(forge, registry(), 7, lambda head: verdict(), ledger, bot_signer).satisfied


def test_failing_to_read_the_commits_is_not_satisfied_with_its_cause(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge([commit(author="patch-agent")])
    forge.fail_on.add("list_pull_commits")
    state = evaluate_pr(forge, registry(), 7, lambda head: verdict(), ledger, bot_signer)
    assert not state.satisfied and [b.kind for b in state.blocking] == [BlockerKind.ERROR]
    assert "list_pull_commits: 502" in state.blocking[0].detail
    [event] = [json.loads(line) for line in ledger.path.read_text(encoding="utf-8").splitlines()]
    assert event["outcome"] == "error" and "list_pull_commits" in event["reason"]
