"""`glassbox registry validate|show|schemas`: check the registry and show what an agent may do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.commands._common import OutputFormat, OutputOption, RegistryOption, emit, styled
from bot.registry import load_registry, resolved_scope, write_schemas

group = typer.Typer(help="Validate the registry and show an agent's resolved scope.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="registry")


def summary(root: Path) -> dict[str, object]:
    reg = load_registry(root)
    return {
        "registry": str(root),
        "digest": reg.digest,
        "agents": [
            {"id": a.id, "status": a.status.value, "autonomy": a.autonomy.value, "max_risk": a.scope.max_risk.value}
            for a in reg.agents.agents
        ],
        "teams": {t.id: list(t.members) for t in reg.teams.teams},
        "service_identities": {s.id: s.kind for s in reg.teams.service_identities},
        "tools": [t.id for t in reg.tools.tools],
        "trusted_keys": len(reg.trust.keys),
    }


def render_summary(data: dict[str, object], console: Console) -> None:
    console.print(styled("[bold green]registry valid[/] {}  digest {}", data["registry"], data["digest"]))
    table = Table("agent", "status", "autonomy", "max risk", title="agents")
    for agent in data["agents"]:  # type: ignore[attr-defined]
        table.add_row(agent["id"], agent["status"], agent["autonomy"], agent["max_risk"])
    console.print(table)
    teams = Table("team", "members", title="teams")
    for team, members in data["teams"].items():  # type: ignore[attr-defined]
        teams.add_row(team, ", ".join(members))
    console.print(teams)
    services = ", ".join(f"{i} ({k})" for i, k in data["service_identities"].items())  # type: ignore[attr-defined]
    console.print(f"service identities: {services}")
    console.print(f"tools: {', '.join(data['tools'])}  trusted keys: {data['trusted_keys']}")  # type: ignore[arg-type]


@group.command("validate")
def validate(registry: RegistryOption = Path("registry"), output: OutputOption = OutputFormat.TEXT) -> None:
    """Validate every registry file against its schema and the cross-file rules (exit 2 on problems)."""
    data = summary(registry)
    emit(data, output, lambda c: render_summary(data, c))


@group.command("show")
def show(
    agent: Annotated[str, typer.Argument(help="Agent id.")],
    registry: RegistryOption = Path("registry"),
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Print an agent's resolved scope: paths, projects, stacks, types, tools, requesters, budgets."""
    data = resolved_scope(load_registry(registry), agent)

    def render(console: Console) -> None:
        a = data["agent"]
        console.print(styled("[bold]{}[/] — {} (owner: {})", a["id"], a["display_name"], a["owner_team"]))
        console.print(
            f"status {a['status']}, autonomy {a['autonomy']}, max risk {a['scope']['max_risk']}, "
            f"confidence threshold {a['confidence_threshold']}"
        )
        table = Table("scope", "values", show_header=False)
        for key in ("paths", "projects", "stacks", "resource_types"):
            table.add_row(key, "\n".join(a["scope"][key]) or "(none)")
        table.add_row("tools", "\n".join(f"{t['id']} ({t['blast_radius']})" for t in data["tools"]))
        table.add_row("requesters", ", ".join(data["requesters"]) or "(none)")
        table.add_row("budgets", f"{a['budgets']['changes_per_day']} changes/day, {a['budgets']['open_prs']} open PRs")
        table.add_row("never", ", ".join(data["governance_paths"]))
        console.print(table)

    emit(data, output, render)


@group.command("schemas")
def schemas(registry: RegistryOption = Path("registry"), output: OutputOption = OutputFormat.TEXT) -> None:
    """Regenerate the registry's JSON Schemas under <registry>/schema/ from the models."""
    paths = [str(p) for p in write_schemas(registry)]
    emit({"written": paths}, output, lambda c: c.print("\n".join(f"wrote {p}" for p in paths)))
