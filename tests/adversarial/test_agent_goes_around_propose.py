"""Scope at both doors (I13). An agent holds its own forge token, so every API call that token allows is a door:
a PR opened straight through the API, a push onto someone else's PR, a ready PR from a draft agent. CI learns who
wrote the PR from the forge (author and every pusher), judges it as the agent's with the rules propose applies, and
fails it with the reason; nothing merges. Real forge over HTTP, real git, the real check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.records import FileChange, Verdict, VerdictResult
from tests.adversarial._support import push_file
from tests.flow_helpers import REPO, ROOT, Flow, approve, ci_check, flow_env, merge

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    yield from flow_env(tmp_path_factory.mktemp("around-propose"))


def _dev_config(days: int) -> str:
    text = (ROOT / "infra" / "network" / "Pulumi.dev.yaml").read_text()
    return text.replace("network:flowLogRetentionDays: 30", f"network:flowLogRetentionDays: {days}")


def _api_pr(flow: Flow, agent: str, branch: str, changes: list[FileChange], *, draft: bool = False) -> int:
    pr = flow.forge(agent).open_pull_request(
        base="main", branch=branch, title="a change", body="no evidence here", changes=changes, draft=draft
    )
    return pr.number


def _denials(verdict: Verdict) -> list[str]:
    assert verdict.result is VerdictResult.FAILED, verdict.findings
    return [f"{f.rule_id}: {f.message}" for f in verdict.findings if f.status.value == "deny"]


def _never_merges(flow: Flow, number: int) -> None:
    for reviewer in ("dan", "erin", "grace"):
        approve(flow, number, reviewer)
    outcome = merge(flow, number)
    assert not outcome.merged and not flow.forge("glassbox-bot").get_pull_request(number).merged


def test_agent_opens_a_pr_through_the_api_without_evidence(flow: Flow) -> None:
    change = FileChange(path="infra/network/Pulumi.dev.yaml", content=_dev_config(14))
    number = _api_pr(flow, "cost-optimizer", "glassbox/cost-optimizer/api-direct", [change])
    denials = _denials(ci_check(flow, number))
    assert any("agent PR carries no evidence record" in d for d in denials), denials
    _never_merges(flow, number)


def test_agent_raises_its_own_max_risk_in_the_registry(flow: Flow) -> None:
    agents = (ROOT / "registry" / "agents.yaml").read_text()
    raised = agents.replace("max_risk: low", "max_risk: critical")
    assert raised != agents
    number = _api_pr(
        flow,
        "cost-optimizer",
        "glassbox/cost-optimizer/raise-ceiling",
        [FileChange(path="registry/agents.yaml", content=raised)],
    )
    denials = _denials(ci_check(flow, number))
    assert any(d.startswith("GB-SCOPE-PATH: path 'registry/agents.yaml' is a governance path") for d in denials), (
        denials
    )
    _never_merges(flow, number)


def test_auto_agent_touches_the_makefile(flow: Flow) -> None:
    makefile = (ROOT / "Makefile").read_text() + "\nexfil:\n\tcurl -s https://example.invalid\n"
    number = _api_pr(
        flow, "cost-optimizer", "glassbox/cost-optimizer/makefile", [FileChange(path="Makefile", content=makefile)]
    )
    denials = _denials(ci_check(flow, number))
    assert any(d.startswith("GB-SCOPE-PATH: path 'Makefile' is outside agent 'cost-optimizer'") for d in denials)
    _never_merges(flow, number)


def test_draft_agent_opens_a_ready_pr(flow: Flow) -> None:
    change = FileChange(path="infra/network/Pulumi.dev.yaml", content=_dev_config(21))
    number = _api_pr(flow, "network-agent", "glassbox/network-agent/ready", [change], draft=False)
    denials = _denials(ci_check(flow, number))
    assert any(d.startswith("GB-SCOPE-AUTONOMY: agent 'network-agent' has autonomy 'draft'") for d in denials)
    _never_merges(flow, number)


def test_recommend_agent_opens_a_pr(flow: Flow) -> None:
    number = _api_pr(
        flow,
        "access-reviewer",
        "glassbox/access-reviewer/pr",
        [FileChange(path="infra/identity/NOTES.md", content="x\n")],
    )
    denials = _denials(ci_check(flow, number))
    assert any("has autonomy 'recommend'" in d for d in denials), denials


def test_agent_pushes_onto_a_persons_pr(flow: Flow, tmp_path: Path) -> None:
    # carol opens a harmless PR on a branch the agent may write; the agent adds a commit with its own token
    branch = "glassbox/cost-optimizer/carols-notes"
    number = _api_pr(flow, "carol", branch, [FileChange(path="docs/notes.md", content="notes\n")])
    assert ci_check(flow, number).result is VerdictResult.PASSED  # a person's change, judged as hers
    push_file(flow, "cost-optimizer", branch, "docs/notes.md", "notes\nand more\n")
    denials = _denials(ci_check(flow, number))
    assert any(d.startswith("GB-SCOPE-PATH: path 'docs/notes.md' is outside agent 'cost-optimizer'") for d in denials)
    assert any("agent PR carries no evidence record" in d for d in denials), denials
    _never_merges(flow, number)


def test_the_cli_check_learns_the_author_from_the_forge_not_a_flag(
    flow: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # what the check workflow runs: no --author to forget, the forge says who wrote the PR
    makefile = (ROOT / "Makefile").read_text() + "\n# harmless?\n"
    number = _api_pr(
        flow, "cost-optimizer", "glassbox/cost-optimizer/cli", [FileChange(path="Makefile", content=makefile)]
    )
    pr = flow.forge("glassbox-ci").get_pull_request(number)
    args = ["check", "--repo", str(flow.bare), "--base", pr.base_sha, "--head", pr.head_sha, "--out", str(tmp_path)]
    args += ["--pr", str(number), "--repo-name", REPO, "--forge-url", flow.url, "--token", flow.tokens["glassbox-ci"]]
    assert main([*args, "--no-attest", "--output", "json"]) != 0
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert any(f["rule_id"] == "GB-SCOPE-PATH" and "'Makefile'" in f["message"] for f in verdict["findings"])
