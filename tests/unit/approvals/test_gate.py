"""The pure approvals gate over plain records: separation of duties, head-commit counting, the autonomy cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.approvals import codeowners as co
from bot.approvals.model import BlockerKind, DiscardReason, RequirementSource
from bot.forge.model import PullState, ReviewState
from bot.registry import load_registry
from tests.factories import copy_registry, edit_yaml
from tests.unit.approvals._builders import (
    HEAD,
    OLD,
    evidence,
    gate,
    pull,
    reasons,
    review,
    verdict,
)

APPROVED, CHANGES, COMMENTED, DISMISSED, PENDING = (
    ReviewState.APPROVED,
    ReviewState.CHANGES_REQUESTED,
    ReviewState.COMMENTED,
    ReviewState.DISMISSED,
    ReviewState.PENDING,
)


def test_a_platform_owner_approving_the_head_satisfies_a_medium_network_change() -> None:
    state = gate(reviews=[review(1, "carol")])
    assert state.satisfied and not state.blocking
    assert [r.id for r in state.required] == ["codeowners:4", "matrix:platform"]
    assert state.counted[0].requirements == ["codeowners:4", "matrix:platform"]  # one approval, two requirements
    assert "line 4" in state.required[0].reason and state.required[0].paths == ["infra/network/__main__.py"]
    assert state.explanation[-1] == "approvals satisfied"


# -- separation of duties (I1, I3) -----------------------------------------------------------------


def test_author_self_approval_does_not_count() -> None:
    state = gate(pr=pull("carol"), ev=[], reviews=[review(1, "carol")])
    assert reasons(state) == {1: "author"} and not state.satisfied
    assert "self-approval" in state.discarded_with_reason[0].detail


@pytest.mark.parametrize("login", ["ALICE", "Alice", "alice"])
def test_login_case_tricks_are_still_self_approval(login: str) -> None:
    state = gate(
        pr=pull("alice"), ev=[], paths=["registry/agents.yaml"], v=verdict("critical"), reviews=[review(1, login)]
    )
    assert reasons(state) == {1: "author"} and not state.satisfied


def test_case_insensitive_logins_count_for_their_teams() -> None:
    state = gate(reviews=[review(1, "CaRoL")])
    assert state.satisfied and state.counted[0].user == "carol"


def test_agent_approval_does_not_count() -> None:
    state = gate(reviews=[review(1, "cost-optimizer"), review(2, "Network-Agent")])
    assert reasons(state) == {1: "agent", 2: "agent"} and not state.satisfied


def test_requester_approval_does_not_count() -> None:
    # dan is in platform, but he asked for this change (recorded in the evidence)
    state = gate(ev=[evidence(requester="dan")], reviews=[review(1, "DAN")])
    assert reasons(state) == {1: "requester"} and not state.satisfied
    state = gate(ev=[evidence(requester="dan")], reviews=[review(1, "dan"), review(2, "carol")])
    assert reasons(state) == {1: "requester"} and state.satisfied


@pytest.mark.parametrize(
    ("login", "reason"), [("glassbox-deployer", "deployer"), ("glassbox-ci", "ci"), ("glassbox-bot", "bot")]
)
def test_service_identity_approvals_do_not_count(login: str, reason: str) -> None:
    state = gate(reviews=[review(1, login)])
    assert reasons(state) == {1: reason} and not state.satisfied


def test_stale_approval_after_a_new_push_does_not_count() -> None:
    state = gate(reviews=[review(1, "carol", commit=OLD)])
    assert reasons(state) == {1: "stale"} and not state.satisfied
    detail = state.discarded_with_reason[0].detail
    assert OLD[:12] in detail and HEAD[:12] in detail
    # approving again on the new head counts
    state = gate(reviews=[review(1, "carol", commit=OLD), review(2, "carol")])
    assert reasons(state) == {1: "superseded"} and state.satisfied


def test_non_owner_approval_does_not_count() -> None:
    state = gate(reviews=[review(1, "erin")])  # data team, network change
    assert reasons(state) == {1: "not_owner"} and not state.satisfied
    assert "@acme/platform" in state.discarded_with_reason[0].detail


def test_membership_comes_from_the_members_callable_at_evaluation_time() -> None:
    assert gate(reviews=[review(1, "carol")], members=lambda team: ["Carol"] if team == "platform" else []).satisfied
    state = gate(reviews=[review(1, "carol")], members=lambda team: [])
    assert reasons(state) == {1: "not_owner"}


# -- latest review per person, change requests ------------------------------------------------------


def test_changes_requested_by_a_required_owner_blocks() -> None:
    state = gate(reviews=[review(1, "carol"), review(2, "dan", CHANGES)], ev=[evidence(requester="erin")])
    assert not state.satisfied
    assert [b.kind for b in state.blocking] == [BlockerKind.CHANGES_REQUESTED]
    assert all(r.satisfied for r in state.required)  # carol's approval counted; dan's request still blocks


def test_changes_requested_on_an_older_commit_still_blocks_until_that_owner_approves() -> None:
    state = gate(reviews=[review(1, "carol"), review(2, "dan", CHANGES, commit=OLD)], ev=[evidence(requester="erin")])
    assert [b.kind for b in state.blocking] == [BlockerKind.CHANGES_REQUESTED] and OLD[:12] in state.blocking[0].detail
    state = gate(
        reviews=[review(1, "carol"), review(2, "dan", CHANGES, commit=OLD), review(3, "dan")],
        ev=[evidence(requester="erin")],
    )
    assert state.satisfied and reasons(state) == {2: "superseded"}


def test_changes_requested_by_a_non_owner_is_reported_but_does_not_block() -> None:
    state = gate(reviews=[review(1, "carol"), review(2, "erin", CHANGES)])
    assert state.satisfied and reasons(state) == {2: "changes_requested"}
    assert "non-owner" in state.discarded_with_reason[0].detail


def test_a_later_comment_does_not_erase_an_approval() -> None:
    state = gate(reviews=[review(1, "carol"), review(2, "carol", COMMENTED)])
    assert state.satisfied and reasons(state) == {2: "comment"}


def test_a_later_change_request_or_dismissal_supersedes_an_approval() -> None:
    state = gate(reviews=[review(1, "carol"), review(2, "carol", CHANGES)])
    assert reasons(state) == {1: "superseded", 2: "changes_requested"} and not state.satisfied
    state = gate(reviews=[review(1, "carol"), review(2, "carol", DISMISSED)])
    assert reasons(state) == {1: "superseded", 2: "dismissed"} and not state.satisfied


def test_pending_reviews_are_never_counted() -> None:
    state = gate(reviews=[review(1, "carol", PENDING, commit=None)])
    assert reasons(state) == {1: "pending"} and not state.satisfied


def test_ordering_follows_submission_time_not_list_order() -> None:
    state = gate(reviews=[review(2, "carol"), review(1, "carol", CHANGES)])
    assert state.satisfied and reasons(state) == {1: "superseded"}


# -- the matrix and distinct people ---------------------------------------------------------------------


def test_critical_governance_change_needs_two_distinct_security_approvals() -> None:
    kw = {"pr": pull("erin"), "ev": [], "paths": ["policy-pack/network/gb_net_001.rego"], "v": verdict("critical")}
    one = gate(reviews=[review(1, "alice")], **kw)  # type: ignore[arg-type]
    assert not one.satisfied
    matrix = next(r for r in one.required if r.id == "matrix:security")
    assert matrix.count == 2 and matrix.approvers == ["alice"] and not matrix.satisfied
    same_twice = gate(reviews=[review(1, "alice"), review(2, "Alice")], **kw)  # type: ignore[arg-type]
    assert not same_twice.satisfied and reasons(same_twice) == {1: "superseded"}
    two = gate(reviews=[review(1, "alice"), review(2, "bob")], **kw)  # type: ignore[arg-type]
    assert two.satisfied
    assert {r.id: r.approvers for r in two.required} == {
        "codeowners:10": ["alice", "bob"],
        "matrix:security": ["alice", "bob"],
    }


def test_high_risk_identity_change_one_person_may_satisfy_several_requirements() -> None:
    kw = {"paths": ["infra/identity/roles.py"], "v": verdict("high")}
    state = gate(reviews=[review(1, "grace")], **kw)  # type: ignore[arg-type]
    assert {r.id: r.satisfied for r in state.required} == {
        "codeowners:5": True,
        "matrix:platform": False,
        "matrix:security": True,
    }
    assert gate(reviews=[review(1, "grace"), review(2, "carol")], **kw).satisfied  # type: ignore[arg-type]


def test_one_requirement_per_distinct_owner_set() -> None:
    state = gate(paths=["infra/network/a.py", "infra/network/b.py", "infra/data/c.py", "README.md"])
    owner_reqs = [r for r in state.required if r.source is RequirementSource.CODEOWNERS]
    assert [(r.owners, r.paths) for r in owner_reqs] == [
        (["@acme/platform"], ["infra/network/a.py", "infra/network/b.py"]),
        (["@acme/data"], ["infra/data/c.py"]),
    ]


def test_verdict_required_approvals_merge_with_the_matrix() -> None:
    extra = [{"team": "security", "count": 1, "reason": "GB-IAM-004 asks for security"}]
    state = gate(v=verdict("medium", required_approvals=extra), reviews=[review(1, "carol")])
    assert {r.id for r in state.required} == {"codeowners:4", "matrix:platform", "matrix:security"}
    assert not state.satisfied


# -- the verdict fails closed -----------------------------------------------------------------------


def test_missing_verdict_blocks_and_requires_as_critical() -> None:
    state = gate(v=None, reviews=[review(1, "carol")])
    assert [b.kind for b in state.blocking] == [BlockerKind.NO_VERDICT] and not state.satisfied
    assert any(r.id == "matrix:security" and r.count == 2 for r in state.required)


def test_failed_verdict_blocks_with_its_rule_ids() -> None:
    state = gate(v=verdict(result="FAILED"), reviews=[review(1, "carol")])
    assert state.blocking[0].kind is BlockerKind.FAILED_VERDICT and "GB-NET-001" in state.blocking[0].detail


def test_a_verdict_for_another_repository_is_not_this_prs() -> None:
    other = verdict().model_copy(update={"change": verdict().change.model_copy(update={"repo": "evil/infra"})})
    state = gate(v=other, reviews=[review(1, "carol")])
    assert state.blocking[0].kind is BlockerKind.STALE_VERDICT and "evil/infra" in state.blocking[0].detail


def test_a_verdict_for_another_commit_is_stale() -> None:
    state = gate(v=verdict(head=OLD), reviews=[review(1, "carol")])
    assert state.blocking[0].kind is BlockerKind.STALE_VERDICT and not state.satisfied


# -- autonomy: auto-merge and its refusals ----------------------------------------------------------------

DEV = ["infra/network/Pulumi.dev.yaml"]  # un-owned on purpose in CODEOWNERS


def _auto(
    confidence: float = 0.92, risk: str = "low", agent: str = "cost-optimizer", bind: bool = True
) -> tuple[bool, bool, list[str]]:
    ev = evidence(agent=agent, requester="erin", confidence=confidence)
    state = gate(
        pr=pull(agent), paths=DEV, ev=[ev], v=verdict(risk, evidence_digest=ev.digest if bind else "sha256:" + "9" * 64)
    )
    return state.auto_merge_eligible, state.satisfied, state.explanation


def test_auto_merge_path_for_an_auto_agent_low_risk_confident_change() -> None:
    eligible, satisfied, explanation = _auto()
    assert eligible and satisfied
    assert any(line.startswith("auto-merge eligible") for line in explanation)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"confidence": 0.5}, "confidence 0.50 is below agent cost-optimizer's threshold 0.80"),
        ({"risk": "medium"}, "risk is medium, above low"),
        ({"agent": "patch-agent"}, "autonomy gated, not auto"),
        ({"bind": False}, "no evidence record whose digest the verdict vouches for"),
    ],
)
def test_auto_merge_refused(kwargs: dict[str, object], why: str) -> None:
    eligible, satisfied, explanation = _auto(**kwargs)  # type: ignore[arg-type]
    assert not eligible and not satisfied  # a human is then required
    assert any(why in line for line in explanation if line.startswith("not auto-merge eligible"))


def test_without_auto_merge_someone_human_must_approve() -> None:
    ev = evidence(agent="cost-optimizer", requester="erin", confidence=0.5)
    kw = {"pr": pull("cost-optimizer"), "paths": DEV, "ev": [ev], "v": verdict("low", evidence_digest=ev.digest)}
    state = gate(**kw)  # type: ignore[arg-type]
    assert [r.id for r in state.required] == ["autonomy:human"]
    assert gate(reviews=[review(1, "grace")], **kw).satisfied  # type: ignore[arg-type]
    assert reasons(gate(reviews=[review(1, "erin")], **kw)) == {1: "requester"}  # type: ignore[arg-type]
    assert reasons(gate(reviews=[review(1, "glassbox-bot")], **kw)) == {1: "bot"}  # type: ignore[arg-type]


def test_auto_merge_needs_the_matrix_to_allow_it(tmp_path: Path) -> None:
    root = copy_registry(tmp_path)
    edit_yaml(root / "approval-matrix.yaml", lambda d: d["tiers"]["low"].update(auto_merge=False))
    ev = evidence(agent="cost-optimizer", requester="erin")
    state = gate(
        reg=load_registry(root),
        pr=pull("cost-optimizer"),
        paths=DEV,
        ev=[ev],
        v=verdict("low", evidence_digest=ev.digest),
    )
    assert not state.auto_merge_eligible and not state.satisfied


def test_code_owned_paths_are_never_auto_merged() -> None:
    ev = evidence(agent="cost-optimizer", requester="erin")
    state = gate(
        pr=pull("cost-optimizer"),
        paths=["infra/network/__main__.py"],
        ev=[ev],
        v=verdict("low", evidence_digest=ev.digest),
    )
    assert not state.auto_merge_eligible and not state.satisfied


def test_draft_pr_blocks_until_a_human_promotes_it() -> None:
    state = gate(
        pr=pull("network-agent", draft=True), ev=[evidence(agent="network-agent")], reviews=[review(1, "carol")]
    )
    assert [b.kind for b in state.blocking] == [BlockerKind.DRAFT] and "autonomy draft" in state.blocking[0].detail
    promoted = gate(pr=pull("network-agent"), ev=[evidence(agent="network-agent")], reviews=[review(1, "carol")])
    assert promoted.satisfied and not promoted.auto_merge_eligible


@pytest.mark.parametrize("agent", ["access-reviewer", "legacy-tagger"])
def test_agents_that_may_not_change_anything_are_blocked(agent: str) -> None:
    state = gate(pr=pull(agent), ev=[evidence(agent=agent)], reviews=[review(1, "carol")])
    assert BlockerKind.AGENT in [b.kind for b in state.blocking] and not state.satisfied


def test_a_closed_pr_is_not_satisfied() -> None:
    pr = pull().model_copy(update={"state": PullState.CLOSED})
    assert gate(pr=pr, reviews=[review(1, "carol")]).blocking[0].kind is BlockerKind.CLOSED


# -- owners the registry does not know ----------------------------------------------------------------


def test_owners_outside_the_registry_or_org_cannot_be_satisfied() -> None:
    owners = co.parse("/infra/ @other-org/platform @nobody\n")
    state = gate(owners=owners, reviews=[review(1, "carol")])
    assert state.blocking[0].kind is BlockerKind.UNRESOLVED_OWNERS and not state.satisfied


def test_user_and_email_owners_resolve_to_people() -> None:
    owners = co.parse("/infra/ @Carol erin@EXAMPLE.com\n")
    assert gate(owners=owners, reviews=[review(1, "erin"), review(2, "carol")]).satisfied
    only_email = gate(owners=co.parse("/infra/ erin@example.com\n"), reviews=[review(1, "carol")])
    assert not only_email.satisfied
    assert {r.id: r.approvers for r in only_email.required} == {"codeowners:1": [], "matrix:platform": ["carol"]}


def test_codeowners_problems_are_carried_into_the_state() -> None:
    state = gate(owners=co.parse("/infra/ @acme/platform\n!x @acme/security\n", source="CODEOWNERS"))
    assert state.codeowners_problems == [
        "CODEOWNERS:2: negation ('!') is not supported in CODEOWNERS; the line is ignored"
    ]


def test_every_review_is_either_counted_or_discarded_with_a_reason() -> None:
    reviews = [
        review(1, "carol", commit=OLD),
        review(2, "carol"),
        review(3, "patch-agent"),
        review(4, "erin"),
        review(5, "dan", COMMENTED),
        review(6, "glassbox-ci"),
    ]
    state = gate(reviews=reviews)
    seen = {c.review_id for c in state.counted} | {d.review_id for d in state.discarded_with_reason}
    assert seen == {1, 2, 3, 4, 5, 6}
    assert all(d.detail for d in state.discarded_with_reason)
    assert {d.reason for d in state.discarded_with_reason} == {
        DiscardReason.SUPERSEDED,
        DiscardReason.AUTHOR,
        DiscardReason.NOT_OWNER,
        DiscardReason.COMMENT,
        DiscardReason.CI,
    }
