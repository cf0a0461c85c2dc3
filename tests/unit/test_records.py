from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.records import (
    ChangeRequest,
    EvidenceRecord,
    RiskTier,
    canonical_json,
    digest,
    json_schema,
    new_correlation_id,
    summarize_request,
)
from tests.factories import change_request_data


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert (
        canonical_json({"b": 1, "a": ["é", {"d": None, "c": True}]}) == '{"a":["é",{"c":true,"d":null}],"b":1}'.encode()
    )


def test_canonical_json_rejects_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_equal_records_have_equal_digests_whatever_the_input_order() -> None:
    data = change_request_data(correlation_id=new_correlation_id())
    shuffled = json.loads(json.dumps(dict(reversed(list(data.items())))))
    assert digest(ChangeRequest.model_validate(data)) == digest(ChangeRequest.model_validate(shuffled))


def _leaf_paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaf_paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*prefix, i))]
    return [prefix]


def _mutated(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value / 2 if value else 0.5
    if isinstance(value, str):
        return value + "x"
    return "x"


def test_any_field_change_changes_the_digest() -> None:
    base = ChangeRequest.model_validate(change_request_data(correlation_id=new_correlation_id()))
    dumped = base.model_dump(mode="json")
    original = digest(base)
    for path in _leaf_paths(dumped):
        if path[-1] in ("schema_version", "correlation_id") or "sha256" in str(path[-1]):
            continue
        changed = json.loads(json.dumps(dumped))
        node = changed
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = _mutated(node[path[-1]])
        try:
            other = ChangeRequest.model_validate(changed)
        except ValidationError:
            continue  # the mutation made the record invalid; nothing to compare
        assert digest(other) != original, f"changing {path} left the digest unchanged"


@given(st.dictionaries(st.text(), st.one_of(st.integers(), st.text(), st.booleans(), st.none())))
def test_digest_is_stable_for_plain_data(data: dict[str, object]) -> None:
    assert digest(data) == digest(json.loads(json.dumps(data)))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest(data))


def test_correlation_id_is_generated_as_uuid7_and_validated() -> None:
    req = ChangeRequest.model_validate(change_request_data())
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", req.correlation_id)
    ChangeRequest.model_validate(change_request_data(correlation_id="01JDQ7ZC4Y3M0V8A5B6C7D8E9F"))
    with pytest.raises(ValidationError, match="ULID"):
        ChangeRequest.model_validate(change_request_data(correlation_id="not-an-id"))


def test_uuid7_ids_sort_by_creation_time() -> None:
    ids = [new_correlation_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


def test_records_are_frozen_and_forbid_unknown_fields() -> None:
    req = ChangeRequest.model_validate(change_request_data())
    with pytest.raises(ValidationError):
        req.intent = "something else"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ChangeRequest.model_validate(change_request_data(auto_merge=True))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"changes": [{"path": "a", "content": "x", "delete": True}]}, "not both"),
        ({"changes": [{"path": "a"}]}, "new content"),
        ({"changes": [{"path": "a", "content": "1"}, {"path": "a", "content": "2"}]}, "appears twice"),
        ({"requested_at": "2026-11-25T09:01:00"}, "timezone"),
        ({"claimed_risk": "tiny"}, "claimed_risk"),
        ({"repo": "no-slash"}, "repo"),
    ],
)
def test_change_request_rejects_bad_input(override: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ChangeRequest.model_validate(change_request_data(**override))


def test_timestamps_serialise_as_utc_with_offset() -> None:
    req = ChangeRequest.model_validate(change_request_data(requested_at="2026-11-25T10:01:00+01:00"))
    assert req.model_dump(mode="json")["requested_at"] == "2026-11-25T09:01:00+00:00"


def test_evidence_record_replaces_contents_with_digests_and_seals_itself() -> None:
    req = ChangeRequest.model_validate(change_request_data())
    summary = summarize_request(req)
    assert "content" not in json.dumps(summary.model_dump(mode="json"))
    assert summary.files[0].size == len(req.changes[0].content or "")
    record = EvidenceRecord(
        request=summary, bot_version="0.1.0", registry_digest="sha256:" + "1" * 64, policy_pack_digest="2" * 64
    ).sealed()
    assert record.verify_digest()
    tampered = record.model_copy(update={"bot_version": "9.9.9"})
    assert not tampered.verify_digest()


def test_risk_tier_raises_and_saturates() -> None:
    assert RiskTier.LOW.raised() is RiskTier.MEDIUM
    assert RiskTier.CRITICAL.raised() is RiskTier.CRITICAL


@pytest.mark.parametrize("name", ["change-request", "evidence", "audit-event"])
def test_json_schema_is_exported(name: str) -> None:
    schema = json_schema(name)
    assert schema["additionalProperties"] is False
    assert "schema_version" in schema["properties"]
