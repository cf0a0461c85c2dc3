from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from bot.errors import IntegrityError
from bot.policy.render import sarif, summary_markdown
from bot.records import Verdict
from bot.registry import load_registry
from bot.trust.attestations import sign_verdict, statement, verify_attestation
from tests.factories import registry_with_keys, verdict_data


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Verdict, dict[str, object], object]:
    root, signers = registry_with_keys(
        tmp_path, ("glassbox-ci", ["verdict-signer", "ledger-signer"]), ("cost-optimizer", ["commit-signer"])
    )
    verdict = Verdict.model_validate(verdict_data())
    return verdict, signers, load_registry(root)


def test_statement_names_commit_tree_and_plan(setup: tuple[Verdict, dict[str, object], object]) -> None:
    verdict, _, _ = setup
    st = statement(verdict)
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert [s["digest"] for s in st["subject"]] == [
        {"gitCommit": "b" * 40},
        {"gitTree": "c" * 40},
        {"sha256": "d" * 64},
    ]
    assert st["predicate"]["verificationResult"] == "PASSED"
    assert st["predicate"]["policies"][0]["digest"] == {"sha256": "e" * 64}


def test_attestation_verifies_with_the_ci_key_and_fails_after_one_byte_changes(
    setup: tuple[Verdict, dict[str, object], object],
) -> None:
    verdict, signers, registry = setup
    envelope = sign_verdict(verdict, signers["glassbox-ci"])  # type: ignore[arg-type]
    again, keyid = verify_attestation(json.loads(json.dumps(envelope)), registry)  # type: ignore[arg-type]
    assert again == verdict and keyid == signers["glassbox-ci"].keyid  # type: ignore[attr-defined]
    payload = bytearray(base64.b64decode(envelope["payload"]))
    i = payload.index(b"PASSED")
    payload[i] = ord("Q")
    tampered = dict(envelope, payload=base64.b64encode(bytes(payload)).decode())
    with pytest.raises(IntegrityError):
        verify_attestation(tampered, registry)  # type: ignore[arg-type]


def test_a_verdict_signed_by_a_non_ci_key_is_rejected(setup: tuple[Verdict, dict[str, object], object]) -> None:
    verdict, signers, registry = setup
    envelope = sign_verdict(verdict, signers["cost-optimizer"])  # type: ignore[arg-type]
    with pytest.raises(IntegrityError, match="no signature by a trusted key"):
        verify_attestation(envelope, registry)  # type: ignore[arg-type]


def test_sarif_and_summary_come_from_the_verdict() -> None:
    verdict = Verdict.model_validate(
        verdict_data(
            result="FAILED",
            risk="high",
            findings=[
                {
                    "engine": "rego",
                    "rule_id": "GB-NET-001",
                    "severity": "critical",
                    "status": "deny",
                    "message": "SSH open to the world",
                    "resource": "urn:pulumi:prod::network::aws:ec2/securityGroup:SecurityGroup::web",
                    "controls": ["NIST-SC-7"],
                },
                {
                    "engine": "checkov",
                    "rule_id": "CKV_AWS_24",
                    "severity": "high",
                    "status": "deny",
                    "message": "Ensure no security groups allow ingress from 0.0.0.0/0 to port 22",
                    "resource": "aws_security_group.web",
                },
            ],
            required_approvals=[{"team": "security", "count": 1, "reason": "risk high"}],
        )
    )
    doc = sarif(verdict)
    results = doc["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["rego:GB-NET-001", "checkov:CKV_AWS_24"]
    assert results[0]["level"] == "error"
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "infra/network/__main__.py"
    md = summary_markdown(
        verdict,
        [
            {
                "action": "update",
                "project": "network",
                "stack": "prod",
                "type": "aws:ec2/securityGroup:SecurityGroup",
                "name": "web",
                "changed": [{"path": "ingress.0.cidrBlocks.0"}],
            }
        ],
    )
    assert "FAILED" in md and "risk **high**" in md
    assert md.index("#### critical") < md.index("#### high")
    assert "1 × `security`" in md and "ingress.0.cidrBlocks.0" in md
