"""`glassbox breakglass open|list`: open a signed, single-use, expiring grant; list open and past grants.

Opening is for people in a ``break_glass: true`` team only; the grant is signed with the person's own key
and recorded in the ledger. Deploy consumes a grant (once) and raises a high-severity alert for it.

``open --envelope-out FILE`` writes the signed envelope as one line of JSON: what the responder hands to the
deploy workflow's ``workflow_dispatch`` (input ``grant``, with the ``commit`` to deploy; docs/github-setup.md).
The deploy verifies it again and claims it on the audit trail, so a grant works once on any runner.
"""

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
    RegistryOption,
    emit,
    keys_dir,
    ledger_path,
    styled,
)
from bot.deploy.breakglass import (
    DEFAULT_MAX_GRANT_TTL,
    GrantStore,
    format_ttl,
    grant_bytes,
    list_grants,
    open_grant,
    parse_ttl,
)
from bot.deploy.model import GrantStatus
from bot.deploy.state import STATE_ENV, default_state_dir
from bot.registry import load_registry
from bot.trust.keys import load_signer
from bot.trust.ledger import Ledger

MAX_TTL_ENV = "GLASSBOX_BREAKGLASS_MAX_TTL"

group = typer.Typer(
    help="Break-glass grants: deploy without approvals, once, with an alert and a review.", no_args_is_help=True
)

StateOption = Annotated[
    Path | None,
    typer.Option("--state", help=f"Deploy state directory. Default: ${STATE_ENV}, else the user data dir."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="breakglass")


def _state(option: Path | None) -> Path:
    return option if option is not None else default_state_dir()


@group.command("open")
def open_(
    ticket: Annotated[str, typer.Option("--ticket", help="Incident or ticket reference.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the governed path cannot wait.")],
    stack: Annotated[str, typer.Option("--stack", help="The one stack the grant covers: project/stack.")],
    identity: Annotated[str, typer.Option("--as", help="Who opens it (a person in a break_glass team).")],
    ttl: Annotated[str, typer.Option("--ttl", help="How long it stays usable: 30m, 1h, 2h30m.")] = "1h",
    keys: KeysOption = None,
    registry: RegistryOption = Path("registry"),
    ledger: LedgerOption = None,
    state: StateOption = None,
    envelope_out: Annotated[
        Path | None,
        typer.Option(
            "--envelope-out",
            help="Write the signed grant envelope here (one line of JSON): the deploy workflow's `grant` input.",
        ),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Open a break-glass grant for one stack, signed with your key (refused unless you may break glass)."""
    path = ledger_path(ledger)
    assert path is not None
    reg = load_registry(registry)
    signer = load_signer(keys_dir(keys), identity)
    # the ceiling is the deploy host's setting; deploy enforces it again when the grant is used
    max_ttl = parse_ttl(os.environ[MAX_TTL_ENV]) if os.environ.get(MAX_TTL_ENV) else DEFAULT_MAX_GRANT_TTL
    opened = open_grant(
        reg,
        signer,
        ticket=ticket,
        reason=reason,
        stack=stack,
        ttl=parse_ttl(ttl),
        max_ttl=max_ttl,
        ledger=Ledger(path),
        store=GrantStore.under(_state(state)),
    )
    grant = opened.grant
    line = grant_bytes(opened.envelope)
    if envelope_out is not None:
        envelope_out.parent.mkdir(parents=True, exist_ok=True)
        envelope_out.write_bytes(line)

    def render(console: Console) -> None:
        console.print(styled("[bold yellow]break-glass grant opened[/] {}", grant.grant_id))
        console.print(f"  stack {grant.stack}  ticket {grant.ticket}  by {grant.opened_by}")
        console.print(f"  expires {grant.expires_at.isoformat()} ({format_ttl(parse_ttl(ttl))}); usable once")
        console.print("  each use raises a high-severity alert and opens a post-incident review")
        if envelope_out is not None:
            console.print(styled("  envelope written to {} (the deploy workflow's `grant` input)", envelope_out))
        else:
            console.print("  envelope (the deploy workflow's `grant` input):")
            console.print(line.decode("utf-8").rstrip("\n"), soft_wrap=True, markup=False, highlight=False)

    emit(opened, output, render)


_STATUS_STYLE = {GrantStatus.OPEN: "yellow", GrantStatus.USED: "red", GrantStatus.EXPIRED: "dim"}


@group.command("list")
def list_(state: StateOption = None, output: OutputOption = OutputFormat.TEXT) -> None:
    """Show open and past grants: who, which stack, which ticket, until when, and whether it was used."""
    rows = list_grants(GrantStore.under(_state(state)))

    def render(console: Console) -> None:
        if not rows:
            console.print("no break-glass grants")
            return
        table = Table("grant", "status", "stack", "ticket", "opened by", "opened", "expires", "used")
        for row in rows:
            g = row.grant
            used = (
                f"{row.used_at.isoformat()} by {row.used_by} at {(row.used_commit or '')[:12]}" if row.used_at else ""
            )
            style = _STATUS_STYLE[row.status]
            table.add_row(
                g.grant_id,
                styled("[" + style + "]{}[/]", row.status.value),
                g.stack,
                g.ticket,
                g.opened_by,
                g.opened_at.isoformat(),
                g.expires_at.isoformat(),
                used,
            )
        console.print(table)

    emit(rows, output, render)
