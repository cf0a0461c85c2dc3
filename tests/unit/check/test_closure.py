"""The closure's bounds and its doubts: what makes a proportional check evaluate in full instead."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.check.closure import (
    BASE_FACTS_KEPT,
    CACHE_DIR_ENV,
    Doubt,
    Proportional,
    ResultCache,
    base_fact,
    longest_chain,
    reach_of,
)
from bot.check.evaluate import rego_findings
from bot.check.policy_input import NoEvidence, build_policy_input
from bot.plan.diff import diff_stack
from bot.plan.model import Plan, Resource
from bot.policy.pack import load_pack
from tests.unit.policy.rego_inputs import SAMPLE_REGISTRY

VPC, DEFAULT_SG, SG_RULE, NACL, SUBNET = (
    "aws_vpc",
    "aws_default_security_group",
    "aws_security_group_rule",
    "aws_network_acl",
    "aws_subnet",
)


def _check(check_id: str, connections: list[list[list[str]]], opaque: bool = False) -> dict[str, Any]:
    return {"id": check_id, "name": check_id, "resource_types": [], "connections": connections, "opaque": opaque}


def test_a_chain_of_connections_reaches_as_far_as_its_longest_path_of_distinct_conditions() -> None:
    star = [(frozenset({VPC}), frozenset({DEFAULT_SG})), (frozenset({DEFAULT_SG}), frozenset({SG_RULE}))]
    triangle = [
        (frozenset({NACL}), frozenset({VPC})),
        (frozenset({SUBNET}), frozenset({VPC})),
        (frozenset({NACL}), frozenset({SUBNET})),
    ]
    assert longest_chain(star) == 2
    assert longest_chain(triangle) == 3
    assert longest_chain([]) == 0


def test_the_reach_of_checks_skips_what_the_policy_skips_and_doubts_what_it_cannot_bound() -> None:
    vpc_check = _check("CKV2_AWS_12", [[[VPC], [DEFAULT_SG]], [[DEFAULT_SG], [SG_RULE]]])
    assert reach_of([vpc_check], set()) == 2
    assert reach_of([vpc_check], {"CKV2_AWS_12"}) == 0
    # a connection to a type glassbox never renders is no hop
    assert reach_of([_check("CKV2_AWS_7", [[["aws_emr_cluster"], ["aws_security_group"]]])], set()) == 0
    with pytest.raises(Doubt):
        reach_of([vpc_check, _check("CKV2_X_1", [], opaque=True)], set())
    with pytest.raises(Doubt):
        reach_of([_check("CKV2_X_2", [[["all"], [VPC]]])], set())


def _resource(name: str, type_: str, inputs: dict[str, Any], dependencies: list[str] | None = None) -> Resource:
    return Resource(
        urn=f"urn:pulumi:prod::app::{type_}::{name}",
        project="app",
        stack="prod",
        environment="prod",
        type=type_,
        name=name,
        dependencies=dependencies or [],
        inputs=inputs,
    )


def _plan(base: list[Resource], head: list[Resource]) -> Plan:
    return Plan(
        base_commit="a" * 40,
        head_commit="b" * 40,
        resources=head,
        base_resources=base,
        changes=diff_stack(base, head),
    )


def _data(plan: Plan) -> dict[str, Any]:
    return build_policy_input(
        plan=plan,
        changed_paths=["infra/app/__main__.py"],
        governance_paths=[],
        evidence=NoEvidence(),
        author_id="carol",
        author_is_agent=False,
        pr_number=7,
        base_ref="main",
        head_sha="b" * 40,
        registry=SAMPLE_REGISTRY,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _estate(n: int) -> list[Resource]:
    return [_resource(f"key-{i}", "aws:kms/key:Key", {"enableKeyRotation": i % 5 != 0}) for i in range(n)]


def test_a_dependency_on_a_resource_on_neither_side_is_judged_in_full() -> None:
    keys = _estate(20)
    gone = "urn:pulumi:prod::app::aws:kms/key:Key::gone"
    stray = _resource("alias", "aws:kms/alias:Alias", {"name": "alias/x"}, [gone])
    plan = _plan(keys, [*keys, stray])
    handed: list[int] = []

    def evaluate(pack: Any, data: dict[str, Any]) -> Any:
        handed.append(len(data["plan"]["resources"]))
        return rego_findings(pack, data)

    findings, *_ = Proportional(plan, SAMPLE_REGISTRY).rego(load_pack(), _data(plan), evaluate)
    assert handed == [21]
    assert len([f for f in findings if f.rule_id == "GB-DATA-010"]) == 4  # the keys that do not rotate


def test_a_small_change_hands_rego_the_closure_and_keeps_the_untouched_denies() -> None:
    keys = _estate(20)
    head = [*keys[:-1], _resource("key-19", "aws:kms/key:Key", {"enableKeyRotation": False})]
    plan = _plan(keys, head)
    handed: list[int] = []

    def evaluate(pack: Any, data: dict[str, Any]) -> Any:
        handed.append(len(data["plan"]["resources"]))
        return rego_findings(pack, data)

    proportional, *_ = Proportional(plan, SAMPLE_REGISTRY, cache=ResultCache()).rego(load_pack(), _data(plan), evaluate)
    full, *_ = rego_findings(load_pack(), _data(plan))
    assert handed == [1] and proportional == full
    assert len([f for f in full if f.rule_id == "GB-DATA-010"]) == 5


def test_a_cache_directory_others_may_write_or_inside_the_repository_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o770)  # noqa: S103 - the group may write: the point of the test
    monkeypatch.setenv(CACHE_DIR_ENV, str(shared))
    assert ResultCache.configured().directory is None
    repository = tmp_path / "checkout"
    monkeypatch.setenv(CACHE_DIR_ENV, str(repository / ".cache"))
    assert ResultCache.configured(repository).directory is None
    private = tmp_path / "private"
    monkeypatch.setenv(CACHE_DIR_ENV, str(private))
    assert ResultCache.configured(repository).directory == private
    assert os.stat(private).st_mode & 0o777 == 0o700


def _buckets(tag: str) -> list[Resource]:
    return [
        Resource(
            urn=f"urn:pulumi:prod::app::aws:s3/bucket:Bucket::b{i}",
            project="app",
            stack="prod",
            environment="prod",
            type="aws:s3/bucket:Bucket",
            name=f"b{i}",
            inputs={"bucket": f"acme-{tag}-{i}"},
        )
        for i in range(3)
    ]


def test_a_base_fact_is_worked_out_once_per_base_and_never_lent_to_another() -> None:
    made: list[str] = []

    def fact(tag: str, resources: list[Resource]) -> str:
        def work_out() -> str:
            made.append(tag)
            return f"about {tag}"

        return base_fact(resources, ("test fact",), work_out)

    base = _buckets("main")
    assert fact("main", base) == "about main"
    assert fact("main", list(base)) == "about main"  # the same records, another list: known
    assert made == ["main"]
    twin = _buckets("main")  # equal content, other records (planned again): another base, worked out afresh
    assert fact("twin", twin) == "about twin"
    assert fact("main", base) == "about main"
    for n in range(BASE_FACTS_KEPT):  # later bases push the first out: it is worked out again, not guessed
        fact(f"later-{n}", _buckets(f"later-{n}"))
    assert fact("main", base) == "about main"
    assert made == ["main", "twin", *[f"later-{n}" for n in range(BASE_FACTS_KEPT)], "main"]
