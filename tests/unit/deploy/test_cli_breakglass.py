from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from bot.commands import breakglass
from bot.deploy.breakglass import BreakGlassRefused, GrantStore, list_grants, use_grant
from bot.errors import UserError
from tests.unit.deploy.conftest import COMMIT, STACK, DeployEnv


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


def test_open_writes_the_envelope_the_deploy_workflow_takes(
    env: DeployEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.deploy.breakglass import read_presented_grant
    from bot.deploy.events import EventSink

    out = tmp_path / "handoff" / "grant.json"
    args = ["--ticket", "INC-3", "--reason", "x", "--stack", STACK, "--as", "carol", "--envelope-out", str(out)]
    _run(env, "open", *args)
    assert str(out) in capsys.readouterr().out
    text = out.read_text()
    assert text.endswith("\n") and text.count("\n") == 1, "one line: a workflow_dispatch input"
    sink = EventSink(env.ledger, env.signers["glassbox-deployer"])
    gid, envelope = read_presented_grant(text, sink=sink, commit=None)
    (row,) = list_grants(GrantStore.under(env.state))
    assert gid == row.grant.grant_id and envelope["signatures"][0]["keyid"] == env.signers["carol"].keyid
    # without --envelope-out the text output shows it, whole, on one line
    _run(env, "open", "--ticket", "INC-4", "--reason", "x", "--stack", STACK, "--as", "carol")
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith('{"payload"')]
    assert len(printed) == 1 and json.loads(printed[0])["payloadType"].endswith("breakglass-grant.v1+json")


def test_close_signs_the_closure_writes_the_envelope_and_closes_the_state_review(
    env: DeployEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(env, "open", "--ticket", "INC-1", "--reason", "outage", "--stack", STACK, "--as", "carol", "-o", "json")
    gid = json.loads(capsys.readouterr().out)["grant"]["grant_id"]
    use_grant(
        gid, STACK, COMMIT, registry=env.registry, store=GrantStore.under(env.state), sink=env.sink, state_dir=env.state
    )
    out = env.tmp / "closure.json"

    def close(who: str, *more: str) -> None:
        _app()(
            args=[
                *("breakglass", "close", gid, "--by", who, "--key", str(env.tmp / "keys" / f"{who}.key")),
                *("--outcome", "kept", "--summary", "capacity restored, change kept"),
                *("--registry", str(env.registry.root), "--ledger", str(env.ledger.path), "--state", str(env.state)),
                *("--repo", str(env.tmp), *more),
            ],
            standalone_mode=False,
        )

    with pytest.raises(BreakGlassRefused, match="may not close break-glass reviews"):
        close("carol")
    close("alice", "--envelope-out", str(out), "-o", "json")
    closed = json.loads(capsys.readouterr().out)
    assert closed["closure"]["closed_by"] == "alice" and closed["review"]["status"] == "closed"
    line = out.read_text(encoding="utf-8")
    assert line.endswith("\n") and "\n" not in line[:-1] and json.loads(line) == closed["envelope"]
    assert (env.state / "reviews" / f"{gid}.closed.dsse.json").read_text(encoding="utf-8") == line
    with pytest.raises(BreakGlassRefused, match="already closed"):
        close("alice")
