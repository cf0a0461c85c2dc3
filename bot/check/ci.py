"""The CI step: judge a PR's head, sign the verdict as the CI identity, record it, file the attestation and publish
the ``glassbox/check`` status. The one path the CLI, the workflows and the demo call."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.check.evaluate import CheckRequest, CheckResult, deny_ids, run_check
from bot.forge.model import PullRequest, StatusState
from bot.forge.port import Forge
from bot.policy.checkov import CheckovWorker
from bot.records import Actor, ActorKind, Outcome, Subject, VerdictResult
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
) -> CheckResult:
    """What the check workflow does: judge the PR's head, sign and file the verdict, publish ``glassbox/check``.

    ``signer`` loads the CI key; it is called only after every sandbox of the check has exited, so no PR code
    ever runs while the key is in this process.
    """
    pr = forge.get_pull_request(pr_number)
    result = run_check(pr_check_request(forge, pr, repo_path, checkov=checkov))
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


def status_for(result: VerdictResult) -> StatusState:
    return StatusState.SUCCESS if result is VerdictResult.PASSED else StatusState.FAILURE


def publish(forge: Forge, result: CheckResult, pr_number: int | None) -> None:
    """The ``glassbox/check`` status on the verdict's head commit, and the summary as a comment on ``pr_number``."""
    verdict = result.verdict
    forge.set_status(
        verdict.change.head_commit,
        context=CHECK_CONTEXT,
        state=status_for(verdict.result),
        description=f"{verdict.result.value}, risk {verdict.risk.value}"[:140],
    )
    if pr_number is not None:
        forge.comment(pr_number, result.summary)
