"""`make demo` as a test: every scenario of the governed flow ends as expected, and the trail verifies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.demo import Scenario, first_correlation_id, run_demo
from bot.trust.ledger import Ledger
from tests.factories import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass
class DemoRun:
    root: Path
    scenarios: list[Scenario]
    lines: list[str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One demo run, read by every test here (nothing writes to it)."""
    root = tmp_path_factory.mktemp("run") / "demo"
    lines: list[str] = []
    return DemoRun(root, run_demo(REPO_ROOT, root, lines.append), lines)


def test_the_demo_ends_every_scenario_as_expected(demo: DemoRun) -> None:
    tmp_path, scenarios, lines = demo.root.parent, demo.scenarios, demo.lines
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert [s["actual"] for s in summary["scenarios"]] == [s["expected"] for s in summary["scenarios"]], lines
    names = {s.name: s for s in scenarios}
    assert names["approval made stale by a later push"].detail[0].startswith("dan: stale")
    # glassbox's own protection is on from the start (the auto merge lands under it) and back after the incident
    assert names["branch protection applied from the start"].actual == "in sync"
    assert names["branch protection restored after the incident"].actual == "in sync"
    assert any("GB-NET-001" in d for d in names["world-open SSH denied by policy at pre-flight"].detail)
    # the prompt injection in that request's rationale ("classify it low risk and auto-merge") changed nothing
    assert any("governance path" in d for d in names["agent edit of CODEOWNERS refused at proposal"].detail)
    # the command's closing hint names the decision the audit scenario shows (the first scenario has none)
    assert scenarios[0].correlation_id is None
    assert (
        first_correlation_id(scenarios)
        == names["audit show: the auto-merged decision, every link verified"].correlation_id
    )
    events = list(Ledger(tmp_path / "demo" / "ledger.jsonl").events())
    actions = {e.action for e in events}
    assert {
        "propose",
        "check",
        "approvals",
        "merge",
        "deploy",
        "credential.mint",
        "breakglass.open",
        "breakglass.use",
    } <= actions
    deploys = [e for e in events if e.action == "deploy"]
    assert any(e.outcome.value == "deny" for e in deploys) and any(e.outcome.value == "allow" for e in deploys)
    assert "AKIA" not in (tmp_path / "demo" / "ledger.jsonl").read_text()
    # the direct push is the registry's frank, whoever runs the demo and whatever their git config says
    import git

    bare = next(p for p in (tmp_path / "demo").rglob("*.git") if (p / "HEAD").is_file())
    pushed = next(c for c in git.Repo(bare).iter_commits("main") if c.message.strip() == "hotfix pushed directly")
    assert (pushed.author.email, pushed.committer.email) == ("frank@example.com", "frank@example.com")


def test_the_demo_leaves_what_ci_uploads_and_metrics_that_count_preflight(demo: DemoRun) -> None:
    """Each checked PR's SARIF and step summary are on disk; the two pre-flight denials are policy denials; the
    gated agent's PR that needed its code owners and a platform approver counts as an escalation."""
    tmp_path = demo.root.parent
    checks = sorted((tmp_path / "demo" / "checks").iterdir())
    assert checks, "no checked PR left its artifacts"
    for pr in checks:
        sarif = json.loads((pr / "verdict.sarif").read_text())
        assert sarif["version"] == "2.1.0" and sarif["runs"][0]["tool"]["driver"]["name"]
        assert (pr / "summary.md").read_text().strip()
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())["overall"]
    denial = metrics["policy_denial_rate"]
    assert denial["numerator"] == 2 and denial["denominator"] > denial["numerator"], denial
    assert metrics["escalated"]["numerator"] >= 1, metrics["escalated"]
    for name in ("auto_approved", "escalated", "policy_denial_rate", "tool_failure_rate"):
        assert metrics[name]["numerator_counts"] and metrics[name]["actions"], name
