"""A governed repository on an embedded forge, for tests that drive propose, check, approvals and deploy."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from bot.forge.github import GitHubForge, RetryPolicy
from bot.forge.server import init_forge, load_tokens, repo_path, start_forge
from bot.forge.settings import ForgeSettings
from bot.propose import ProposeContext
from bot.records import ChangeRequest, Verdict
from bot.registry import Registry, load_registry
from bot.trust.keys import Signer, load_signer
from bot.trust.ledger import Ledger, LedgerKeys, ledger_keys
from tests.factories import change_request_data
from tests.forge_helpers import LockedLog

REPO = "acme/infra"
ROOT = Path(__file__).resolve().parents[1]
GOVERNED = ("registry", "infra", "policy-pack", ".github")


# a test's own commits: named author and committer, nothing from the host's git config
TEST_GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@x",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@x",
}


def checked_edit(tmp: Path, edit: Callable[[Path], None], author: str = "carol") -> Verdict:
    """The verdict of one commit on the governed estate: a base commit, ``edit`` applied, checked as ``author``."""
    from bot.check.evaluate import CheckRequest, run_check

    src = governed_source(tmp)
    repo = git.Repo.init(src, initial_branch="main")
    repo.git.add("-A")
    repo.git.commit("--no-gpg-sign", "-m", "base", env=TEST_GIT_ENV)
    edit(src)
    repo.git.add("-A")
    repo.git.commit("--no-gpg-sign", "-m", "the change", env=TEST_GIT_ENV)
    return run_check(CheckRequest(repo_path=src, base="HEAD~1", head="HEAD", author=author)).verdict


def governed_source(tmp: Path) -> Path:
    """A copy of this repository's governed estate (registry, infra, policy pack, CODEOWNERS, workflows)."""
    src = tmp / "src"
    for name in GOVERNED:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (src / "README.md").write_text("# acme infrastructure\n")
    # a symlink planted in the estate: proposals must never write through it
    os.symlink("../../registry", src / "infra" / "network" / "shared")
    return src


@dataclass
class Flow:
    data: Path
    url: str
    tokens: dict[str, str]
    ledger: Ledger
    registry: Registry
    sleeps: list[float]

    @property
    def bare(self) -> Path:
        return repo_path(self.data, REPO)

    @property
    def attestations(self) -> Path:
        return self.data / "attestations"

    @property
    def keys(self) -> Path:
        return self.data / "keys"

    def forge(self, identity: str, **kwargs: Any) -> GitHubForge:
        kwargs.setdefault("sleep", self.sleeps.append)
        kwargs.setdefault("policy", RetryPolicy(attempts=6, base_delay=0.01, max_delay=5.0))
        return GitHubForge(ForgeSettings(url=self.url, repo=REPO, token=self.tokens[identity]), **kwargs)

    def signer(self, identity: str) -> Signer:
        return load_signer(self.keys, identity)

    def propose_context(self, agent: str, *, registry: Registry | None = None, **kwargs: Any) -> ProposeContext:
        return ProposeContext(
            registry=registry or self.registry,
            forge=self.forge(agent),
            ledger=self.ledger,
            signer=self.signer(agent),
            base_repo=self.bare,
            policy_pack_digest="sha256:" + "0" * 64,
            **kwargs,
        )

    def ledger_keys(self) -> LedgerKeys:
        return ledger_keys(self.registry)

    def main_head(self) -> git.Commit:
        return git.Repo(self.bare).commit("refs/heads/main")


def flow_env(tmp: Path, **init_kwargs: Any) -> Iterator[Flow]:
    src = governed_source(tmp)
    data = tmp / "forge"
    init_forge(data, REPO, src, **init_kwargs)
    # the registry as committed on main (its trust.yaml holds the keys forge init made)
    reg_dir = tmp / "base-registry"
    head = git.Repo(repo_path(data, REPO)).commit("refs/heads/main")
    for blob in (head.tree / "registry").traverse():
        if isinstance(blob, git.Blob):
            target = tmp / "base-registry" / Path(blob.path).relative_to("registry")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.data_stream.read())
    url, stop = start_forge(data, log=LockedLog())
    try:
        yield Flow(data, url, load_tokens(data), Ledger(tmp / "ledger.jsonl"), load_registry(reg_dir), [])
    finally:
        stop()


def prod_backup_request(flow: Flow, days: int) -> ChangeRequest:
    """patch-agent, asked by carol, sets the prod orders database's backup retention to ``days`` (declared)."""
    prod = (flow.data.parent / "src/infra/data/Pulumi.prod.yaml").read_text()
    return request(
        agent_id="patch-agent",
        requested_by={"id": "carol", "kind": "human"},
        changes=[
            {
                "path": "infra/data/Pulumi.prod.yaml",
                "content": prod.replace("dbBackupRetentionDays: 14", f"dbBackupRetentionDays: {days}"),
            }
        ],
        expected_changes=[
            {
                "project": "data",
                "stack": "prod",
                "type": "aws:rds/instance:Instance",
                "name": "orders",
                "action": "update",
            }
        ],
    )


def request(**overrides: Any) -> ChangeRequest:
    data = change_request_data(repo=REPO)
    data["changes"] = [
        {"path": "infra/network/Pulumi.dev.yaml", "content": _dev_network_config(14)},
    ]
    data["expected_changes"] = [
        {
            "project": "network",
            "stack": "dev",
            "type": "aws:cloudwatch/logGroup:LogGroup",
            "name": "vpc-flow-logs",
            "action": "update",
        }
    ]
    data.update(overrides)
    return ChangeRequest.model_validate(data)


def _dev_network_config(days: int) -> str:
    text = (ROOT / "infra" / "network" / "Pulumi.dev.yaml").read_text()
    return text.replace("network:flowLogRetentionDays: 30", f"network:flowLogRetentionDays: {days}")


# --------------------------------------------------------------------------------------------------
# the later stages, as CI, reviewers, the bot and the deployer perform them


def ci_check(flow: Flow, pr_number: int, checkov: Any = None) -> Any:
    """Run `glassbox check` on a PR as CI: verdict, signed attestation in the store, status on the head."""
    from bot.check.ci import check_pull_request

    return check_pull_request(
        flow.forge("glassbox-ci"),
        flow.bare,
        pr_number,
        signer=lambda: flow.signer("glassbox-ci"),
        ledger=flow.ledger,
        store=flow.attestations,
        checkov=checkov,
        comment=False,
    ).verdict


def verdict_loader(flow: Flow) -> Any:
    from bot.trust.attestations import stored_verdict

    return lambda head: stored_verdict(flow.attestations, head, flow.registry)


def approve(flow: Flow, pr_number: int, reviewer: str) -> None:
    from github import Auth, Github

    gh = Github(base_url=flow.url, auth=Auth.Token(flow.tokens[reviewer]), retry=None)
    gh.get_repo(REPO).get_pull(pr_number).create_review(event="APPROVE", body="looks right")


def merge(flow: Flow, pr_number: int) -> Any:
    from bot.approvals.service import merge_pr

    return merge_pr(
        flow.forge("glassbox-bot"),
        flow.registry,
        pr_number,
        verdict_loader(flow),
        flow.ledger,
        flow.signer("glassbox-bot"),
    )


def deploy_context(flow: Flow) -> Any:
    from bot.deploy.applier import ApplierKind
    from bot.deploy.gate import DeployContext

    return DeployContext(
        repo_path=flow.bare,
        forge=flow.forge("glassbox-deployer"),
        ledger=flow.ledger,
        signer=flow.signer("glassbox-deployer"),
        state_dir=flow.data / "deploy-state",
        attestations=flow.attestations,
        applier_kind=ApplierKind.LOCAL,
    )


# --------------------------------------------------------------------------------------------------
# audit: a whole change carried to production, and honest ways to tamper with what it left behind


def deployed_change(flow: Flow, checkov: Any = None) -> tuple[str, int, str, str]:
    """The cost-optimizer's dev change proposed, checked, merged and deployed: (correlation id, PR, head, merge)."""
    from bot.deploy.gate import deploy
    from bot.propose import propose

    proposal = propose(request(), flow.propose_context("cost-optimizer"))
    verdict = ci_check(flow, proposal.pr_number, checkov)
    assert verdict.result.value == "PASSED", verdict.findings
    outcome = merge(flow, proposal.pr_number)
    assert outcome.merged and outcome.merge_sha, outcome
    deploy(deploy_context(flow), outcome.merge_sha)
    return proposal.correlation_id, proposal.pr_number, proposal.head_sha, outcome.merge_sha


def copy_repo(flow: Flow, dest: Path) -> Path:
    """A byte-for-byte copy of the forge's bare repository, to tamper with."""
    shutil.copytree(flow.bare, dest)
    return dest


def overwrite_object(repo: Path, sha: str, data: bytes) -> None:
    """Replace the stored content of loose object ``sha`` (same type, same name): what an attacker with
    write access to the object store does; git serves it without rehashing."""
    import zlib

    path = repo / "objects" / sha[:2] / sha[2:]
    assert path.exists(), f"{sha} is not a loose object in {repo}"
    kind = git.Repo(repo).odb.stream(bytes.fromhex(sha)).type
    path.chmod(0o644)
    path.write_bytes(zlib.compress(kind + b" %d\0" % len(data) + data))


def resign_commit(repo: Path, sha: str, signer: Signer) -> None:
    """Overwrite commit ``sha`` with the same content signed by ``signer`` instead of its author."""
    from bot.trust.gitsign import ssh_sign

    raw = git.Repo(repo).odb.stream(bytes.fromhex(sha)).read().decode()
    header, _, message = raw.partition("\n\n")
    kept: list[str] = []
    in_sig = False
    for line in header.split("\n"):
        if line.startswith("gpgsig "):
            in_sig = True
            continue
        if in_sig and line.startswith(" "):
            continue
        in_sig = False
        kept.append(line)
    unsigned = "\n".join(kept) + "\n\n" + message
    sig = ssh_sign(signer, unsigned.encode()).rstrip("\n").replace("\n", "\n ")
    signed = "\n".join(kept) + "\ngpgsig " + sig + "\n\n" + message
    overwrite_object(repo, sha, signed.encode())
