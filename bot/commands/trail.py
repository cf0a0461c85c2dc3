"""`glassbox trail seed|publish|show`: the audit trail branch of the governed repository (bot.trust.trail).

A job seeds its empty local ledger at the trail's newest event, appends its own events as usual, and publishes:
the events the trail lacks, the attestations and deploy records it is given, and the signed high-water mark,
in one commit signed by the job's service identity. `glassbox audit verify --repo CLONE` then needs nothing but
a clone of the repository.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.commands._common import KeysOption, LedgerOption, OutputFormat, OutputOption, emit, keys_dir, ledger_path
from bot.errors import UserError
from bot.forge.github import connect
from bot.forge.settings import ForgeUrlOption, RepoOption, TokenOption, resolve_settings
from bot.forge.trail import publish as publish_trail
from bot.forge.trail import seed as seed_trail
from bot.trust.conventions import TRAIL_BRANCH
from bot.trust.keys import load_signer
from bot.trust.trail import materialise, trail_ref

group = typer.Typer(
    help=f"The audit trail: the {TRAIL_BRANCH} branch of the governed repository.", no_args_is_help=True
)

IdentityOption = Annotated[
    str, typer.Option("--identity", help="The service identity that signs the trail commit (its key in --keys).")
]


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="trail")


@group.command("seed")
def seed(
    ledger: LedgerOption = None,
    forge_url: ForgeUrlOption = None,
    repo: RepoOption = None,
    token: TokenOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Start an empty local ledger at the trail's newest event, so this job's events chain on it."""
    path = ledger_path(ledger)
    assert path is not None
    from bot.trust.ledger import Ledger

    seq = seed_trail(connect(resolve_settings(forge_url, repo, token)), Ledger(path))
    result = {"ledger": str(path), "seeded_at": seq}
    emit(result, output, lambda c: c.print(f"{path}: starts at trail event {seq}" if seq else f"{path}: unchanged"))


@group.command("publish")
def publish(
    identity: IdentityOption,
    ledger: LedgerOption = None,
    attestations: Annotated[
        Path | None, typer.Option("--attestations", help="Attestation store to publish (<head sha>.dsse.json).")
    ] = None,
    deploy_state: Annotated[
        Path | None, typer.Option("--deploy-state", help="Deploy state whose deployments/ records to publish.")
    ] = None,
    keys: KeysOption = None,
    forge_url: ForgeUrlOption = None,
    repo: RepoOption = None,
    token: TokenOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Append what the trail lacks in one signed commit; retried after re-chaining when another job won the race."""
    path = ledger_path(ledger)
    assert path is not None
    from bot.trust.ledger import Ledger

    signer = load_signer(keys_dir(keys), identity)
    report = publish_trail(
        connect(resolve_settings(forge_url, repo, token)),
        Ledger(path),
        signer,
        attestations=attestations,
        deploy_state=deploy_state,
    )

    def render(console: Console) -> None:
        events = f"events {report.events[0]}..{report.events[-1]}" if report.events else "no new events"
        console.print(
            f"{TRAIL_BRANCH} at {(report.commit or '-')[:12]}: {events}, {report.attestations} attestation(s), "
            f"{report.deployments} deploy record(s); {report.attempts} attempt(s), {report.rebased} re-chained"
        )

    emit(report.as_dict(), output, render)


@group.command("show")
def show(
    clone: Annotated[Path, typer.Option("--repo", help="A clone of the governed repository (or a bare repo).")],
    into: Annotated[
        Path | None, typer.Option("--into", help="Write the ledger, attestations and deploy records here.")
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """What the trail in a clone holds (and, with --into, the files audit verify would read)."""
    commit = trail_ref(clone)
    if commit is None:
        raise UserError(f"{clone}: no {TRAIL_BRANCH} branch (nor origin/{TRAIL_BRANCH})")
    with tempfile.TemporaryDirectory(prefix="glassbox-trail-") as scratch:
        view = materialise(clone, commit, into or Path(scratch))
        result = {
            "commit": commit,
            "events": view.events,
            "attestations": view.attestations,
            "deployments": view.deployments,
            "breakglass": view.breakglass,
            "into": str(into) if into else None,
        }
    emit(
        result,
        output,
        lambda c: c.print(
            f"{TRAIL_BRANCH} at {commit[:12]}: {result['events']} event(s), {result['attestations']} attestation(s), "
            f"{result['deployments']} deploy record(s), {result['breakglass']} break-glass object(s)"
            + (f"; written to {into}" if into else "")
        ),
    )
