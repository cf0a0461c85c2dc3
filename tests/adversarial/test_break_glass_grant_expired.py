"""A genuine break-glass grant presented after it expired (opened two hours ago for one hour), and one whose
signed expiry says it lives longer than the 4 h maximum: refused at the deploy, recorded, nothing claimed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.adversarial._break_glass_world import flow, merged, oidc, signed_grant
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


def test_an_expired_grant_is_refused(
    flow: Flow,
    merged: Merged,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    envelope = open_on_laptop(flow, tmp_path, now=datetime.now(UTC) - timedelta(hours=2))
    result, ledger = run_dispatch(
        flow, tmp_path, "expired", oidc, dispatch_payload(merged.merge_sha, envelope), monkeypatch, capsys
    )
    event = assert_refused_and_nothing_claimed(flow, tmp_path, "expired", result, ledger, "expired")
    assert "expired at" in event.reason


def test_a_grant_signed_to_outlive_the_maximum_is_refused(
    flow: Flow,
    merged: Merged,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = datetime.now(UTC)
    envelope = signed_grant(
        flow.signer("carol"), opened_by="carol", expires_at=now + timedelta(hours=9), ttl_seconds=9 * 3600
    )
    result, ledger = run_dispatch(
        flow, tmp_path, "too-long", oidc, dispatch_payload(merged.merge_sha, envelope), monkeypatch, capsys
    )
    assert_refused_and_nothing_claimed(flow, tmp_path, "too-long", result, ledger, "ttl-over-max")
