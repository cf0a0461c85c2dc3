"""`glassbox ledger verify|show`: check the hash chain and signatures, look events up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bot.audit.ocsf import HIGH_WATER_FIELD
from bot.audit.retention import archive_anchor
from bot.commands._common import LedgerOption, OutputFormat, OutputOption, RegistryOption, emit, ledger_path, styled
from bot.errors import IntegrityError, UserError
from bot.registry import load_registry
from bot.trust.ledger import Ledger, ledger_keys

group = typer.Typer(help="The append-only, hash-chained, signed compliance ledger.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="ledger")


@group.command("verify")
def verify(
    ledger: LedgerOption = None,
    registry: RegistryOption = Path("registry"),
    high_water: Annotated[
        Path | None,
        typer.Option(
            "--high-water",
            help="A signed high-water mark kept apart from the ledger (a SIEM export's, the GitHub trail's): "
            "the ledger must still hold the event it names.",
        ),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Verify every event: canonical form, sequence, chain, digest, a signature by a trusted ledger-signer key
    registered to the event's actor, an action that actor's kind may take, and the signed high-water marks."""
    path = ledger_path(ledger)
    assert path is not None
    reg = load_registry(registry)
    trusted = ledger_keys(reg)
    mark = _high_water_mark(high_water) if high_water is not None else None
    live = Ledger(path)
    seq, prev = archive_anchor(live, trusted)  # after `audit archive`, the live file starts past the cut
    report = live.verify(trusted, start_seq=seq, start_prev=prev, high_water=mark)

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


def _high_water_mark(path: Path) -> dict[str, Any]:
    """A signed high-water envelope from ``path``: the envelope itself, or the newest one an OCSF export holds."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--high-water {path}: cannot be read ({exc.strerror})") from None
    found: dict[str, Any] | None = None
    for line in [text, *text.splitlines()]:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "payloadType" in data:
            return data
        mark = data.get("unmapped", {}).get(HIGH_WATER_FIELD) if isinstance(data, dict) else None
        if isinstance(mark, dict):
            found = mark
    if found is None:
        raise UserError(f"--high-water {path}: neither a high-water envelope nor an OCSF export that carries one")
    return found


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
