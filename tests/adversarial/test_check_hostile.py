"""Hostile histories judged by the check (rego only: none of these touches a Pulumi program, so no plan runs):
governance hidden behind case folding or a rename, a second decision record, evidence edited after sealing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.check.ci import attest_and_record
from bot.check.evaluate import CheckRequest, run_check
from bot.propose import evidence_path
from bot.records import ChangeRequest, FindingStatus, Outcome, RiskTier, Verdict, VerdictResult
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger
from tests.adversarial._support import Estate
from tests.factories import change_request_data


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    yield Estate(tmp_path_factory.mktemp("check"), None)


@pytest.fixture(scope="module")
def ci(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    return generate_key(tmp_path_factory.mktemp("ci-keys"), "glassbox-ci")


def _judge(estate: Estate, ci: Signer, tmp_path: Path, head: str, author: str) -> tuple[Verdict, Ledger]:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    result = run_check(CheckRequest(repo_path=estate.src, base=estate.base, head=head, author=author))
    attest_and_record(result, signer=ci, ledger=ledger)
    [event] = [e for e in ledger.events() if e.action == "check"]
    v = result.verdict
    assert event.details["risk"] == v.risk.value and event.details["result"] == v.result.value
    assert event.outcome is (Outcome.ALLOW if v.result is VerdictResult.PASSED else Outcome.DENY)
    return v, ledger


@pytest.mark.parametrize(
    "path",
    [".GitHub/workflows/deploy.yml", "Registry/agents.yaml", "Policy-Pack/network/allow_all.rego", "docs/codeowners"],
)
def test_human_touches_governance_through_a_case_variant(estate: Estate, ci: Signer, tmp_path: Path, path: str) -> None:
    head = estate.commit_files({path: "x: 1\n"}, "tidy up")
    v, _ = _judge(estate, ci, tmp_path, head, "alice")
    assert v.risk is RiskTier.CRITICAL
    assert f"critical: governance path changed (1): {path}" in v.risk_reasons


def test_human_moves_a_file_into_registry_by_delete_and_add(estate: Estate, ci: Signer, tmp_path: Path) -> None:
    readme = (estate.src / "README.md").read_text()
    head = estate.commit_files({"README.md": None, "registry/README.md": readme}, "move the readme")
    v, _ = _judge(estate, ci, tmp_path, head, "alice")
    assert v.risk is RiskTier.CRITICAL and "critical: governance path changed (1): registry/README.md" in v.risk_reasons


def test_human_moves_a_registry_file_out_of_governance(estate: Estate, ci: Signer, tmp_path: Path) -> None:
    teams = (estate.src / "registry/teams.yaml").read_text()
    head = estate.commit_files({"registry/teams.yaml": None, "docs/teams.yaml": teams}, "archive teams")
    v, _ = _judge(estate, ci, tmp_path, head, "alice")
    assert v.risk is RiskTier.CRITICAL and any("registry/teams.yaml" in r for r in v.risk_reasons)


def _agent_request() -> ChangeRequest:
    # a docs-only change: the check judges evidence and paths without running a plan
    return ChangeRequest.model_validate(
        change_request_data(changes=[{"path": "README.md", "content": "# acme infrastructure (tidied)\n"}])
    )


def _denied(v: Verdict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in v.findings:
        if f.status is FindingStatus.DENY:
            out.setdefault(f.rule_id, []).append(f.message)
    return out


def test_agent_smuggles_a_second_decision_record(estate: Estate, ci: Signer, tmp_path: Path) -> None:
    req = _agent_request()
    head = estate.commit(req)
    other = evidence_path(req).replace(req.correlation_id, "019ab5c0-00ff-7000-8000-0000000000ff")
    head = estate.commit_files({other: (estate.src / evidence_path(req)).read_text()}, "more evidence", parent=head)
    v, ledger = _judge(estate, ci, tmp_path, head, "cost-optimizer")
    assert v.result is VerdictResult.FAILED
    assert any("more than one decision record added" in m for m in _denied(v).get("GB-EVIDENCE-INTEGRITY", [])), v
    assert "GB-EVIDENCE-INTEGRITY" in json.dumps(next(iter(ledger.events())).details["findings"])


def test_agent_edits_its_evidence_after_sealing(estate: Estate, ci: Signer, tmp_path: Path) -> None:
    req = _agent_request()
    head = estate.commit(req)
    record_file = estate.src / evidence_path(req)
    data = json.loads(record_file.read_text())
    data["request"]["rationale"]["confidence"]["score"] = 1.0  # a better score, same digest
    head = estate.commit_files({evidence_path(req): json.dumps(data)}, "polish", parent=head)
    v, _ = _judge(estate, ci, tmp_path, head, "cost-optimizer")
    assert v.result is VerdictResult.FAILED
    messages = _denied(v).get("GB-EVIDENCE-INTEGRITY", [])
    assert any("the record's content does not match its digest" in m for m in messages), v.findings


def test_agent_files_its_evidence_under_another_correlation_id(estate: Estate, ci: Signer, tmp_path: Path) -> None:
    req = _agent_request()
    head = estate.commit(req)
    moved = evidence_path(req).replace(req.correlation_id, "019ab5c0-00ee-7000-8000-0000000000ee")
    text = (estate.src / evidence_path(req)).read_text()
    head = estate.commit_files({evidence_path(req): None, moved: text}, "rename", parent=head)
    v, _ = _judge(estate, ci, tmp_path, head, "cost-optimizer")
    assert v.result is VerdictResult.FAILED
    messages = _denied(v).get("GB-EVIDENCE-INTEGRITY", [])
    assert any(f"file name does not match correlation id {req.correlation_id}" in m for m in messages), v.findings


def test_agent_sends_evidence_that_is_not_json(estate: Estate, ci: Signer, tmp_path: Path) -> None:
    req = _agent_request()
    head = estate.commit(req)
    head = estate.commit_files({evidence_path(req): "a: &a [*a]\n"}, "yaml", parent=head)
    v, _ = _judge(estate, ci, tmp_path, head, "cost-optimizer")
    assert v.result is VerdictResult.FAILED
    messages = _denied(v).get("GB-EVIDENCE-INTEGRITY", [])
    assert any("is not a valid evidence record" in m for m in messages), v.findings
