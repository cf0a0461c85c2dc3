from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.records import Actor, ActorKind, Outcome
from bot.trust.keys import generate_key
from bot.trust.ledger import Ledger
from tests.factories import SAMPLE_REGISTRY, copy_registry, edit_yaml


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_registry_validate_ok_in_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "registry", "validate", "--registry", str(SAMPLE_REGISTRY))
    assert code == 0 and "registry valid" in out
    code, out, _ = run(capsys, "registry", "validate", "--registry", str(SAMPLE_REGISTRY), "--output", "json")
    assert code == 0 and json.loads(out)["digest"].startswith("sha256:")


def test_registry_validate_bad_input_exits_2_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_registry(tmp_path)
    edit_yaml(root / "agents.yaml", lambda d: d["agents"][1]["tools"].append("shell_exec"))
    edit_yaml(root / "teams.yaml", lambda d: d["teams"][0]["members"].append("mallory"))
    code, out, err = run(capsys, "registry", "validate", "--registry", str(root))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("glassbox: registry") and "2 problem(s)" in lines[0]
    assert lines[1:] == [
        f"{root}/agents.yaml: agents.1.tools.4: tool 'shell_exec' is not in the catalog (tools.yaml)",
        f"{root}/teams.yaml: teams.0.members.3: unknown identity 'mallory'; declare it under people",
    ] or sorted(lines[1:]) == sorted(
        [
            f"{root}/agents.yaml: agents.1.tools.4: tool 'shell_exec' is not in the catalog (tools.yaml)",
            f"{root}/teams.yaml: teams.0.members.3: unknown identity 'mallory'; declare it under people",
        ]
    )


def test_registry_show_prints_the_resolved_scope(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "registry", "show", "network-agent", "--registry", str(SAMPLE_REGISTRY), "-o", "json")
    data = json.loads(out)
    assert code == 0 and data["agent"]["autonomy"] == "draft" and data["requesters"] == ["carol", "dan"]
    code, _, err = run(capsys, "registry", "show", "ghost", "--registry", str(SAMPLE_REGISTRY))
    assert code == 2 and "unknown agent 'ghost'" in err


def test_schema_prints_json_schema_and_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", "evidence")
    assert code == 0 and json.loads(out)["title"] == "EvidenceRecord"
    code, out, _ = run(capsys, "schema", "agents")
    assert code == 0 and "agents" in json.loads(out)["properties"]
    code, _, err = run(capsys, "schema", "nonsense")
    assert code == 2 and "unknown record 'nonsense'" in err


def test_keys_init_prints_a_trust_entry_that_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keys", "init", "--identity", "alice", "--keys", str(tmp_path / "k"), "-o", "json")
    assert code == 0
    entry = json.loads(out)["trust_entry"]
    root = copy_registry(tmp_path)
    edit_yaml(root / "trust.yaml", lambda d: d["keys"].append(entry))
    assert run(capsys, "registry", "validate", "--registry", str(root))[0] == 0
    code, _, err = run(capsys, "keys", "init", "--identity", "alice", "--keys", str(tmp_path / "k"))
    assert code == 2 and "already exists" in err


def test_ledger_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signer = generate_key(tmp_path / "k", "glassbox-ci")
    root = copy_registry(tmp_path)
    edit_yaml(
        root / "trust.yaml",
        lambda d: d["keys"].append(
            {
                "identity": "glassbox-ci",
                "keyid": signer.keyid,
                "public_key": signer.public_line,
                "roles": ["ledger-signer"],
            }
        ),
    )
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for i in range(3):
        ledger.append(
            signer,
            actor=Actor(id="glassbox-ci", kind=ActorKind.CI),
            action="check",
            outcome=Outcome.ALLOW,
            reason=f"r{i}",
        )
    code, out, _ = run(capsys, "ledger", "verify", "--ledger", str(ledger.path), "--registry", str(root))
    assert code == 0 and "3 events" in out
    lines = ledger.path.read_text().splitlines()
    lines[1] = lines[1].replace('"outcome":"allow"', '"outcome":"deny"')
    ledger.path.write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, "ledger", "verify", "--ledger", str(ledger.path), "--registry", str(root))
    assert code == 1 and "broken at line 2: edited" in err
    code, out, _ = run(capsys, "ledger", "show", "--ledger", str(ledger.path), "-o", "json")
    assert code == 0 and len(json.loads(out)) == 3


def test_missing_ledger_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GLASSBOX_LEDGER", raising=False)
    code, _, err = run(capsys, "ledger", "show")
    assert code == 2 and err.strip() == "glassbox: no ledger given: pass --ledger PATH or set GLASSBOX_LEDGER"


def test_unexpected_errors_exit_3_with_the_traceback_in_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "glassbox.log"
    monkeypatch.setenv("GLASSBOX_LOG", str(log))
    monkeypatch.setattr("bot.commands.registry.load_registry", lambda root: 1 / 0)
    code, _, err = run(capsys, "registry", "validate", "--registry", str(SAMPLE_REGISTRY))
    assert code == 3
    assert len(err.strip().splitlines()) == 1 and "ZeroDivisionError" in err and str(log) in err
    assert "Traceback" in log.read_text()


def test_unknown_option_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "registry", "validate", "--bogus")
    assert code == 2 and "No such option" in err


def test_demo_refuses_a_source_without_an_estate(tmp_path: Path) -> None:
    glassbox = Path(sys.executable).parent / "glassbox"
    out = subprocess.run(
        [str(glassbox), "demo", "--source", str(tmp_path)], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 2
    assert "no registry/ and infra/ here" in out.stderr


@pytest.mark.parametrize(
    "name", ["plan", "proposal", "approval-state", "deploy-report", "reconstruction", "history-report", "verdict"]
)
def test_schema_covers_every_stage_record(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", name)
    assert code == 0 and json.loads(out)["$id"].endswith(f"/{name}.json")
