"""`glassbox schema NAME`: print a record's JSON Schema (change-request, evidence, verdict, plan, policy-input, ...)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from bot.errors import UserError
from bot.records import RECORDS, Record, json_schema
from bot.registry import FILES, schema_for


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)


def _stage_records() -> dict[str, type[Record]]:
    """Records owned by the stages; imported lazily so `glassbox schema` stays light."""
    from bot.approvals.model import ApprovalState
    from bot.audit.history import HistoryReport
    from bot.audit.reconstruct import Reconstruction
    from bot.deploy.gate import DeployReport
    from bot.plan.model import Plan
    from bot.propose import Proposal

    return {
        "plan": Plan,
        "proposal": Proposal,
        "approval-state": ApprovalState,
        "deploy-report": DeployReport,
        "reconstruction": Reconstruction,
        "history-report": HistoryReport,
    }


POLICY_INPUT = "policy-input"  # what the Rego pack reads as `input`

NAMES = [
    *RECORDS,
    POLICY_INPUT,
    "plan",
    "proposal",
    "approval-state",
    "deploy-report",
    "reconstruction",
    "history-report",
    *(f.removesuffix(".yaml") for f in FILES),
]


def schema(name: Annotated[str, typer.Argument(help=f"One of: {', '.join(NAMES)}.")]) -> None:
    """Print the JSON Schema of a record or a registry file."""
    registry_files = {f.removesuffix(".yaml"): f for f in FILES}
    stage = _stage_records()
    data: dict[str, Any]
    if name in registry_files:
        data = schema_for(registry_files[name])
    elif name == POLICY_INPUT:
        from bot.check.policy_input import policy_input_schema

        data = policy_input_schema()
    elif name in stage:
        data = stage[name].model_json_schema(mode="validation")
        data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        data["$id"] = f"https://glassbox.dev/schema/{name}.json"
    elif name in RECORDS:
        data = json_schema(name)
    else:
        raise UserError(f"unknown record {name!r}; known records: {', '.join(sorted(NAMES))}")
    typer.echo(json.dumps(data, indent=2, sort_keys=True))
