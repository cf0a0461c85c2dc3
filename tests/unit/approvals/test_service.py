"""The approvals service over an in-memory forge: base-commit CODEOWNERS, statuses, ledger events, merging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.approvals.model import BlockerKind
from bot.approvals.service import evaluate_pr, merge_pr
from bot.forge.model import ChangedFile, FileStatus, PullRequest, Review, StatusState
from bot.records import EvidenceRecord, Verdict
from bot.trust.conventions import APPROVALS_CONTEXT, CHECK_CONTEXT
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger
from tests.unit.approvals._builders import BASE, HEAD, evidence, pull, registry, review, verdict
from tests.unit.approvals._forge import MemoryForge

OWNERS_AT_BASE = b"/infra/network/ @acme/platform\n/infra/*/Pulumi.dev.yaml\n"
DECISION = ".glassbox/decisions/2026/11/0192f0c8-0000-7000-8000-000000000001.json"


def events(ledger: Ledger) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ledger.path.read_text(encoding="utf-8").splitlines()]


def make_forge(
    pr: PullRequest | None = None,
    reviews: list[Review] | None = None,
    paths: tuple[str, ...] = ("infra/network/__main__.py",),
    ev: EvidenceRecord | None = None,
) -> MemoryForge:
    forge = MemoryForge(pr=pr or pull(), reviews=reviews or [])
    forge.files = [ChangedFile(path=p, status=FileStatus.MODIFIED) for p in paths]
    forge.contents[(".github/CODEOWNERS", BASE)] = OWNERS_AT_BASE
    # the head tries to un-own everything: it must not matter (a PR never judges itself)
    forge.contents[(".github/CODEOWNERS", HEAD)] = b"* \n"
    if ev is not None:
        forge.files.append(ChangedFile(path=DECISION, status=FileStatus.ADDED))
        forge.contents[(DECISION, HEAD)] = ev.model_dump_json().encode()
    return forge


def loader(v: Verdict | None) -> Any:
    return lambda head: v


def test_evaluate_reads_codeowners_from_base_publishes_and_records(ledger: Ledger, bot_signer: Signer) -> None:
    ev = evidence(requester="dan")
    forge = make_forge(reviews=[review(1, "dan"), review(2, "carol")], ev=ev)
    state = evaluate_pr(forge, registry(), 7, loader(verdict("medium")), ledger, bot_signer)
    assert state.satisfied
    assert state.codeowners_source == ".github/CODEOWNERS"
    assert [r.id for r in state.required] == ["codeowners:1", "matrix:platform"]  # from the BASE file
    assert state.requesters == ["dan"] and state.discarded_with_reason[0].reason.value == "requester"
    status = forge.statuses[HEAD][APPROVALS_CONTEXT]
    assert status.state is StatusState.SUCCESS and len(status.description) <= 140
    [event] = events(ledger)
    assert event["action"] == "approvals" and event["outcome"] == "allow"
    assert event["actor"] == {"id": "glassbox-bot", "kind": "bot"}
    assert event["subject"]["pr"] == 7 and event["subject"]["commit"] == HEAD
    assert event["correlation_id"] == ev.request.correlation_id
    details = event["details"]
    assert details["satisfied"] is True
    assert [r["id"] for r in details["required"]] == ["codeowners:1", "matrix:platform"]
    assert details["counted"][0]["user"] == "carol"
    assert details["discarded"] == [
        {
            "review_id": 1,
            "user": "dan",
            "state": "APPROVED",
            "reason": "requester",
            "detail": "dan requested this change (recorded in the evidence)",
        }
    ]


def test_missing_verdict_fails_closed_with_a_failure_status(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge(reviews=[review(1, "carol")])
    state = evaluate_pr(forge, registry(), 7, loader(None), ledger, bot_signer)
    assert not state.satisfied and state.blocking[0].kind is BlockerKind.NO_VERDICT
    status = forge.statuses[HEAD][APPROVALS_CONTEXT]
    assert status.state is StatusState.FAILURE and "no verdict" in status.description
    [event] = events(ledger)
    assert event["outcome"] == "deny" and event["details"]["satisfied"] is False  # same fields as an allow (I6)


def test_failed_verdict_fails_closed(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge(reviews=[review(1, "carol")])
    state = evaluate_pr(forge, registry(), 7, loader(verdict(result="FAILED")), ledger, bot_signer)
    assert not state.satisfied and forge.statuses[HEAD][APPROVALS_CONTEXT].state is StatusState.FAILURE


@pytest.mark.parametrize("what", ["list_reviews", "read_file", "set_status"])
def test_any_exception_is_not_satisfied_and_an_error_event(what: str, ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge(reviews=[review(1, "carol")])
    forge.fail_on.add(what)
    state = evaluate_pr(forge, registry(), 7, loader(verdict()), ledger, bot_signer)
    assert not state.satisfied and state.blocking[0].kind is BlockerKind.ERROR
    assert "502" in state.blocking[0].detail
    [event] = events(ledger)
    assert event["outcome"] == "error" and "502" in event["reason"]
    if what != "set_status":
        assert forge.statuses[HEAD][APPROVALS_CONTEXT].state is StatusState.ERROR
    else:
        assert event["details"]["status_publish_error"]


def test_a_verdict_loader_that_raises_is_an_error(ledger: Ledger, bot_signer: Signer) -> None:
    def boom(head: str) -> Verdict | None:
        raise ValueError("attestation does not verify")

    state = evaluate_pr(make_forge(), registry(), 7, boom, ledger, bot_signer)
    assert not state.satisfied and "attestation does not verify" in state.blocking[0].detail


def test_no_codeowners_anywhere_means_only_the_matrix(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge(reviews=[review(1, "carol")])
    forge.contents.clear()
    state = evaluate_pr(forge, registry(), 7, loader(verdict()), ledger, bot_signer)
    assert state.codeowners_source is None and [r.id for r in state.required] == ["matrix:platform"]


def test_renames_touch_both_paths(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge(paths=())
    forge.files = [
        ChangedFile(path="docs/x.py", status=FileStatus.RENAMED, previous_path="infra/network/x.py"),
    ]
    state = evaluate_pr(forge, registry(), 7, loader(verdict()), ledger, bot_signer)
    assert state.required[0].paths == ["infra/network/x.py"]


# -- merge ---------------------------------------------------------------------------------------------


def green_check(forge: MemoryForge) -> None:
    forge.me = "glassbox-ci"
    forge.set_status(HEAD, context=CHECK_CONTEXT, state=StatusState.SUCCESS)
    forge.me = "glassbox-bot"


def test_merge_when_check_and_approvals_are_green(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge(reviews=[review(1, "carol")], ev=evidence(requester="erin"))
    green_check(forge)
    outcome = merge_pr(forge, registry(), 7, loader(verdict()), ledger, bot_signer)
    assert outcome.merged and not outcome.auto_merge and forge.merged == [(7, HEAD, "squash")]
    approvals_event, merge_event = events(ledger)
    assert approvals_event["action"] == "approvals"
    assert merge_event["action"] == "merge" and merge_event["outcome"] == "allow"
    assert merge_event["subject"]["commit"] == "f" * 40
    assert merge_event["details"] == {
        "method": "squash",
        "head_sha": HEAD,
        "auto_merge": False,
        "merged": True,
        "approvals_satisfied": True,
        "reasons": [],
    }


def test_merge_refused_without_a_green_check(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge(reviews=[review(1, "carol")], ev=evidence(requester="erin"))
    outcome = merge_pr(forge, registry(), 7, loader(verdict()), ledger, bot_signer)
    assert not outcome.merged and forge.merged == []
    assert any("glassbox/check has not been reported" in r for r in outcome.reasons)
    assert events(ledger)[-1]["outcome"] == "deny"


def test_merge_refuses_a_check_status_not_set_by_ci(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge(reviews=[review(1, "carol")], ev=evidence(requester="erin"))
    forge.me = "carol"
    forge.set_status(HEAD, context=CHECK_CONTEXT, state=StatusState.SUCCESS)
    forge.me = "glassbox-bot"
    outcome = merge_pr(forge, registry(), 7, loader(verdict()), ledger, bot_signer)
    assert not outcome.merged and any("set by carol" in r for r in outcome.reasons)


def test_merge_refused_when_approvals_are_not_satisfied(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge(reviews=[review(1, "erin")])
    green_check(forge)
    outcome = merge_pr(forge, registry(), 7, loader(verdict()), ledger, bot_signer)
    assert not outcome.merged and forge.merged == []
    assert forge.statuses[HEAD][APPROVALS_CONTEXT].state is StatusState.FAILURE


def test_only_the_bot_identity_merges(tmp_path: Path, ledger: Ledger) -> None:
    agent = generate_key(tmp_path / "keys", "cost-optimizer")
    forge = make_forge(reviews=[review(1, "carol")], ev=evidence(requester="erin"))
    green_check(forge)
    outcome = merge_pr(forge, registry(), 7, loader(verdict()), ledger, agent)
    assert not outcome.merged and forge.merged == []
    assert any("only the bot merges" in r for r in outcome.reasons)


def test_auto_merge_path(ledger: Ledger, bot_signer: Signer) -> None:
    ev = evidence(agent="cost-optimizer", requester="erin", confidence=0.95)
    forge = make_forge(pr=pull("cost-optimizer"), paths=("infra/network/Pulumi.dev.yaml",), ev=ev)
    green_check(forge)
    outcome = merge_pr(forge, registry(), 7, loader(verdict("low", evidence_digest=ev.digest)), ledger, bot_signer)
    assert outcome.merged and outcome.auto_merge and outcome.approvals.auto_merge_eligible
    assert events(ledger)[-1]["details"]["auto_merge"] is True


def test_auto_merge_refused_below_the_confidence_threshold(ledger: Ledger, bot_signer: Signer) -> None:
    ev = evidence(agent="cost-optimizer", requester="erin", confidence=0.5)
    forge = make_forge(pr=pull("cost-optimizer"), paths=("infra/network/Pulumi.dev.yaml",), ev=ev)
    green_check(forge)
    outcome = merge_pr(forge, registry(), 7, loader(verdict("low", evidence_digest=ev.digest)), ledger, bot_signer)
    assert not outcome.merged and not outcome.auto_merge and forge.merged == []


def test_merge_errors_are_recorded(ledger: Ledger, bot_signer: Signer) -> None:
    forge = make_forge(reviews=[review(1, "carol")], ev=evidence(requester="erin"))
    green_check(forge)
    forge.fail_on.add("merge")
    outcome = merge_pr(forge, registry(), 7, loader(verdict()), ledger, bot_signer)
    assert not outcome.merged and events(ledger)[-1]["outcome"] == "error"
