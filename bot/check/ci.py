"""The CI step: judge a PR's head, sign the verdict as the CI identity, record it, file the attestation and publish
the ``glassbox/check`` status and check run. The one path the CLI, the workflows and the demo call.

The commit status is what the merge gate trusts (set by the CI identity, see :mod:`bot.approvals.service`); the
check run of the same name is for people: the verdict as its conclusion, the summary, and one annotation per
finding that can be placed on a file the change touches (see :func:`annotations_for`).
"""

from __future__ import annotations

import logging
import posixpath
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.check.evaluate import CheckRequest, CheckResult, deny_ids, run_check
from bot.check.services import CheckServices
from bot.errors import ForgeError
from bot.forge.model import (
    MAX_ANNOTATION_TITLE_CHARS,
    MAX_CHECK_OUTPUT_CHARS,
    AnnotationLevel,
    ChangedFile,
    CheckAnnotation,
    CheckConclusion,
    CheckRun,
    FileStatus,
    PullRequest,
    StatusState,
)
from bot.forge.port import Forge
from bot.markdown import cell
from bot.plan.runner import quote_untrusted
from bot.policy.checkov import CheckovWorker
from bot.policy.render import artifact_for
from bot.records import Actor, ActorKind, Finding, FindingStatus, Outcome, Subject, Verdict, VerdictResult, digest
from bot.trust.attestations import sign_verdict, store_attestation
from bot.trust.conventions import CHECK_CONTEXT
from bot.trust.keys import Signer
from bot.trust.ledger import Ledger


def attest_and_record(result: CheckResult, *, signer: Signer | None, ledger: Ledger | None) -> CheckResult:
    """Sign the verdict as the CI identity and append the `check` ledger event (same fields allow or deny)."""
    v = result.verdict
    if signer is not None:
        result.attestation = sign_verdict(v, signer)
    if ledger is not None and signer is not None:
        passed = v.result is VerdictResult.PASSED
        ledger.append(
            signer,
            actor=Actor(id=signer.identity, kind=ActorKind.CI),
            action="check",
            outcome=Outcome.ALLOW if passed else (Outcome.ERROR if v.errors else Outcome.DENY),
            reason=f"{v.result.value} at risk {v.risk.value}"
            + ("" if passed else ": " + "; ".join(v.errors or deny_ids(v))),
            correlation_id=v.change.correlation_id,
            subject=Subject(repo=v.change.repo, pr=v.change.pr, commit=v.change.head_commit, tree=v.change.head_tree),
            details={
                "result": v.result.value,
                "risk": v.risk.value,
                "risk_reasons": v.risk_reasons,
                "findings": [
                    {"engine": f.engine, "rule_id": f.rule_id, "severity": f.severity.value, "status": f.status.value}
                    for f in v.findings
                ],
                "plan_digest": v.change.plan_digest,
                "policy_pack_digest": v.change.policy_pack_digest,
                "evidence_digest": v.change.evidence_digest,
                "errors": v.errors,
            },
        )
    return result


def check_pull_request(
    forge: Forge,
    repo_path: Path,
    pr_number: int,
    *,
    signer: Callable[[], Signer],
    ledger: Ledger,
    store: Path,
    checkov: CheckovWorker | None = None,
    comment: bool = True,
    services: CheckServices | None = None,
) -> CheckResult:
    """What the check workflow does: judge the PR's head, sign and file the verdict, publish ``glassbox/check``.

    ``signer`` loads the CI key; it is called only after every sandbox of the check has exited, so no PR code
    ever runs while the key is in this process.
    """
    pr = forge.get_pull_request(pr_number)
    result = run_check(pr_check_request(forge, pr, repo_path, checkov=checkov, services=services))
    attest_and_record(result, signer=signer(), ledger=ledger)
    assert result.attestation is not None
    store_attestation(store, pr.head_sha, result.attestation)
    publish(forge, result, pr_number if comment else None)
    return result


def pr_check_request(forge: Forge, pr: PullRequest, repo_path: Path, **kwargs: Any) -> CheckRequest:
    """What the forge says about who wrote ``pr`` (never a flag, never the change's own claims): its author, every
    account that pushed to its branch, its draft state, who marked it ready, and each author's open PRs."""
    pushers = [a.actor for a in forge.list_ref_activity(pr.head_ref) if a.actor]
    ready = [e.actor for e in forge.list_issue_events(pr.number) if e.event == "ready_for_review" and e.actor]
    opened = Counter(p.author for p in forge.list_open_pull_requests())
    return CheckRequest(
        repo_path=repo_path,
        base=pr.base_sha,
        head=pr.head_sha,
        repo=forge.repo,
        pr=pr.number,
        author=pr.author,
        pushers=tuple(dict.fromkeys(pushers)),
        draft=pr.draft,
        readied_by=tuple(dict.fromkeys(ready)),
        open_pull_requests=dict(opened),
        **kwargs,
    )


log = logging.getLogger(__name__)

ANNOTATION_MESSAGE_LIMIT = 2000
"""Characters of a finding's message an annotation shows (the summary has it whole)."""
MAX_ANNOTATIONS = 500
"""Annotations one check run gets at most (ten requests); the summary lists every finding."""
_LEVEL = {FindingStatus.DENY: AnnotationLevel.FAILURE, FindingStatus.WARN: AnnotationLevel.WARNING}


def status_for(result: VerdictResult) -> StatusState:
    return StatusState.SUCCESS if result is VerdictResult.PASSED else StatusState.FAILURE


def conclusion_for(result: VerdictResult) -> CheckConclusion:
    """PASSED is success, FAILED is failure, whether findings denied the change or the check could not finish
    (I5). Not action_required: nothing done on the check run resolves a verdict, only a new commit does."""
    return CheckConclusion.SUCCESS if result is VerdictResult.PASSED else CheckConclusion.FAILURE


def _headline(verdict: Verdict) -> str:
    return f"{verdict.result.value}, risk {verdict.risk.value}"


def _annotated_path(finding: Finding, present: Sequence[str]) -> str | None:
    """Where a finding is annotated: the changed file it names, else for a Pulumi resource the changed file of its
    project (the program when it changed, else the first changed file beside it); None when no changed file
    fits (a TF address, a path the change does not keep, nothing named): the finding is in the summary only."""
    target = artifact_for(finding.resource)
    if target in present:
        return target
    if finding.resource and finding.resource.startswith("urn:pulumi:") and target != artifact_for(None):
        project = posixpath.dirname(target) + "/"
        return next((p for p in present if p.startswith(project)), None)
    return None


def annotations_for(verdict: Verdict, changed: Sequence[ChangedFile]) -> list[CheckAnnotation]:
    """One annotation per finding that has a file to go on (see :func:`_annotated_path`), on its first line:
    findings know resources, not lines. Messages can carry text from the change, so they are shown truncated and
    quoted; at most :data:`MAX_ANNOTATIONS`."""
    present = sorted(f.path for f in changed if f.status is not FileStatus.REMOVED)
    out = []
    for f in verdict.findings:
        path = _annotated_path(f, present)
        if path is None:
            continue
        message = quote_untrusted(f.message, ANNOTATION_MESSAGE_LIMIT)
        if f.resource:
            message += f"\nresource: {quote_untrusted(f.resource)}"
        if f.waiver is not None:
            message += f"\nwaived until {f.waiver.expires:%Y-%m-%d} by {quote_untrusted(f.waiver.approver)}"
        out.append(
            CheckAnnotation(
                path=path,
                start_line=1,
                end_line=1,
                level=_LEVEL.get(f.status, AnnotationLevel.NOTICE),
                message=message,
                title=cell(f"{f.rule_id} ({f.engine}, {f.severity.value}, {f.status.value})")[
                    :MAX_ANNOTATION_TITLE_CHARS
                ],
            )
        )
    return out[:MAX_ANNOTATIONS]


def check_run_summary(result: CheckResult) -> str:
    """The check's summary, cut at a line to fit the check run (the whole summary stays in ``summary.md``)."""
    summary = result.summary
    if len(summary) <= MAX_CHECK_OUTPUT_CHARS:
        return summary
    note = f"\n\n… {len(summary) - MAX_CHECK_OUTPUT_CHARS} more characters: see the check's summary.md"
    cut = summary[: MAX_CHECK_OUTPUT_CHARS - len(note)]
    return (cut.rsplit("\n", 1)[0] if "\n" in cut else cut) + note


def publish_check_run(forge: Forge, result: CheckResult) -> CheckRun | None:
    """The ``glassbox/check`` check run on the verdict's head commit; None (and a warning) when the forge or the
    token cannot make check runs (GitHub lets only GitHub Apps create them), since the status stands anyway."""
    verdict = result.verdict
    change = verdict.change
    try:
        changed = forge.compare(change.base_commit, change.head_commit)
    except ForgeError as exc:
        log.warning("glassbox/check check run: no annotations, the changed files could not be read: %s", exc)
        changed = []
    try:
        return forge.create_check_run(
            change.head_commit,
            name=CHECK_CONTEXT,
            conclusion=conclusion_for(verdict.result),
            title=_headline(verdict),
            summary=check_run_summary(result),
            annotations=annotations_for(verdict, changed),
            external_id=digest(verdict),
        )
    except ForgeError as exc:
        if exc.status not in (403, 404, 501):
            raise
        log.warning("glassbox/check check run not created (the commit status stands): %s", exc)
        return None


def publish(forge: Forge, result: CheckResult, pr_number: int | None) -> CheckRun | None:
    """The ``glassbox/check`` status on the verdict's head commit (what the merge gate trusts), the check run of the
    same name, and the summary as a comment on ``pr_number``. Returns the check run, if the forge made one."""
    verdict = result.verdict
    forge.set_status(
        verdict.change.head_commit,
        context=CHECK_CONTEXT,
        state=status_for(verdict.result),
        description=_headline(verdict)[:140],
    )
    run = publish_check_run(forge, result)
    if pr_number is not None:
        forge.comment(pr_number, result.summary)
    return run
