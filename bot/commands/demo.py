"""`glassbox demo`: the governed flow, offline, on embedded defaults.

Today it validates and prints the sample registry and lists what the repository holds (infra projects,
policy rules); each stage of the flow joins it as it lands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from bot.commands._common import OutputFormat, OutputOption, RegistryOption, emit
from bot.commands.registry import render_summary, summary


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def inventory(root: Path) -> dict[str, Any]:
    projects = sorted(p.parent.name for p in (root / "infra").glob("*/Pulumi.yaml"))
    stacks = {
        project: sorted(
            s.name.removeprefix("Pulumi.").removesuffix(".yaml")
            for s in (root / "infra" / project).glob("Pulumi.*.yaml")
        )
        for project in projects
    }
    rules = [p for p in (root / "policy-pack").rglob("*.rego") if not p.name.endswith("_test.rego")]
    return {"infra_projects": stacks, "policy_rules": len(rules)}


def demo(registry: RegistryOption = Path("registry"), output: OutputOption = OutputFormat.TEXT) -> None:
    """Run the governed flow offline (so far: registry validation and an inventory)."""
    root = registry.resolve().parent
    registry_summary = summary(registry)
    inv = inventory(root)

    def render(console: Console) -> None:
        console.rule("glassbox demo — registry")
        render_summary(registry_summary, console)
        console.rule("what the repository governs")
        for project, stacks in inv["infra_projects"].items():
            console.print(f"infra/{project}: stacks {', '.join(stacks)}")
        console.print(f"policy-pack: {inv['policy_rules']} rules")

    emit({"registry": registry_summary, "inventory": inv}, output, render)
