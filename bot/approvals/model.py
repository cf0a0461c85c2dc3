"""The approvals decision as data: what is required, which reviews counted, which did not and why.

:class:`ApprovalState` is what the gate returns, what the service publishes (as the ``glassbox/approvals``
commit status and the ``approvals`` ledger event) and what the CLI renders; renderers read it, they
never recompute it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from bot.records import Record, RiskTier, VerdictResult


class RequirementSource(StrEnum):
    CODEOWNERS = "codeowners"  # the owners of touched paths (one requirement per distinct owner set)
    MATRIX = "matrix"  # the approval matrix entry of the risk tier (and the verdict's own list)
    AUTONOMY = "autonomy"  # the autonomy cap: no rule asked for anyone, yet a human must approve


class Requirement(Record):
    """At least ``count`` distinct eligible people from the owner set must approve the head commit."""

    id: str = Field(description="Stable within one evaluation, e.g. codeowners:3 or matrix:security.")
    source: RequirementSource
    owners: list[str] = Field(description="As written: @org/team, @user, email, team:<id>, or 'any person'.")
    teams: list[str] = Field(default_factory=list, description="Registry team ids the owners resolve to.")
    people: list[str] = Field(default_factory=list, description="Registry people (lower-case logins).")
    any_person: bool = Field(default=False, description="Any registry person who is not excluded may approve.")
    unresolved: list[str] = Field(default_factory=list, description="Owners the registry does not know.")
    count: int = Field(ge=1)
    reason: str
    paths: list[str] = Field(default_factory=list, description="Touched paths behind a CODEOWNERS requirement.")
    approvers: list[str] = Field(default_factory=list, description="Who counted towards it (distinct people).")
    satisfied: bool = False


class CountedApproval(Record):
    review_id: int
    user: str
    commit_id: str
    requirements: list[str] = Field(description="Ids of the requirements this approval counted towards.")


class DiscardReason(StrEnum):
    PENDING = "pending"  # never submitted
    COMMENT = "comment"  # a comment neither approves nor blocks
    SUPERSEDED = "superseded"  # a later review by the same person decides
    DISMISSED = "dismissed"
    CHANGES_REQUESTED = "changes_requested"  # not an approval (and maybe a blocker)
    AUTHOR = "author"
    AGENT = "agent"
    REQUESTER = "requester"
    CONTRIBUTOR = "contributor"  # authored, committed or pushed a commit of the PR
    LAST_PUSHER = "last_pusher"  # moved the PR's head last
    RESET = "reset"  # given before a lifecycle event (closed, reopened, base changed, draft toggled, dismissal)
    CI = "ci"
    DEPLOYER = "deployer"
    BOT = "bot"
    STALE = "stale"  # on a commit other than the PR's current head (I3)
    NOT_OWNER = "not_owner"  # not a member of any required team or owner set


class DiscardedReview(Record):
    review_id: int
    user: str
    state: str
    commit_id: str | None
    reason: DiscardReason
    detail: str


class BlockerKind(StrEnum):
    NO_VERDICT = "no_verdict"
    STALE_VERDICT = "stale_verdict"
    FAILED_VERDICT = "failed_verdict"
    CHANGES_REQUESTED = "changes_requested"
    DRAFT = "draft"
    AGENT = "agent"  # the authoring agent may not have this PR merged (suspended, read_only, recommend)
    UNRESOLVED_OWNERS = "unresolved_owners"
    CLOSED = "closed"
    REOPENED_BY_AGENT = "reopened_by_agent"  # a person closed it (rejected), an agent reopened it
    ERROR = "error"


class Blocker(Record):
    kind: BlockerKind
    detail: str


class ApprovalState(Record):
    """The approvals gate's answer for one PR at one head commit."""

    schema_version: Literal[1] = 1
    repo: str | None = None
    pr: int | None = None
    head_sha: str | None = None
    base_sha: str | None = None
    author: str | None = None
    agent_id: str | None = None
    requesters: list[str] = Field(default_factory=list, description="Who asked for the change (evidence).")
    risk: RiskTier | None = None
    verdict_result: VerdictResult | None = None
    codeowners_source: str | None = None
    codeowners_problems: list[str] = Field(default_factory=list)
    required: list[Requirement] = Field(default_factory=list)
    counted: list[CountedApproval] = Field(default_factory=list)
    discarded_with_reason: list[DiscardedReview] = Field(default_factory=list)
    blocking: list[Blocker] = Field(default_factory=list)
    satisfied: bool = False
    auto_merge_eligible: bool = False
    explanation: list[str] = Field(default_factory=list, description="One line per fact behind the decision.")

    def status_description(self) -> str:
        """At most 140 characters for the commit status (GitHub's limit)."""
        if self.satisfied and self.auto_merge_eligible:
            text = "approvals satisfied: auto-merge eligible (low risk, agent autonomy auto)"
        elif self.satisfied:
            text = f"approvals satisfied: {len(self.counted)} approval(s) on {_short(self.head_sha)}"
        elif self.blocking:
            text = f"blocked: {self.blocking[0].detail}"
        else:
            missing = [r for r in self.required if not r.satisfied]
            text = "waiting for " + "; ".join(f"{r.count} from {', '.join(r.owners)}" for r in missing)
        return text if len(text) <= 140 else text[:139] + "…"


class MergeOutcome(Record):
    """What ``merge_pr`` did, and the approvals state it decided on."""

    repo: str | None = None
    pr: int
    head_sha: str | None
    merged: bool
    merge_sha: str | None = None
    method: str
    auto_merge: bool = False
    reasons: list[str] = Field(default_factory=list)
    approvals: ApprovalState


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "(unknown)"
