"""A break-glass grant from someone who may not break glass, handed to the deploy workflow: alice (security, no
``break_glass`` team) signs a grant in her own name with her own trusted key; mallory signs one in carol's name with
a key nobody trusts; an agent signs one in its own name. Each is refused at the deploy, recorded, and nothing
reaches the trail but the refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.trust.keys import generate_key
from tests.adversarial._break_glass_world import flow, merged, oidc, signed_grant
from tests.e2e.break_glass_helpers import Merged, assert_refused_and_nothing_claimed, dispatch_payload, run_dispatch
from tests.flow_helpers import Flow
from tests.runner_helpers import FakeTokenService

__all__ = ["flow", "merged", "oidc"]  # the module's fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize(
    ("who", "signed_by", "code"),
    [
        ("alice", "alice", "not-break-glass"),  # a person, trusted key, not in a break_glass team
        ("carol", "mallory", "forged"),  # carol's name, a key the registry does not trust for her
        ("cost-optimizer", "cost-optimizer", "not-break-glass"),  # an agent is never a break-glass member
    ],
)
def test_a_grant_from_outside_the_break_glass_teams_is_refused(
    flow: Flow,
    merged: Merged,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    who: str,
    signed_by: str,
    code: str,
) -> None:
    signer = generate_key(tmp_path / "mallory-keys", "mallory") if signed_by == "mallory" else flow.signer(signed_by)
    envelope = signed_grant(signer, opened_by=who)
    result, ledger = run_dispatch(
        flow, tmp_path, "outsider", oidc, dispatch_payload(merged.merge_sha, envelope), monkeypatch, capsys
    )
    event = assert_refused_and_nothing_claimed(flow, tmp_path, "outsider", result, ledger, code)
    assert event.details["stage"] == "use" and event.subject.commit == merged.merge_sha
