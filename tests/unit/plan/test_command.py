"""`glassbox plan`: the command registered on a typer app, in text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from bot.commands import plan as plan_command
from bot.plan import Plan
from tests.plan_helpers import commit_all, edit, infra_repo


def _app() -> typer.Typer:
    app = typer.Typer()
    plan_command.register(app)

    @app.callback()
    def root() -> None:
        """Keeps `plan` a subcommand, as in the real CLI."""

    return app


def test_plan_command_text_and_json(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path, projects=("network",))
    base = repo.head.commit.hexsha
    edit(repo, "infra/network/Pulumi.dev.yaml", "bastionSize: t3.small", "bastionSize: t3.micro")
    head = commit_all(repo, "dev bastion smaller")
    runner = CliRunner()

    as_json = runner.invoke(_app(), ["plan", "--repo", str(tmp_path), "--base", base, "--head", head, "-o", "json"])
    assert as_json.exit_code == 0, as_json.output
    plan = Plan.model_validate(json.loads(as_json.stdout))
    assert plan.verify_digest()
    assert [(c.action.value, c.name, c.changed[0].path) for c in plan.changes] == [
        ("update", "bastion", "instanceType")
    ]

    as_text = runner.invoke(_app(), ["plan", "--repo", str(tmp_path), "--base", base, "--head", head])
    assert as_text.exit_code == 0, as_text.output
    assert "network/dev" in as_text.stdout and "bastion" in as_text.stdout
    assert f"plan digest {plan.digest}" in as_text.stdout
