from __future__ import annotations

import json

import pytest
import typer

from bot.commands import breakglass
from bot.deploy.breakglass import BreakGlassRefused
from bot.errors import UserError
from tests.unit.deploy.conftest import STACK, DeployEnv


def _app() -> typer.Typer:
    # bot/cli.py wires the group for real; here it is mounted on its own app
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """glassbox (test mount)"""

    breakglass.register(app)
    return app


def _run(env: DeployEnv, *args: str) -> None:
    common = ["--registry", str(env.registry.root), "--ledger", str(env.ledger.path), "--keys", str(env.tmp / "keys")]
    _app()(
        args=["breakglass", *args, *(common if args[0] == "open" else []), "--state", str(env.state)],
        standalone_mode=False,
    )


def test_open_then_list_as_json(env: DeployEnv, capsys: pytest.CaptureFixture[str]) -> None:
    _run(
        env,
        "open",
        "--ticket",
        "INC-1",
        "--reason",
        "outage",
        "--ttl",
        "2h30m",
        "--stack",
        STACK,
        "--as",
        "carol",
        "-o",
        "json",
    )
    opened = json.loads(capsys.readouterr().out)
    assert opened["grant"]["opened_by"] == "carol" and opened["grant"]["ttl_seconds"] == 9000
    _run(env, "list", "-o", "json")
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "open" and row["grant"]["grant_id"] == opened["grant"]["grant_id"]
    _run(env, "list")
    text = capsys.readouterr().out
    assert "INC-1" in text and "open" in text


def test_open_refused_for_a_non_break_glass_person(env: DeployEnv) -> None:
    with pytest.raises(BreakGlassRefused, match="may not open"):
        _run(env, "open", "--ticket", "INC-1", "--reason", "x", "--stack", STACK, "--as", "alice")
    assert env.events()[-1].action == "breakglass.refuse"


def test_open_rejects_a_bad_ttl_and_max_from_the_environment(env: DeployEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="--ttl"):
        _run(env, "open", "--ticket", "INC-1", "--reason", "x", "--ttl", "1 day", "--stack", STACK, "--as", "carol")
    monkeypatch.setenv(breakglass.MAX_TTL_ENV, "30m")
    with pytest.raises(BreakGlassRefused, match="maximum is 30m"):
        _run(env, "open", "--ticket", "INC-1", "--reason", "x", "--ttl", "1h", "--stack", STACK, "--as", "carol")


def test_list_when_empty(env: DeployEnv, capsys: pytest.CaptureFixture[str]) -> None:
    _run(env, "list")
    assert "no break-glass grants" in capsys.readouterr().out
