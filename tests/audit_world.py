"""A small governed repository and its ledger, built by hand with real git and real signatures: a governed
merge (checked, approved, attested, merged by the bot), and helpers for what happens outside the path — a PR
merged past the gate, a direct push, a deploy with or without a break-glass grant."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git

from bot.records import Actor, ActorKind, Outcome, Subject, Verdict
from bot.trust.attestations import sign_verdict, store_attestation
from bot.trust.gitenv import commit_env
from bot.trust.keys import Signer
from bot.trust.ledger import Ledger
from tests.factories import registry_with_keys, verdict_data

IDENTITIES = {
    "glassbox-bot": (ActorKind.BOT, ["ledger-signer"]),
    "glassbox-ci": (ActorKind.CI, ["ledger-signer", "verdict-signer"]),
    "glassbox-deployer": (ActorKind.DEPLOYER, ["ledger-signer"]),
    "grace": (ActorKind.HUMAN, ["ledger-signer"]),
    "cost-optimizer": (ActorKind.AGENT, ["ledger-signer"]),
}
ENV = commit_env("Test Author", "author@example.test")


@dataclass
class World:
    root: Path
    repo_dir: Path
    ledger: Ledger
    attestations: Path
    signers: dict[str, Signer]
    governed: str = ""  # the governed merge commit
    prs: int = 1
    grants: list[str] = field(default_factory=list)

    @property
    def repo(self) -> git.Repo:
        return git.Repo(self.repo_dir)

    def event(self, who: str, action: str, outcome: Outcome = Outcome.ALLOW, **kw: Any) -> int:
        subject = Subject(**{k: kw.pop(k) for k in ("repo", "pr", "commit", "tree", "stack") if k in kw})
        reason = str(kw.pop("reason", f"{action} by {who}"))
        e = self.ledger.append(
            self.signers[who],
            actor=Actor(id=who, kind=IDENTITIES[who][0]),
            action=action,
            outcome=outcome,
            reason=reason,
            subject=subject,
            details=kw,
        )
        return e.seq

    def commit(self, files: dict[str, str], message: str, parent: str | None = None) -> str:
        """A commit with ``files`` written over ``parent``'s tree (main's head by default); main is not moved."""
        repo = self.repo
        base = parent or repo.commit("refs/heads/main").hexsha
        env = {**ENV, "GIT_INDEX_FILE": str(self.root / "index")}
        repo.git.read_tree(base, env=env)
        for path, text in files.items():
            scratch = self.root / "blob.tmp"
            scratch.write_text(text, encoding="utf-8")
            blob = repo.git.hash_object("-w", str(scratch))
            repo.git.update_index("--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = repo.git.write_tree(env=env)
        sha: str = repo.git.commit_tree(tree, "-p", base, "-m", message, env=env)
        return sha

    def advance(self, sha: str) -> None:
        self.repo.git.update_ref("refs/heads/main", sha)

    def tree(self, sha: str) -> str:
        return self.repo.commit(sha).tree.hexsha

    def pr(self, files: dict[str, str], title: str = "a change") -> tuple[int, str, str]:
        """A PR head checked by CI (check event + PASSED attestation); returns (pr, head, squash commit)."""
        number, self.prs = self.prs, self.prs + 1
        head = self.commit(files, f"{title} (head)")
        squash = self.commit(files, f"[glassbox] {title} (#{number})")
        base = self.repo.commit("refs/heads/main").hexsha
        change = {**verdict_data()["change"], "pr": number, "base_commit": base, "head_commit": head}
        change["head_tree"] = self.tree(squash)
        verdict = Verdict.model_validate(verdict_data(change=change))
        store_attestation(self.attestations, head, sign_verdict(verdict, self.signers["glassbox-ci"]))
        self.event(
            "glassbox-ci", "check", pr=number, commit=head, tree=self.tree(head), result="PASSED", risk="low",
            findings=[], title=title,
        )  # fmt: skip
        return number, head, squash

    def governed_merge(self, files: dict[str, str], title: str = "a governed change") -> str:
        number, head, squash = self.pr(files, title)
        self.event("glassbox-bot", "approvals", pr=number, commit=head, satisfied=True, head_sha=head, counted=[])
        self.advance(squash)
        self.event("glassbox-bot", "merge", pr=number, commit=squash, head_sha=head, method="squash")
        self.governed = squash
        return squash

    def out_of_band_merge(self, files: dict[str, str]) -> str:
        """A checked PR merged by someone with branch protection lifted: no approvals, no merge event."""
        _, _, squash = self.pr(files, "an incident fix")
        self.advance(squash)
        return squash

    def direct_push(self, files: dict[str, str]) -> str:
        sha = self.commit(files, "pushed straight to main")
        self.advance(sha)
        return sha

    def deploy(self, commit: str, *, grant: str | None = None, use: bool = True, ticket: str = "INC-9") -> None:
        if grant is not None:
            self.event("grace", "breakglass.open", stack="data/prod", grant_id=grant, ticket=ticket)
            if use:
                self.event(
                    "glassbox-deployer", "breakglass.use", commit=commit, stack="data/prod", grant_id=grant,
                    ticket=ticket, opened_by="grace",
                )  # fmt: skip
        self.event(
            "glassbox-deployer", "deploy", commit=commit, stack="data/prod", break_glass=grant, deployments=[],
            reason="deployed data/prod" + (" under break-glass" if grant else ""),
        )  # fmt: skip


def build_world(root: Path) -> World:
    """The repository's first commit (the sample registry with fresh keys) and one governed merge on it."""
    registry, signers = registry_with_keys(root, *((i, roles) for i, (_, roles) in IDENTITIES.items()))
    repo_dir = root / "repo"
    repo = git.Repo.init(repo_dir, initial_branch="main")
    shutil.copytree(registry, repo_dir / "registry")
    (repo_dir / "infra").mkdir()
    (repo_dir / "infra" / "README.md").write_text("infrastructure\n", encoding="utf-8")
    repo.git.add("-A", env=ENV)
    repo.git.commit("-m", "Initial import", env=ENV)
    world = World(root, repo_dir, Ledger(root / "ledger.jsonl"), root / "attestations", signers)
    world.governed_merge({"infra/data/Pulumi.prod.yaml": "size: 200\n"}, "grow the orders database")
    return world
