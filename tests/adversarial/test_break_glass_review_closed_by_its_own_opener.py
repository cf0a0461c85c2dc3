"""The responder who broke glass closes their own post-incident review: grace is in sre-oncall (she may break glass)
and in security (she may close reviews), opens a grant, deploys with it, and signs the closure of its review with
her own trusted key. `breakglass close` refuses to make it; made by hand and handed to the audit workflow's
``review`` input it is refused and recorded, nothing reaches the trail but the refusal; put on the trail anyway,
past the verification the workflow makes, `audit verify` flags it as trail-tampered and the review stays overdue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import git
import pytest

from bot.audit.history import verify_from_trail
from bot.deploy.model import PostIncidentReview
from bot.trust.trail import closure_entry, review_entry
from tests.adversarial._break_glass_world import append_unchecked, signed_closure
from tests.e2e.break_glass_helpers import (
    Merged,
    assert_review_refused,
    close_on_laptop,
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
from tests.runner_helpers import FakeTokenService, token_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    yield from flow_env(tmp_path, required_approvals=0)


@pytest.fixture
def oidc() -> Iterator[FakeTokenService]:
    yield from token_service(REPO)


def _used_by_grace(
    flow: Flow, oidc: FakeTokenService, tmp: Path, mp: pytest.MonkeyPatch, cap: pytest.CaptureFixture[str]
) -> str:
    merged: Merged = merged_change(flow)
    envelope = open_on_laptop(flow, tmp, "grace", monkeypatch=mp, capsys=cap)
    result, _ = run_dispatch(flow, tmp, "deploy", oidc, dispatch_payload(merged.merge_sha, envelope), mp, cap)
    assert result.code == 0, result.out + result.err
    return grant_id_of(envelope)


def test_the_opener_cannot_close_the_review_through_the_audit_workflow(
    flow: Flow,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gid = _used_by_grace(flow, oidc, tmp_path, monkeypatch, capsys)
    code, _ = close_on_laptop(flow, tmp_path, gid, "grace", monkeypatch, capsys)
    assert code != 0, "breakglass close refuses a self-review"
    own = signed_closure(flow.signer("grace"), gid, closed_by="grace")
    result, ledger = run_record_review(flow, tmp_path, "self-review", review_payload(own), monkeypatch, capsys)
    event = assert_review_refused(flow, result, ledger, gid, "self-review")
    assert event.details["grant_id"] == gid and "grace" in event.reason


def test_a_self_closure_put_on_the_trail_is_trail_tampered_and_closes_nothing(
    flow: Flow,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gid = _used_by_grace(flow, oidc, tmp_path, monkeypatch, capsys)
    due = PostIncidentReview.model_validate_json(trail_breakglass(flow)[review_entry(gid)]).due
    assert append_unchecked(flow, gid, signed_closure(flow.signer("grace"), gid, closed_by="grace")) is not None

    clone = tmp_path / "auditor-clone"
    git.Repo.clone_from(flow.bare, clone, no_checkout=True)
    report = verify_from_trail(clone, now=due - timedelta(hours=1))
    (tampered,) = [v for v in report.violations if v.kind.value == "trail-tampered"]
    assert not report.ok and tampered.grant_id == gid and closure_entry(gid) in tampered.message
    assert "opened grant" in tampered.message, tampered.message
    notice = next(n for n in report.notices if n.kind.value == "break-glass-deploy")
    assert "closed by" not in notice.message, "a self-closure closes nothing"
    late = verify_from_trail(clone, now=due + timedelta(hours=1))
    assert {v.kind.value for v in late.violations} == {"trail-tampered", "breakglass-review-overdue"}
