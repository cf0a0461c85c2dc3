"""`glassbox audit export|metrics|archive`: SIEM exports and replays, governance metrics, retention.

(`audit show` and `audit verify` join this group later; ``group`` is the Typer object they attach to.)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.audit.keys import load_signer, trusted_keys
from bot.audit.ledger import Ledger
from bot.audit.metrics import compute_metrics
from bot.audit.ocsf import OcsfMapper, render
from bot.audit.retention import archive as archive_ledger
from bot.audit.retention import load_retention
from bot.audit.siem import SiemDispatcher, default_state_dir, load_siem_config
from bot.commands._common import (
    KeysOption,
    LedgerOption,
    OutputFormat,
    OutputOption,
    emit,
    err_console,
    keys_dir,
    ledger_path,
)
from bot.errors import UserError
from bot.records import ActorKind, AuditEvent
from bot.registry import KeyRole, load_registry

group = typer.Typer(help="The audit trail: SIEM exports, governance metrics, retention.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="audit")


class ExportFormat(StrEnum):
    OCSF = "ocsf"
    ECS = "ecs"
    CEF = "cef"


_AGE = re.compile(r"^(\d+)([dhm])$")


def parse_time(value: str, *, option: str, now: datetime | None = None) -> datetime:
    """RFC 3339 with an offset (or Z), or an age before now: 30d, 12h, 15m."""
    m = _AGE.match(value.strip())
    if m:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[m.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: int(m.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise UserError(
            f"{option} {value!r}: give an RFC 3339 time with a timezone (2026-11-01T00:00:00+00:00) or an age (30d)"
        )
    return parsed.astimezone(UTC)


def _events(path: Path, since: datetime | None) -> list[AuditEvent]:
    ledger = Ledger(path)
    if not ledger.path.exists():
        raise UserError(f"{path}: ledger not found")
    return [e for e in ledger.events() if since is None or e.time >= since]


SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only events at or after this time (RFC 3339, or an age like 7d).")
]
SiemConfigOption = Annotated[Path, typer.Option("--siem-config", help="SIEM sinks and detection settings.")]


@group.command("export")
def export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="ocsf, ecs or cef.", case_sensitive=False)] = (
        ExportFormat.OCSF
    ),
    since: SinceOption = None,
    ledger: LedgerOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    sink: Annotated[
        str | None, typer.Option("--sink", help="Replay to this configured SIEM sink (in its own format).")
    ] = None,
    siem_config: SiemConfigOption = Path("registry/siem.yaml"),
    siem_dir: Annotated[
        Path | None,
        typer.Option("--siem-dir", help="State dir for file sinks and spools. Default: $GLASSBOX_SIEM_DIR."),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Render ledger events as OCSF, ECS or CEF (one per line), or replay them to a SIEM sink."""
    path = ledger_path(ledger)
    assert path is not None
    events = _events(path, parse_time(since, option="--since") if since else None)
    config = load_siem_config(siem_config)
    if sink is not None:
        dispatcher = SiemDispatcher(config, state_dir=siem_dir or default_state_dir())
        reports = dispatcher.publish(events, sink=sink)

        def render_report(console: Console) -> None:
            for r in reports:
                state = "[green]delivered[/]" if r.ok else "[red]not delivered[/]"
                console.print(f"{r.name}: {state}: sent {r.sent} (from spool {r.flushed}), spooled {r.spooled}")
                if r.error:
                    console.print(f"  {r.error}")

        emit({"sinks": [r.as_dict() for r in reports]}, output, render_report)
        if not all(r.ok for r in reports):
            raise typer.Exit(1)
        return
    lines = [render(o, fmt.value) for o in OcsfMapper(config.detections).map_all(events)]
    if out is None:
        for line in lines:
            typer.echo(line)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    err_console.print(f"wrote {len(lines)} {fmt.value} event(s) from {len(events)} ledger event(s) to {out}")


@group.command("metrics")
def metrics(
    since: SinceOption = None,
    ledger: LedgerOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Auto-approval, escalation, denial and override rates, time to approval, tool failures: per agent."""
    path = ledger_path(ledger)
    assert path is not None
    start = parse_time(since, option="--since") if since else None
    report = compute_metrics(_events(path, None), since=start)

    def render_table(console: Console) -> None:
        agents = sorted(report.per_agent)
        table = Table("metric", "overall", *agents)
        columns = [report.overall.rows()] + [report.per_agent[a].rows() for a in agents]
        for i, (name, _) in enumerate(columns[0]):
            table.add_row(name, *(col[i][1] for col in columns))
        console.print(table)

    emit(report.as_dict(), output, render_table)


@group.command("archive")
def archive(
    before: Annotated[str, typer.Option("--before", help="Archive only events before this time (or age, e.g. 90d).")],
    identity: Annotated[str, typer.Option("--identity", help="Identity that signs the manifest and the event.")],
    ledger: LedgerOption = None,
    retention: Annotated[Path, typer.Option("--retention", help="Retention periods and legal holds.")] = Path(
        "registry/retention.yaml"
    ),
    keys: KeysOption = None,
    registry: Annotated[
        Path | None, typer.Option("--registry", help="Verify event signatures with its ledger-signer keys first.")
    ] = None,
    kind: Annotated[ActorKind, typer.Option("--actor-kind", help="Kind of the archiving identity.")] = ActorKind.BOT,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Move events past retention (and not on legal hold) into a signed, compressed archive segment."""
    path = ledger_path(ledger)
    assert path is not None
    policy = load_retention(retention)
    signer = load_signer(keys_dir(keys), identity)
    trusted = None
    if registry is not None:
        reg = load_registry(registry)
        trusted = trusted_keys((k.keyid, k.public_key) for k in reg.keys_for(role=KeyRole.LEDGER_SIGNER))
    result = archive_ledger(
        Ledger(path),
        signer,
        before=parse_time(before, option="--before"),
        policy=policy,
        actor_kind=kind,
        trusted=trusted,
    )

    def render_result(console: Console) -> None:
        if result.archived:
            console.print(
                f"[green]archived[/] events {result.first_seq}-{result.last_seq} "
                f"({result.archived}) to {result.segment}"
            )
        else:
            console.print("nothing archived")
        if result.stopped_at:
            console.print(f"stopped at seq {result.stopped_at['seq']}: {result.stopped_at['reason']}")

    emit(result.as_dict(), output, render_result)
