"""Builders of policy inputs (docs/contracts.md) for the Rego engine tests and the bench."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bot.policy.pack import load_pack
from bot.registry import GOVERNANCE_PATHS, is_governance_path, load_registry

GOVERNANCE = list(GOVERNANCE_PATHS)
SAMPLE_REGISTRY = load_registry(Path(__file__).resolve().parents[3] / "registry")


def resource(
    type_: str, name: str, inputs: dict[str, Any], *, env: str = "prod", project: str = "app"
) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:{env}::{project}::{type_}::{name}",
        "project": project,
        "stack": env,
        "environment": env,
        "type": type_,
        "name": name,
        "parent": None,
        "provider": None,
        "protect": False,
        "dependencies": [],
        "inputs": inputs,
    }


def change(res: dict[str, Any], action: str = "create", changed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "project": res["project"],
        "stack": res["stack"],
        "environment": res["environment"],
        "urn": res["urn"],
        "type": res["type"],
        "name": res["name"],
        "action": action,
        "replace_predicted": False,
        "changed": changed or [],
        "before": None if action == "create" else res["inputs"],
        "after": None if action == "delete" else res["inputs"],
    }


def agent_entry(**scope: Any) -> dict[str, Any]:
    """The sample registry's cost-optimizer as the check passes it, with a wide scope unless told otherwise."""
    entry = SAMPLE_REGISTRY.find_agent("cost-optimizer")
    assert entry is not None
    data = entry.model_dump(mode="json") | {"status": "active", "confidence_threshold": 0.7}
    data["scope"] = data["scope"] | {
        "paths": ["infra/**"],
        "stacks": ["dev", "prod"],
        "resource_types": ["aws:*"],
        "max_risk": "critical",
        **scope,
    }
    return data


def evidence(changes: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "present": True,
        "digest_verified": True,
        "digest": "sha256:" + "0" * 64,
        "agent_id": "cost-optimizer",
        "requested_by": "alice",
        "model": {"provider": "p", "model_id": "m-1", "version": "1"},
        "prompt": {"template_id": "t", "template_version": "1", "template_sha256": "a" * 64},
        "evidence_sources": [{"kind": "runbook", "uri": "u", "version": "1", "sha256": "b" * 64, "retrieval_id": "r"}],
        "confidence_score": 0.9,
        "has_rollback_plan": True,
        "has_expected_impact": True,
        "expected_changes": [{k: c[k] for k in ("project", "stack", "type", "name", "action")} for c in changes],
        "claimed_risk": None,
    }
    ev.update(overrides)
    return ev


def policy_input(
    resources: list[dict[str, Any]],
    changes: list[dict[str, Any]] | None = None,
    *,
    agent: bool = False,
    paths: list[str] | None = None,
    evidence_overrides: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    changes = changes if changes is not None else [change(r) for r in resources]
    stacks = sorted({(r["project"], r["stack"], r["environment"]) for r in resources})
    return {
        "plan": {
            "digest": "sha256:" + "1" * 64,
            "stacks": [
                {"project": p, "stack": s, "environment": e, "environment_source": "registry", "environment_in_head": e}
                for p, s, e in stacks
            ],
            "resources": resources,
        },
        "changes": changes,
        # as the check reports them: the one predicate, the pack never re-derives them
        "files": {
            "changed_paths": paths or ["infra/app/Pulumi.dev.yaml"],
            "governance_paths": [p for p in paths or [] if is_governance_path(p)],
        },
        "evidence": evidence(changes, **(evidence_overrides or {}))
        if agent
        else {"present": False, "digest_verified": False},
        "pr": {
            "number": 7,
            "author": {"id": "cost-optimizer", "kind": "agent"} if agent else {"id": "alice", "kind": "human"},
            "agent_id": "cost-optimizer" if agent else None,
            "base_ref": "main",
            "head_sha": "c" * 40,
        },
        "registry": {"agent": agent_entry(**(scope or {})) if agent else None, "governance_paths": GOVERNANCE},
        "now": "2026-11-25T10:00:00+00:00",
    }


def compliant_bucket(name: str, *, env: str = "prod") -> list[dict[str, Any]]:
    """A bucket with every companion the data rules ask for, referenced by logical name."""
    return [
        resource("aws:s3/bucket:Bucket", name, {"bucket": f"acme-{name}", "tags": {"Owner": "data"}}, env=env),
        resource(
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            f"{name}-pab",
            {
                "bucket": name,
                "blockPublicAcls": True,
                "blockPublicPolicy": True,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
            env=env,
        ),
        resource(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            f"{name}-sse",
            {"bucket": name, "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]},
            env=env,
        ),
        resource(
            "aws:s3/bucketVersioning:BucketVersioning",
            f"{name}-ver",
            {"bucket": name, "versioningConfiguration": {"status": "Enabled"}},
            env=env,
        ),
    ]


def mixed_resources(n: int) -> list[dict[str, Any]]:
    """``n`` resources of the kinds the pack inspects, mostly compliant, some violating (for benches)."""
    out: list[dict[str, Any]] = []
    i = 0
    while len(out) < n:
        env = "prod" if i % 2 else "dev"
        kind = i % 8
        if kind == 0:
            out.extend(compliant_bucket(f"b{i}", env=env))
        elif kind == 1:
            ingress = [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.0.0.0/8"]}]
            if i % 40 == 1:
                ingress.append({"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]})
            out.append(resource("aws:ec2/securityGroup:SecurityGroup", f"sg{i}", {"ingress": ingress}, env=env))
        elif kind == 2:
            out.append(
                resource(
                    "aws:rds/instance:Instance",
                    f"db{i}",
                    {
                        "publiclyAccessible": False,
                        "storageEncrypted": True,
                        "backupRetentionPeriod": 14,
                        "deletionProtection": True,
                    },
                    env=env,
                )
            )
        elif kind == 3:
            action = "*" if i % 80 == 3 else "s3:GetObject"
            doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}
            out.append(resource("aws:iam/policy:Policy", f"pol{i}", {"policy": json.dumps(doc)}, env=env))
        elif kind == 4:
            out.append(resource("aws:kms/key:Key", f"key{i}", {"enableKeyRotation": True}, env=env))
        else:
            out.append(resource("aws:ec2/instance:Instance", f"vm{i}", {"instanceType": "t3.micro"}, env=env))
        i += 1
    return out[:n]


def copy_pack(tmp_path: Path) -> Path:
    """A copy of the repository's Rego modules (no YAML or Python) to break on purpose."""
    root = tmp_path / "pack"
    shutil.copytree(load_pack().root, root, ignore=shutil.ignore_patterns("*.yaml", "*.yml", "*.py", "__pycache__"))
    return root


def add_conflicting_rule(root: Path) -> None:
    """GB-NET-099: a complete rule with two values whenever the PR has a number (a runtime conflict)."""
    (root / "network" / "gb_net_099.rego").write_text(
        "# METADATA\n# title: Conflict\n# description: Two values for one complete rule.\n"
        "# schemas:\n#   - input: schema.policy_input\n# custom:\n"
        "#   id: GB-NET-099\n#   severity: low\n#   controls: [NIST-CM-3]\n"
        "#   remediation: Nothing to remediate; this rule exists to test failure.\n"
        "package glassbox.network.gb_net_099\n\nimport rego.v1\n\n"
        "mode := 1 if input.pr.number > 0\n\nmode := 2 if input.pr.number > 0\n\n"
        'deny contains {"msg": "m", "resource": "x"} if mode == 1\n'
    )


def assert_same_evaluation(a: Any, b: Any) -> None:
    """Two evaluations agree on everything but which engine made them."""
    neutral = {"engine": "-"}
    assert a.model_copy(update=neutral) == b.model_copy(update=neutral)
