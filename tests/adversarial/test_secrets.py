"""A secret planted in each string field of a ChangeRequest never lands in clear (I9): not in the committed
evidence, the PR title or body, the commit message, nor the ledger, whether the request is opened or refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest

from bot.propose import propose
from bot.records import EvidenceRecord, Outcome
from bot.redaction import proves
from tests.adversarial._support import AWS_KEY, context, refused
from tests.flow_helpers import Flow, flow_env, request

pytestmark = pytest.mark.e2e

GH_TOKEN = "ghp_" + "Zq8" * 12

# field → where it lives in the request's JSON
OPENED_FIELDS = {
    "intent": ("intent",),
    "rationale.objective": ("rationale", "objective"),
    "rationale.expected_impact": ("rationale", "expected_impact"),
    "rationale.rollback_plan": ("rationale", "rollback_plan"),
    "rationale.alternatives_rejected.option": ("rationale", "alternatives_rejected", 0, "option"),
    "rationale.alternatives_rejected.reason": ("rationale", "alternatives_rejected", 0, "reason"),
    "rationale.evidence_sources.kind": ("rationale", "evidence_sources", 0, "kind"),
    "rationale.evidence_sources.uri": ("rationale", "evidence_sources", 0, "uri"),
    "rationale.evidence_sources.version": ("rationale", "evidence_sources", 0, "version"),
    "rationale.evidence_sources.retrieval_id": ("rationale", "evidence_sources", 0, "retrieval_id"),
    "model.provider": ("model", "provider"),
    "model.model_id": ("model", "model_id"),
    "model.version": ("model", "version"),
    "prompt.template_id": ("prompt", "template_id"),
    "prompt.template_version": ("prompt", "template_version"),
    "tool_calls.tool_id": ("tool_calls", 0, "tool_id"),
    "requested_by.ticket": ("requested_by", "ticket"),
    "expected_changes.project": ("expected_changes", 0, "project"),
    "expected_changes.type": ("expected_changes", 0, "type"),
    "expected_changes.name": ("expected_changes", 0, "name"),
}
# fields a secret makes the request refused by: the refusal itself must not repeat the secret
REFUSED_FIELDS = {
    "expected_changes.stack": ("expected_changes", 0, "stack"),
    "requested_by.id": ("requested_by", "id"),
    "base_branch": ("base_branch",),
    "changes.path": ("changes", 0, "path"),
}


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    yield from flow_env(tmp_path_factory.mktemp("secrets"))


def _planted(where: tuple[Any, ...], secret: str) -> Any:
    data = request().model_dump(mode="json")
    data.pop("correlation_id")  # a fresh id per case
    node = data
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = f"{node[where[-1]]} {secret}"
    return request(**data)


def _ledger_text(ledger_dir: Path) -> str:
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in ledger_dir.glob("ledger.jsonl"))


@pytest.mark.parametrize("field", list(OPENED_FIELDS))
def test_agent_smuggles_a_secret_through_a_field_of_an_opened_request(flow: Flow, tmp_path: Path, field: str) -> None:
    req = _planted(OPENED_FIELDS[field], AWS_KEY)
    ctx = context(flow, "cost-optimizer", tmp_path)
    result = propose(req, ctx)
    pr = flow.forge("glassbox-bot").get_pull_request(result.pr_number)
    commit = git.Repo(flow.bare).commit(pr.head_sha)
    blob = (commit.tree / result.evidence_path).data_stream.read().decode()
    for place, text in {
        "evidence": blob,
        "PR title": pr.title,
        "PR body": pr.body,
        "commit message": str(commit.message),
        "branch": pr.head_ref,
        "ledger": _ledger_text(tmp_path),
    }.items():
        assert AWS_KEY not in text, f"{field}: secret in clear in the {place}"
    record = EvidenceRecord.model_validate_json(blob)
    assert record.verify_digest()
    # the redaction names the field and proves which secret it removed
    assert [r.field_path for r in record.redactions if proves(r, AWS_KEY)] == [f"request.{_record_path(field)}"]
    [event] = ctx.ledger.find(correlation_id=req.correlation_id)
    assert event.outcome is Outcome.ALLOW and event.details["redactions"] == 1


def _record_path(field: str) -> str:
    parts = field.split(".")
    # lists in the record carry their index
    for i, part in enumerate(parts):
        if part in ("alternatives_rejected", "evidence_sources", "tool_calls", "expected_changes"):
            parts.insert(i + 1, "0")
            break
    return ".".join(parts)


@pytest.mark.parametrize("field", list(REFUSED_FIELDS))
def test_agent_smuggles_a_secret_through_a_field_that_gets_the_request_refused(
    flow: Flow, tmp_path: Path, field: str
) -> None:
    req = _planted(REFUSED_FIELDS[field], AWS_KEY)
    reasons, event = refused(req, context(flow, "cost-optimizer", tmp_path))
    assert reasons and event.reason
    assert AWS_KEY not in _ledger_text(tmp_path), f"{field}: the refusal wrote the secret to the ledger"


def test_agent_smuggles_a_github_token_into_the_rationale(flow: Flow, tmp_path: Path) -> None:
    req = _planted(("rationale", "objective"), GH_TOKEN)
    result = propose(req, context(flow, "cost-optimizer", tmp_path))
    pr = flow.forge("glassbox-bot").get_pull_request(result.pr_number)
    assert GH_TOKEN not in pr.body and GH_TOKEN not in _ledger_text(tmp_path)
    assert "[REDACTED:github-token]" in pr.body
