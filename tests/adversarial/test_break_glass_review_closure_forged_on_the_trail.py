"""A review closure in a reviewer's name, signed with a key the registry does not bind to them: mallory signs one
"by alice" (a security reviewer) for a break-glass use. Handed to the audit workflow's ``review`` input it is refused
as forged and recorded, and nothing reaches the trail but the refusal; put on the trail anyway, past the
verification the workflow makes, `audit verify` flags it as trail-tampered and the review stays open (overdue once
past due). A closure for a grant the trail never claimed is flagged the same way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import git
import pytest

from bot.audit.history import verify_from_trail
from bot.deploy.model import PostIncidentReview
from bot.records import new_correlation_id
from bot.trust.keys import generate_key
from bot.trust.trail import closure_entry, review_entry
from tests.adversarial._break_glass_world import append_unchecked, signed_closure
from tests.e2e.break_glass_helpers import (
    assert_review_refused,
    dispatch_payload,
    grant_id_of,
    merged_change,
    open_on_laptop,
    review_payload,
    run_dispatch,
    run_record_review,
    trail_breakglass,
)
from tests.flow_helpers import REPO, Flow, flow_env
from tests.runner_helpers import FakeTokenService, token_service, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    yield from flow_env(tmp_path, required_approvals=0)


@pytest.fixture
def oidc() -> Iterator[FakeTokenService]:
    yield from token_service(REPO)


def _used(
    flow: Flow, oidc: FakeTokenService, tmp: Path, mp: pytest.MonkeyPatch, cap: pytest.CaptureFixture[str]
) -> str:
    merged = merged_change(flow)
    envelope = open_on_laptop(flow, tmp, monkeypatch=mp, capsys=cap)
    result, _ = run_dispatch(flow, tmp, "deploy", oidc, dispatch_payload(merged.merge_sha, envelope), mp, cap)
    assert result.code == 0, result.out + result.err
    return grant_id_of(envelope)


def test_a_closure_in_a_reviewers_name_signed_with_another_key_is_refused_at_the_workflow(
    flow: Flow,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gid = _used(flow, oidc, tmp_path, monkeypatch, capsys)
    mallory = generate_key(tmp_path / "mallory-keys", "mallory")
    forged = signed_closure(mallory, gid, closed_by="alice")
    result, ledger = run_record_review(flow, tmp_path, "forged", review_payload(forged), monkeypatch, capsys)
    event = assert_review_refused(flow, result, ledger, gid, "forged")
    assert "does not verify" in event.reason


def test_a_forged_closure_on_the_trail_is_trail_tampered_and_the_review_stays_open(
    flow: Flow,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gid = _used(flow, oidc, tmp_path, monkeypatch, capsys)
    due = PostIncidentReview.model_validate_json(trail_breakglass(flow)[review_entry(gid)]).due
    mallory = generate_key(tmp_path / "mallory-keys", "mallory")
    assert append_unchecked(flow, gid, signed_closure(mallory, gid, closed_by="alice")) is not None
    unclaimed = new_correlation_id()  # a grant nobody used: its "closure" names a review that does not exist
    assert append_unchecked(flow, unclaimed, signed_closure(flow.signer("alice"), unclaimed, closed_by="alice"))

    clone = tmp_path / "auditor-clone"
    git.Repo.clone_from(flow.bare, clone, no_checkout=True)
    report = verify_from_trail(clone, now=due - timedelta(hours=1))
    tampered = {v.grant_id: v for v in report.violations if v.kind.value == "trail-tampered"}
    assert set(tampered) == {gid, unclaimed}, [v.line() for v in report.violations]
    assert closure_entry(gid) in tampered[gid].message and "does not verify" in tampered[gid].message
    assert "no verified use claim" in tampered[unclaimed].message
    notice = next(n for n in report.notices if n.kind.value == "break-glass-deploy")
    assert "open, due" in notice.message, "a forged closure closes nothing"
    late = verify_from_trail(clone, now=due + timedelta(hours=1))
    overdue = [v for v in late.violations if v.kind.value == "breakglass-review-overdue"]
    assert [v.grant_id for v in overdue] == [gid]


def test_what_is_not_a_closure_is_refused_before_anything_is_verified(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    merged_change(flow)
    grant = open_on_laptop(flow, tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    for name, review in {
        "oversized": " " * (17 * 1024) + "{}",
        "not-json": "{'payloadType': 1}",
        "a-grant": grant,  # a DSSE envelope, but of a grant
    }.items():
        result, ledger = run_record_review(flow, tmp_path, name, review_payload(review), monkeypatch, capsys)
        event = assert_review_refused(flow, result, ledger, grant_id_of(grant), "malformed")
        assert event.details["stage"] == "present-review" and review.strip()[:10] not in event.reason, name
    # the flag reads only a dispatch of the audit workflow: on the nightly schedule it is a wiring mistake (exit 2)
    result, _ = run_record_review(
        flow, tmp_path, "on-schedule", webhook("schedule"), monkeypatch, capsys, event="schedule"
    )
    assert result.code == 2 and "workflow_dispatch" in result.err
