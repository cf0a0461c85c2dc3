"""`glassbox demo`: the whole governed flow, offline, on the embedded forge (see bot/demo.py)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.commands._common import OutputFormat, OutputOption, console, emit, styled
from bot.demo import first_correlation_id, run_demo
from bot.errors import Denied, UserError


def _glassbox_command() -> str:
    """How the person who ran the demo runs glassbox again: `.venv/bin/glassbox` is not on PATH after `make demo`."""
    script = Path(sys.executable).parent / "glassbox"
    if shutil.which("glassbox") == str(script):
        return "glassbox"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    source: Annotated[
        Path, typer.Option("--source", help="Repository holding registry/, infra/, policy-pack/.")
    ] = Path("."),
    workdir: Annotated[Path, typer.Option("--dir", help="Where the demo keeps its forge, ledger and state.")] = Path(
        ".glassbox-demo"
    ),
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Agents propose, CI checks, reviewers approve, the bot merges, the deployer deploys; then audit it."""
    if not (source / "registry").is_dir() or not (source / "infra").is_dir():
        raise UserError(f"--source {source}: no registry/ and infra/ here; run from the repository root")
    started = time.monotonic()
    say = (lambda line: console.print(line, highlight=False)) if output is OutputFormat.TEXT else (lambda line: None)
    scenarios = run_demo(source.resolve(), workdir.resolve(), say)
    elapsed = time.monotonic() - started
    data = {"scenarios": [s.as_dict() for s in scenarios], "seconds": round(elapsed, 1), "dir": str(workdir)}

    def render(c: Console) -> None:
        table = Table("scenario", "expected", "actual", title="glassbox demo")
        table.add_column("correlation id", no_wrap=True, min_width=36)  # the key to `audit show`: never cut
        for s in scenarios:
            mark = "green" if s.actual == s.expected else "red"
            table.add_row(s.name, s.expected, styled("[" + mark + "]{}[/]", s.actual), s.correlation_id or "-")
        c.print(table)
        c.print(f"finished in {elapsed:.0f} s; summary in {workdir}/summary.json, ledger in {workdir}/ledger.jsonl")
        first = first_correlation_id(scenarios)
        if first:
            c.print(f"try: {_glassbox_command()} ledger show --ledger {workdir}/ledger.jsonl --correlation-id {first}")

    emit(data, output, render)
    wrong = [s for s in scenarios if s.actual != s.expected]
    if wrong:
        raise Denied(
            "some scenarios did not end as expected",
            [f"{s.name}: expected {s.expected}, got {s.actual}" for s in wrong],
        )
