"""The approvals gate, pure: from a PR, its reviews, the touched paths, CODEOWNERS, the verdict and the
registry to an explained :class:`~bot.approvals.model.ApprovalState`. No forge, no I/O.

Required = one requirement per distinct CODEOWNERS owner set over the touched paths (last match wins), plus
the approval-matrix entry of the verdict's risk tier (merged with the verdict's own list), capped by the
author's autonomy: only an ``auto`` agent's PASSED, low-risk change at or above its confidence threshold,
with no code owners involved, may merge with no human; anything else with no requirement still needs one
human. A missing, stale or failed verdict blocks and is treated as ``critical`` for what it would require.

Which reviews count (GitHub's review model, made stricter where separation of duties asks):

- Per reviewer (logins compared case-insensitively, as GitHub does) only the LATEST review among APPROVED,
  CHANGES_REQUESTED and DISMISSED decides; a later COMMENTED review changes nothing (as on GitHub), an
  earlier decisive review is "superseded", a PENDING review was never submitted.
- An approval counts only on the PR's current head commit (I3), only by a member of a required owner set
  (teams resolved through ``members(team)`` at evaluation time), and never by the PR author, an agent, the
  requester recorded in the evidence, the CI, deploy or bot identity, or anyone who authored or committed a
  commit in the PR (the forge account linked to the commit's git author or committer; a commit with no linked
  account disqualifies nobody, and the platform's own committer, ``web-flow``, is not a person).
- A reviewer's latest CHANGES_REQUESTED blocks when the reviewer is a required owner, whatever commit it
  was left on: as on GitHub, a change request stays until that reviewer approves or it is dismissed
  (pushing new commits does not clear it). An owner who may not approve (the requester, a contributor) may
  still veto.
  Change requests from non-owners are reported, not blocking (GitHub would block on them too when the
  reviewer has write access; glassbox's gate is about owners, the forge's own protection still applies).
- A dismissed review is the reviewer's latest word: an earlier approval does not come back when a later
  review is dismissed; the reviewer approves again (stricter than GitHub's UI, never looser).
- One person's approval may count towards several requirements; within one requirement each counted
  approval is a distinct person.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from bot.approvals.codeowners import CodeOwners, Rule, owner_kind
from bot.approvals.model import (
    ApprovalState,
    Blocker,
    BlockerKind,
    CountedApproval,
    DiscardedReview,
    DiscardReason,
    Requirement,
    RequirementSource,
)
from bot.forge.model import (
    LIFECYCLE_EVENTS,
    IssueEvent,
    PullCommit,
    PullRequest,
    PullState,
    RefActivity,
    Review,
    ReviewState,
)
from bot.records import Autonomy, EvidenceRecord, FindingStatus, RiskTier, Verdict, VerdictResult
from bot.registry import Agent, AgentStatus, Registry

Members = Callable[[str], Sequence[str]]

_DECISIVE = (ReviewState.APPROVED, ReviewState.CHANGES_REQUESTED, ReviewState.DISMISSED)
_SERVICE_REASONS = {"ci": DiscardReason.CI, "deployer": DiscardReason.DEPLOYER, "bot": DiscardReason.BOT}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PLATFORM_COMMITTERS = frozenset({"web-flow"})
"""Logins the forge itself commits as (GitHub's web UI, merges, suggestions): the platform, not a person."""
_SHAS_SHOWN = 5


def _contributions(
    commits: Sequence[PullCommit], pushes: Sequence[RefActivity] = ()
) -> dict[str, dict[str, list[str]]]:
    """login (lower-case) -> role ("authored", "committed", "pushed") -> the SHAs of the PR in that role.

    Who pushed is what the forge saw, not what a commit claims: a commit under an email linked to no account is
    still its pusher's contribution."""
    out: dict[str, dict[str, list[str]]] = {}

    def add(login: str | None, role: str, sha: str) -> None:
        if not login or login.lower() in PLATFORM_COMMITTERS:
            return
        shas = out.setdefault(login.lower(), {}).setdefault(role, [])
        if sha not in shas:
            shas.append(sha)

    for c in commits:
        add(c.author, "authored", c.sha)
        add(c.committer, "committed", c.sha)
    for p in pushes:
        if p.activity_type != "branch_deletion":
            add(p.actor, "pushed", p.after)
    return out


def _lifecycle(events: Sequence[IssueEvent], registry: Registry) -> tuple[IssueEvent | None, IssueEvent | None]:
    """(the last event after which approvals count again, the agent's reopening of a PR a person closed)."""
    last: IssueEvent | None = None
    closed_by_person = False
    reopened: IssueEvent | None = None
    for e in sorted(events, key=lambda e: (e.created_at or _EPOCH, e.id)):
        if e.event not in LIFECYCLE_EVENTS:
            continue
        last = e
        kind = registry.identity_kind(e.actor or "")
        if e.event == "closed":
            closed_by_person = kind == "human"
        elif e.event == "reopened" and closed_by_person and kind != "human":
            reopened = e
    return last, reopened


def _roles(roles: dict[str, list[str]]) -> str:
    parts = []
    for role in ("authored", "committed"):
        shas = roles.get(role, [])
        if shas:
            shown = ", ".join(_short(s) for s in shas[:_SHAS_SHOWN])
            more = f" and {len(shas) - _SHAS_SHOWN} more" if len(shas) > _SHAS_SHOWN else ""
            parts.append(f"{role} {shown}{more}")
    return " and ".join(parts)


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "(none)"


# --------------------------------------------------------------------------------------------------
# requirements


def _resolve_owner(owner: str, registry: Registry, org: str | None) -> tuple[str, str] | None:
    """("team", id) or ("person", id) for a CODEOWNERS owner the registry knows; None otherwise."""
    kind = owner_kind(owner)
    if kind == "team":
        team_org, _, slug = owner[1:].partition("/")
        if org is not None and team_org.lower() != org.lower():
            return None  # GitHub only honours teams of the repository's own organisation
        team = registry.team(slug.lower())
        return ("team", team.id) if team else None
    if kind == "user":
        login = owner[1:].lower()
        return ("person", login) if registry.identity_kind(login) == "human" else None
    if kind == "email":
        person = next((p for p in registry.teams.people if p.email.lower() == owner.lower()), None)
        return ("person", person.id) if person else None
    return None


def codeowners_requirements(
    paths: Sequence[str], codeowners: CodeOwners | None, registry: Registry, org: str | None = None
) -> list[Requirement]:
    """One requirement per distinct owner set among the touched paths; unowned paths need nobody."""
    if codeowners is None:
        return []
    groups: dict[frozenset[str], tuple[list[Rule], list[str]]] = {}
    for path in paths:
        rule = codeowners.match(path)
        if rule is None or not rule.owners:
            continue
        key = frozenset(o.lower() for o in rule.owners)
        rules, grouped = groups.setdefault(key, ([], []))
        if rule not in rules:
            rules.append(rule)
        grouped.append(path)
    out: list[Requirement] = []
    for rules, grouped in groups.values():
        owners = list(rules[0].owners)
        teams: list[str] = []
        people: list[str] = []
        unresolved: list[str] = []
        for owner in owners:
            resolved = _resolve_owner(owner, registry, org)
            if resolved is None:
                unresolved.append(owner)
            elif resolved[0] == "team" and resolved[1] not in teams:
                teams.append(resolved[1])
            elif resolved[0] == "person" and resolved[1] not in people:
                people.append(resolved[1])
        where = "; ".join(f"line {r.line}: `{r.text}`" for r in rules)
        out.append(
            Requirement(
                id=f"codeowners:{rules[0].line}",
                source=RequirementSource.CODEOWNERS,
                owners=owners,
                teams=teams,
                people=people,
                unresolved=unresolved,
                count=1,
                reason=f"{codeowners.source} {where}",
                paths=sorted(grouped),
            )
        )
    return sorted(out, key=lambda r: r.id)


def matrix_requirements(risk: RiskTier, registry: Registry, verdict: Verdict | None) -> list[Requirement]:
    """The approval-matrix entry for ``risk``, merged per team (highest count) with the verdict's own list."""
    counts: dict[str, int] = {}
    reasons: dict[str, list[str]] = {}
    for need in registry.approval_matrix.tiers[risk].required:
        counts[need.team] = max(counts.get(need.team, 0), need.count)
        reasons.setdefault(need.team, []).append(f"approval matrix, risk {risk.value}: {need.count} from {need.team}")
    for extra in verdict.required_approvals if verdict else []:
        counts[extra.team] = max(counts.get(extra.team, 0), extra.count)
        reasons.setdefault(extra.team, []).append(f"verdict: {extra.count} from {extra.team} ({extra.reason})")
    out = []
    for team, count in counts.items():
        known = registry.team(team) is not None
        out.append(
            Requirement(
                id=f"matrix:{team}",
                source=RequirementSource.MATRIX,
                owners=[f"team:{team}"],
                teams=[team] if known else [],
                unresolved=[] if known else [f"team:{team}"],
                count=count,
                reason="; ".join(reasons[team]),
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# the agent and the autonomy cap


def _agent_for(pr: PullRequest, registry: Registry, evidence: Sequence[EvidenceRecord]) -> Agent | None:
    author = pr.author.lower()
    if registry.identity_kind(author) == "agent":
        return registry.find_agent(author)
    for record in evidence:
        found = registry.find_agent(record.request.agent_id)
        if found is not None:
            return found
    return None


def _bound_evidence(verdict: Verdict | None, evidence: Sequence[EvidenceRecord]) -> EvidenceRecord | None:
    """The evidence record the verdict vouches for (by digest), and only when its own digest verifies."""
    if verdict is None or verdict.change.evidence_digest is None:
        return None
    for record in evidence:
        if record.digest == verdict.change.evidence_digest and record.verify_digest():
            return record
    return None


def _auto_merge_refusals(
    *,
    agent: Agent | None,
    verdict: Verdict | None,
    verdict_ok: bool,
    registry: Registry,
    bound: EvidenceRecord | None,
    owner_reqs: Sequence[Requirement],
    pr: PullRequest,
) -> list[str]:
    """Why this PR may NOT merge without a human; empty when it may."""
    why: list[str] = []
    if agent is None:
        return ["the author is not a registered agent (only an `auto` agent's change may skip human review)"]
    if agent.autonomy is not Autonomy.AUTO:
        why.append(f"agent {agent.id} has autonomy {agent.autonomy.value}, not auto")
    if agent.status is not AgentStatus.ACTIVE:
        why.append(f"agent {agent.id} is {agent.status.value}")
    if verdict is None or not verdict_ok:
        why.append("there is no PASSED verdict for the head commit")
    elif verdict.risk is not RiskTier.LOW:
        why.append(f"risk is {verdict.risk.value}, above low")
    low = registry.approval_matrix.tiers[RiskTier.LOW]
    if not low.auto_merge:
        why.append("the approval matrix does not allow auto-merge for the low tier")
    if low.required:
        why.append("the approval matrix asks for approvals even at low risk")
    if bound is None:
        why.append("no evidence record whose digest the verdict vouches for (confidence unknown)")
    else:
        score = bound.request.rationale.confidence.score
        if score < agent.confidence_threshold:
            why.append(f"confidence {score:.2f} is below agent {agent.id}'s threshold {agent.confidence_threshold:.2f}")
    if owner_reqs:
        why.append("the change touches code-owned paths (" + ", ".join(r.id for r in owner_reqs) + ")")
    if pr.draft:
        why.append("the PR is a draft")
    return why


# --------------------------------------------------------------------------------------------------
# the gate


def evaluate(
    *,
    pr: PullRequest,
    reviews: Sequence[Review],
    changed_paths: Sequence[str],
    codeowners: CodeOwners | None,
    verdict: Verdict | None,
    registry: Registry,
    members: Members | None = None,
    evidence: Sequence[EvidenceRecord] = (),
    repo: str | None = None,
    commits: Sequence[PullCommit],
    events: Sequence[IssueEvent] = (),
    pushes: Sequence[RefActivity] = (),
) -> ApprovalState:
    """Decide whether ``pr`` has the approvals it needs at its current head commit, and explain why."""
    head = pr.head_sha
    org = repo.split("/", 1)[0] if repo else None
    member_source: Members = members if members is not None else registry.members
    member_cache: dict[str, set[str]] = {}

    def team_members(team: str) -> set[str]:
        if team not in member_cache:
            member_cache[team] = {m.lower() for m in member_source(team)}
        return member_cache[team]

    explanation: list[str] = []
    blocking: list[Blocker] = []

    # -- who wrote and who asked
    author = pr.author.lower()
    agent = _agent_for(pr, registry, evidence)
    requesters = sorted({r.request.requested_by.id.lower() for r in evidence})
    agent_ids = {a.id for a in registry.agents.agents} | {r.request.agent_id for r in evidence}
    contributors = _contributions(commits, pushes)
    moves = [p for p in pushes if p.activity_type != "branch_deletion" and p.actor]
    last_pusher = moves[-1].actor.lower() if moves and moves[-1].actor else None
    reset, reopened = _lifecycle(events, registry)

    # -- the verdict (fail closed)
    verdict_ok = False
    if verdict is None:
        blocking.append(Blocker(kind=BlockerKind.NO_VERDICT, detail=f"no verdict for head {_short(head)}"))
    elif repo is not None and verdict.change.repo.lower() != repo.lower():
        blocking.append(
            Blocker(
                kind=BlockerKind.STALE_VERDICT, detail=f"verdict is for repository {verdict.change.repo}, not {repo}"
            )
        )
    elif verdict.change.head_commit != head:
        blocking.append(
            Blocker(
                kind=BlockerKind.STALE_VERDICT,
                detail=f"verdict is for {_short(verdict.change.head_commit)}, not head {_short(head)}",
            )
        )
    elif verdict.result is not VerdictResult.PASSED:
        denies = sorted({f.rule_id for f in verdict.findings if f.status is FindingStatus.DENY})
        causes = ", ".join(denies + list(verdict.errors)) or "no reason recorded"
        blocking.append(Blocker(kind=BlockerKind.FAILED_VERDICT, detail=f"verdict FAILED: {causes}"))
    else:
        verdict_ok = True
    risk = verdict.risk if verdict is not None and verdict_ok else RiskTier.CRITICAL
    if verdict_ok:
        explanation.append(f"verdict PASSED at {_short(head)}, risk {risk.value}")
    else:
        explanation.append("no usable verdict: requirements are computed as for risk critical (fail closed)")

    # -- the PR's own state and the authoring agent
    if pr.state is not PullState.OPEN or pr.merged:
        blocking.append(Blocker(kind=BlockerKind.CLOSED, detail=f"PR #{pr.number} is not open"))
    if reopened is not None:
        blocking.append(
            Blocker(
                kind=BlockerKind.REOPENED_BY_AGENT,
                detail=f"a person closed PR #{pr.number} and {reopened.actor} reopened it: a rejection stands",
            )
        )
    if pr.draft:
        who = f" (agent {agent.id} has autonomy draft)" if agent and agent.autonomy is Autonomy.DRAFT else ""
        blocking.append(
            Blocker(kind=BlockerKind.DRAFT, detail=f"PR is a draft{who}: a human must mark it ready for review")
        )
    if agent is not None:
        if agent.status is not AgentStatus.ACTIVE:
            blocking.append(Blocker(kind=BlockerKind.AGENT, detail=f"agent {agent.id} is {agent.status.value}"))
        if agent.autonomy in (Autonomy.READ_ONLY, Autonomy.RECOMMEND):
            blocking.append(
                Blocker(
                    kind=BlockerKind.AGENT,
                    detail=f"agent {agent.id} has autonomy {agent.autonomy.value}: it may not change anything",
                )
            )

    # -- what is required
    owner_reqs = codeowners_requirements(changed_paths, codeowners, registry, org)
    if codeowners is None:
        explanation.append("no CODEOWNERS at the base commit: no code-owner requirement")
    matrix_reqs = matrix_requirements(risk, registry, verdict if verdict_ok else None)
    bound = _bound_evidence(verdict if verdict_ok else None, evidence)
    refusals = _auto_merge_refusals(
        agent=agent,
        verdict=verdict,
        verdict_ok=verdict_ok,
        registry=registry,
        bound=bound,
        owner_reqs=owner_reqs,
        pr=pr,
    )
    auto_candidate = not refusals
    required = owner_reqs + matrix_reqs
    if not required and not auto_candidate:
        required.append(
            Requirement(
                id="autonomy:human",
                source=RequirementSource.AUTONOMY,
                owners=["any person"],
                any_person=True,
                count=1,
                reason="no rule names an approver, but only an auto agent's low-risk change may merge without a human",
            )
        )
    for req in required:
        if req.unresolved and not (req.teams or req.people or req.any_person):
            blocking.append(
                Blocker(
                    kind=BlockerKind.UNRESOLVED_OWNERS,
                    detail=f"{req.id}: no owner of {', '.join(req.owners)} is known to the registry",
                )
            )
        elif req.unresolved:
            explanation.append(f"{req.id}: owners unknown to the registry are ignored: {', '.join(req.unresolved)}")

    def owner_of(login: str, req: Requirement) -> bool:
        if login in req.people:
            return True
        if any(login in team_members(t) for t in req.teams):
            return True
        return req.any_person and registry.identity_kind(login) == "human"

    def excluded(login: str) -> tuple[DiscardReason, str] | None:
        kind = registry.identity_kind(login)
        if login == author:
            return DiscardReason.AUTHOR, f"self-approval: {login} authored this PR"
        if kind == "agent" or login in agent_ids:
            return DiscardReason.AGENT, f"{login} is an agent; agents never approve (I1)"
        if login in requesters:
            return DiscardReason.REQUESTER, f"{login} requested this change (recorded in the evidence)"
        if kind in _SERVICE_REASONS:
            return _SERVICE_REASONS[kind], f"{login} is the {kind} identity; service identities never approve"
        if login == last_pusher:
            return DiscardReason.LAST_PUSHER, f"{login} pushed the head last; the last pusher never approves"
        if login in contributors:
            return (
                DiscardReason.CONTRIBUTOR,
                f"{login} {_roles(contributors[login])} in this PR; a contributor never approves their own change",
            )
        return None

    if reset is not None:
        explanation.append(
            f"approvals count from {reset.event} by {reset.actor or 'unknown'} at "
            f"{reset.created_at.isoformat() if reset.created_at else 'an unknown time'} (id {reset.id})"
        )

    if commits:
        who = "; ".join(f"{login} {_roles(roles)}" for login, roles in sorted(contributors.items()))
        explanation.append(
            f"{len(commits)} commit(s) in the PR; contributors who may not approve: {who or 'none with an account'}"
        )
        unlinked = sorted(
            {
                email or "(no email)"
                for c in commits
                for login, email in ((c.author, c.author_email), (c.committer, c.committer_email))
                if not login
            }
        )
        if unlinked:
            explanation.append(
                f"git identities linked to no forge account (they disqualify nobody): {', '.join(unlinked)}"
            )

    # -- reviews: the latest decisive review per person decides
    ordered = sorted(reviews, key=lambda r: (r.submitted_at or _EPOCH, r.id))
    latest: dict[str, Review] = {}
    for review in ordered:
        if review.state in _DECISIVE:
            latest[review.user.lower()] = review

    counted: list[CountedApproval] = []
    discarded: list[DiscardedReview] = []

    def discard(review: Review, reason: DiscardReason, detail: str) -> None:
        discarded.append(
            DiscardedReview(
                review_id=review.id,
                user=review.user,
                state=review.state.value,
                commit_id=review.commit_id,
                reason=reason,
                detail=detail,
            )
        )

    for review in ordered:
        login = review.user.lower()
        decider = latest.get(login)
        if review.state is ReviewState.PENDING:
            discard(review, DiscardReason.PENDING, "pending: never submitted")
        elif review.state is ReviewState.COMMENTED:
            discard(review, DiscardReason.COMMENT, "a comment neither approves nor blocks")
        elif decider is not None and decider.id != review.id:
            discard(
                review,
                DiscardReason.SUPERSEDED,
                f"superseded by {login}'s later review #{decider.id} ({decider.state.value})",
            )
        elif review.state is ReviewState.DISMISSED:
            discard(review, DiscardReason.DISMISSED, "dismissed")
        elif review.state is ReviewState.CHANGES_REQUESTED:
            owned = [req.id for req in required if owner_of(login, req)]
            if owned:
                on = "the head commit" if review.commit_id == head else f"commit {_short(review.commit_id)}"
                blocking.append(
                    Blocker(
                        kind=BlockerKind.CHANGES_REQUESTED,
                        detail=f"{login} requested changes on {on} as a required owner ({', '.join(owned)})",
                    )
                )
                discard(review, DiscardReason.CHANGES_REQUESTED, "changes requested by a required owner: blocks")
            else:
                discard(review, DiscardReason.CHANGES_REQUESTED, "changes requested by a non-owner: does not block")
        else:  # APPROVED, and this person's latest word
            why = excluded(login)
            if why is not None:
                discard(review, *why)
            elif reset is not None and (
                review.submitted_at is None or reset.created_at is None or review.submitted_at <= reset.created_at
            ):
                discard(
                    review,
                    DiscardReason.RESET,
                    f"given before the PR was {reset.event.replace('_', ' ')} by {reset.actor or 'unknown'}; "
                    "approvals count again from there",
                )
            elif review.commit_id != head:
                discard(
                    review,
                    DiscardReason.STALE,
                    f"stale: approved commit {_short(review.commit_id)}, not the head {_short(head)}",
                )
            else:
                towards = [req.id for req in required if owner_of(login, req)]
                if not towards:
                    wanted = ", ".join(o for req in required for o in req.owners) or "nobody"
                    discard(review, DiscardReason.NOT_OWNER, f"{login} is not in any required owner set ({wanted})")
                else:
                    counted.append(
                        CountedApproval(review_id=review.id, user=login, commit_id=head, requirements=towards)
                    )

    # -- tally per requirement: distinct people
    final: list[Requirement] = []
    for req in required:
        approvers = sorted({c.user for c in counted if req.id in c.requirements})
        done = len(approvers) >= req.count
        final.append(req.model_copy(update={"approvers": approvers, "satisfied": done}))
        state = "satisfied by " + ", ".join(approvers) if done else f"has {len(approvers)} of {req.count}"
        paths = f" for {', '.join(req.paths)}" if req.paths else ""
        explanation.append(f"{req.id}: {req.count} from {', '.join(req.owners)}{paths} ({req.reason}): {state}")
    for d in discarded:
        explanation.append(f"review #{d.review_id} by {d.user} ({d.state}) not counted: {d.detail}")
    for b in blocking:
        explanation.append(f"blocked: {b.detail}")

    eligible = auto_candidate and not blocking
    if eligible:
        explanation.append("auto-merge eligible: auto agent, PASSED at low risk, confidence at or above threshold")
    else:
        why_not = refusals or ["something blocks the PR"]
        explanation.append("not auto-merge eligible: " + "; ".join(why_not))
    satisfied = not blocking and all(r.satisfied for r in final)
    explanation.append("approvals satisfied" if satisfied else "approvals NOT satisfied")
    return ApprovalState(
        repo=repo,
        pr=pr.number,
        head_sha=head,
        base_sha=pr.base_sha,
        author=pr.author,
        agent_id=agent.id if agent else None,
        requesters=requesters,
        risk=verdict.risk if verdict is not None and verdict_ok else None,
        verdict_result=verdict.result if verdict is not None else None,
        codeowners_source=codeowners.source if codeowners else None,
        codeowners_problems=[f"{codeowners.source}:{p.line}: {p.message}" for p in codeowners.problems]
        if codeowners
        else [],
        required=final,
        counted=counted,
        discarded_with_reason=discarded,
        blocking=blocking,
        satisfied=satisfied,
        auto_merge_eligible=eligible,
        explanation=explanation,
    )
