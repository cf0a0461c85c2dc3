"""Shared pieces for the hostile-input suite: one governed forge per module, a fresh ledger per case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import git
import pytest

from bot.check.evaluate import CheckRequest, run_check
from bot.errors import Denied
from bot.policy.checkov import CheckovWorker
from bot.propose import Proposal, ProposeContext, build_evidence, commit_message, evidence_path, propose
from bot.records import AuditEvent, ChangeRequest, Outcome, Verdict
from bot.registry import load_registry
from bot.trust.conventions import CHECK_CONTEXT
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger
from tests.factories import verdict_data
from tests.flow_helpers import REPO, Flow, governed_source
from tests.forge_helpers import ForgeEnv

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def admin(flow: Flow) -> ForgeEnv:
    """The forge's admin endpoints (fault plans, protection) for a flow."""
    return ForgeEnv(data=flow.data, url=flow.url, tokens=flow.tokens, stop=lambda: None, log=None)  # type: ignore[arg-type]


def context(flow: Flow, agent: str, ledger_dir: Path, **kwargs: Any) -> ProposeContext:
    """A propose context on the shared forge with its own ledger: budgets never leak between cases."""
    ctx = flow.propose_context(agent, **kwargs)
    ctx.ledger = Ledger(ledger_dir / "ledger.jsonl")
    return ctx


def refused(req: ChangeRequest, ctx: ProposeContext) -> tuple[list[str], AuditEvent]:
    """Propose ``req``, expect a refusal; return its reasons and the ledger event that recorded it (I6)."""
    with pytest.raises(Denied) as info:
        propose(req, ctx)
    events = ctx.ledger.find(correlation_id=req.correlation_id)
    assert events, "a refusal must write a ledger event"
    last = events[-1]
    assert last.action == "propose" and last.outcome is Outcome.DENY
    assert last.details["reasons"] == info.value.reasons and last.details["result"] == "refused"
    return info.value.reasons, last


def proposal_commits(flow: Flow, proposal: Proposal) -> list[git.Commit]:
    return list(git.Repo(flow.bare).iter_commits(f"main..{proposal.branch}"))


def fabricated_verdict(flow: Flow, proposal: Proposal, **overrides: Any) -> Verdict:
    """A PASS verdict for a proposal's head, as the CI would sign it (no plan run: merge never recomputes one)."""
    head = git.Repo(flow.bare).commit(proposal.head_sha)
    data = verdict_data(risk="low", findings=[], risk_reasons=["dev configuration only"])
    data["change"] = {
        **data["change"],
        "repo": REPO,
        "pr": proposal.pr_number,
        "correlation_id": proposal.correlation_id,
        "base_commit": head.parents[0].hexsha,
        "head_commit": head.hexsha,
        "head_tree": head.tree.hexsha,
        "evidence_digest": proposal.evidence_digest,
    }
    data.update(overrides)
    return Verdict.model_validate(data)


def attest(flow: Flow, verdict: Verdict, *, head: str | None = None, status: bool = True) -> dict[str, Any]:
    """Sign ``verdict`` with the CI key, store it for ``head`` and publish glassbox/check as the CI."""
    from bot.forge.model import StatusState
    from bot.trust.attestations import sign_verdict, store_attestation

    envelope = sign_verdict(verdict, flow.signer("glassbox-ci"))
    target = head or verdict.change.head_commit
    store_attestation(flow.attestations, target, envelope)
    if status:
        flow.forge("glassbox-ci").set_status(target, context=CHECK_CONTEXT, state=StatusState.SUCCESS)
    return envelope


def unprotect(flow: Flow) -> None:
    """What an administrator does to merge without the gate."""
    admin(flow).admin(
        "PUT",
        f"/api/v3/repos/{REPO}/branches/main/protection",
        {
            "required_status_checks": None,
            "enforce_admins": False,
            "required_pull_request_reviews": None,
            "restrictions": None,
        },
    )


GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}


class Estate:
    """A governed repository with one head commit per request, each carrying its evidence like propose does."""

    def __init__(self, root: Path, worker: CheckovWorker | None) -> None:
        self.src = governed_source(root)
        self.repo = git.Repo.init(self.src, initial_branch="main")
        self.repo.git.add("-A")
        self.repo.git.commit("--no-gpg-sign", "-m", "base", env=GIT_ENV)
        self.base = self.repo.head.commit.hexsha
        self.registry = load_registry(self.src / "registry")
        self.keys = root / "keys"
        self.worker = worker
        self._signers: dict[str, Signer] = {}

    def commit_files(self, files: dict[str, str | None], message: str, parent: str | None = None) -> str:
        """A commit on the base (or ``parent``): path → new content, or None to delete."""
        self.repo.git.checkout("-q", "-B", f"human-{len(list(self.repo.heads))}", parent or self.base)
        for path, content in files.items():
            if content is None:
                self.repo.git.rm("-q", path)
            else:
                (self.src / path).parent.mkdir(parents=True, exist_ok=True)
                (self.src / path).write_text(content)
        self.repo.git.add("-A")
        self.repo.git.commit("--no-gpg-sign", "-m", message, env=GIT_ENV)
        return self.repo.head.commit.hexsha

    def commit(self, req: ChangeRequest, extra_message: str = "") -> str:
        signer = self._signers.get(req.agent_id) or generate_key(self.keys, req.agent_id)
        self._signers[req.agent_id] = signer
        self.repo.git.checkout("-q", "-B", f"head-{req.correlation_id}", self.base)
        for change in req.changes:
            assert change.content is not None
            (self.src / change.path).write_text(change.content)
        record = build_evidence(req, self.registry, "sha256:" + "0" * 64, signer)
        target = self.src / evidence_path(req)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(record.model_dump_json(indent=2) + "\n")
        self.repo.git.add("-A")
        self.repo.git.commit("--no-gpg-sign", "-m", commit_message(record) + extra_message, env=GIT_ENV)
        return self.repo.head.commit.hexsha

    def check(self, head: str, author: str) -> Verdict:
        request = CheckRequest(repo_path=self.src, base=self.base, head=head, author=author, checkov=self.worker)
        return run_check(request).verdict


def push_file(flow: Flow, identity: str, branch: str, path: str, content: str) -> str:
    """``identity`` adds a commit writing ``path`` to ``branch`` with its own token, straight through the Git Data
    API (as `git push` would): no propose, no evidence. Returns the new head."""
    api = admin(flow)
    ref = api.ok(identity, "GET", f"/repos/{REPO}/git/ref/heads/{branch}")
    parent = ref["object"]["sha"]
    base_tree = api.ok(identity, "GET", f"/repos/{REPO}/git/commits/{parent}")["tree"]["sha"]
    entry = {"path": path, "mode": "100644", "type": "blob", "content": content}
    tree = api.ok(identity, "POST", f"/repos/{REPO}/git/trees", {"base_tree": base_tree, "tree": [entry]})["sha"]
    body = {"message": f"Update {path}", "tree": tree, "parents": [parent]}
    commit = api.ok(identity, "POST", f"/repos/{REPO}/git/commits", body)["sha"]
    api.ok(identity, "PATCH", f"/repos/{REPO}/git/refs/heads/{branch}", {"sha": commit})
    return str(commit)
