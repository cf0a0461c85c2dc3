"""`glassbox breakglass open|list|close`: open a signed, single-use, expiring grant; list open and past grants;
close the post-incident review a grant's use opened.

Opening is for people in a ``break_glass: true`` team only; the grant is signed with the person's own key
and recorded in the ledger. Deploy consumes a grant (once) and raises a high-severity alert for it.

``open --envelope-out FILE`` writes the signed envelope as one line of JSON: what the responder hands to the
deploy workflow's ``workflow_dispatch`` (input ``grant``, with the ``commit`` to deploy; docs/github-setup.md).
The deploy verifies it again and claims it on the audit trail, so a grant works once on any runner.

Closing is for people in a ``reviews_break_glass: true`` team who did not open the grant; the closure is signed
with the reviewer's own key. The grant and its review come from the deploy state (closed there too when it holds
the review) or from the audit trail in a clone (``--repo``). ``close --envelope-out FILE`` writes the signed
closure as one line of JSON: the audit workflow's ``review`` input, which appends it to the audit trail.
"""

from __future__ import annotations

import os
from enum import StrEnum
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
    close_review,
    closure_bytes,
    format_ttl,
    grant_bytes,
    list_grants,
    open_grant,
    parse_ttl,
)
from bot.deploy.model import GrantStatus
from bot.deploy.state import STATE_ENV, default_state_dir
from bot.registry import load_registry
from bot.trust.conventions import TRAIL_BRANCH
from bot.trust.keys import load_signer, load_signer_file
from bot.trust.ledger import Ledger
from bot.trust.trail import breakglass_objects, trail_ref

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


class ReviewOutcomeChoice(StrEnum):
    KEPT = "kept"
    REVERTED = "reverted"
    FIXED_FORWARD = "fixed-forward"


@group.command("close")
def close(
    grant_id: Annotated[str, typer.Argument(help="The grant whose post-incident review to close.")],
    identity: Annotated[
        str, typer.Option("--by", help="Who closes it (a person in a reviews_break_glass team, not the opener).")
    ],
    outcome: Annotated[ReviewOutcomeChoice, typer.Option("--outcome", help="What became of the deployed change.")],
    summary: Annotated[str, typer.Option("--summary", help="What the review found and decided (up to 4000 chars).")],
    follow_up: Annotated[
        str | None, typer.Option("--follow-up", help="The follow-up: a PR URL, a commit, a ticket (up to 500 chars).")
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Your private key file. Default: <--keys dir>/<--by>.key.", show_default=False),
    ] = None,
    keys: KeysOption = None,
    registry: RegistryOption = Path("registry"),
    ledger: LedgerOption = None,
    state: StateOption = None,
    repo: Annotated[
        Path,
        typer.Option("--repo", help=f"A clone whose {TRAIL_BRANCH} (or origin/{TRAIL_BRANCH}) holds the grant."),
    ] = Path("."),
    envelope_out: Annotated[
        Path | None,
        typer.Option(
            "--envelope-out",
            help="Write the signed closure envelope here (one line of JSON): the audit workflow's `review` input.",
        ),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Close a break-glass use's post-incident review, signed with your key (refused unless you may review it)."""
    path = ledger_path(ledger)
    assert path is not None
    reg = load_registry(registry)
    signer = load_signer_file(key, identity) if key is not None else load_signer(keys_dir(keys), identity)
    head = trail_ref(repo) if repo.is_dir() else None
    closed = close_review(
        reg,
        signer,
        grant_id,
        outcome=outcome.value,
        summary=summary,
        follow_up=follow_up,
        ledger=Ledger(path),
        state_dir=_state(state),
        trail=breakglass_objects(repo, head) if head is not None else None,
    )
    line = closure_bytes(closed.envelope)
    if envelope_out is not None:
        envelope_out.parent.mkdir(parents=True, exist_ok=True)
        envelope_out.write_bytes(line)
    grant, closure = closed.grant, closed.closure

    def render(console: Console) -> None:
        console.print(styled("[bold green]post-incident review closed[/] {}", grant.grant_id))
        console.print(f"  stack {grant.stack}  ticket {grant.ticket}  opened by {grant.opened_by}")
        console.print(f"  closed by {closure.closed_by} at {closure.closed_at.isoformat()}: {closure.outcome}")
        if closure.follow_up:
            console.print(styled("  follow-up {}", closure.follow_up))
        if closed.review_path is not None:
            console.print(styled("  recorded in {}", closed.review_path))
        if envelope_out is not None:
            console.print(styled("  envelope written to {} (the audit workflow's `review` input)", envelope_out))
        else:
            console.print("  envelope (the audit workflow's `review` input):")
            console.print(line.decode("utf-8").rstrip("\n"), soft_wrap=True, markup=False, highlight=False)

    emit(closed, output, render)
