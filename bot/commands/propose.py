"""`glassbox propose REQUEST`: open the agent's PR with its evidence, or refuse with every reason (exit 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from bot.check.services import CheckServices
from bot.commands._common import (
    KeysOption,
    LedgerOption,
    OutputFormat,
    OutputOption,
    PlanCacheOption,
    SandboxMode,
    SandboxOption,
    emit,
    keys_dir,
    ledger_path,
    styled,
)
from bot.documents import load_document
from bot.errors import ValidationFailed
from bot.forge.github import GitHubForge
from bot.forge.settings import ForgeUrlOption, RepoOption, TokenOption, resolve_settings
from bot.plan import Sandbox
from bot.plan.cache import configured_cache
from bot.proposal_context import proposal_context
from bot.propose import propose
from bot.records import ChangeRequest, validation_lines
from bot.trust.keys import load_signer
from bot.trust.ledger import Ledger

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
    plan_cache: PlanCacheOption = True,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Propose a change as the request's agent: scope, redaction, pre-flight, then one signed PR."""
    request = load_request(request_file)
    settings = resolve_settings(forge_url, repo or request.repo, token)
    ledger_file = ledger_path(ledger)
    assert ledger_file is not None
    forge = GitHubForge(settings)
    with (
        CheckServices(plan_cache=configured_cache(enabled=plan_cache and preflight)) as services,
        proposal_context(
            base_repo=base_repo,
            branch=request.base_branch,
            forge=forge,
            ledger=Ledger(ledger_file),
            signer=load_signer(keys_dir(keys), request.agent_id),
            preflight=preflight,
            sandbox=Sandbox(sandbox.value),
            services=services,
        ) as ctx,
    ):
        result = propose(request, ctx)

    def render(console: Console) -> None:
        verb = "opened" if result.outcome.value == "opened" else "already open:"
        console.print(styled("[bold green]PR #{} {}[/] {}", result.pr_number, verb, result.pr_url))
        console.print(f"  branch {result.branch}  head {result.head_sha[:12]}{'  (draft)' if result.draft else ''}")
        console.print(f"  evidence {result.evidence_path}  {result.evidence_digest}")

    emit(result, output, render)
