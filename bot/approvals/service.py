"""The approvals service: read a PR through the forge port, run the pure gate, publish and record the result.

``evaluate_pr`` reads the PR, its reviews, changed files and commits (whose authors and committers may not
approve), CODEOWNERS from the BASE commit (a PR never judges itself), the evidence record(s) the PR adds (for
the requester and the confidence), and the verdict for the head commit; it publishes the
``glassbox/approvals`` commit status on the head and appends an ``approvals`` ledger event. ``merge_pr``
re-evaluates, then merges as the bot identity only when ``glassbox/check`` and ``glassbox/approvals`` are
green on the head (set by the CI and the bot identities), pinned to that head with ``expected_head_sha``; it
appends a ``merge`` event either way. Any exception is a deny recorded with its cause (I5), with the same
fields as an allow (I6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.approvals import codeowners as co
from bot.approvals.gate import Members, evaluate
from bot.approvals.model import ApprovalState, Blocker, BlockerKind, MergeOutcome
from bot.forge.model import ChangedFile, FileStatus, MergeMethod, PullRequest, StatusState
from bot.forge.port import Forge
from bot.records import Actor, ActorKind, EvidenceRecord, Outcome, Subject, Verdict
from bot.registry import Registry
from bot.trust.conventions import APPROVALS_CONTEXT, CHECK_CONTEXT, DECISIONS_DIR
from bot.trust.keys import Signer
from bot.trust.ledger import Ledger

VerdictLoader = Callable[[str], Verdict | None]
"""Given the head commit SHA, the verdict for exactly that commit, or None when there is none."""


def touched_paths(files: list[ChangedFile]) -> list[str]:
    """Every path a PR touches; a rename touches both its old and its new path."""
    paths: set[str] = set()
    for f in files:
        paths.add(f.path)
        if f.previous_path:
            paths.add(f.previous_path)
    return sorted(paths)


def read_codeowners(forge: Forge, base_sha: str) -> co.CodeOwners | None:
    return co.find(lambda path: forge.read_file(path, base_sha))


def decision_records_at_head(forge: Forge, files: list[ChangedFile], head_sha: str) -> list[EvidenceRecord]:
    """The decision records the PR adds, read through the forge at the head. A malformed one raises: the caller
    fails closed. Their digests are checked where they are trusted: the gate binds a record only when the verdict
    vouches for its digest and the record's own digest verifies (``_bound_evidence``)."""
    records = []
    for f in files:
        if f.path.startswith(DECISIONS_DIR) and f.path.endswith(".json") and f.status is not FileStatus.REMOVED:
            data = forge.read_file(f.path, head_sha)
            if data is not None:
                records.append(EvidenceRecord.model_validate_json(data))
    return records


def approvals_at_head(
    forge: Forge,
    registry: Registry,
    pr: PullRequest,
    verdict: Verdict | None,
    *,
    members: Members | None = None,
) -> tuple[ApprovalState, list[EvidenceRecord]]:
    """The one approvals evaluation, for the merge gate and the deploy gate alike.

    It reads everything the pure gate needs through the forge: the reviews, the changed files, the PR's commits
    (whose authors and committers never count), every push to its branch (pushers never count, and approvals
    count only after the last lifecycle event: close, reopen, base change, draft toggle, dismissal), CODEOWNERS
    from the base commit and the evidence the PR adds.
    A caller cannot leave one of them out, so an approval the merge gate discards is discarded at deploy too.
    Returns the state and the evidence records read (for the correlation id)."""
    files = forge.list_changed_files(pr.number)
    evidence = decision_records_at_head(forge, files, pr.head_sha)
    state = evaluate(
        pr=pr,
        reviews=forge.list_reviews(pr.number),
        changed_paths=touched_paths(files),
        codeowners=read_codeowners(forge, pr.base_sha),
        verdict=verdict,
        registry=registry,
        members=members,
        evidence=evidence,
        repo=forge.repo,
        commits=forge.list_pull_commits(pr.number),
        events=forge.list_issue_events(pr.number),
        pushes=forge.list_ref_activity(pr.head_ref),
    )
    return state, evidence


def _actor(signer: Signer) -> Actor:
    return Actor(id=signer.identity, kind=ActorKind.BOT)


def _details(state: ApprovalState) -> dict[str, Any]:
    return {
        "satisfied": state.satisfied,
        "auto_merge_eligible": state.auto_merge_eligible,
        "head_sha": state.head_sha,
        "risk": state.risk.value if state.risk else None,
        "required": [
            {
                "id": r.id,
                "source": r.source.value,
                "owners": r.owners,
                "count": r.count,
                "reason": r.reason,
                "approvers": r.approvers,
                "satisfied": r.satisfied,
            }
            for r in state.required
        ],
        "counted": [c.model_dump(mode="json") for c in state.counted],
        "discarded": [
            {"review_id": d.review_id, "user": d.user, "state": d.state, "reason": d.reason.value, "detail": d.detail}
            for d in state.discarded_with_reason
        ],
        "blocking": [b.model_dump(mode="json") for b in state.blocking],
    }


def _error_state(forge: Forge, pr_number: int, pr: PullRequest | None, exc: BaseException) -> ApprovalState:
    cause = f"{type(exc).__name__}: {exc}"
    return ApprovalState(
        repo=_repo_of(forge),
        pr=pr_number,
        head_sha=pr.head_sha if pr else None,
        base_sha=pr.base_sha if pr else None,
        author=pr.author if pr else None,
        blocking=[Blocker(kind=BlockerKind.ERROR, detail=f"evaluation failed: {cause}")],
        satisfied=False,
        explanation=[f"evaluation failed, so approvals are NOT satisfied (I5): {cause}"],
    )


def _repo_of(forge: Forge) -> str | None:
    try:
        return forge.repo
    except Exception:  # a broken adapter must not hide the original failure
        return None


def evaluate_pr(
    forge: Forge,
    registry: Registry,
    pr_number: int,
    verdict_loader: VerdictLoader,
    ledger: Ledger,
    signer: Signer,
    *,
    members: Members | None = None,
    publish: bool = True,
) -> ApprovalState:
    """Evaluate, publish ``glassbox/approvals`` on the head and record an ``approvals`` event. Never raises
    for a problem with the PR or the forge: that is a not-satisfied state with its cause (I5)."""
    pr: PullRequest | None = None
    correlation_id: str | None = None
    try:
        pr = forge.get_pull_request(pr_number)
        verdict = verdict_loader(pr.head_sha)
        state, evidence = approvals_at_head(forge, registry, pr, verdict, members=members)
        correlation_id = (verdict.change.correlation_id if verdict else None) or (
            evidence[0].request.correlation_id if evidence else None
        )
        if publish:
            forge.set_status(
                pr.head_sha,
                context=APPROVALS_CONTEXT,
                state=StatusState.SUCCESS if state.satisfied else StatusState.FAILURE,
                description=state.status_description(),
            )
    except Exception as exc:  # I5: whatever failed, the answer is "not satisfied", recorded with its cause
        state = _error_state(forge, pr_number, pr, exc)
        publish_problem = None
        if publish and pr is not None:
            try:
                forge.set_status(
                    pr.head_sha, context=APPROVALS_CONTEXT, state=StatusState.ERROR, description="evaluation failed"
                )
            except Exception as status_exc:  # recorded; the original cause stays the reason
                publish_problem = f"{type(status_exc).__name__}: {status_exc}"
        details = _details(state) | {"error": state.blocking[0].detail, "status_publish_error": publish_problem}
        ledger.append(
            signer,
            actor=_actor(signer),
            action="approvals",
            outcome=Outcome.ERROR,
            reason=state.blocking[0].detail,
            correlation_id=correlation_id,
            subject=Subject(repo=state.repo, pr=pr_number, commit=state.head_sha),
            details=details,
        )
        return state
    ledger.append(
        signer,
        actor=_actor(signer),
        action="approvals",
        outcome=Outcome.ALLOW if state.satisfied else Outcome.DENY,
        reason=state.status_description(),
        correlation_id=correlation_id,
        subject=Subject(repo=state.repo, pr=pr_number, commit=state.head_sha),
        details=_details(state),
    )
    return state


def _status_problems(forge: Forge, registry: Registry, head: str) -> list[str]:
    """Why the required statuses on ``head`` are not green, or were not set by the identity that owns them."""
    latest = {s.context: s for s in forge.list_statuses(head)}
    problems = []
    for context, kind in ((CHECK_CONTEXT, "ci"), (APPROVALS_CONTEXT, "bot")):
        status = latest.get(context)
        if status is None:
            problems.append(f"{context} has not been reported on {head[:12]}")
        elif status.state is not StatusState.SUCCESS:
            problems.append(f"{context} is {status.state.value} on {head[:12]}: {status.description}")
        elif status.creator is not None and registry.identity_kind(status.creator.lower()) != kind:
            problems.append(f"{context} was set by {status.creator}, not by the {kind} identity")
    return problems


def merge_pr(
    forge: Forge,
    registry: Registry,
    pr_number: int,
    verdict_loader: VerdictLoader,
    ledger: Ledger,
    signer: Signer,
    *,
    method: MergeMethod = MergeMethod.SQUASH,
    members: Members | None = None,
) -> MergeOutcome:
    """Merge ``pr_number`` as the bot when the head commit is green and approved (or auto-merge eligible)."""
    state = evaluate_pr(forge, registry, pr_number, verdict_loader, ledger, signer, members=members)
    reasons: list[str] = []
    merged = False
    merge_sha: str | None = None
    outcome = Outcome.DENY
    head = state.head_sha
    if registry.identity_kind(signer.identity) != "bot":
        reasons.append(f"{signer.identity} is not the bot identity; only the bot merges (I1)")
    if not state.satisfied:
        reasons.append("approvals are not satisfied: " + state.status_description())
    try:
        if head is not None and not reasons:
            reasons.extend(_status_problems(forge, registry, head))
        if head is not None and not reasons:
            result = forge.merge(pr_number, expected_head_sha=head, method=method)
            merged, merge_sha = result.merged, result.sha
            if merged:
                outcome = Outcome.ALLOW
            else:
                reasons.append(f"the forge refused the merge: {result.message}")
    except Exception as exc:  # I5
        outcome = Outcome.ERROR
        reasons.append(f"merge failed: {type(exc).__name__}: {exc}")
    ledger.append(
        signer,
        actor=_actor(signer),
        action="merge",
        outcome=outcome,
        reason="; ".join(reasons),
        subject=Subject(repo=state.repo, pr=pr_number, commit=merge_sha),
        details={
            "method": method.value,
            "head_sha": head,
            "auto_merge": merged and state.auto_merge_eligible,
            "merged": merged,
            "approvals_satisfied": state.satisfied,
            "reasons": reasons,
        },
    )
    return MergeOutcome(
        repo=state.repo,
        pr=pr_number,
        head_sha=head,
        merged=merged,
        merge_sha=merge_sha,
        method=method.value,
        auto_merge=merged and state.auto_merge_eligible,
        reasons=reasons,
        approvals=state,
    )
