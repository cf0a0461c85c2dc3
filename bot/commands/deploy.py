"""`glassbox deploy --commit SHA`: the deploy identity re-verifies a merged commit, then applies it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.commands._common import (
    KeysOption,
    LedgerOption,
    OutputFormat,
    OutputOption,
    emit,
    keys_dir,
    ledger_path,
    styled,
)
from bot.deploy.applier import APPLIER_ENV, resolve_applier_kind
from bot.deploy.gate import DeployContext, deploy
from bot.deploy.state import default_state_dir
from bot.forge.github import GitHubForge
from bot.forge.settings import ForgeUrlOption, RepoOption, TokenOption, resolve_settings
from bot.trust.keys import load_signer
from bot.trust.ledger import Ledger

AttestationsOption = Annotated[
    Path | None,
    typer.Option(
        "--attestations", help="Verdict attestation store (<head sha>.dsse.json). Default: $GLASSBOX_ATTESTATIONS."
    ),
]


ApplierOption = Annotated[
    str | None,
    typer.Option(
        "--applier",
        help=f"pulumi (the Pulumi Automation API; needs the pulumi CLI) or local (a simulation that calls no cloud; "
        f"refused in GitHub Actions). Default: ${APPLIER_ENV}, else pulumi.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_command)


def attestation_store(option: Path | None) -> Path:
    if option is not None:
        return option
    env = os.environ.get("GLASSBOX_ATTESTATIONS")
    return Path(env) if env else Path("attestations")


def deploy_command(
    commit: Annotated[str, typer.Option("--commit", help="The merged commit on the protected branch.")],
    stack: Annotated[
        list[str] | None, typer.Option("--stack", help="project/stack to deploy (repeatable). Default: all planned.")
    ] = None,
    identity: Annotated[
        str, typer.Option("--as", help="Deploy identity (its key signs credentials).")
    ] = "glassbox-deployer",
    repo_path: Annotated[
        Path, typer.Option("--repo-path", help="Local clone (or bare repo) holding the commit.")
    ] = Path("."),
    branch: Annotated[str, typer.Option("--branch", help="The protected branch.")] = "main",
    attestations: AttestationsOption = None,
    state: Annotated[Path | None, typer.Option("--state", help="Deploy state directory.")] = None,
    applier: ApplierOption = None,
    break_glass: Annotated[
        str | None, typer.Option("--break-glass", help="A valid break-glass grant id: stands in for approvals only.")
    ] = None,
    forge_url: ForgeUrlOption = None,
    repo: RepoOption = None,
    token: TokenOption = None,
    keys: KeysOption = None,
    ledger: LedgerOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Verify everything about COMMIT, then apply each planned stack with its own 15-minute credential."""
    ledger_file = ledger_path(ledger)
    assert ledger_file is not None
    kind = resolve_applier_kind(applier)
    ctx = DeployContext(
        repo_path=repo_path,
        forge=GitHubForge(resolve_settings(forge_url, repo, token)),
        ledger=Ledger(ledger_file),
        signer=load_signer(keys_dir(keys), identity),
        state_dir=state or default_state_dir(),
        attestations=attestation_store(attestations),
        branch=branch,
        applier_kind=kind,
    )
    report = deploy(ctx, commit, list(stack or []), break_glass=break_glass)

    def render(console: Console) -> None:
        table = Table("check", "ok", "detail", "source", title=f"deploy {report.commit[:12]} (PR #{report.pr})")
        for c in report.checks:
            table.add_row(c.name, "✔" if c.ok else "✘", c.detail, c.source)
        console.print(table)
        for d in report.deployments:
            console.print(styled("[bold green]{}[/] {} via {}: {}", d.stack, d.result, d.applier, d.message))
        for alert in report.break_glass:
            console.print(styled("[bold red]break-glass[/] {}", alert.model_dump(mode="json")))

    emit(report, output, render)
