"""`glassbox forge init|serve` through the command module (the lead wires it into bot/cli.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import typer
import yaml
from typer.testing import CliRunner

from bot.commands import forge as forge_command
from bot.forge.server import repo_path
from bot.registry import load_registry
from tests.forge_helpers import ROOT, make_source

app = typer.Typer()
forge_command.register(app)


def test_init_writes_tokens_keys_trust_and_a_protected_main(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    data = tmp_path / ".glassbox-demo" / "forge"
    result = CliRunner().invoke(
        app, ["forge", "init", "--data", str(data), "--repo", "acme/infra", "--from", str(src), "--output", "json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    tokens = json.loads((data / "tokens.json").read_text())
    assert stat.S_IMODE(os.stat(data / "tokens.json").st_mode) == 0o600
    assert {"patch-agent", "carol", "glassbox-ci", "glassbox-deployer", "glassbox-bot", "forge-admin"} <= set(tokens)
    for token in tokens.values():
        assert token not in result.output
    assert (data / "keys" / "carol.key").exists() and stat.S_IMODE(
        os.stat(data / "keys" / "carol.key").st_mode
    ) == 0o600
    assert "PRIVATE KEY" not in result.output

    bare = repo_path(data, "acme/infra")
    assert out["repo_path"] == str(bare)

    def git(*args: str) -> str:
        return subprocess.run(["git", f"--git-dir={bare}", *args], capture_output=True, check=True, text=True).stdout

    files = set(git("ls-tree", "-r", "--name-only", "main").split())
    assert "infra/network/__main__.py" in files and "registry/agents.yaml" in files
    assert not any(f.startswith(".venv") for f in files)
    # trust.yaml of the initial commit trusts exactly the generated keys, with the roles per kind
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "--quiet", str(bare), str(checkout)], check=True)
    reg = load_registry(checkout / "registry")
    roles = {k.identity: sorted(r.value for r in k.roles) for k in reg.trust.keys}
    assert roles["patch-agent"] == ["commit-signer", "ledger-signer"]
    assert roles["glassbox-ci"] == ["ledger-signer", "verdict-signer"]
    assert roles["glassbox-deployer"] == ["deploy-signer", "ledger-signer"]
    pub = (data / "keys" / "carol.pub").read_text().strip()
    assert yaml.safe_load((checkout / "registry" / "trust.yaml").read_text())["keys"]
    assert any(k.public_key == pub for k in reg.trust.keys)

    again = CliRunner().invoke(app, ["forge", "init", "--data", str(data), "--repo", "acme/infra", "--from", str(src)])
    assert again.exit_code != 0


def test_serve_binds_127_0_0_1_and_prints_the_url(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    data = tmp_path / "forge"
    assert (
        CliRunner()
        .invoke(app, ["forge", "init", "--data", str(data), "--repo", "acme/infra", "--from", str(src)])
        .exit_code
        == 0
    )
    script = (
        "import typer, sys; from bot.commands import forge; app = typer.Typer(); forge.register(app); "
        "app(args=sys.argv[1:])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "forge", "serve", "--data", str(data), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("forge listening on http://127.0.0.1:") and line.endswith("/api/v3")
        url = line.rsplit(" ", 1)[-1]
        token = json.loads((data / "tokens.json").read_text())["carol"]
        req = urllib.request.Request(f"{url}/user", headers={"Authorization": f"Bearer {token}"})  # noqa: S310 - 127.0.0.1 only
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - 127.0.0.1 only
            assert json.loads(resp.read())["login"] == "carol"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert token not in err
