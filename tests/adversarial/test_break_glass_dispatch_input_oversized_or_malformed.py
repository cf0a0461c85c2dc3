"""Hostile ``workflow_dispatch`` inputs to the deploy workflow: a grant input that is oversized, not JSON, not a DSSE
envelope, or an envelope whose payload is not a grant. Each is a clear refusal (exit 1, ``breakglass.refuse``
``malformed`` on the trail, a message that never repeats the input) before anything is verified or applied, and
nothing of it is half-written on the trail. Inputs of the wrong type or an invalid commit are bad input (exit 2)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from bot.deploy.breakglass import MAX_GRANT_BYTES
from bot.trust.trail import trail_ref
from tests.adversarial._break_glass_world import flow, merged, oidc, signed_grant
from tests.e2e.break_glass_helpers import (
    Merged,
    assert_refused_and_nothing_claimed,
    dispatch_payload,
    own_events,
    run_dispatch,
    trail_breakglass,
)
from tests.flow_helpers import Flow
from tests.runner_helpers import FakeTokenService

__all__ = ["flow", "merged", "oidc"]  # the module's fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MARKER = "::set-output name=result::deployed"


def _with_payload(flow: Flow, payload: bytes) -> str:
    envelope = json.loads(signed_grant(flow.signer("carol"), opened_by="carol"))
    envelope["payload"] = base64.b64encode(payload).decode()
    return json.dumps(envelope)


CASES: dict[str, Any] = {
    "oversized": lambda flow: signed_grant(flow.signer("carol"), opened_by="carol", reason="x" * MAX_GRANT_BYTES),
    "not-json": lambda flow: MARKER + " {",
    "json-array": lambda flow: json.dumps([MARKER]),
    "not-an-envelope": lambda flow: json.dumps({"grant": MARKER}),
    "another-payload-type": lambda flow: json.dumps(
        {**json.loads(signed_grant(flow.signer("carol"), opened_by="carol")), "payloadType": "text/plain"}
    ),
    "payload-not-base64": lambda flow: json.dumps(
        {**json.loads(signed_grant(flow.signer("carol"), opened_by="carol")), "payload": MARKER}
    ),
    "payload-not-a-grant": lambda flow: _with_payload(flow, json.dumps({"grant_id": "../../x", "stack": 1}).encode()),
    "grant-id-a-path": lambda flow: signed_grant(flow.signer("carol"), opened_by="carol", grant_id="../../high-water"),
    "duplicate-keys": lambda flow: '{"payloadType": "a", "payloadType": "b", "payload": "", "signatures": []}',
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_grant_input_is_refused_recorded_and_leaves_the_trail_without_break_glass_objects(
    flow: Flow,
    merged: Merged,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    grant = CASES[case](flow)
    result, ledger = run_dispatch(
        flow, tmp_path, case, oidc, dispatch_payload(merged.merge_sha, grant), monkeypatch, capsys
    )
    event = assert_refused_and_nothing_claimed(flow, tmp_path, case, result, ledger, "malformed")
    assert event.details["stage"] == "present" and event.subject.commit == merged.merge_sha
    assert "malformed" in result.err and "malformed" in result.summary
    assert MARKER not in result.out + result.err + result.summary + event.reason, "the input is never echoed"
    assert not [e for e in own_events(ledger) if e.action == "deploy"], "no deploy was attempted"
    assert result.outputs["break_glass"] == ""


@pytest.mark.parametrize(
    "inputs",
    [
        {"commit": "main", "grant": "{}"},  # not a commit SHA
        {"grant": "{}"},  # no commit
        {"commit": "a" * 40, "grant": {"payloadType": "x"}},  # not a string
    ],
    ids=["commit-not-a-sha", "no-commit", "grant-not-a-string"],
)
def test_dispatch_inputs_of_the_wrong_shape_are_bad_input(
    flow: Flow,
    merged: Merged,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    inputs: dict[str, Any],
) -> None:
    before = trail_ref(flow.bare)
    payload = dispatch_payload(merged.merge_sha, "")
    payload["inputs"] = inputs
    result, _ = run_dispatch(flow, tmp_path, "shape", oidc, payload, monkeypatch, capsys)
    assert result.code == 2 and "workflow_dispatch" in result.err
    assert result.outputs == {} and trail_ref(flow.bare) == before and trail_breakglass(flow) == {}
