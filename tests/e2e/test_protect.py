"""`glassbox protect` over real HTTP against the embedded forge: read live, diff, apply, read back, idempotent."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.forge.server import ADMIN
from bot.forge.trail import publish
from bot.records import Actor, ActorKind, FileChange, Outcome, Subject
from bot.trust.conventions import TRAIL_BRANCH
from bot.trust.keys import load_signer
from bot.trust.ledger import Ledger
from tests.forge_helpers import REPO, ForgeEnv, forge_env
from tests.unit.forge import openapi

pytestmark = pytest.mark.e2e

REGISTRY = Path(__file__).resolve().parents[2] / "registry"


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeEnv]:
    yield from forge_env(tmp_path)


def protect(
    forge: ForgeEnv, capsys: pytest.CaptureFixture[str], *extra: str, identity: str = ADMIN, trail: bool = False
) -> Any:
    """`glassbox protect` (about main alone unless ``trail``: the trail branch exists only once a job published)."""
    args = ["protect", "--registry", str(REGISTRY), "--forge-url", forge.url, "--repo", REPO, *extra]
    args += [] if trail else ["--no-trail"]
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

    args = ["protect", "--registry", str(REGISTRY), "--forge-url", forge.url, "--repo", REPO, "--no-trail"]
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


def _publish_a_trail(forge: ForgeEnv, tmp_path: Path) -> str:
    """What the first glassbox job does: append its events, creating the trail branch."""
    ci = load_signer(forge.data / "keys", "glassbox-ci")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(
        ci,
        actor=Actor(id="glassbox-ci", kind=ActorKind.CI),
        action="check",
        outcome=Outcome.ALLOW,
        reason="first",
        subject=Subject(pr=1),
    )
    report = publish(forge.client("glassbox-ci"), ledger, ci)
    assert report.commit
    return report.commit


def test_protect_covers_the_audit_trail_branch_once_it_exists(
    forge: ForgeEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # before any job published, the trail branch is missing: said, and not in sync (exit 1)
    code, result, err = protect(forge, capsys, "--dry-run", trail=True)
    assert code == 1 and result["trail"] == {
        "branch": TRAIL_BRANCH,
        "exists": False,
        "in_sync": False,
        "applied": False,
    }
    assert f"{TRAIL_BRANCH} does not exist yet" in err

    _publish_a_trail(forge, tmp_path)
    # forge init protected the trail as glassbox wants it: the trail is in sync, main is applied
    code, result, err = protect(forge, capsys, trail=True)
    assert code == 0, err
    assert result["branch"] == "main" and result["applied"]
    trail = result["trail"]
    assert trail["branch"] == TRAIL_BRANCH and trail["in_sync"] and not trail["applied"]
    assert trail["body"]["required_pull_request_reviews"] is None  # reviews would stop the appends
    assert trail["body"]["required_status_checks"] is None
    assert trail["body"]["restrictions"]["users"] == ["glassbox-bot", "glassbox-ci", "glassbox-deployer"]
    assert trail["body"]["required_linear_history"] and not trail["body"]["allow_force_pushes"]

    # someone loosens the trail (anyone may push, force pushes allowed): protect finds it and puts it back
    loose = {
        "required_status_checks": None,
        "enforce_admins": False,
        "required_pull_request_reviews": None,
        "restrictions": None,
        "allow_force_pushes": True,
    }
    forge.admin("PUT", f"/api/v3/repos/{REPO}/branches/{TRAIL_BRANCH}/protection", loose)
    code, drifted, err = protect(forge, capsys, "--dry-run", trail=True)
    assert code == 0 and not drifted["trail"]["in_sync"]
    changed = {c["setting"] for c in drifted["trail"]["diff"]["changes"]}
    assert {"restrict_pushes", "push_users", "allow_force_pushes", "enforce_admins"} <= changed
    code, fixed, err = protect(forge, capsys, trail=True)
    assert code == 0 and fixed["trail"]["applied"] and fixed["trail"]["after"]["changes"] == [], err
    live = forge.admin("GET", f"/api/v3/repos/{REPO}/branches/{TRAIL_BRANCH}/protection")
    assert live["allow_force_pushes"]["enabled"] is False and live["required_signatures"]["enabled"] is True


def test_required_checks_are_pinned_to_the_apps_the_registry_names(
    forge: ForgeEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(REGISTRY, registry)
    teams = yaml.safe_load((registry / "teams.yaml").read_text())
    for identity in teams["service_identities"]:
        identity["github_app_id"] = {"ci": 101, "bot": 202, "deployer": 303}[identity["kind"]]
    (registry / "teams.yaml").write_text(yaml.safe_dump(teams, sort_keys=False))
    args = ["protect", "--registry", str(registry), "--forge-url", forge.url, "--repo", REPO, "--no-trail"]
    code = main([*args, "--token", forge.tokens[ADMIN], "--output", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["body"]["required_status_checks"]["checks"] == [
        {"context": "glassbox/check", "app_id": 101},
        {"context": "glassbox/approvals", "app_id": 202},
    ]
    assert result["after"]["changes"] == []  # the forge kept the pins, and reports them as GitHub does
    live = forge.admin("GET", f"/api/v3/repos/{REPO}/branches/main/protection")
    assert {c["context"]: c["app_id"] for c in live["required_status_checks"]["checks"]} == {
        "glassbox/check": 101,
        "glassbox/approvals": 202,
    }
    # a protection whose pins were dropped (any setter counts again) is drift
    code = main([*args, "--token", forge.tokens[ADMIN], "--output", "json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["in_sync"]
    body = {**result["body"], "required_status_checks": {"strict": True, "contexts": ["glassbox/check"]}}
    forge.client(ADMIN).set_branch_protection("main", body, required_signatures=True)
    code = main([*args, "--dry-run", "--token", forge.tokens[ADMIN], "--output", "json"])
    drift = {c["setting"] for c in json.loads(capsys.readouterr().out)["diff"]["changes"]}
    assert code == 0 and "check_apps" in drift


def test_the_trail_ruleset_guards_the_ref_before_the_branch_exists(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    try:
        openapi.document()
    except openapi.Unavailable as exc:
        pytest.fail(f"GitHub's OpenAPI description is needed to check the ruleset's shape: {exc}")
    registry = tmp_path / "registry"
    shutil.copytree(REGISTRY, registry)
    teams = yaml.safe_load((registry / "teams.yaml").read_text())
    for identity in teams["service_identities"]:
        if identity["kind"] != "deployer":  # one without an app: it cannot be let through, and is named
            identity["github_app_id"] = {"ci": 101, "bot": 202}[identity["kind"]]
    (registry / "teams.yaml").write_text(yaml.safe_dump(teams, sort_keys=False))

    code = main(["protect", "--registry", str(registry), "--trail-ruleset"])
    out, err = capsys.readouterr()
    assert code == 0, err
    ruleset = json.loads(out)  # plain JSON, for `gh api -X POST repos/ORG/NAME/rulesets --input -`
    openapi.validate_request("POST", "/repos/{owner}/{repo}/rulesets", ruleset)
    assert ruleset["conditions"]["ref_name"]["include"] == [f"refs/heads/{TRAIL_BRANCH}"]
    assert ruleset["enforcement"] == "active"
    assert {r["type"] for r in ruleset["rules"]} >= {"creation", "update", "deletion", "non_fast_forward"}
    assert [(a["actor_type"], a["actor_id"]) for a in ruleset["bypass_actors"]] == [
        ("Integration", 101),
        ("Integration", 202),
    ]
    assert "glassbox-deployer has no github_app_id" in err
