"""`glassbox owners|approvals|merge|protect` wired into a typer app the way bot/cli.py will wire them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer

from bot.commands import approvals as command
from bot.errors import GlassboxError
from bot.forge.model import ChangedFile, FileStatus, StatusState
from bot.trust.conventions import APPROVALS_CONTEXT
from bot.trust.keys import generate_key
from tests.factories import SAMPLE_REGISTRY
from tests.unit.approvals._builders import BASE, HEAD, pull, review, verdict
from tests.unit.approvals._forge import MemoryForge

CODEOWNERS = "/infra/network/ @acme/platform\n/infra/*/Pulumi.dev.yaml\n!bad @acme/security\n"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    command.register(app)
    try:
        result = app(args=list(args), prog_name="glassbox", standalone_mode=False)
        code = result if isinstance(result, int) else 0  # click returns typer.Exit's code here
    except typer.Exit as exc:
        code = int(exc.exit_code)
    except GlassboxError as exc:
        print(exc.message)
        code = exc.exit_code
    out, err = capsys.readouterr()
    return code, out, err


def test_owners_json_maps_each_path_to_its_owners(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "CODEOWNERS"
    file.write_text(CODEOWNERS)
    code, out, err = run(
        capsys,
        "owners",
        "infra/network/a.py",
        "infra/network/Pulumi.dev.yaml",
        "README.md",
        "--codeowners",
        str(file),
        "--output",
        "json",
    )
    assert code == 0
    assert json.loads(out) == {
        "infra/network/a.py": ["@acme/platform"],
        "infra/network/Pulumi.dev.yaml": [],
        "README.md": [],
    }
    assert ":3: negation" in err


def test_owners_text_and_default_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "CODEOWNERS").write_text("* @acme/security\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "owners", "anything.txt")
    assert code == 0 and "@acme/security" in out and "docs/CODEOWNERS" in out


def test_owners_without_a_file_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "owners", "x")
    assert code == 2 and "--codeowners" in out


def _forge() -> MemoryForge:
    forge = MemoryForge(pr=pull(), reviews=[review(1, "carol"), review(2, "erin")])
    forge.files = [ChangedFile(path="infra/network/a.py", status=FileStatus.MODIFIED)]
    forge.contents[("CODEOWNERS", BASE)] = CODEOWNERS.encode()
    return forge


def _approvals_args(tmp_path: Path, verdict_file: Path) -> list[str]:
    generate_key(tmp_path / "keys", "glassbox-bot", overwrite=True)
    return [
        "--pr",
        "7",
        "--verdict",
        str(verdict_file),
        "--registry",
        str(SAMPLE_REGISTRY),
        "--repo",
        "acme/infra",
        "--token",
        "t",
        "--ledger",
        str(tmp_path / "ledger.jsonl"),
        "--keys",
        str(tmp_path / "keys"),
    ]


def test_approvals_json_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    forge = _forge()
    monkeypatch.setattr(command, "connect", lambda settings: forge)
    good = tmp_path / "verdict.json"
    good.write_text(verdict().model_dump_json())
    code, out, _ = run(capsys, "approvals", *_approvals_args(tmp_path, good), "--output", "json")
    data: dict[str, Any] = json.loads(out)
    assert code == 0 and data["satisfied"] is True
    assert {d["review_id"]: d["reason"] for d in data["discarded_with_reason"]} == {2: "not_owner"}
    assert forge.statuses[HEAD][APPROVALS_CONTEXT].state is StatusState.SUCCESS

    stale = tmp_path / "stale.json"
    stale.write_text(verdict(head="9" * 40).model_dump_json())
    code, out, _ = run(capsys, "approvals", *_approvals_args(tmp_path, stale))
    assert code == 1 and "NOT satisfied" in out and "stale_verdict" in out and "not_owner" in out


def test_merge_command_refuses_without_green_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    forge = _forge()
    monkeypatch.setattr(command, "connect", lambda settings: forge)
    good = tmp_path / "verdict.json"
    good.write_text(verdict().model_dump_json())
    code, out, _ = run(capsys, "merge", *_approvals_args(tmp_path, good))
    assert code == 1 and "not merged" in out and "glassbox/check has not been reported" in out


def test_protect_with_live_json_prints_the_diff_and_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"required_status_checks": {"strict": True, "contexts": ["glassbox/check"]}}))
    code, out, _ = run(capsys, "protect", "--live", str(live), "--registry", str(SAMPLE_REGISTRY), "-o", "json")
    data = json.loads(out)
    assert code == 0 and not data["in_sync"] and not data["applied"]
    changed = {c["setting"] for c in data["diff"]["changes"]}
    assert "required_status_checks" in changed and "required_signatures" in changed
    checks = data["body"]["required_status_checks"]["checks"]
    assert [c["context"] for c in checks] == ["glassbox/check", "glassbox/approvals"]
    assert "trail" not in data  # a saved answer is about one branch


def test_protect_without_a_capable_forge_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(command, "connect", lambda settings: _forge())
    code, out, _ = run(capsys, "protect", "--registry", str(SAMPLE_REGISTRY), "--repo", "acme/infra", "--token", "t")
    assert code == 2 and "cannot read or write branch protection" in out
