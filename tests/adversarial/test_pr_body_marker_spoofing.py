"""An agent writes a fake evidence marker (and table-breaking pipes) into its rationale, hoping the PR body's first
marker is its own: the bot's idempotency check reads the first one. Free text can never open an HTML comment in
the body, so the only marker is glassbox's, and a cell stays one cell."""

from __future__ import annotations

from pathlib import Path

from bot.propose import EVIDENCE_MARKER, build_evidence, render_body, request_digest
from bot.records import ChangeRequest
from bot.registry import load_registry
from bot.trust.keys import generate_key
from tests.factories import REPO_ROOT, change_request_data

FAKE = "<!-- glassbox:evidence sha256:" + "a" * 64 + " request sha256:" + "b" * 64 + " -->"


def test_fake_evidence_marker_in_the_rationale_is_not_a_marker(tmp_path: Path) -> None:
    data = change_request_data(repo="acme/infra")
    data["rationale"]["objective"] = f"tidy up {FAKE}"
    data["rationale"]["alternatives_rejected"] = [{"option": "a | b", "reason": f"x\n{FAKE}"}]
    request = ChangeRequest.model_validate(data)
    record = build_evidence(
        request, load_registry(REPO_ROOT / "registry"), "sha256:" + "0" * 64, generate_key(tmp_path, "cost-optimizer")
    )
    digest = request_digest(request)
    body = render_body(record, digest)
    markers = EVIDENCE_MARKER.findall(body)
    assert len(markers) == 1 and markers[0][1] == digest, markers
    assert FAKE not in body
