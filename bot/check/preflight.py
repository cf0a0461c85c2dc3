"""The pre-flight: the same check on the commit a ChangeRequest would make, before any PR exists."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import git

from bot.check.evaluate import CheckRequest, deny_reasons, run_check
from bot.plan import Sandbox
from bot.policy.checkov import CheckovWorker
from bot.records import ChangeRequest, EvidenceRecord, Verdict
from bot.trust.conventions import commit_message, decision_record_path
from bot.trust.gitenv import commit_env


def preflight_verdict(
    base_repo: Path,
    repo_name: str,
    request: ChangeRequest,
    record: EvidenceRecord,
    *,
    checkov: CheckovWorker | None = None,
    sandbox: Sandbox | None = None,
) -> Verdict:
    """Commit the request and its evidence on a scratch clone of the base branch and check it, as CI would."""
    with tempfile.TemporaryDirectory(prefix="glassbox-preflight-") as tmp:
        work = Path(tmp) / "work"
        clone = git.Repo.clone_from(str(base_repo), str(work), branch=request.base_branch)
        base_sha = clone.head.commit.hexsha
        for change in request.changes:
            target = work / change.path
            if change.delete:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(change.content or "", encoding="utf-8")
        evidence_file = work / decision_record_path(request.correlation_id, request.requested_at)
        evidence_file.parent.mkdir(parents=True, exist_ok=True)
        evidence_file.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
        clone.git.add("-A")
        env = commit_env(
            request.agent_id,
            f"{request.agent_id}@agents.glassbox",
            committer=("glassbox-preflight", "preflight@glassbox"),
        )
        clone.git.commit("--no-verify", "--no-gpg-sign", "-m", commit_message(record), env=env)
        result = run_check(
            CheckRequest(
                repo_path=work,
                base=base_sha,
                head="HEAD",
                repo=repo_name,
                author=request.agent_id,
                checkov=checkov,
                sandbox=sandbox or Sandbox(),
            )
        )
        return result.verdict


def preflight_for(
    base_repo: Path, repo_name: str, *, checkov: CheckovWorker | None = None, sandbox: Sandbox | None = None
) -> Callable[[ChangeRequest, EvidenceRecord], list[str]]:
    """A pre-flight for ``propose``: the deny reasons of :func:`preflight_verdict` (empty when it would pass)."""

    def run(request: ChangeRequest, record: EvidenceRecord) -> list[str]:
        return deny_reasons(preflight_verdict(base_repo, repo_name, request, record, checkov=checkov, sandbox=sandbox))

    return run
