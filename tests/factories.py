"""Shared builders for tests: valid records and a copy of the sample registry to break on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_REGISTRY = REPO_ROOT / "registry"
HEX = "ab" * 32


def change_request_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "agent_id": "cost-optimizer",
        "requested_by": {"id": "carol", "kind": "human", "ticket": "OPS-1234"},
        "repo": "acme/infra",
        "base_branch": "main",
        "intent": "Right-size the dev bastion to t3.micro",
        "changes": [{"path": "infra/network/Pulumi.dev.yaml", "content": "config:\n  network:bastionSize: t3.micro\n"}],
        "expected_changes": [
            {
                "project": "network",
                "stack": "dev",
                "type": "aws:ec2/instance:Instance",
                "name": "bastion",
                "action": "update",
            }
        ],
        "rationale": {
            "objective": "Cut idle spend on the dev bastion",
            "evidence_sources": [
                {
                    "kind": "metrics",
                    "uri": "metrics://cpu/bastion-dev",
                    "version": "2026-11-20",
                    "sha256": HEX,
                    "retrieval_id": "ret-001",
                }
            ],
            "alternatives_rejected": [{"option": "stop the bastion nightly", "reason": "breaks on-call access"}],
            "confidence": {
                "score": 0.92,
                "rubric": {"retrieval_quality": 0.9, "policy_fit": 0.95, "task_complexity": 0.2},
            },
            "expected_impact": "Saves about 30 USD a month; no user-facing change",
            "rollback_plan": "Revert the PR; the instance type change is reversible",
        },
        "model": {"provider": "example-ai", "model_id": "planner-large", "version": "2026-10-01"},
        "prompt": {
            "template_id": "rightsize",
            "template_version": "3",
            "template_sha256": HEX,
            "rendered_sha256": "cd" * 32,
        },
        "tool_calls": [
            {
                "tool_id": "read_metrics",
                "args_sha256": HEX,
                "result_sha256": HEX,
                "started_at": "2026-11-25T09:00:00+00:00",
                "ended_at": "2026-11-25T09:00:02+00:00",
                "status": "ok",
                "retries": 0,
            }
        ],
        "requested_at": "2026-11-25T09:01:00+00:00",
    }
    data.update(overrides)
    return data


def copy_registry(tmp_path: Path) -> Path:
    target = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, target)
    return target


def edit_yaml(path: Path, mutate: Any) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    mutate(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def verdict_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "result": "PASSED",
        "risk": "low",
        "risk_reasons": ["only dev stack configuration changed"],
        "required_approvals": [],
        "findings": [
            {
                "engine": "rego",
                "rule_id": "GB-CHG-002",
                "severity": "low",
                "status": "warn",
                "message": "update of network/dev bastion not declared in the intent manifest",
                "resource": "urn:pulumi:dev::network::aws:ec2/instance:Instance::bastion",
                "controls": ["SOC2-CC8.1"],
            }
        ],
        "change": {
            "repo": "acme/infra",
            "pr": 7,
            "correlation_id": None,
            "base_commit": "a" * 40,
            "head_commit": "b" * 40,
            "head_tree": "c" * 40,
            "plan_digest": "sha256:" + "d" * 64,
            "policy_pack_digest": "sha256:" + "e" * 64,
            "registry_digest": "sha256:" + "f" * 64,
            "evidence_digest": None,
        },
        "verifier": {"id": "glassbox-ci", "glassbox": "0.1.0", "sandbox": "namespaces"},
        "time_verified": "2026-11-25T10:00:00+00:00",
    }
    data.update(overrides)
    return data


def registry_with_keys(tmp_path: Path, *identities: tuple[str, list[str]]) -> tuple[Path, dict[str, Any]]:
    """A copy of the sample registry whose trust.yaml holds fresh keys for ``identities`` (id, roles)."""
    from bot.trust.keys import generate_key

    root = copy_registry(tmp_path)
    signers = {}
    entries = []
    for identity, roles in identities:
        signer = generate_key(tmp_path / "keys", identity)
        signers[identity] = signer
        entries.append({"identity": identity, "keyid": signer.keyid, "public_key": signer.public_line, "roles": roles})
    edit_yaml(root / "trust.yaml", lambda d: d["keys"].extend(entries))
    return root, signers


def bound_keys(*signers: tuple[Any, Any]) -> Any:
    """Ledger keys for ad-hoc signers, each bound to its identity and the given actor kind (as a registry would)."""
    from bot.trust.ledger import LedgerKeys

    return LedgerKeys({s.keyid: s.public_raw for s, _ in signers}, {s.keyid: (s.identity, kind) for s, kind in signers})
