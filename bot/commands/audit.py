"""`glassbox audit show|verify|export|metrics|archive`: one decision's chain of custody, the whole history
checked against the ledger, SIEM exports and replays, governance metrics, retention.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.audit.history import HistoryReport, VerifyRequest, trail_inputs, verify_from_trail, verify_history
from bot.audit.metrics import compute_metrics
from bot.audit.ocsf import OcsfMapper, render
from bot.audit.reconstruct import LinkStatus, Reconstruction, ShowRequest, reconstruct
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
    styled,
)
from bot.errors import UserError
from bot.records import ActorKind, AuditEvent
from bot.registry import load_registry
from bot.trust.keys import load_signer
from bot.trust.ledger import Ledger, ledger_keys

group = typer.Typer(
    help="The audit trail: decision chains, history verification, SIEM exports, governance metrics, retention.",
    no_args_is_help=True,
)


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
    ledger = Ledger.existing(path)
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
        reports = dispatcher.publish(events, sink=sink, high_water=Ledger(path).high_water())

        def render_report(console: Console) -> None:
            for r in reports:
                state = "[green]delivered[/]" if r.ok else "[red]not delivered[/]"
                console.print(
                    styled(
                        "{}: " + state + ": sent {} (from spool {}), spooled {}", r.name, r.sent, r.flushed, r.spooled
                    )
                )
                if r.error:
                    console.print(f"  {r.error}")

        emit({"sinks": [r.as_dict() for r in reports]}, output, render_report)
        if not all(r.ok for r in reports):
            raise typer.Exit(1)
        return
    mapped = OcsfMapper(config.detections).map_all(events, high_water=Ledger(path).high_water())
    lines = [render(o, fmt.value) for o in mapped]
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
    repo: Annotated[
        Path | None, typer.Option("--repo", help="With --attestations: also time `audit show` per decision.")
    ] = None,
    attestations: Annotated[Path | None, typer.Option("--attestations", help="Verdict attestation store.")] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Auto-approval, escalation, denial and override rates, time to approval, tool failures, `audit show` time."""
    path = ledger_path(ledger)
    assert path is not None
    start = parse_time(since, option="--since") if since else None
    report = compute_metrics(_events(path, None), since=start)
    if repo is not None and attestations is not None:
        from bot.audit.metrics import time_audit_show
        from bot.audit.reconstruct import ShowRequest, reconstruct

        def show(cid: str) -> object:
            return reconstruct(ShowRequest(query=cid, ledger=path, repo=repo, attestations=attestations))

        report.audit_show = time_audit_show(_events(path, None), show)

    def render_table(console: Console) -> None:
        agents = sorted(report.per_agent)
        table = Table("metric", "overall", *agents)
        columns = [report.overall.rows()] + [report.per_agent[a].rows() for a in agents]
        for i, (name, _) in enumerate(columns[0]):
            table.add_row(name, *(col[i][1] for col in columns))
        if report.audit_show is not None:

            def ms(key: str) -> str:
                d = report.audit_show.get(key) if report.audit_show else None
                if d is None or d.mean is None or d.p90 is None:
                    return "n/a"
                return f"mean {d.mean * 1000:.0f} ms, p90 {d.p90 * 1000:.0f} ms"

            table.add_row("audit show", ms("overall"), *(ms(a) for a in agents))
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
        trusted = ledger_keys(reg)
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
                styled(
                    "[green]archived[/] events {}-{} ({}) to {}",
                    result.first_seq,
                    result.last_seq,
                    result.archived,
                    result.segment,
                )
            )
        else:
            console.print("nothing archived")
        if result.stopped_at:
            console.print(f"stopped at seq {result.stopped_at['seq']}: {result.stopped_at['reason']}")

    emit(result.as_dict(), output, render_result)


# --------------------------------------------------------------------------------------------------
# show and verify

RepoOption = Annotated[
    Path, typer.Option("--repo", help="A clone of the governed repository, or the embedded forge's bare repo.")
]
AttestationsOption = Annotated[
    Path, typer.Option("--attestations", help="Directory of verdict attestations (<head sha>.dsse.json).")
]
DeployStateOption = Annotated[
    Path | None, typer.Option("--deploy-state", help="Deploy state directory (deploy records under deployments/).")
]
BranchOption = Annotated[str, typer.Option("--branch", help="The protected branch.")]

_STATUS_STYLE = {
    LinkStatus.OK: "[green]ok[/]",
    LinkStatus.MISSING: "[yellow]missing[/]",
    LinkStatus.BROKEN: "[red]broken[/]",
}


def _render_reconstruction(rec: Reconstruction, console: Console) -> None:
    title = f"decision {rec.correlation_id or '?'} — PR #{rec.pr if rec.pr is not None else '?'}"
    console.print(styled("[bold]{}[/] (agent {}, repo {})", title, rec.agent_id or "?", rec.repo or "?"))
    console.print(
        f"base {(rec.base_commit or '?')[:12]}  head {(rec.head_commit or '?')[:12]}  "
        f"merge {(rec.merge_commit or '-')[:12]}"
    )
    table = Table("link", "status", "explanation", "sources")
    for link in rec.links:
        sources = "\n".join(
            f"{s.kind.value} {s.ref}" + ("" if s.verified is None else (" ✓" if s.verified else " ✗"))
            for s in link.sources
        )
        table.add_row(link.name, styled(_STATUS_STYLE[link.status]), link.explanation, sources)
    console.print(table)
    if rec.ok:
        console.print(styled("[green]every link verifies[/]"))
    else:
        for line in rec.problems:
            console.print(styled("[red]✗[/] {}", line))


TrailOrAttestationsOption = Annotated[
    Path | None,
    typer.Option(
        "--attestations",
        help="Directory of verdict attestations (<head sha>.dsse.json). Without it and --ledger: the audit trail "
        "in --repo.",
    ),
]


def _from_trail(attestations: Path | None, ledger: Path | None, deploy_state: Path | None) -> bool:
    """Neither a ledger nor an attestation store given: the audit trail in --repo is both."""
    if attestations is None and ledger is None and not os.environ.get("GLASSBOX_LEDGER"):
        if deploy_state is not None:
            raise UserError("--deploy-state goes with --ledger and --attestations: the audit trail has its own")
        return True
    if attestations is None:
        raise UserError("--attestations is required with --ledger (or give neither: the audit trail in --repo)")
    return False


@group.command("show")
def show(
    query: Annotated[str, typer.Argument(help="A correlation id, a PR number or a commit SHA.")],
    repo: RepoOption,
    attestations: TrailOrAttestationsOption = None,
    ledger: LedgerOption = None,
    deploy_state: DeployStateOption = None,
    registry_ref: Annotated[
        str, typer.Option("--registry-ref", help="Ref whose registry holds the ledger-signer keys.")
    ] = "main",
    branch: BranchOption = "main",
    full_ledger: Annotated[
        bool, typer.Option("--full-ledger", help="Also verify every ledger event's chain and signature (slower).")
    ] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Rebuild one decision: request → agent → model/prompt → evidence → commit → verdict → approvals →
    merge → deploy → verification, verifying each link. Exit 1 when a link is missing or broken."""
    if _from_trail(attestations, ledger, deploy_state):
        with trail_inputs(repo) as view:
            rec = reconstruct(
                ShowRequest(
                    query=query,
                    ledger=view.ledger,
                    repo=repo,
                    attestations=view.attestation_store,
                    deploy_state=view.deploy_state if view.deployments else None,
                    registry_ref=registry_ref,
                    branch=branch,
                    full_ledger=full_ledger,
                )
            )
    else:
        assert attestations is not None
        path = ledger_path(ledger)
        assert path is not None
        rec = reconstruct(
            ShowRequest(
                query=query,
                ledger=path,
                repo=repo,
                attestations=attestations,
                deploy_state=deploy_state,
                registry_ref=registry_ref,
                branch=branch,
                full_ledger=full_ledger,
            )
        )
    emit(rec, output, lambda console: _render_reconstruction(rec, console))
    if not rec.ok:
        if output is OutputFormat.JSON:  # the text view already lists them; JSON readers get them on stderr
            for line in rec.problems:
                err_console.print(f"glassbox: {line}")
        raise typer.Exit(1)


def _render_history(report: HistoryReport, console: Console) -> None:
    governed = len(report.governed_commits)
    anchor = (report.trust_anchor or "?")[:12]
    via = f"PR #{report.trust_anchor_pr}" if report.trust_anchor_pr is not None else "the first commit checked"
    console.print(
        f"{report.branch} at {report.branch_head[:12]}: {report.commits_checked} commit(s) since "
        f"{report.since or 'the root'}, {governed} touching governed paths; ledger {report.ledger_events} event(s), "
        f"{report.archive_segments} archive segment(s), signatures checked against registry/ at {anchor} ({via})"
    )
    if report.trail is not None:
        console.print(
            f"from the audit trail at {report.trail[:12]} ({report.trail_commits} commit(s), each checked: signed by a "
            "service identity, one parent, only additions)"
        )
    for finding in report.findings():  # one line each: kind, commit, what it touched, what happened, what to do
        console.print(styled("[red]✘[/] {}" if finding.fails else "[yellow]![/] {}", finding.line()))
    if report.ok:
        reported = f", {len(report.notices)} finding(s) reported" if report.notices else ""
        console.print(styled("[green]no violations[/]{}", reported))


@group.command("verify")
def verify(
    repo: RepoOption,
    attestations: TrailOrAttestationsOption = None,
    ledger: LedgerOption = None,
    deploy_state: DeployStateOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Check first-parent commits after this ref (default: all).")
    ] = None,
    branch: BranchOption = "main",
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Every governed commit on the branch came through an approved PR with a PASSED verdict; agent commits are
    signed; the ledger chain is unbroken; no deploy is orphaned; no recorded merge or deploy was rewritten away."""
    if _from_trail(attestations, ledger, deploy_state):
        report = verify_from_trail(repo, branch=branch, since=since)
    else:
        assert attestations is not None
        path = ledger_path(ledger)
        assert path is not None
        report = verify_history(
            VerifyRequest(
                ledger=path, repo=repo, attestations=attestations, deploy_state=deploy_state, since=since, branch=branch
            )
        )
    emit(report, output, lambda console: _render_history(report, console))
    if not report.ok:
        if output is OutputFormat.JSON:
            for v in report.violations:
                err_console.print(f"glassbox: {v.line()}")
        raise typer.Exit(1)
