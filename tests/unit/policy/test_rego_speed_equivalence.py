"""The speed work on the Rego path changes no finding: a differential test over a corpus of generated plans.

Two comparisons, each over the same corpus (random estates of every resource kind the pack inspects, with
creates, tag-only and real updates, deletes and replaces across stacks and environments, exposure in
after-states, wildcard IAM, undeclared changes, governance paths, agent and human PRs), both self-contained:

1. this pack over the engine's grouped index against the same pack over singleton groups (every change a
   group of its own, i.e. the per-change evaluation rules did before the index): rules may test one
   representative per group only because the groups share every field the tests read;
2. the engine's own input converter against ``regopy.Input``.

Comparing with the pack of an older commit needs that commit in the clone (a shallow CI clone has none):
``bench/bench_rego.py --baseline REF`` does that comparison by hand.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from bot.policy.engines.input import check_shape, derive_index, normalise_input, prepare_input
from bot.policy.engines.regopy import RegopyEngine
from bot.policy.engines.results import Evaluation
from bot.policy.pack import load_pack
from tests.unit.policy.rego_inputs import change, compliant_bucket, mixed_resources, policy_input, resource

ENVIRONMENTS = ["prod", "dev", "production", "staging", "Prod"]
TAG_PATHS = [[{"path": "tags.Owner"}], [{"path": "tags"}, {"path": "tagsAll.Owner"}], [{"path": "tagsAll"}]]
REAL_PATHS = [[{"path": "ingress"}], [{"path": "tags.Owner"}, {"path": "instanceType"}], [{"path": "policy"}]]
ODD_PATHS = [[], [{"before": 1}], [{"path": "tags"}, {"path": "tags"}]]


def _ingress(rng: random.Random) -> list[dict[str, Any]]:
    port = rng.choice([22, 443, 5432, 3389, 6379, 0])
    to = 65535 if port == 0 else port
    cidr = rng.choice(["0.0.0.0/0", "10.0.0.0/8", "::/0"])
    field = "ipv6CidrBlocks" if ":" in cidr else "cidrBlocks"
    return [{"protocol": rng.choice(["tcp", "-1", "udp", "TCP"]), "fromPort": port, "toPort": to, field: [cidr]}]


def _policy(rng: random.Random) -> str:
    action = rng.choice(["*", "s3:*", "iam:*", "s3:GetObject", ["ec2:Describe*", "kms:*"], "sqs:SendMessage"])
    statement: dict[str, Any] = {"Effect": rng.choice(["Allow", "Allow", "Deny"]), "Action": action}
    statement["Resource"] = rng.choice(["*", "arn:aws:s3:::b/*"])
    if rng.random() < 0.3:
        statement["Principal"] = rng.choice(["*", {"AWS": "*"}, {"Service": "ecs-tasks.amazonaws.com"}])
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _resource(rng: random.Random, i: int) -> list[dict[str, Any]]:
    env = rng.choice(ENVIRONMENTS)
    project = rng.choice(["app", "data"])
    kind = rng.randrange(14)
    name = f"r{i}"
    if kind == 0:
        return compliant_bucket(name, env=env)
    simple: dict[int, tuple[str, dict[str, Any]]] = {
        1: ("aws:ec2/securityGroup:SecurityGroup", {"ingress": _ingress(rng), "name": rng.choice(["web", "default"])}),
        2: ("aws:ec2/securityGroupRule:SecurityGroupRule", {"type": "ingress", **_ingress(rng)[0]}),
        3: ("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", {"ingress": _ingress(rng) if i % 2 else []}),
        4: ("aws:s3/bucket:Bucket", {"bucket": f"acme-{name}", "acl": rng.choice(["private", "public-read"])}),
        5: (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            {"bucket": f"r{i - 1}", "blockPublicAcls": rng.random() < 0.7, "blockPublicPolicy": True},
        ),
        6: ("aws:s3/bucketPolicy:BucketPolicy", {"bucket": f"r{i - 1}", "policy": _policy(rng)}),
        7: (
            "aws:rds/instance:Instance",
            {
                "publiclyAccessible": rng.random() < 0.2,
                "storageEncrypted": rng.random() < 0.8,
                "backupRetentionPeriod": rng.choice([0, 1, 7, 14.0]),
                "deletionProtection": rng.random() < 0.5,
            },
        ),
        8: ("aws:kms/key:Key", {"enableKeyRotation": rng.random() < 0.6}),
        9: ("aws:iam/policy:Policy", {"policy": _policy(rng)}),
        10: (
            "aws:iam/role:Role",
            {
                "assumeRolePolicy": _policy(rng),
                "inlinePolicies": [{"name": "p", "policy": _policy(rng)}],
                "managedPolicyArns": rng.choice([[], ["arn:aws:iam::aws:policy/AdministratorAccess"]]),
            },
        ),
        11: (
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            {
                "policyArn": rng.choice(
                    ["arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::aws:policy/IAMFullAccess"]
                )
            },
        ),
        12: ("aws:ec2/instance:Instance", {"instanceType": "t3.micro", "tags": {"Owner": "x"}}),
        13: ("aws:cloudwatch/logGroup:LogGroup", {"retentionInDays": 30}),
    }
    type_, inputs = simple[kind]
    return [resource(type_, name, inputs, env=env, project=project)]


def random_document(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    resources: list[dict[str, Any]] = []
    for i in range(rng.randrange(0, 45)):
        resources += _resource(rng, i)
    changes = []
    for r in resources:
        action = rng.choice(["create", "update", "update", "update", "delete", "replace", None])
        if action is None:
            continue
        c = change(r, action, rng.choice(TAG_PATHS + REAL_PATHS + ODD_PATHS) if action == "update" else [])
        if rng.random() < 0.05:
            del c["changed"]
        changes.append(c)
    agent = rng.random() < 0.6
    paths = ["infra/app/__main__.py", *rng.choice([[], ["policy-pack/x.rego"], [".glassbox/decisions/2026/a.json"]])]
    doc = policy_input(
        resources, changes, agent=agent, paths=paths, scope={"resource_types": ["aws:s3/*", "aws:ec2/*"]}
    )
    if agent:
        declared = [e for e in doc["evidence"]["expected_changes"] if rng.random() < 0.9]
        if rng.random() < 0.3:
            declared.append(
                {"project": "app", "stack": "prod", "type": "aws:kms/key:Key", "name": "gone", "action": "delete"}
            )
        doc["evidence"]["expected_changes"] = declared
        doc["evidence"]["confidence_score"] = rng.choice([0.5, 0.9])
        doc["evidence"]["claimed_risk"] = rng.choice([None, "low", "high"])
    return doc


def corpus() -> Iterator[tuple[str, dict[str, Any]]]:
    for n in (0, 9, 57):
        yield f"mixed-{n}-agent", policy_input(mixed_resources(n), agent=True)
        yield f"mixed-{n}-human", policy_input(mixed_resources(n))
    for seed in range(14):
        yield f"random-{seed}", random_document(seed)


CORPUS = list(corpus())
IDS = [name for name, _ in CORPUS]


def _same(a: Evaluation, b: Evaluation) -> None:
    neutral = {"engine": "-", "pack_digest": "-"}
    assert a.model_copy(update=neutral) == b.model_copy(update=neutral)


@pytest.fixture(scope="module")
def engine() -> RegopyEngine:
    return RegopyEngine(load_pack(), mode="bundle")


def test_corpus_covers_the_cases() -> None:
    changes = [c for _, doc in CORPUS for c in doc["changes"]]
    assert {c["action"] for c in changes} == {"create", "update", "delete", "replace"}
    assert sum(1 for c in changes if c["action"] == "update" and c.get("changed") in TAG_PATHS) > 10
    assert sum(1 for _, doc in CORPUS if doc["pr"]["author"]["kind"] == "agent") > 5


@pytest.mark.parametrize(("name", "doc"), CORPUS, ids=IDS)
def test_grouped_index_matches_singleton_groups(name: str, doc: dict[str, Any], engine: RegopyEngine) -> None:
    grouped = prepare_input(doc)
    singletons = normalise_input(doc)
    check_shape(singletons)
    singletons["index"] = derive_index(singletons, singletons=True)
    assert len(grouped["index"]["change_classes"]) <= len(singletons["index"]["change_classes"])
    _same(engine.evaluate_prepared(grouped), engine.evaluate_prepared(singletons))


@pytest.mark.parametrize(("name", "doc"), CORPUS[::4], ids=IDS[::4])
def test_own_input_converter_matches_regopy(name: str, doc: dict[str, Any]) -> None:
    fast = RegopyEngine(load_pack(), mode="bundle")
    slow = RegopyEngine(load_pack(), mode="bundle")
    slow.fast_input = False
    _same(fast.evaluate(doc), slow.evaluate(doc))


def test_index_groups_share_what_rules_read() -> None:
    for _, doc in CORPUS:
        prepared = prepare_input(doc)
        changes, index = prepared["changes"], prepared["index"]
        for group in index["change_classes"]:
            first = changes[group["changes"][0]]
            for i in group["changes"]:
                c = changes[i]
                assert (c["type"], c["action"], c["environment"]) == (
                    first["type"],
                    first["action"],
                    first["environment"],
                )
                assert {x.get("path") for x in c.get("changed", [])} == {
                    x.get("path") for x in first.get("changed", [])
                }
        for group in index["change_stacks"]:
            assert len({(changes[i]["project"], changes[i]["stack"]) for i in group["changes"]}) == 1
        for t, positions in index["resources_by_type"].items():
            assert all(prepared["plan"]["resources"][i]["type"] == t for i in positions)
        every = sorted(i for g in index["change_classes"] for i in g["changes"])
        assert every == list(range(len(changes)))


def test_a_supplied_index_is_replaced(engine: RegopyEngine) -> None:
    doc = policy_input(mixed_resources(9), agent=True)
    forged = dict(doc, index={"resources_by_type": {}, "change_types": [], "change_stacks": [], "change_classes": []})
    _same(engine.evaluate(doc), engine.evaluate(forged))
