from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.audit.ocsf import (
    API_ACTIVITY,
    COMPLIANCE_FINDING,
    DETECTION_FINDING,
    OCSF_VERSION,
    BusinessHours,
    Detections,
    OcsfMapper,
    RetryBurst,
    render,
    required_schemas,
    to_cef,
    to_ecs,
    validate_ocsf,
)
from bot.records import Actor, ActorKind, AuditEvent, Outcome, Subject
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger

CID = "019378a2-7f3c-7c4e-9b1a-2d3e4f5a6b7c"
CID2 = "019378a2-7f3c-7c4e-9b1a-2d3e4f5a6b7d"
# Wednesday 2026-11-25 10:00 UTC: inside default business hours
WORKDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
GH_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"

MODEL = {"provider": "example-ai", "model_id": "planner-large", "version": "2026-10-01"}
PROMPT = {"template_id": "rightsize", "template_version": "3", "template_sha256": "ab" * 32}


@pytest.fixture(scope="module")
def signers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Signer]:
    d = tmp_path_factory.mktemp("keys")
    return {k: generate_key(d, k) for k in ("cost-optimizer", "glassbox-ci", "glassbox-bot", "deployer", "alice")}


KINDS = {
    "cost-optimizer": ActorKind.AGENT,
    "glassbox-ci": ActorKind.CI,
    "glassbox-bot": ActorKind.BOT,
    "deployer": ActorKind.DEPLOYER,
    "alice": ActorKind.HUMAN,
}


class Builder:
    def __init__(self, path: Path, signers: dict[str, Signer]) -> None:
        self.ledger = Ledger(path)
        self.signers = signers

    def add(
        self,
        who: str,
        action: str,
        outcome: Outcome = Outcome.ALLOW,
        *,
        when: datetime = WORKDAY,
        reason: str = "",
        cid: str | None = CID,
        subject: Subject | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        return self.ledger.append(
            self.signers[who],
            actor=Actor(id=who, kind=KINDS[who]),
            action=action,
            outcome=outcome,
            reason=reason,
            correlation_id=cid,
            subject=subject or Subject(repo="acme/infra", pr=7, commit="c" * 40),
            details=details or {},
            time=when,
        )


def propose_details(**extra: Any) -> dict[str, Any]:
    return {
        "agent_id": "cost-optimizer",
        "requested_by": "carol",
        "ticket": "OPS-1",
        "model": MODEL,
        "prompt": PROMPT,
        "paths": ["infra/network/Pulumi.dev.yaml"],
        "evidence_digest": "sha256:" + "ef" * 32,
        "stage": "opened",
        "result": "opened",
        "reasons": [],
        **extra,
    }


@pytest.fixture(scope="module")
def full_ledger(tmp_path_factory: pytest.TempPathFactory, signers: dict[str, Signer]) -> Iterator[list[AuditEvent]]:
    """One event of each kind in the vocabulary, plus the situations that raise detections (read-only)."""
    b = Builder(tmp_path_factory.mktemp("full") / "ledger.jsonl", signers)
    t = WORKDAY
    b.add("cost-optimizer", "propose", details=propose_details(), reason="PR #7 opened")
    b.add(
        "cost-optimizer",
        "propose",
        Outcome.DENY,
        reason="refused at scope: path outside scope",
        details=propose_details(stage="scope", result="refused", reasons=["path outside scope"]),
    )
    b.add(
        "glassbox-ci",
        "check",
        Outcome.DENY,
        when=t + timedelta(minutes=1),
        reason="FAILED at risk high: GB-NET-001",
        details={
            "result": "FAILED",
            "risk": "high",
            "risk_reasons": ["security group change"],
            "findings": [
                {"engine": "rego", "rule_id": "GB-NET-001", "severity": "high", "status": "deny"},
                {"engine": "checkov", "rule_id": "CKV_AWS_24", "severity": "medium", "status": "warn"},
            ],
            "plan_digest": "sha256:" + "01" * 32,
            "errors": [],
        },
    )
    b.add("glassbox-ci", "check", when=t + timedelta(minutes=2), details={"result": "PASSED", "findings": []})
    b.add("glassbox-bot", "approvals", Outcome.ESCALATE, when=t + timedelta(minutes=3), details={"satisfied": False})
    b.add("glassbox-bot", "merge", when=t + timedelta(minutes=4), details={"method": "squash", "auto_merge": True})
    b.add(
        "deployer",
        "deploy",
        when=t + timedelta(minutes=5),
        subject=Subject(repo="acme/infra", commit="d" * 40, stack="network/dev"),
        details={"applier": "local", "result": "applied", "simulated": True},
    )
    b.add(
        "deployer",
        "credential.mint",
        when=t + timedelta(minutes=5),
        subject=Subject(stack="network/dev"),
        details={"credential_id": "cred-6f1c2a9e4b7d4e0f8a3b", "scope": ["network/dev"], "ttl_seconds": 900},
    )
    b.add("deployer", "credential.refuse", Outcome.DENY, cid=None, subject=Subject(stack="data/prod"))
    b.add("alice", "breakglass.open", subject=Subject(stack="data/prod"), details={"ticket": "INC-9", "grant_id": "g1"})
    # Saturday 02:00 UTC: an out-of-hours change
    b.add(
        "deployer", "breakglass.use", when=datetime(2026, 11, 28, 2, 0, tzinfo=UTC), subject=Subject(stack="data/prod")
    )
    # three errors for one correlation id within ten minutes: a retry burst
    for i in range(3):
        b.add(
            "cost-optimizer",
            "propose",
            Outcome.ERROR,
            cid=CID2,
            when=t + timedelta(minutes=10 + i),
            reason="opening the PR failed",
            details=propose_details(stage="forge", result="error"),
        )
    b.add("glassbox-bot", "ledger.recover", Outcome.ERROR, cid=None, details={"torn_bytes": 12})
    yield list(b.ledger.events())


def _kinds(out: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["uid"].split("#", 1)[1] for o in out if "#" in o["metadata"]["uid"]]


def test_every_mapped_event_has_its_class_required_attributes(full_ledger: list[AuditEvent]) -> None:
    out = OcsfMapper().map_all(full_ledger)
    assert {o["class_uid"] for o in out} == {API_ACTIVITY, COMPLIANCE_FINDING, DETECTION_FINDING}
    for o in out:
        assert validate_ocsf(o) == [], o
        assert o["type_uid"] == o["class_uid"] * 100 + o["activity_id"]
        assert o["metadata"]["version"] == OCSF_VERSION == required_schemas()["ocsf_version"]
        assert o["metadata"]["product"] == {"name": "glassbox", "vendor_name": "glassbox", "version": "0.1.0"}
    uids = [o["metadata"]["uid"] for o in out]
    assert len(uids) == len(set(uids)), "every OCSF event has its own uid"


def test_the_validator_reports_a_missing_required_attribute(full_ledger: list[AuditEvent]) -> None:
    api = OcsfMapper().map(full_ledger[0])[0]
    del api["api"]["operation"]
    del api["src_endpoint"]
    api["type_uid"] = 1
    problems = validate_ocsf(api)
    assert any("operation" in p for p in problems)
    assert any("src_endpoint" in p for p in problems)
    assert any(p.startswith("type_uid") for p in problems)
    assert validate_ocsf({"class_uid": 1001}) == ["class_uid 1001 is not one glassbox emits"]


def test_propose_maps_to_api_activity_with_the_ai_operation_profile(full_ledger: list[AuditEvent]) -> None:
    event = full_ledger[0]
    [api] = OcsfMapper().map(event)
    assert (api["class_uid"], api["category_uid"], api["activity_id"], api["type_uid"]) == (6003, 6, 1, 600301)
    assert api["time"] == int(WORKDAY.timestamp() * 1000)
    assert api["status_id"] == 1 and api["severity_id"] == 1
    meta = api["metadata"]
    assert meta["uid"] == meta["original_event_uid"] == event.digest
    assert meta["correlation_uid"] == CID and meta["original_time"] == WORKDAY.isoformat()
    assert meta["profiles"] == ["ai_operation"]
    assert api["actor"]["user"] == {
        "uid": "cost-optimizer",
        "name": "cost-optimizer",
        "type_id": 99,
        "type": "AI Agent",
    }
    assert api["api"]["operation"] == "propose"
    assert api["ai_agent"]["uid"] == "cost-optimizer"
    assert "ai_model" not in api  # agent-mediated: the model rides inside ai_agent
    assert api["ai_agent"]["ai_model"] == {
        "name": "planner-large",
        "ai_provider": "example-ai",
        "version": "2026-10-01",
        "uid": "example-ai/planner-large@2026-10-01",
    }
    assert api["unmapped"]["prompt"] == PROMPT
    assert {"type": "pull_request", "uid": "acme/infra#7", "name": "PR #7"} in api["resources"]


def test_check_findings_become_compliance_findings(full_ledger: list[AuditEvent]) -> None:
    mapper = OcsfMapper()
    failed = mapper.map(full_ledger[2])
    compliance = [o for o in failed if o["class_uid"] == COMPLIANCE_FINDING]
    assert [c["compliance"]["control"] for c in compliance] == ["GB-NET-001", "CKV_AWS_24"]
    assert [c["compliance"]["status"] for c in compliance] == ["Fail", "Warning"]
    assert [c["severity_id"] for c in compliance] == [4, 3]
    assert all(c["compliance"]["standards"] for c in compliance)
    assert [o["finding_info"]["types"][0] for o in failed if o["class_uid"] == DETECTION_FINDING] == ["denial"]
    [clean] = mapper.map(full_ledger[3])
    assert clean["class_uid"] == COMPLIANCE_FINDING and clean["compliance"]["status"] == "Pass"


def test_detections_cover_denials_escalations_breakglass_out_of_hours_and_retry_bursts(
    full_ledger: list[AuditEvent],
) -> None:
    out = OcsfMapper().map_all(full_ledger)
    findings = [o for o in out if o["class_uid"] == DETECTION_FINDING]
    kinds = _kinds(findings)
    assert kinds.count("denial") == 3  # propose, check, credential.refuse
    assert kinds.count("escalation") == 1
    assert kinds.count("breakglass") == 2  # open and use
    assert kinds.count("out-of-hours") == 1  # the Saturday break-glass use
    assert kinds.count("retry-burst") == 1
    burst = next(f for f in findings if f["metadata"]["uid"].endswith("#retry-burst"))
    assert burst["metadata"]["correlation_uid"] == CID2
    assert burst["evidences"][0]["ai_agent"]["uid"] == "cost-optimizer"
    assert all(f["is_alert"] and f["finding_info"]["uid"] for f in findings)
    breakglass = [f for f in findings if f["metadata"]["uid"].endswith("#breakglass")]
    assert all(f["severity_id"] == 4 for f in breakglass)


def test_retry_bursts_respect_the_window_and_fire_once_per_burst(tmp_path: Path, signers: dict[str, Signer]) -> None:
    b = Builder(tmp_path / "l.jsonl", signers)
    times = [0, 1, 30, 31, 32, 33, 34]  # minutes: 2 errors, a gap, then 5 errors
    events = [b.add("cost-optimizer", "propose", Outcome.ERROR, when=WORKDAY + timedelta(minutes=m)) for m in times]
    mapper = OcsfMapper(Detections(retry_burst=RetryBurst(count=3, window_seconds=300)))
    kinds = _kinds(mapper.map_all(events))
    assert kinds.count("retry-burst") == 1  # the first two are too far from the next ones; 5 in a row make one burst
    mapper = OcsfMapper(Detections(retry_burst=RetryBurst(count=2, window_seconds=300)))
    assert _kinds(mapper.map_all(events)).count("retry-burst") == 3


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (datetime(2026, 11, 25, 8, 0, tzinfo=UTC), True),
        (datetime(2026, 11, 25, 17, 59, tzinfo=UTC), True),
        (datetime(2026, 11, 25, 18, 0, tzinfo=UTC), False),
        (datetime(2026, 11, 25, 7, 59, tzinfo=UTC), False),
        (datetime(2026, 11, 28, 12, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2026, 11, 25, 9, 30, tzinfo=UTC).astimezone(), True),  # any offset is compared in UTC
    ],
)
def test_business_hours_are_utc(when: datetime, inside: bool) -> None:
    assert BusinessHours().contains(when) is inside


def test_business_hours_reject_a_window_that_wraps() -> None:
    with pytest.raises(ValueError, match="end must be after start"):
        BusinessHours(start="22:00", end="06:00")


def test_secrets_and_free_text_never_leave(tmp_path: Path, signers: dict[str, Signer]) -> None:
    b = Builder(tmp_path / "l.jsonl", signers)
    event = b.add(
        "cost-optimizer",
        "propose",
        Outcome.DENY,
        reason=f"refused: token {GH_TOKEN} leaked",
        details=propose_details(
            ticket=f"OPS-1 key {AWS_KEY}",
            reasons=["the rationale prose THAT-MUST-STAY-INSIDE"],
            rationale="long prose THAT-MUST-STAY-INSIDE",
            transcript="user: hi THAT-MUST-STAY-INSIDE",
        ),
    )
    out = OcsfMapper().map(event)
    rendered = [render(o, f) for o in out for f in ("ocsf", "ecs", "cef")]
    for text in rendered:
        assert GH_TOKEN not in text and AWS_KEY not in text
        assert "THAT-MUST-STAY-INSIDE" not in text
    api = out[0]
    assert "[REDACTED:github-token]" in api["message"]
    assert api["unmapped"]["redactions"] >= 2
    assert api["unmapped"]["details"]["reason_count"] == 1


def test_long_reasons_are_truncated(tmp_path: Path, signers: dict[str, Signer]) -> None:
    event = Builder(tmp_path / "l.jsonl", signers).add("glassbox-bot", "merge", reason="x" * 5000)
    [api] = OcsfMapper().map(event)
    assert len(api["message"]) <= 256


def test_ecs_rendering(full_ledger: list[AuditEvent]) -> None:
    out = OcsfMapper().map_all(full_ledger)
    api = to_ecs(out[0])
    assert api["@timestamp"] == "2026-11-25T10:00:00Z"
    assert api["event"]["kind"] == "event" and api["event"]["outcome"] == "success"
    assert api["event"]["action"] == "propose" and api["event"]["id"] == full_ledger[0].digest
    assert api["user"] == {"id": "cost-optimizer", "name": "cost-optimizer"}
    assert api["trace"]["id"] == CID and api["labels"]["correlation_id"] == CID
    alert = to_ecs(next(o for o in out if o["class_uid"] == DETECTION_FINDING))
    assert alert["event"]["kind"] == "alert" and alert["event"]["category"] == ["intrusion_detection"]
    assert alert["rule"]["id"].startswith("glassbox.")


def test_cef_rendering_escapes_header_and_extension(tmp_path: Path, signers: dict[str, Signer]) -> None:
    event = Builder(tmp_path / "l.jsonl", signers).add("glassbox-bot", "merge", reason="a|b=c\\d\nnext")
    [api] = OcsfMapper().map(event)
    line = to_cef(api)
    assert line.startswith("CEF:0|glassbox|glassbox|0.1.0|6003:merge|merge allow|1|")
    assert "\n" not in line
    assert "msg=a|b\\=c\\\\d next" in line  # the reason's newline was folded when it was shortened
    assert f"externalId={event.digest.replace('=', '')}" in line
    assert "cs1=" + CID in line
    pipe = to_cef({**api, "unmapped": {**api["unmapped"], "action": "a|b"}})
    assert "|6003:a\\|b|" in pipe


def test_render_rejects_an_unknown_format(full_ledger: list[AuditEvent]) -> None:
    api = OcsfMapper().map(full_ledger[0])[0]
    assert json.loads(render(api, "ocsf")) == api
    with pytest.raises(ValueError, match="unknown format"):
        render(api, "leef")


def test_a_model_without_an_agent_is_a_top_level_ai_model(tmp_path: Path, signers: dict[str, Signer]) -> None:
    event = Builder(tmp_path / "l.jsonl", signers).add("glassbox-bot", "merge", details={"model": MODEL})
    [api] = OcsfMapper().map(event)
    assert "ai_agent" not in api and api["ai_model"]["ai_provider"] == "example-ai"
    assert validate_ocsf(api) == []
    no_ai = Builder(tmp_path / "m.jsonl", signers).add("glassbox-bot", "merge")
    [plain] = OcsfMapper().map(no_ai)
    assert "profiles" not in plain["metadata"] and "ai_model" not in plain
