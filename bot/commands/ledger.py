"""`glassbox ledger verify|show`: check the hash chain and signatures, look events up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.audit.retention import archive_anchor
from bot.commands._common import LedgerOption, OutputFormat, OutputOption, RegistryOption, emit, ledger_path, styled
from bot.errors import IntegrityError
from bot.registry import KeyRole, load_registry
from bot.trust.keys import trusted_keys
from bot.trust.ledger import Ledger

group = typer.Typer(help="The append-only, hash-chained, signed compliance ledger.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="ledger")


@group.command("verify")
def verify(
    ledger: LedgerOption = None,
    registry: RegistryOption = Path("registry"),
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Verify every event: sequence, chain, digest and a signature by a trusted ledger-signer key."""
    path = ledger_path(ledger)
    assert path is not None
    reg = load_registry(registry)
    trusted = trusted_keys((k.keyid, k.public_key) for k in reg.keys_for(role=KeyRole.LEDGER_SIGNER))
    live = Ledger(path)
    seq, prev = archive_anchor(live, trusted)  # after `audit archive`, the live file starts past the cut
    report = live.verify(trusted, start_seq=seq, start_prev=prev)

    def render(console: Console) -> None:
        if report.ok:
            console.print(styled("[green]ledger intact[/]: {} events, head {}", report.events, report.head))
            return
        for p in report.problems:
            console.print(styled("[red]line {}[/] seq {}: {}: {}", p.line, p.seq, p.kind, p.message))

    emit(report.as_dict(), output, render)
    if not report.ok:
        first = report.first_problem
        assert first is not None
        raise IntegrityError(f"ledger {path} is broken at line {first.line}: {first.kind}: {first.message}")


@group.command("show")
def show(
    correlation_id: Annotated[str | None, typer.Option("--correlation-id")] = None,
    pr: Annotated[int | None, typer.Option("--pr")] = None,
    commit: Annotated[str | None, typer.Option("--commit")] = None,
    ledger: LedgerOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """List events by correlation id, PR or commit (all of them when no filter is given)."""
    path = ledger_path(ledger)
    assert path is not None
    events = Ledger(path).find(correlation_id=correlation_id, pr=pr, commit=commit)

    def render(console: Console) -> None:
        table = Table("seq", "time", "actor", "action", "outcome", "reason")
        for e in events:
            table.add_row(
                str(e.seq), e.time.isoformat(), f"{e.actor.id} ({e.actor.kind})", e.action, e.outcome.value, e.reason
            )
        console.print(table)

    emit(events, output, render)
