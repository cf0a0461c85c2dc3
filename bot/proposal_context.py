"""The one composition of a :class:`~bot.propose.ProposeContext`, shared by ``glassbox propose``, the MCP server and
the demo.

Every judging input comes from the base commit the forge will merge into, never from the request: the local
clone's branch must equal the forge's branch head (scope and pre-flight see what the PR will be judged against),
the registry is read from that commit's tree, and so is the policy pack's digest.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import git

from bot.check.preflight import preflight_for
from bot.check.services import CheckServices
from bot.errors import UserError
from bot.forge.port import Forge
from bot.plan import Sandbox
from bot.policy.checkov import CheckovWorker
from bot.propose import ProposeContext
from bot.registry import load_registry
from bot.trust.anchors import export_tree, policy_pack_digest
from bot.trust.conventions import REGISTRY_DIR
from bot.trust.keys import Signer
from bot.trust.ledger import Ledger


def base_commit(base_repo: Path, branch: str, forge: Forge) -> git.Commit:
    """``branch`` in the local clone ``base_repo``, which must be where the forge has it."""
    try:
        base = git.Repo(base_repo).commit(f"refs/heads/{branch}")
    except (git.exc.GitError, ValueError, git.BadName) as exc:
        raise UserError(f"base repo {base_repo}: no branch {branch!r} there ({exc})") from None
    remote = forge.branch_head(branch)
    if remote != base.hexsha:
        raise UserError(
            f"base repo {base_repo} has {branch} at {base.hexsha[:12]} but the forge has "
            f"{(remote or 'nothing')[:12]}: fetch the clone first"
        )
    return base


@contextmanager
def proposal_context(
    *,
    base_repo: Path,
    branch: str,
    forge: Forge,
    ledger: Ledger,
    signer: Signer,
    preflight: bool = True,
    checkov: CheckovWorker | None = None,
    sandbox: Sandbox | None = None,
    services: CheckServices | None = None,
) -> Iterator[ProposeContext]:
    """A context for proposing onto ``branch``: registry and pack digest from its commit, pre-flight if asked
    (``services``: the caller's warm checkov workers, packs and plan cache)."""
    base = base_commit(base_repo, branch, forge)
    with tempfile.TemporaryDirectory(prefix="glassbox-propose-") as scratch:
        yield ProposeContext(
            registry=load_registry(export_tree(base, REGISTRY_DIR, Path(scratch))),
            forge=forge,
            ledger=ledger,
            signer=signer,
            base_repo=base_repo,
            policy_pack_digest=policy_pack_digest(base),
            preflight=preflight_for(base_repo, forge.repo, checkov=checkov, sandbox=sandbox, services=services)
            if preflight
            else None,
        )
