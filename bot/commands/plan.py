"""`glassbox plan`: what a change between two refs does to the infrastructure, from its Pulumi programs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.commands._common import OutputFormat, OutputOption, emit, styled
from bot.plan import Plan, ResourceChange, build_plan

_ACTION_STYLE = {"create": "green", "update": "yellow", "replace": "bold magenta", "delete": "red"}
_SHOWN_PROPERTIES = 4


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(
    base: Annotated[str, typer.Option("--base", help="Base ref (branch, tag or SHA).")],
    head: Annotated[str, typer.Option("--head", help="Head ref (branch, tag or SHA).")],
    repo: Annotated[Path, typer.Option("--repo", help="Git repository holding infra/.")] = Path("."),
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds each program sandbox may run.")] = 120,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Run the touched Pulumi projects at base and head under the mock runtime and show the resource changes."""
    result = build_plan(repo, base, head, timeout=timeout)
    emit(result, output, lambda console: render(result, console))


def _properties(change: ResourceChange) -> str:
    lines = [
        f"{p.path}: {json.dumps(p.before, sort_keys=True)} → {json.dumps(p.after, sort_keys=True)}"
        for p in change.changed[:_SHOWN_PROPERTIES]
    ]
    if len(change.changed) > _SHOWN_PROPERTIES:
        lines.append(f"… and {len(change.changed) - _SHOWN_PROPERTIES} more")
    return "\n".join(lines)


def render(result: Plan, console: Console) -> None:
    console.print(styled("[bold]plan[/] {} → {}", result.base_commit[:12], result.head_commit[:12]))
    stacks = ", ".join(f"{s.project}/{s.stack} ({s.environment})" for s in result.stacks) or "none"
    console.print(f"stacks touched: {stacks}")
    if result.changes:
        table = Table("action", "project/stack", "type", "name", "changed properties", title="resource changes")
        for change in result.changes:
            style = _ACTION_STYLE.get(change.action.value, "")
            action = change.action.value + (" (predicted)" if change.replace_predicted else "")
            table.add_row(
                styled("[" + style + "]{}[/]", action),
                f"{change.project}/{change.stack}",
                change.type,
                change.name,
                _properties(change),
            )
        console.print(table)
    else:
        console.print("no resource changes")
    counts: dict[str, int] = {}
    for change in result.changes:
        counts[change.action.value] = counts.get(change.action.value, 0) + 1
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "0 changes"
    console.print(f"{summary}; {len(result.resources)} resources at head")
    console.print(f"plan digest {result.digest}")
