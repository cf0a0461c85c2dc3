"""`glassbox audit report|pack`: an HTML page for auditors, and a signed evidence pack per compliance control.

Both commands join the existing ``audit`` group through :func:`register`; they parse options, call one
service function (``bot.audit.report`` / ``bot.audit.compliance``) and render its result.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.audit.compliance import PackRequest, build_pack
from bot.audit.report import ReportRequest, write_report
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
from bot.commands.audit import group, parse_time
from bot.errors import IntegrityError
from bot.trust.keys import load_signer

AttestationsOption = Annotated[
    Path | None, typer.Option("--attestations", help="Verdict attestations (<head sha>.dsse.json) to verify against.")
]
DeployStateOption = Annotated[
    Path | None, typer.Option("--deploy-state", help="Deploy state directory (deploy records, break-glass reviews).")
]
RepoOption = Annotated[
    Path | None,
    typer.Option("--repo", help="The governed repository (a clone or the forge's bare repo): trust is read from it."),
]
RegistryDirOption = Annotated[
    Path | None, typer.Option("--registry", help="A registry directory to take trust from when --repo is not given.")
]
RegistryRefOption = Annotated[
    str,
    typer.Option(
        "--registry-ref",
        help="The protected branch of --repo: trusted keys come from its newest governed merge, never its head.",
    ),
]


def _time(value: str | None, option: str) -> datetime | None:
    # the audit group's own parser, so --since means the same in every audit command
    return parse_time(value, option=option) if value else None


def report(
    html_out: Annotated[Path, typer.Option("--html", help="Write the HTML report here.")],
    ledger: LedgerOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only decisions and metrics from this time on (RFC 3339 or 30d).")
    ] = None,
    attestations: AttestationsOption = None,
    deploy_state: DeployStateOption = None,
    repo: RepoOption = None,
    registry: RegistryDirOption = None,
    registry_ref: RegistryRefOption = "main",
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Write a self-contained HTML page: ledger integrity, each decision's verified chain, governance metrics.

    Exit 1 when the ledger or a link does not verify; the page is written either way.
    """
    path = ledger_path(ledger)
    assert path is not None
    result = write_report(
        ReportRequest(
            ledger=path,
            since=_time(since, "--since"),
            attestations=attestations,
            deploy_state=deploy_state,
            repo=repo,
            registry=registry,
            registry_ref=registry_ref,
        ),
        html_out,
    )

    def render(console: Console) -> None:
        state = "[green]verified[/]" if result.verified else "[yellow]signatures not checked[/]"
        if not result.signatures_checked:
            console.print("no trust anchor given (--repo or --registry): signatures were not checked")
        elif not result.verified:
            state = "[red]broken[/]"
        console.print(
            styled(
                "wrote {}: {} event(s), {} decision(s), ledger " + state + ", {} link(s) that do not verify",
                html_out,
                result.events,
                result.decisions,
                result.broken_links,
            )
        )
        if result.trust_source:
            found = f"{result.findings} audit verify finding(s)"
            console.print(f"signatures checked against {result.trust_source}; {found}")

    emit({"html": str(html_out), **result.as_dict()}, output, render)
    if result.signatures_checked and (not result.verified or result.broken_links):
        raise IntegrityError(
            f"the report at {html_out} shows integrity failures: ledger "
            f"{'verified' if result.verified else 'broken'}, {result.broken_links} link(s) that do not verify"
        )


def pack(
    since: Annotated[str, typer.Option("--since", help="Start of the period (RFC 3339, or an age like 90d).")],
    out: Annotated[Path, typer.Option("--out", help="A new or empty directory for the pack.")],
    identity: Annotated[str, typer.Option("--as", help="Identity whose key signs the pack's manifest.")],
    ledger: LedgerOption = None,
    until: Annotated[str | None, typer.Option("--until", help="End of the period (exclusive); default: now.")] = None,
    attestations: AttestationsOption = None,
    deploy_state: DeployStateOption = None,
    repo: RepoOption = None,
    registry: RegistryDirOption = None,
    registry_ref: RegistryRefOption = "main",
    controls: Annotated[Path, typer.Option("--controls", help="Control → evidence mapping.")] = Path(
        "registry/controls.yaml"
    ),
    keys: KeysOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Bundle the evidence for each compliance control over a period, state gaps plainly, sign the manifest.

    Controls (registry/controls.yaml): SOC 2 CC8.1, ISO 27001 A.8.32 and A.5.3, NIST 800-53 CM-3, CM-5, AU-9,
    AC-5, EU AI Act Art. 12 and Art. 14. Exit 1 when the ledger does not verify; the pack is written either way.
    """
    path = ledger_path(ledger)
    assert path is not None
    start = _time(since, "--since")
    assert start is not None
    signer = load_signer(keys_dir(keys), identity)
    result = build_pack(
        PackRequest(
            ledger=path,
            out=out,
            since=start,
            until=_time(until, "--until"),
            controls=controls,
            attestations=attestations,
            deploy_state=deploy_state,
            repo=repo,
            registry=registry,
            registry_ref=registry_ref,
        ),
        signer,
    )

    def render(console: Console) -> None:
        style = {"evidenced": "[green]evidenced[/]", "partial": "[yellow]partial[/]", "gap": "[red]NO EVIDENCE[/]"}
        for c in result.controls:
            console.print(
                styled(
                    "{} {} {}: " + style[c.status] + ", {} event(s)",
                    c.control.framework,
                    c.control.ref,
                    c.control.title,
                    c.events,
                )
            )
            for gap in c.gaps:
                console.print(f"  gap: {gap}")
        console.print(f"wrote {result.files} file(s) to {out}; manifest {result.manifest} signed by {identity}")

    emit(result.as_dict(), output, render)
    if not result.signatures_checked:
        err_console.print("glassbox: no trust anchor given (--repo or --registry): ledger signatures were not checked")
    elif not result.ledger_ok:
        raise IntegrityError(f"the ledger {path} does not verify; see {out / 'ledger-verification.json'}")


def register(app: typer.Typer) -> None:
    """Add `report` and `pack` to the `audit` group (``app`` is the root app the group is mounted on)."""
    del app  # the group is already on the root app; registration only adds commands to it
    group.command("report")(report)
    group.command("pack")(pack)
