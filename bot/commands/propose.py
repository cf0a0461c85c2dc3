"""`glassbox propose REQUEST`: open the agent's PR with its evidence, or refuse with every reason (exit 1)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import git
import typer
from pydantic import ValidationError
from rich.console import Console

from bot.audit.keys import load_signer
from bot.audit.ledger import Ledger
from bot.check import REGISTRY_DIR, export_tree, policy_pack_digest, preflight_for
from bot.commands._common import (
    KeysOption,
    LedgerOption,
    OutputFormat,
    OutputOption,
    SandboxMode,
    SandboxOption,
    emit,
    keys_dir,
    ledger_path,
    styled,
)
from bot.documents import load_document
from bot.errors import UserError, ValidationFailed
from bot.forge.github import GitHubForge
from bot.forge.settings import ForgeUrlOption, RepoOption, TokenOption, resolve_settings
from bot.plan import Sandbox
from bot.propose import ProposeContext, propose
from bot.records import ChangeRequest, validation_lines
from bot.registry import load_registry

BaseRepoOption = Annotated[
    Path,
    typer.Option("--base-repo", help="A local clone (or the embedded forge's bare repo) holding the base branch."),
]


def register(app: typer.Typer) -> None:
    app.command("propose")(propose_command)


def load_request(path: Path) -> ChangeRequest:
    data = load_document(path)
    try:
        return ChangeRequest.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            validation_lines(str(path), exc), summary=f"{path} is not a valid change request"
        ) from None


def propose_command(
    request_file: Annotated[Path, typer.Argument(help="ChangeRequest as YAML or JSON.", metavar="REQUEST")],
    base_repo: BaseRepoOption = Path("."),
    forge_url: ForgeUrlOption = None,
    repo: RepoOption = None,
    token: TokenOption = None,
    keys: KeysOption = None,
    ledger: LedgerOption = None,
    preflight: Annotated[bool, typer.Option(help="Run the policy check on the would-be commit first.")] = True,
    sandbox: SandboxOption = SandboxMode.NAMESPACES,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Propose a change as the request's agent: scope, redaction, pre-flight, then one signed PR."""
    request = load_request(request_file)
    settings = resolve_settings(forge_url, repo or request.repo, token)
    ledger_file = ledger_path(ledger)
    assert ledger_file is not None
    forge = GitHubForge(settings)
    try:
        local = git.Repo(base_repo)
        base = local.commit(f"refs/heads/{request.base_branch}")
    except (git.exc.GitError, ValueError, git.BadName) as exc:
        raise UserError(f"--base-repo {base_repo}: no branch {request.base_branch!r} there ({exc})") from None
    remote_head = forge.branch_head(request.base_branch)
    if remote_head != base.hexsha:
        raise UserError(
            f"--base-repo {base_repo} has {request.base_branch} at {base.hexsha[:12]} but the forge has "
            f"{(remote_head or 'nothing')[:12]}: fetch first"
        )
    with tempfile.TemporaryDirectory(prefix="glassbox-propose-") as scratch:
        registry = load_registry(export_tree(base, REGISTRY_DIR, Path(scratch)))
        ctx = ProposeContext(
            registry=registry,
            forge=forge,
            ledger=Ledger(ledger_file),
            signer=load_signer(keys_dir(keys), request.agent_id),
            base_repo=base_repo,
            policy_pack_digest=policy_pack_digest(base),
            preflight=preflight_for(base_repo, request.repo, sandbox=Sandbox(sandbox.value)) if preflight else None,
        )
        result = propose(request, ctx)

    def render(console: Console) -> None:
        verb = "opened" if result.outcome.value == "opened" else "already open:"
        console.print(styled("[bold green]PR #{} {}[/] {}", result.pr_number, verb, result.pr_url))
        console.print(f"  branch {result.branch}  head {result.head_sha[:12]}{'  (draft)' if result.draft else ''}")
        console.print(f"  evidence {result.evidence_path}  {result.evidence_digest}")

    emit(result, output, render)
