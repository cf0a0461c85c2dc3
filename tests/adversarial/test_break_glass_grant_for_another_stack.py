"""A genuine break-glass grant for one stack (network/prod), handed to the deploy of a commit whose plan touches
another (network/dev): refused as wrong-stack before it is claimed, so it is not burnt and nothing is applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial._break_glass_world import flow, merged, oidc
from tests.e2e.break_glass_helpers import (
    Merged,
    assert_refused_and_nothing_claimed,
    dispatch_payload,
    open_on_laptop,
    run_dispatch,
)
from tests.flow_helpers import Flow
from tests.runner_helpers import FakeTokenService

__all__ = ["flow", "merged", "oidc"]  # the module's fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_grant_for_another_stack_is_refused_and_not_consumed(
    flow: Flow,
    merged: Merged,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    envelope = open_on_laptop(flow, tmp_path, stack="network/prod")
    result, ledger = run_dispatch(
        flow, tmp_path, "other-stack", oidc, dispatch_payload(merged.merge_sha, envelope), monkeypatch, capsys
    )
    event = assert_refused_and_nothing_claimed(flow, tmp_path, "other-stack", result, ledger, "wrong-stack")
    assert "network/prod, not network/dev" in event.reason
