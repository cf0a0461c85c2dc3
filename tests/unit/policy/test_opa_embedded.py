"""OPA in process decides by default: identical results to regopy and regorus on every input we have, failing
closed, naming itself with OPA's version; and the cross-check mode fails closed on a planted disagreement."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.errors import EngineError
from bot.policy.engines import CrossCheckedEngine, make_engine
from bot.policy.engines.opa_embedded import EmbeddedOpaEngine, opa_embedded_available
from bot.policy.engines.regopy import RegopyEngine
from bot.policy.engines.regorus import RegorusEngine
from bot.policy.pack import load_pack
from tests.unit.policy.rego_inputs import (
    add_conflicting_rule,
    assert_same_evaluation,
    copy_pack,
    mixed_resources,
    policy_input,
    resource,
)
from tests.unit.policy.test_rego_speed_equivalence import CORPUS, IDS

PACK = load_pack()


def test_opa_is_installed_by_make() -> None:
    assert opa_embedded_available(), "OPA is missing: run `make test` (it installs requirements-opa.lock)"


@pytest.mark.parametrize(("name", "doc"), CORPUS, ids=IDS)
def test_three_engines_agree_on_the_corpus(
    name: str, doc: dict[str, Any], opa: EmbeddedOpaEngine, regopy: RegopyEngine, regorus: RegorusEngine
) -> None:
    ours = opa.evaluate(doc)
    assert_same_evaluation(ours, regopy.evaluate(doc))
    assert_same_evaluation(ours, regorus.evaluate(doc))


@pytest.mark.parametrize("n", [1, 250, 1000])
def test_three_engines_agree_on_bench_estates(
    n: int, opa: EmbeddedOpaEngine, regopy: RegopyEngine, regorus: RegorusEngine
) -> None:
    doc = policy_input(mixed_resources(n), agent=True)
    ours = opa.evaluate(doc)
    assert_same_evaluation(ours, regopy.evaluate(doc))
    assert_same_evaluation(ours, regorus.evaluate(doc))
    if n == 1000:
        assert ours.denies


def test_a_default_verdict_names_opa_with_its_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLASSBOX_REGO_ENGINE", raising=False)
    monkeypatch.delenv("GLASSBOX_REGO_CROSSCHECK", raising=False)
    engine = make_engine(PACK)
    assert engine.name == "opa-1.20.2"
    assert engine.evaluate(policy_input([])).engine == "opa-1.20.2"


def test_missing_opa_is_an_error_not_a_substitute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opa_bindings", None)
    with pytest.raises(EngineError, match="embedded OPA engine is not installed") as info:
        EmbeddedOpaEngine(PACK)
    assert "GLASSBOX_REGO_ENGINE=regopy" in info.value.message


def test_a_runtime_conflict_fails_closed(tmp_path: Path) -> None:
    root = copy_pack(tmp_path)
    add_conflicting_rule(root)
    with pytest.raises(EngineError, match="evaluation failed"):
        EmbeddedOpaEngine(load_pack(root)).evaluate(policy_input([]))


def test_a_pack_that_does_not_compile_fails_at_construction(tmp_path: Path) -> None:
    root = copy_pack(tmp_path)
    rule = root / "network" / "gb_net_001.rego"
    rule.write_text(rule.read_text() + "\nbroken contains {\n")  # the metadata reads, the module does not parse
    with pytest.raises(EngineError, match="does not compile"):
        EmbeddedOpaEngine(load_pack(root))


def test_a_rego_print_never_reaches_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    root = copy_pack(tmp_path)
    rule = root / "network" / "gb_net_001.rego"
    rule.write_text(rule.read_text() + '\nnoise if {\n\tprint("hello from rego")\n}\n\nnoise_used := noise\n')
    engine = EmbeddedOpaEngine(load_pack(root))
    engine.query("data.glassbox.network.gb_net_001.noise_used", policy_input([]))
    assert "hello from rego" not in capfd.readouterr().err
    assert any("hello from rego" in message for message, _ in engine.prints)


def test_cross_check_agrees_and_names_both_engines(opa: EmbeddedOpaEngine, regopy: RegopyEngine) -> None:
    doc = policy_input(mixed_resources(40), agent=True)
    both = CrossCheckedEngine(opa, regopy).evaluate(doc)
    assert both.engine == f"{opa.name}+{regopy.name}"
    assert_same_evaluation(both, opa.evaluate(doc))
    assert make_engine(PACK, "opa", crosscheck="regorus").name.startswith("opa-1.20.2+regorus-")


def test_a_planted_disagreement_fails_closed_with_both_answers(tmp_path: Path, opa: EmbeddedOpaEngine) -> None:
    # the second engine judges a pack where the open-SSH rule was quietly emptied: the two must not agree
    root = tmp_path / "pack"
    shutil.copytree(PACK.root, root)
    rule = root / "network" / "gb_net_001.rego"
    rule.write_text(rule.read_text().replace("deny contains result if {", "deny contains result if {\n\tfalse"))
    planted = RegopyEngine(load_pack(root), mode="bundle")
    sg = resource(
        "aws:ec2/securityGroup:SecurityGroup",
        "bastion",
        {"ingress": [{"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}]},
    )
    with pytest.raises(EngineError, match="engines disagree") as info:
        CrossCheckedEngine(opa, planted).evaluate(policy_input([sg]))
    assert "GB-NET-001" in info.value.message.split(";")[0]  # OPA's answer names the denial ...
    assert "GB-NET-001" not in info.value.message.split(";")[1]  # ... the planted engine's does not


def test_cross_checking_an_engine_against_itself_is_refused(opa: EmbeddedOpaEngine) -> None:
    with pytest.raises(EngineError, match="against itself"):
        CrossCheckedEngine(opa, opa)


# Every input the pack reads with a plain lookup in a per-resource loop, where a null and an absent key must give
# the same result, on a resource the rule inspects; with the rule the resource is denied by either way (or None).
NULL_AS_ABSENT = [
    ("aws:s3/bucket:Bucket", "acl", {"bucket": "acme-logs"}, None),
    ("aws:s3/bucket:Bucket", "policy", {"bucket": "acme-logs"}, None),
    ("aws:s3/bucket:Bucket", "serverSideEncryptionConfiguration", {"bucket": "acme-logs"}, "GB-DATA-004"),
    ("aws:s3/bucket:Bucket", "bucket", {"acl": "private"}, "GB-DATA-004"),
    ("aws:s3/bucketPolicy:BucketPolicy", "policy", {"bucket": "acme-logs"}, None),
    ("aws:iam/rolePolicy:RolePolicy", "policy", {"role": "app"}, None),
    ("aws:rds/instance:Instance", "publiclyAccessible", {"storageEncrypted": True, "backupRetentionPeriod": 7}, None),
    ("aws:rds/instance:Instance", "storageEncrypted", {"backupRetentionPeriod": 7}, "GB-DATA-007"),
    (
        "aws:rds/instance:Instance",
        "replicateSourceDb",
        {"storageEncrypted": False, "backupRetentionPeriod": 1},
        "GB-DATA-008",
    ),
    (
        "aws:rds/instance:Instance",
        "deletionProtection",
        {"storageEncrypted": True, "backupRetentionPeriod": 7},
        "GB-DATA-009",
    ),
    ("aws:kms/key:Key", "enableKeyRotation", {"description": "app"}, "GB-DATA-010"),
    ("aws:ec2/securityGroup:SecurityGroup", "ingress", {"name": "web"}, None),
]


@pytest.mark.parametrize(
    ("type_", "key", "others", "denied_by"),
    NULL_AS_ABSENT,
    ids=[f"{t.split(':')[1]}.{k}" for t, k, _, _ in NULL_AS_ABSENT],
)
def test_an_input_given_as_null_is_judged_as_an_absent_one(
    type_: str,
    key: str,
    others: dict[str, Any],
    denied_by: str | None,
    opa: EmbeddedOpaEngine,
    regopy: RegopyEngine,
    regorus: RegorusEngine,
) -> None:
    absent = policy_input([resource(type_, "subject", others)])
    null = policy_input([resource(type_, "subject", {**others, key: None})])
    for engine in (opa, regopy, regorus):
        judged_absent, judged_null = engine.evaluate(absent), engine.evaluate(null)
        assert (judged_null.results, judged_null.tier, judged_null.reasons) == (
            judged_absent.results,
            judged_absent.tier,
            judged_absent.reasons,
        ), (engine.name, key)
        if denied_by is not None:
            assert denied_by in {r.rule_id for r in judged_null.denies}, (engine.name, key)
