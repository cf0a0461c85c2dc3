"""`glassbox schema NAME`: print a record's JSON Schema (change-request, evidence, audit-event, ...)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from bot.records import RECORDS, json_schema
from bot.registry import FILES, schema_for


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)


def schema(
    name: Annotated[
        str,
        typer.Argument(help=f"One of: {', '.join([*RECORDS, *(f.removesuffix('.yaml') for f in FILES)])}."),
    ],
) -> None:
    """Print the JSON Schema of a record or a registry file."""
    registry_files = {f.removesuffix(".yaml"): f for f in FILES}
    data = schema_for(registry_files[name]) if name in registry_files else json_schema(name)
    typer.echo(json.dumps(data, indent=2, sort_keys=True))
