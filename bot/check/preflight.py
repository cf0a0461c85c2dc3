"""The pre-flight: the same check on the commit a ChangeRequest would make, before any PR exists.

A caller that pre-flights change after change (the MCP server, an agent's loop) passes one
:class:`~bot.check.services.CheckServices` to every call: its checkov worker, loaded pack and plan cache stay warm,
while each call still clones the base afresh and runs every program it has to run in a fresh sandbox.

The would-be commit is built from git objects in a scratch clone that borrows the base's objects (``--shared``,
no checkout): the request's files byte for byte as UTF-8 (no attribute filters, as a forge's contents API writes
them), the mode a rewritten file already has, and the evidence record; no work tree is written or scanned.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from bot.check.evaluate import CheckRequest, deny_reasons, run_check
from bot.check.services import CheckServices
from bot.errors import UserError
from bot.plan import Sandbox
from bot.policy.checkov import CheckovWorker
from bot.records import ChangeRequest, EvidenceRecord, Verdict
from bot.trust.conventions import commit_message, decision_record_path
from bot.trust.gitenv import commit_env, isolated_git_env

_FILE_MODES = ("100644", "100755")
# What git needs from the caller's environment; never a GIT_* variable naming another repository or index.
_INHERITED = ("PATH", "LANG", "TMPDIR")


def preflight_verdict(
    base_repo: Path,
    repo_name: str,
    request: ChangeRequest,
    record: EvidenceRecord,
    *,
    checkov: CheckovWorker | None = None,
    sandbox: Sandbox | None = None,
    services: CheckServices | None = None,
) -> Verdict:
    """Commit the request and its evidence on a scratch clone of the base branch and check it, as CI would.
    ``services``: what stays warm between calls (None: a fresh checkov worker, no plan cache)."""
    with tempfile.TemporaryDirectory(prefix="glassbox-preflight-") as tmp:
        work = Path(tmp) / "work"
        clone = ["clone", "--quiet", "--shared", "--no-checkout", "--branch", request.base_branch, "--"]
        _git(Path(tmp), *clone, str(base_repo), str(work))
        base_sha = _git(work, "rev-parse", "--verify", "HEAD^{commit}").strip()
        head_sha = would_be_commit(work, base_sha, request, record)
        result = run_check(
            CheckRequest(
                repo_path=work,
                base=base_sha,
                head=head_sha,
                repo=repo_name,
                author=request.agent_id,
                checkov=checkov,
                sandbox=sandbox or Sandbox(),
                services=services,
            )
        )
        return result.verdict


def would_be_commit(work: Path, base_sha: str, request: ChangeRequest, record: EvidenceRecord) -> str:
    """The commit ``request`` and its evidence ``record`` make on ``base_sha``, written into the repository at
    ``work`` from objects alone; its SHA."""
    files: dict[str, bytes | None] = {
        c.path: None if c.delete else (c.content or "").encode("utf-8") for c in request.changes
    }
    evidence = decision_record_path(request.correlation_id, request.requested_at)
    files[evidence] = (record.model_dump_json(indent=2) + "\n").encode("utf-8")
    if any("\0" in path for path in files):
        raise UserError("changes: a path contains a NUL character")
    existing: dict[str, tuple[str, str]] = {}
    listing = _git(work, "ls-tree", "-z", base_sha, "--", *files)
    for item in filter(None, listing.split("\0")):
        meta, path = item.split("\t", 1)
        mode, kind, _ = meta.split(" ")
        existing[path] = (mode, kind)
    records = []
    for path, data in files.items():
        mode, kind = existing.get(path, ("100644", "blob"))
        if kind != "blob" or mode not in (*_FILE_MODES, "120000"):
            raise UserError(f"changes: {path} is a directory or a submodule at the base; name a file")
        if data is None:
            if path in existing:
                records.append(f"0 {'0' * 40}\t{path}")  # a file that is not there is already deleted
            continue
        blob = _git(work, "hash-object", "-w", "--no-filters", "--stdin", input=data).strip()
        records.append(f"{mode if mode in _FILE_MODES else '100644'} {blob}\t{path}")
    with tempfile.TemporaryDirectory(prefix="glassbox-preflight-index-") as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(work, "read-tree", base_sha, env=index)
        entries = "".join(f"{r}\0" for r in records).encode("utf-8")
        _git(work, "update-index", "-z", "--index-info", input=entries, env=index)
        tree = _git(work, "write-tree", env=index).strip()
    env = commit_env(
        request.agent_id,
        f"{request.agent_id}@agents.glassbox",
        committer=("glassbox-preflight", "preflight@glassbox"),
    )
    message = commit_message(record).encode("utf-8")
    return _git(work, "commit-tree", tree, "-p", base_sha, "-F", "-", input=message, env=env).strip()


def _git(cwd: Path, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
    """One git command in ``cwd`` with the host's configuration kept out; its stdout (a failure: a UserError)."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        env={
            **{k: os.environ[k] for k in _INHERITED if k in os.environ},
            **isolated_git_env(),
            "GIT_LITERAL_PATHSPECS": "1",
            **(env or {}),
        },
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        cause = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"pre-flight: git {args[0]} failed: {cause[-1] if cause else proc.returncode}")
    return proc.stdout.decode("utf-8", "replace")


def preflight_for(
    base_repo: Path,
    repo_name: str,
    *,
    checkov: CheckovWorker | None = None,
    sandbox: Sandbox | None = None,
    services: CheckServices | None = None,
) -> Callable[[ChangeRequest, EvidenceRecord], list[str]]:
    """A pre-flight for ``propose``: the deny reasons of :func:`preflight_verdict` (empty when it would pass)."""

    def run(request: ChangeRequest, record: EvidenceRecord) -> list[str]:
        verdict = preflight_verdict(
            base_repo, repo_name, request, record, checkov=checkov, sandbox=sandbox, services=services
        )
        return deny_reasons(verdict)

    return run
