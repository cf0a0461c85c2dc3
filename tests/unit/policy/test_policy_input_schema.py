"""The policy input's published JSON Schema: one definition (the models), one copy beside the pack, named by
every rule's METADATA, and the inputs the engine tests and the bench feed the pack are held to it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.errors import EngineError
from bot.policy.pack import INPUT_SCHEMA_FILE, INPUT_SCHEMA_REF, load_pack, package_metadata
from tests.unit.policy.rego_inputs import compliant_bucket, mixed_resources, policy_input, resource

PACK = Path(__file__).resolve().parents[3] / "policy-pack"


def _published() -> dict[str, object]:
    result = CliRunner().invoke(app, ["schema", "policy-input"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.output)
    return data


def test_the_schema_is_published_and_its_copy_beside_the_pack_is_current() -> None:
    published = _published()
    jsonschema.Draft202012Validator.check_schema(published)
    assert published["$id"] == "https://glassbox.dev/schema/policy-input.json"
    copy = json.loads((PACK / INPUT_SCHEMA_FILE).read_text())
    assert copy == published, "regenerate: glassbox schema policy-input > policy-pack/schema/policy_input.json"


def test_every_object_of_the_input_is_closed() -> None:
    # OPA's type checker can flag `input.plan.resourcez` only where the schema says what else may be there.
    published = _published()
    open_objects = [
        name
        for name, body in {"(top)": published, **published["$defs"]}.items()  # type: ignore[dict-item]
        if isinstance(body, dict) and body.get("type") == "object" and body.get("additionalProperties") is not False
    ]
    assert open_objects == []


def test_every_rule_names_the_schema_in_its_metadata() -> None:
    pack = load_pack(PACK)
    assert len(pack.rules) >= 30
    for rule in pack.rules.values():
        module = next(m for m in pack.modules if m.path == rule.path)
        metadata = package_metadata(module.source, module.path)
        assert metadata is not None and {"input": INPUT_SCHEMA_REF} in metadata["schemas"], rule.path


def test_a_rule_that_does_not_name_the_schema_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "pack"
    shutil.copytree(PACK, root)
    target = root / "network/gb_net_001.rego"
    target.write_text(target.read_text().replace("# schemas:\n#   - input: schema.policy_input\n", ""))
    with pytest.raises(EngineError, match=r"network/gb_net_001.rego: METADATA must name the policy input's schema"):
        load_pack(root)


@pytest.mark.parametrize(
    "doc",
    [
        policy_input(mixed_resources(60), agent=True),
        policy_input(mixed_resources(60)),
        policy_input(compliant_bucket("logs", env="dev"), agent=True, evidence_overrides={"claimed_risk": "high"}),
        policy_input([], agent=True, paths=["policy-pack/network/gb_net_001.rego"], scope={"max_risk": "high"}),
        policy_input([resource("aws:s3/bucket:Bucket", "b", {"bucket": "x"})]),
    ],
    ids=["mixed-agent", "mixed-human", "bucket-claimed-high", "governance", "one-bucket"],
)
def test_the_engine_tests_feed_the_pack_what_the_check_feeds_it(doc: dict[str, object]) -> None:
    validator = jsonschema.Draft202012Validator(_published())
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    assert problems == []
