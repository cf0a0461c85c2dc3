"""`glassbox protect` over real HTTP against the embedded forge: read live, diff, apply, read back, idempotent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.forge.server import ADMIN
from bot.records import FileChange
from tests.forge_helpers import REPO, ForgeEnv, forge_env

pytestmark = pytest.mark.e2e

REGISTRY = Path(__file__).resolve().parents[2] / "registry"


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeEnv]:
    yield from forge_env(tmp_path)


def protect(forge: ForgeEnv, capsys: pytest.CaptureFixture[str], *extra: str, identity: str = ADMIN) -> Any:
    args = ["protect", "--registry", str(REGISTRY), "--forge-url", forge.url, "--repo", REPO, *extra]
    code = main([*args, "--token", forge.tokens[identity], "--output", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_first_run_shows_the_diff_and_applies_second_run_shows_none(
    forge: ForgeEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    # the forge starts with what `glassbox forge init` sets: required contexts, one approval, nothing else
    code, first, err = protect(forge, capsys)
    assert code == 0, err
    assert first["applied"] and not first["in_sync"] and first["diff"]["protected"]
    changed = {c["setting"]: (c["live"], c["desired"]) for c in first["diff"]["changes"]}
    assert changed["required_signatures"] == (False, True)
    assert changed["require_last_push_approval"] == (False, True)
    assert changed["push_users"] == ([], ["glassbox-bot"])
    assert changed["required_approving_review_count"] == (1, 0)
    assert first["after"]["changes"] == []  # read back: the forge kept every setting

    # the forge's own JSON now carries what it used to drop
    live = forge.admin("GET", f"/api/v3/repos/{REPO}/branches/main/protection")
    assert live["required_signatures"]["enabled"] is True
    assert live["required_pull_request_reviews"]["require_last_push_approval"] is True
    assert [u["login"] for u in live["restrictions"]["users"]] == ["glassbox-bot"]
    assert live["enforce_admins"]["enabled"] is True and live["required_status_checks"]["strict"] is True

    code, second, err = protect(forge, capsys)
    assert code == 0, err
    assert second["in_sync"] and not second["applied"] and second["diff"]["changes"] == []
    assert "after" not in second


def test_dry_run_changes_nothing_and_text_output_shows_the_table(
    forge: ForgeEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    before = forge.admin("GET", f"/api/v3/repos/{REPO}/branches/main/protection")
    code, dry, _ = protect(forge, capsys, "--dry-run")
    assert code == 0 and not dry["applied"] and not dry["in_sync"]
    assert forge.admin("GET", f"/api/v3/repos/{REPO}/branches/main/protection") == before

    args = ["protect", "--registry", str(REGISTRY), "--forge-url", forge.url, "--repo", REPO]
    code = main([*args, "--token", forge.tokens[ADMIN]])
    out = capsys.readouterr().out
    assert code == 0 and "required_signatures" in out and "applied, and read back as desired" in out


def test_required_signatures_toggle_and_only_admins_change_protection(
    forge: ForgeEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = forge.client(ADMIN)
    live = admin.get_branch_protection("main")
    assert live is not None and live["required_signatures"] == {
        "url": f"{forge.url}/repos/{REPO}/branches/main/protection/required_signatures",
        "enabled": False,
    }
    body = {k: live.get(k) for k in ("enforce_admins", "required_pull_request_reviews", "restrictions")}
    body["required_status_checks"] = {"strict": False, "contexts": ["glassbox/check"]}
    admin.set_branch_protection("main", body, required_signatures=True)
    after = admin.get_branch_protection("main")
    assert after is not None and after["required_signatures"]["enabled"] is True
    assert after["required_status_checks"]["contexts"] == ["glassbox/check"]
    admin.set_branch_protection("main", body, required_signatures=False)
    assert admin.get_branch_protection("main")["required_signatures"]["enabled"] is False  # type: ignore[index]

    # a human token may read but not write: the CLI fails with the forge's 403, one line
    code, out, err = protect(forge, capsys, identity="carol")
    assert code != 0 and out is None and "403" in err


def test_an_unprotected_branch_reads_as_none_and_diffs_everything(
    forge: ForgeEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    forge.admin("DELETE", f"/api/v3/repos/{REPO}/branches/main/protection")
    assert forge.client(ADMIN).get_branch_protection("main") is None
    code, first, err = protect(forge, capsys)
    assert code == 0, err
    assert not first["diff"]["protected"] and first["applied"] and first["after"]["changes"] == []
    code, second, _ = protect(forge, capsys)
    assert code == 0 and second["in_sync"]


def test_once_applied_only_the_bot_may_merge(forge: ForgeEnv, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = protect(forge, capsys)
    assert code == 0, err
    agent = forge.client("patch-agent")
    pr = agent.open_pull_request(
        base="main",
        branch="glassbox/patch-agent/protect",
        title="t",
        body="",
        changes=[FileChange(path="infra/network/x.yaml", content="x: 1\n")],
    )
    refused = forge.client("carol").merge(pr.number, expected_head_sha=pr.head_sha)  # GitHub's 405: a decision
    assert not refused.merged and "not authorized to push" in refused.message
    # the bot passes the push restriction and meets the next gate: the required statuses
    result = forge.client("glassbox-bot").merge(pr.number, expected_head_sha=pr.head_sha)
    assert not result.merged and "glassbox/check" in result.message
