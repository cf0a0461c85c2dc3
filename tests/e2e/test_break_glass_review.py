"""The forced post-incident review of a break-glass deploy on GitHub, replayed: the deploy workflow's dispatch uses
a grant, the nightly audit fails once the review is past due and open, a reviewer signs the closure from a clone,
the audit workflow's dispatch (``glassbox ci schedule --record-review``) appends it to the trail with the bot's
key, and a fresh clone's `audit verify` reports the review closed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import git
import pytest

from bot.audit.history import verify_from_trail
from bot.cli import main
from bot.deploy.model import PostIncidentReview
from bot.records import Outcome
from bot.trust.trail import closure_entry, review_entry, trail_problems, trail_ref
from tests.e2e.break_glass_helpers import (
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


def test_a_review_closed_through_the_audit_workflow_lands_on_the_trail_and_verify_reports_it_closed(
    flow: Flow,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    merged = merged_change(flow)
    envelope = open_on_laptop(flow, tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    gid = grant_id_of(envelope)
    result, _ = run_dispatch(
        flow, tmp_path, "deploy", oidc, dispatch_payload(merged.merge_sha, envelope), monkeypatch, capsys
    )
    assert result.code == 0, result.out + result.err
    due = PostIncidentReview.model_validate_json(trail_breakglass(flow)[review_entry(gid)]).due

    # the review is forced: open and past due, the audit fails; before its due date it does not
    auditor = tmp_path / "auditor-clone"
    git.Repo.clone_from(flow.bare, auditor, no_checkout=True)
    assert verify_from_trail(auditor, now=due - timedelta(hours=1)).ok
    late = verify_from_trail(auditor, now=due + timedelta(hours=1))
    (overdue,) = [v for v in late.violations if v.kind.value == "breakglass-review-overdue"]
    assert not late.ok and overdue.grant_id == gid and overdue.commit == merged.merge_sha
    assert "glassbox breakglass close" in overdue.line()

    # the responder may not close their own review; a security reviewer does, from a clone of the repository
    code, _ = close_on_laptop(flow, tmp_path, gid, "carol", monkeypatch, capsys)
    assert code != 0
    code, closure = close_on_laptop(flow, tmp_path, gid, "alice", monkeypatch, capsys)
    assert code == 0 and closure.endswith("\n") and "\n" not in closure.rstrip("\n")

    before = trail_ref(flow.bare)
    recorded, ledger = run_record_review(flow, tmp_path, "record-review", review_payload(closure), monkeypatch, capsys)
    assert recorded.code == 0, recorded.out + recorded.err
    assert recorded.outputs["result"] == "recorded" and recorded.outputs["grant_id"] == gid
    assert recorded.outputs["closed_by"] == "alice" and recorded.outputs["outcome"] == "fixed-forward"
    assert "closed by `alice`" in recorded.summary
    head = trail_ref(flow.bare)
    assert head is not None and head != before and recorded.outputs["trail"] == head
    assert trail_breakglass(flow)[closure_entry(gid)].decode() == closure
    assert trail_problems(flow.bare, head, flow.registry).problems == []
    (event,) = [e for e in ledger.events() if e.action == "breakglass.review"]
    assert event.actor.id == "glassbox-bot" and event.outcome is Outcome.ALLOW
    on_trail = verify_from_trail(_fresh_clone(flow, tmp_path, "after"), now=due + timedelta(days=30))
    assert on_trail.ok, [v.line() for v in on_trail.violations]
    assert any(e.get("action") == "breakglass.review" for e in _trail_events(flow, tmp_path)), "its event is there"

    # the auditor's `audit verify --repo CLONE`: the break-glass deploy is reported with its review closed
    clone = _fresh_clone(flow, tmp_path, "cli")
    monkeypatch.delenv("GLASSBOX_LEDGER", raising=False)
    capsys.readouterr()
    code = main(["audit", "verify", "--repo", str(clone), "--output", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"], report["violations"]
    (notice,) = [n for n in report["notices"] if n["kind"] == "break-glass-deploy"]
    assert notice["grant_id"] == gid
    assert "post-incident review closed by alice" in notice["message"] and "fixed-forward" in notice["message"]

    # a second dispatch with the same closure (a re-run) adds no closure; another reviewer's is refused
    again, _ = run_record_review(flow, tmp_path, "again", review_payload(closure), monkeypatch, capsys)
    assert again.code == 0 and again.outputs["result"] == "recorded"
    assert [p for p in trail_breakglass(flow) if p.endswith(".closed.dsse.json")] == [closure_entry(gid)]
    assert trail_breakglass(flow)[closure_entry(gid)].decode() == closure
    code, _ = close_on_laptop(flow, tmp_path, gid, "bob", monkeypatch, capsys)
    assert code != 0, "bob's clone sees the closure on origin/glassbox-trail"


def _fresh_clone(flow: Flow, tmp: Path, name: str) -> Path:
    clone = tmp / f"clone-{name}"
    git.Repo.clone_from(flow.bare, clone, no_checkout=True)
    return clone


def _trail_events(flow: Flow, tmp: Path) -> list[dict[str, object]]:
    from bot.trust.trail import materialise

    head = trail_ref(flow.bare)
    assert head is not None
    view = materialise(flow.bare, head, tmp / "trail-view")
    return [json.loads(line) for line in view.ledger.read_bytes().splitlines()]
