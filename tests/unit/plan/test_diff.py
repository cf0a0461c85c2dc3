"""Resource diff and the sandbox's value normalisation (pure functions, no subprocess)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.plan.collector import normalize
from bot.plan.diff import diff_stack, property_changes
from bot.plan.model import Plan, Resource
from bot.records import ChangeAction, canonical_json, sha256_hex


def resource(type_: str, name: str, inputs: dict[str, Any], stack: str = "prod") -> Resource:
    return Resource(
        urn=f"urn:pulumi:{stack}::data::{type_}::{name}",
        project="data",
        stack=stack,
        environment=stack,
        type=type_,
        name=name,
        inputs=inputs,
    )


BUCKET = "aws:s3/bucket:Bucket"
RDS = "aws:rds/instance:Instance"


def test_property_paths_cover_maps_lists_and_whole_list_changes() -> None:
    before = {"tags": {"Owner": "data"}, "ingress": [{"fromPort": 22}], "subnets": ["a"], "gone": 1}
    after = {"tags": {"Owner": "platform", "New": "x"}, "ingress": [{"fromPort": 443}], "subnets": ["a", "b"]}

    changes = [(c.path, c.before, c.after) for c in property_changes(before, after)]

    assert changes == [
        ("gone", 1, None),
        ("ingress[0].fromPort", 22, 443),
        ("subnets", ["a"], ["a", "b"]),
        ("tags.New", None, "x"),
        ("tags.Owner", "data", "platform"),
    ]


def test_bool_and_int_are_not_equal_values() -> None:
    assert [c.path for c in property_changes({"x": True}, {"x": 1})] == ["x"]


def test_create_update_replace_delete_and_unchanged() -> None:
    base = [
        resource(BUCKET, "logs", {"bucket": "acme-logs", "tags": {"Owner": "data"}}),
        resource(RDS, "orders", {"engine": "postgres", "storageEncrypted": True}),
        resource(RDS, "legacy", {"engine": "mysql"}),
        resource(BUCKET, "same", {"bucket": "same"}),
    ]
    head = [
        resource(BUCKET, "logs", {"bucket": "acme-logs", "tags": {"Owner": "platform"}}),
        resource(RDS, "orders", {"engine": "postgres", "storageEncrypted": False}),
        resource(BUCKET, "same", {"bucket": "same"}),
        resource(BUCKET, "new", {"bucket": "acme-new"}),
    ]

    changes = {c.name: c for c in diff_stack(base, head)}

    assert set(changes) == {"logs", "orders", "legacy", "new"}
    assert changes["logs"].action is ChangeAction.UPDATE and not changes["logs"].replace_predicted
    assert changes["orders"].action is ChangeAction.REPLACE and changes["orders"].replace_predicted
    assert changes["legacy"].action is ChangeAction.DELETE and changes["legacy"].after is None
    assert changes["new"].action is ChangeAction.CREATE and changes["new"].before is None


def test_plan_digest_excludes_itself_and_changes_with_content() -> None:
    plan = Plan(base_commit="a" * 40, head_commit="b" * 40, resources=[resource(BUCKET, "x", {})]).sealed()
    assert plan.verify_digest()
    other = plan.model_copy(update={"resources": [resource(BUCKET, "y", {})]})
    assert not other.verify_digest() and other.sealed().digest != plan.digest


def test_normalize_turns_whole_floats_into_ints_and_hides_secrets() -> None:
    sig = "4dabf18193072939515e22adb298388d"
    raw = {
        "port": 22.0,
        "ratio": 0.5,
        "password": {sig: "1b47061264138c4ac30d75fd1eb44270", "value": "hunter2"},
        "nested": [{"n": 3.0}],
        "pending": "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
    }

    out = normalize(raw)

    assert out["port"] == 22 and isinstance(out["port"], int) and out["ratio"] == 0.5
    assert out["password"] == f"[secret sha256:{sha256_hex(canonical_json('hunter2'))}]"
    assert out["nested"] == [{"n": 3}] and out["pending"] == "[unknown]"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


def _pruned(value: Any) -> Any:
    # An absent key and a null value are the same input to Pulumi.
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


@given(json_values, json_values)
def test_no_changes_exactly_when_equal(before: Any, after: Any) -> None:
    changes = property_changes({"v": before}, {"v": after})
    assert (changes == []) == (canonical_json(_pruned(before)) == canonical_json(_pruned(after)))
