"""The forced post-incident review in `audit verify` without a trail (a deploy host's ledger and deploy state): a
break-glass use whose review (``reviews/<grant id>.json``) is past due and not closed fails verify with
``breakglass-review-overdue``; before its due date the deploy is only reported. Real git, real signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.audit.findings import FINDINGS, ViolationKind
from bot.audit.history import HistoryReport, VerifyRequest, verify_history
from bot.deploy.model import PostIncidentReview
from bot.deploy.state import write_json_atomic
from tests.audit_world import World, build_world

GRANT = "01a24b64-adbe-7668-a149-fdba1181b4b8"
USED = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
DUE = USED + timedelta(days=5)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def _verify(world: World, state: Path, now: datetime) -> HistoryReport:
    return verify_history(
        VerifyRequest(
            ledger=world.ledger.path, repo=world.repo_dir, attestations=world.attestations, deploy_state=state, now=now
        )
    )


def test_an_overdue_unclosed_review_fails_verify_and_a_timely_one_does_not(world: World, tmp_path: Path) -> None:
    merged = world.out_of_band_merge({"infra/data/Pulumi.prod.yaml": "size: 250\n"})
    world.deploy(merged, grant=GRANT)
    state = tmp_path / "deploy-state"
    review = PostIncidentReview(
        grant_id=GRANT,
        ticket="INC-9",
        reason="disk full",
        stack="data/prod",
        commit=merged,
        opened_by="grace",
        used_by="glassbox-deployer",
        used_at=USED,
        due=DUE,
    )
    write_json_atomic(state / "reviews" / f"{GRANT}.json", review.model_dump(mode="json"))

    # the incident merge went past the gate (out-of-band-merge, as ever); the deploy under the grant is reported
    timely = _verify(world, state, DUE - timedelta(hours=1))
    assert [v.kind for v in timely.violations] == [ViolationKind.OUT_OF_BAND_MERGE]
    assert [n.kind for n in timely.notices] == [ViolationKind.BREAK_GLASS_DEPLOY]

    late = _verify(world, state, DUE + timedelta(hours=1))
    assert [v.kind for v in late.violations] == [
        ViolationKind.OUT_OF_BAND_MERGE,
        ViolationKind.BREAKGLASS_REVIEW_OVERDUE,
    ]
    overdue = late.violations[1]
    assert overdue.fails and [n.kind for n in late.notices] == [ViolationKind.BREAK_GLASS_DEPLOY]
    assert overdue.grant_id == GRANT and overdue.commit == merged and DUE.isoformat() in overdue.message
    assert "glassbox breakglass close" in overdue.line() and FINDINGS[overdue.kind].fails
