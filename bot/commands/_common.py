"""Options and rendering shared by every command: ``--output text|json``, ``--ledger``, ``--keys``.

Commands print machine output as one JSON document on stdout (``--output json``) and people output with
rich (``--output text``). Both come from the same record; renderers never recompute a decision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from bot.errors import UserError


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class SandboxMode(StrEnum):
    NAMESPACES = "namespaces"
    NONE = "none"


SandboxOption = Annotated[
    SandboxMode,
    typer.Option(
        "--sandbox",
        help="How PR code runs: namespaces (the sandbox; fails closed where it cannot be set up) or none "
        "(local development only: recorded in the verdict, and deploy refuses such verdicts).",
        case_sensitive=False,
    ),
]

PlanCacheOption = Annotated[
    bool,
    typer.Option(
        "--plan-cache/--no-plan-cache",
        help="Reuse plans already computed for the same inputs (verified on every read; GLASSBOX_PLAN_CACHE=off "
        "turns it off, GLASSBOX_PLAN_CACHE_DIR moves it). Never used with --sandbox=none.",
    ),
]


OutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="text for people, json for machines.", case_sensitive=False)
]
LedgerOption = Annotated[
    Path | None,
    typer.Option("--ledger", help="Ledger JSONL file. Default: $GLASSBOX_LEDGER.", show_default=False),
]
KeysOption = Annotated[
    Path | None,
    typer.Option("--keys", help="Key directory. Default: $GLASSBOX_KEYS, else the user data dir.", show_default=False),
]
RegistryOption = Annotated[
    Path,
    typer.Option("--registry", help="Registry directory (agents, tools, teams, approval matrix, trust)."),
]

# Markup is off: a plain string is printed exactly as it is, brackets and all (URNs, rule messages, paths and
# user input are full of them). Styled text is built with `styled`, which escapes every piece of data it is given.
console = Console(highlight=False, soft_wrap=True, markup=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def styled(template: str, *args: object, **kwargs: object) -> Text:
    """Rich markup ``template`` (``"[green]ok[/] {}"``) with each argument escaped before it is put in."""
    return Text.from_markup(
        template.format(*(escape(str(a)) for a in args), **{k: escape(str(v)) for k, v in kwargs.items()})
    )


def to_jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list | tuple):
        return [to_jsonable(d) for d in data]
    if isinstance(data, dict):
        return {k: to_jsonable(v) for k, v in data.items()}
    return data


def emit(data: Any, output: OutputFormat, render: Callable[[Console], None]) -> None:
    """Print ``data`` as JSON, or call ``render`` for people."""
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(to_jsonable(data), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        render(console)


def ledger_path(option: Path | None, *, required: bool = True) -> Path | None:
    if option is not None:
        return option
    env = os.environ.get("GLASSBOX_LEDGER")
    if env:
        return Path(env)
    if required:
        raise UserError("no ledger given: pass --ledger PATH or set GLASSBOX_LEDGER")
    return None


def keys_dir(option: Path | None) -> Path:
    if option is not None:
        return option
    env = os.environ.get("GLASSBOX_KEYS")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("glassbox")) / "keys"
