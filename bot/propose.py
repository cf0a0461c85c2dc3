"""Propose: an agent's ChangeRequest becomes a signed PR carrying its evidence record, or a clear refusal.

This is an agent's only write path. In order: build the (redacted) evidence record, check the agent's scope
(collecting every reason, not only the first), optionally run the pre-flight check, then open the PR — one
branch ``glassbox/<agent>/<correlation-id>``, one SSH-signed commit holding the change and the evidence at
``.glassbox/decisions/<yyyy>/<mm>/<correlation-id>.json``. Every outcome, allow or deny, appends a ledger
event with the same fields (I6). Re-running a request returns the PR it already opened.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import git

from bot import __version__, scope
from bot.errors import Denied, GlassboxError, ValidationFailed
from bot.forge.model import GitIdentity, PullRequest, PullState
from bot.forge.port import Forge
from bot.markdown import render as render_markdown
from bot.records import (
    Actor,
    ActorKind,
    Autonomy,
    ChangeRequest,
    EvidenceRecord,
    FileChange,
    Outcome,
    Record,
    Subject,
    canonical_json,
    summarize_request,
    tree_conflicts,
)
from bot.redaction import find_secrets, redact_text, redact_tree
from bot.registry import Registry, is_governance_path
from bot.trust.conventions import agent_branch, commit_message, decision_record_path
from bot.trust.gitsign import ssh_sign
from bot.trust.keys import Signer
from bot.trust.ledger import Ledger

MAX_FILE_BYTES = 256 * 1024
EVIDENCE_MARKER = re.compile(r"<!-- glassbox:evidence (sha256:[0-9a-f]{64}) request (sha256:[0-9a-f]{64}) -->")


class ProposalOutcome(StrEnum):
    OPENED = "opened"
    EXISTING = "existing"


class Proposal(Record):
    correlation_id: str
    agent_id: str
    outcome: ProposalOutcome
    pr_number: int
    pr_url: str
    branch: str
    head_sha: str
    draft: bool
    evidence_path: str
    evidence_digest: str


PreflightFn = Callable[[ChangeRequest, EvidenceRecord], Sequence[str]]
"""Runs the check on the would-be change; returns the deny reasons (empty when it would pass)."""


@dataclass
class ProposeContext:
    registry: Registry
    forge: Forge
    ledger: Ledger
    signer: Signer
    base_repo: Path
    policy_pack_digest: str
    preflight: PreflightFn | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    max_file_bytes: int = MAX_FILE_BYTES


# --------------------------------------------------------------------------------------------------
# evidence


def branch_name(request: ChangeRequest) -> str:
    return agent_branch(request.agent_id, request.correlation_id)


def evidence_path(request: ChangeRequest) -> str:
    return decision_record_path(request.correlation_id, request.requested_at)


def request_digest(request: ChangeRequest) -> str:
    """Digest of the full request, contents included: two different requests never share a branch."""
    return "sha256:" + hashlib.sha256(canonical_json(request)).hexdigest()


def build_evidence(
    request: ChangeRequest, registry: Registry, policy_pack_digest: str, signer: Signer
) -> EvidenceRecord:
    """The sealed evidence record, every secret redacted with a salt derived from the signer's key.

    ed25519 signatures are deterministic, so the salts — and so the record and the commit — are the same
    for the same request, which lets a retry reproduce exactly what a crashed attempt wrote.
    """
    summary = summarize_request(request).model_dump(mode="json")

    def salt(path: str, kind: str) -> str:
        msg = f"glassbox-redaction-salt\0{request.correlation_id}\0{path}\0{kind}".encode()
        return hashlib.sha256(signer.sign(msg)).hexdigest()[:32]

    clean, redactions = redact_tree(summary, "request", salt_fn=salt)
    record = EvidenceRecord.model_validate(
        {
            "request": clean,
            "bot_version": __version__,
            "registry_digest": registry.digest,
            "policy_pack_digest": policy_pack_digest,
            "redactions": [r.model_dump() for r in redactions],
        }
    )
    return record.sealed()


# --------------------------------------------------------------------------------------------------
# scope


def _tree_conflicts(request: ChangeRequest, ctx: ProposeContext) -> list[str]:
    """The request's writes against each other and against the base tree's files it keeps."""
    try:
        head = git.Repo(ctx.base_repo).commit(f"refs/heads/{request.base_branch}")
    except (git.BadName, ValueError, git.exc.GitError):
        return []  # the scope check names a missing base branch
    deleted = {c.path for c in request.changes if c.delete}
    blobs = (b for b in head.tree.traverse() if isinstance(b, git.Blob))
    kept = (str(b.path) for b in blobs if str(b.path) not in deleted)
    return tree_conflicts((c.path for c in request.changes if not c.delete), kept)


def scope_reasons(request: ChangeRequest, ctx: ProposeContext) -> list[str]:
    """Every reason the request is outside the agent's scope; empty when it is inside.

    The agent, path, project and stack rules are :mod:`bot.scope`'s, the ones the check applies to every PR an
    agent wrote or pushed to; what only a request has (its requester, sizes, contents, base commit, budgets)
    is checked here.
    """
    reg = ctx.registry
    agent, reasons = scope.agent_reasons(reg, request.agent_id)
    if agent is None:
        return reasons
    if not reg.requester_allowed(agent, request.requested_by.id):
        reasons.append(f"requester {request.requested_by.id!r} may not ask agent {agent.id!r} for changes")

    repo = git.Repo(ctx.base_repo)
    try:
        head = repo.commit(f"refs/heads/{request.base_branch}")
    except (git.BadName, ValueError):
        return [*reasons, f"base branch {request.base_branch!r} does not exist in {request.repo}"]

    for change in request.changes:
        path = change.path
        reasons += scope.path_reasons(agent, head, path, delete=change.delete, base_name=request.base_branch)
        if change.content is not None and not scope.path_problems(path) and not is_governance_path(path):
            raw = change.content.encode("utf-8")
            if "\x00" in change.content:
                reasons.append(f"file {path!r} is binary (contains NUL bytes); only text files may be proposed")
            if len(raw) > ctx.max_file_bytes:
                reasons.append(f"file {path!r} is {len(raw)} bytes, over the {ctx.max_file_bytes}-byte limit")
            secrets = find_secrets(change.content)
            if secrets:
                kinds = ", ".join(sorted({s.kind for s in secrets}))
                reasons.append(f"file {path!r} contains a secret ({kinds}); secrets never go into the repository")
    declared = {(e.project, e.stack) for e in request.expected_changes}
    reasons += scope.project_stack_reasons(agent, head, [c.path for c in request.changes], declared)

    if request.base_commit and request.base_commit != head.hexsha:
        try:
            diff = repo.commit(request.base_commit).diff(head)
        except (git.BadName, ValueError):
            reasons.append(
                f"base_commit {request.base_commit} is unknown: re-read {request.base_branch} and re-propose"
            )
        else:
            moved = {d.a_path for d in diff} | {d.b_path for d in diff}
            stale = sorted(c.path for c in request.changes if c.path in moved)
            if stale:
                reasons.append(
                    f"stale context: {', '.join(stale)} changed on {request.base_branch} "
                    f"since {request.base_commit[:12]}; re-read the files and re-propose"
                )
    reasons += budget_reasons(request, ctx, agent.budgets.changes_per_day, agent.budgets.open_prs)
    return reasons


def budget_reasons(request: ChangeRequest, ctx: ProposeContext, per_day: int, open_prs: int) -> list[str]:
    since = ctx.now() - timedelta(days=1)
    opened = [
        e
        for e in ctx.ledger.find(since=since)
        if e.action == "propose"
        and e.outcome is Outcome.ALLOW
        and e.details.get("agent_id") == request.agent_id
        and e.details.get("result") == ProposalOutcome.OPENED.value
        and e.correlation_id != request.correlation_id
    ]
    reasons = []
    if len(opened) >= per_day:
        reasons.append(f"daily change budget spent: {len(opened)} of {per_day} changes in the last 24 hours")
    numbers = {e.subject.pr for e in opened if e.subject.pr is not None}
    still_open = [n for n in sorted(numbers) if ctx.forge.get_pull_request(n).state is PullState.OPEN]
    if len(still_open) >= open_prs:
        reasons.append(f"open-PR budget spent: {len(still_open)} of {open_prs} PRs still open")
    return reasons


# --------------------------------------------------------------------------------------------------
# the PR


def render_body(record: EvidenceRecord, req_digest: str) -> str:
    r = record.request
    return render_markdown(
        "pr_body.md.j2",
        r=r,
        rat=r.rationale,
        rub=r.rationale.confidence.rubric,
        record=record,
        record_path=record_path_from(record),
        req_digest=req_digest,
    )


def record_path_from(record: EvidenceRecord) -> str:
    return decision_record_path(record.request.correlation_id, record.request.requested_at)


def _event_details(
    request: ChangeRequest, record: EvidenceRecord, reasons: Sequence[str], **extra: Any
) -> dict[str, Any]:
    r = record.request
    return {
        "agent_id": request.agent_id,
        "requested_by": r.requested_by.id,
        "ticket": r.requested_by.ticket,
        "model": r.model.model_dump(mode="json"),
        "prompt": {
            "template_id": r.prompt.template_id,
            "template_version": r.prompt.template_version,
            "template_sha256": r.prompt.template_sha256,
        },
        "paths": [f.path for f in r.files],
        "evidence_digest": record.digest,
        "redactions": len(record.redactions),
        "tool_calls": [{"tool_id": t.tool_id, "status": t.status, "retries": t.retries} for t in r.tool_calls],
        "reasons": list(reasons),
        **extra,
    }


def _not_utf8(value: Any, path: str) -> list[str]:
    """Field paths whose text cannot be encoded as UTF-8 (a lone surrogate survives JSON decoding)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _not_utf8(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _not_utf8(v, f"{path}.{i}")]
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [path]
    return []


def _utf8_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utf8_safe(v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _redacted(reasons: Sequence[str]) -> list[str]:
    return [redact_text(r, "reason")[0] for r in reasons]


def propose(request: ChangeRequest, ctx: ProposeContext) -> Proposal:
    """Open the PR for ``request`` (or return the one already open); raise ``Denied`` with every reason."""
    bad_text = _not_utf8(request.model_dump(mode="python"), "")
    if bad_text:
        # refuse with a clear reason; the record and the event carry an escaped copy, never the raw text
        request = ChangeRequest.model_validate(_utf8_safe(request.model_dump(mode="python")))
    record = build_evidence(request, ctx.registry, ctx.policy_pack_digest, ctx.signer)
    actor = Actor(id=request.agent_id, kind=ActorKind.AGENT)
    subject = Subject(repo=request.repo)

    preflight = "not run"  # what pre-flight said, for the ledger: "not run", "passed" or "denied"

    def refuse(reasons: list[str], stage: str) -> Denied:
        # reasons quote the request (paths, stacks, requester): a secret planted there stays out (I9)
        reasons = _redacted(reasons)
        ctx.ledger.append(
            ctx.signer,
            actor=actor,
            action="propose",
            outcome=Outcome.DENY,
            reason=f"refused at {stage}: " + "; ".join(reasons),
            correlation_id=request.correlation_id,
            subject=subject,
            details=_event_details(request, record, reasons, stage=stage, result="refused", preflight=preflight),
        )
        return Denied(f"proposal {request.correlation_id} refused ({stage})", reasons)

    if bad_text:
        raise refuse([f"field {p} is not valid UTF-8 text (it holds a lone surrogate)" for p in bad_text], "input")
    reasons = []
    if ctx.signer.identity != request.agent_id:
        reasons.append(f"the key in use belongs to {ctx.signer.identity!r}, not to agent {request.agent_id!r}")
    if request.repo.casefold() != ctx.forge.repo.casefold():
        # the evidence and every ledger event name request.repo: it must be where the PR goes
        reasons.append(f"the request names repository {request.repo!r} but the forge in use is {ctx.forge.repo!r}")
    try:
        reasons += scope_reasons(request, ctx)
    except GlassboxError as exc:
        reasons.append(f"scope check failed: {exc.message}")
    except Exception as exc:  # I5: a scope check that cannot finish is a refusal, never a pass
        reasons.append(f"scope check failed unexpectedly: {type(exc).__name__}: {exc}")
    if reasons:
        raise refuse(reasons, "scope")
    conflicts = _tree_conflicts(request, ctx)
    if conflicts:
        # bad input, not a policy decision (exit 2), and still an event as thorough as any refusal
        raise ValidationFailed(
            refuse(conflicts, "tree").reasons,
            summary=f"proposal {request.correlation_id}: the changes do not form one tree",
        )
    if ctx.preflight is not None:
        try:
            findings = list(ctx.preflight(request, record))
        except GlassboxError as exc:  # I5: a pre-flight that cannot run is a deny
            findings = [f"pre-flight could not run: {exc.message}"]
        preflight = "denied" if findings else "passed"
        if findings:
            raise refuse(findings, "preflight")

    agent = ctx.registry.agent(request.agent_id)
    branch = branch_name(request)
    req_digest = request_digest(request)
    existing = ctx.forge.find_open_pull_request(branch)
    if existing is not None:
        _same_request_or_refuse(request, ctx, record, existing, req_digest)
    # Opening is idempotent on the branch: a rerun gets the existing PR back, labels made whole.

    evidence_file = evidence_path(request)
    changes = [*request.changes, _evidence_change(evidence_file, record)]
    who = GitIdentity(name=agent.display_name, email=f"{agent.id}@agents.glassbox", date=request.requested_at)
    try:
        pr = ctx.forge.open_pull_request(
            base=request.base_branch,
            branch=branch,
            title=f"[glassbox] {record.request.intent}",
            body=render_body(record, req_digest),
            changes=changes,
            labels=["glassbox", f"agent:{agent.id}"],
            draft=agent.autonomy is Autonomy.DRAFT,
            commit_message=commit_message(record),
            author=who,
            signer=lambda data: ssh_sign(ctx.signer, data),
        )
    except GlassboxError as exc:
        [cause] = _redacted([exc.message])
        ctx.ledger.append(
            ctx.signer,
            actor=actor,
            action="propose",
            outcome=Outcome.ERROR,
            reason=f"opening the PR failed: {cause}",
            correlation_id=request.correlation_id,
            subject=subject,
            details=_event_details(request, record, [cause], stage="forge", result="error", preflight=preflight),
        )
        raise
    outcome = ProposalOutcome.OPENED if existing is None else ProposalOutcome.EXISTING
    return _opened(request, ctx, record, pr, branch, outcome, preflight)


def _evidence_change(path: str, record: EvidenceRecord) -> FileChange:
    return FileChange(path=path, content=record.model_dump_json(indent=2) + "\n")


def _same_request_or_refuse(
    request: ChangeRequest, ctx: ProposeContext, record: EvidenceRecord, pr: PullRequest, req_digest: str
) -> None:
    marker = EVIDENCE_MARKER.search(pr.body)
    if marker is None or marker.group(2) != req_digest:
        reasons = [f"correlation id {request.correlation_id} already names PR #{pr.number} for a different request"]
        ctx.ledger.append(
            ctx.signer,
            actor=Actor(id=request.agent_id, kind=ActorKind.AGENT),
            action="propose",
            outcome=Outcome.DENY,
            reason=reasons[0],
            correlation_id=request.correlation_id,
            subject=Subject(repo=request.repo, pr=pr.number, commit=pr.head_sha),
            details=_event_details(request, record, reasons, stage="idempotency", result="refused"),
        )
        raise Denied(f"proposal {request.correlation_id} refused (idempotency)", reasons)


def _opened(
    request: ChangeRequest,
    ctx: ProposeContext,
    record: EvidenceRecord,
    pr: PullRequest,
    branch: str,
    outcome: ProposalOutcome,
    preflight: str,
) -> Proposal:
    assert record.digest is not None
    ctx.ledger.append(
        ctx.signer,
        actor=Actor(id=request.agent_id, kind=ActorKind.AGENT),
        action="propose",
        outcome=Outcome.ALLOW,
        reason=f"PR #{pr.number} {'opened' if outcome is ProposalOutcome.OPENED else 'already open'} on {branch}",
        correlation_id=request.correlation_id,
        subject=Subject(repo=request.repo, pr=pr.number, commit=pr.head_sha),
        details=_event_details(
            request, record, [], stage="opened", result=outcome.value, draft=pr.draft, preflight=preflight
        ),
    )
    return Proposal(
        correlation_id=request.correlation_id,
        agent_id=request.agent_id,
        outcome=outcome,
        pr_number=pr.number,
        pr_url=pr.url,
        branch=branch,
        head_sha=pr.head_sha,
        draft=pr.draft,
        evidence_path=evidence_path(request),
        evidence_digest=record.digest,
    )
