"""A break-glass grant that was used once, presented again to the deploy workflow: the second run lands on a fresh
runner whose local state is empty, so only the audit trail knows the grant was used. Its claim there refuses the
replay as reused, before anything is applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.records import Outcome
from bot.trust.trail import claim_entry, trail_ref
from tests.e2e.break_glass_helpers import (
    dispatch_payload,
    grant_id_of,
    merged_change,
    open_on_laptop,
    run_dispatch,
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


def test_the_same_grant_on_a_second_runner_with_empty_state_is_refused_as_reused(
    flow: Flow,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    merged = merged_change(flow)
    envelope = open_on_laptop(flow, tmp_path)
    gid = grant_id_of(envelope)
    payload = dispatch_payload(merged.merge_sha, envelope)
    first, _ = run_dispatch(flow, tmp_path, "first", oidc, payload, monkeypatch, capsys)
    assert first.code == 0, first.out + first.err
    claimed = trail_breakglass(flow)
    head = trail_ref(flow.bare)

    replay, ledger = run_dispatch(flow, tmp_path, "second", oidc, payload, monkeypatch, capsys)
    assert replay.code == 1 and replay.outputs["result"] == "refused"
    event = ledger.events()
    refused = [e for e in event if e.action == "breakglass.refuse"]
    assert [e.details["code"] for e in refused] == ["reused"] and "glassbox-trail" in refused[0].reason
    assert "reused" in replay.summary or "already used" in replay.summary
    assert trail_breakglass(flow) == claimed, "one claim, unchanged: the replay added no second one"
    assert list(claimed).count(claim_entry(gid)) == 1
    assert trail_ref(flow.bare) != head, "the refusal itself is on the trail"
    assert not list((tmp_path / "runner" / "second" / "state").glob("stacks/*/*/state.json")), "nothing applied"
    # this runner's deploy event (its ledger starts at the trail's tip, the first runner's)
    last = [e for e in ledger.events() if e.action == "deploy"][-1]
    assert last.outcome is Outcome.DENY and last.details["break_glass"] == gid and last.details["deployments"] == []
