"""Git metadata that hides or redirects content is governance: `.gitattributes` marking a program `-diff` or
`linguist-generated` (reviewers see no diff), `.gitmodules` / `.lfsconfig` pulling content from elsewhere, and a
symlink or submodule anywhere. Refused for agents, critical for humans; and agent-written code is never low."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.errors import Denied
from bot.propose import propose
from bot.records import RiskTier, Verdict
from tests.flow_helpers import Flow, checked_edit, flow_env, request

pytestmark = pytest.mark.slow


def _commit_and_check(tmp: Path, author: str, edit: Callable[[Path], None]) -> Verdict:
    return checked_edit(tmp, edit, author)


def _rules(verdict: Verdict, path: str) -> set[str]:
    return {f.rule_id for f in verdict.findings if f.resource == path}


def _gitattributes(src: Path) -> None:
    (src / "infra/network/.gitattributes").write_text("*.py -diff linguist-generated\n")


def _symlink(src: Path) -> None:
    os.symlink("../../registry/agents.yaml", src / "infra/network/agents.yaml")


@pytest.mark.parametrize(
    ("edit", "path"), [(_gitattributes, "infra/network/.gitattributes"), (_symlink, "infra/network/agents.yaml")]
)
def test_git_metadata_is_critical_for_humans(tmp_path: Path, edit: Callable[[Path], None], path: str) -> None:
    verdict = _commit_and_check(tmp_path, "carol", edit)
    assert "GB-GOV-002" in _rules(verdict, path), verdict.findings
    assert verdict.risk is RiskTier.CRITICAL


@pytest.mark.parametrize(
    ("edit", "path"), [(_gitattributes, "infra/network/.gitattributes"), (_symlink, "infra/network/agents.yaml")]
)
def test_git_metadata_is_denied_for_an_agent_pr(tmp_path: Path, edit: Callable[[Path], None], path: str) -> None:
    """Even when an agent gets such a commit onto a PR without `glassbox propose` (another door), check denies it."""
    verdict = _commit_and_check(tmp_path, "cost-optimizer", edit)
    assert "GB-GOV-001" in _rules(verdict, path), verdict.findings
    assert verdict.result.value == "FAILED"


def test_agent_written_program_is_never_low(tmp_path: Path) -> None:
    """A one-line edit to a Pulumi program by an agent: whatever its plan shows, the tier is at least high and the
    reason says why (the plan of agent-written code is what that code chose to show)."""

    def edit(src: Path) -> None:
        main = next((src / "infra/network").glob("__main__.py"))
        main.write_text(main.read_text() + "\n# tidy\n")

    verdict = _commit_and_check(tmp_path, "cost-optimizer", edit)
    assert verdict.risk in (RiskTier.HIGH, RiskTier.CRITICAL)
    assert any(r.startswith("high: agent-written code needs a human owner") for r in verdict.risk_reasons), (
        verdict.risk_reasons
    )


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> object:
    yield from flow_env(tmp_path_factory.mktemp("meta"), required_approvals=0)


@pytest.mark.e2e
@pytest.mark.parametrize("path", ["infra/network/.gitattributes", "infra/data/.lfsconfig", "infra/.gitmodules"])
def test_agent_proposal_of_git_metadata_is_refused(flow: Flow, path: str) -> None:
    with pytest.raises(Denied) as info:
        propose(
            request(agent_id="patch-agent", changes=[{"path": path, "content": "*.py -diff\n"}]),
            flow.propose_context("patch-agent"),
        )
    assert any("governance path" in r or "git metadata" in r for r in info.value.reasons), info.value.reasons
