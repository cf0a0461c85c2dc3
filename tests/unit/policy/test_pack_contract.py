"""The policy pack's contract: metadata on every rule, tests beside every rule, and every Rego test passing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bot.errors import EngineError
from bot.policy.pack import PolicyPack, RegoTestCase, RulePackage, load_pack
from bot.policy.regotest import RegoTestResult, run_rego_tests

PACK = load_pack()
RULES = sorted(PACK.rules.values(), key=lambda r: r.metadata.id)
CASES = PACK.tests()
CONTROL = re.compile(r"^(SOC2-(CC|A)\d+\.\d+|ISO27001-A\.\d+\.\d+|NIST-[A-Z]{2}-\d+|CIS-AWS-\d+(\.\d+)*)$")


ENGINES = ["opa", "regopy", "regorus"]
_RESULTS: dict[str, dict[str, RegoTestResult]] = {}


def _results(engine: str) -> dict[str, RegoTestResult]:
    if engine not in _RESULTS:
        _RESULTS[engine] = {r.id: r for r in run_rego_tests(PACK, engine=engine)}
    return _RESULTS[engine]


@pytest.fixture(scope="module")
def rego_results() -> dict[str, RegoTestResult]:
    return _results("opa")


def test_pack_has_at_least_25_rules() -> None:
    assert len(RULES) >= 25, [r.metadata.id for r in RULES]


def test_rule_ids_are_unique() -> None:
    ids = [r.metadata.id for r in RULES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("rule", RULES, ids=[r.metadata.id for r in RULES])
def test_rule_package_contract(rule: RulePackage) -> None:
    meta = rule.metadata
    # One rule = one file = one package named after the file.
    stem = Path(rule.path).stem
    assert rule.package == "glassbox." + ".".join(Path(rule.path).with_suffix("").parts), rule.path
    assert stem == meta.id.lower().replace("-", "_"), (meta.id, stem)
    assert meta.severity.value in {"low", "medium", "high", "critical"}
    assert meta.controls and all(CONTROL.match(c) for c in meta.controls), meta.controls
    assert len(meta.remediation) > 20
    # A sibling test file in its own _test package with at least three tests.
    test_path = str(Path(rule.path).with_name(stem + "_test.rego"))
    tests = [c for c in CASES if c.path == test_path]
    assert tests and all(c.package == rule.package + "_test" for c in tests), test_path
    assert len(tests) >= 3, f"{test_path} has {len(tests)} tests"


@pytest.mark.parametrize("rule", RULES, ids=[r.metadata.id for r in RULES])
def test_rule_tests_cover_allow_deny_and_edge(rule: RulePackage) -> None:
    test_path = str(Path(rule.path).with_name(Path(rule.path).stem + "_test.rego"))
    names = [c.name for c in CASES if c.path == test_path]
    assert any(n.startswith("test_allow") for n in names), names
    assert any(n.startswith(("test_deny", "test_warn")) for n in names), names
    assert any(n.startswith("test_edge") for n in names), names


def test_risk_package_has_tests() -> None:
    assert len([c for c in CASES if c.package == "glassbox.risk_test"]) >= 10


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rego(case: RegoTestCase, engine: str) -> None:
    # Every Rego test passes on both in-process engines: the pack and its tests are engine-neutral.
    result = _results(engine)[case.id]
    assert result.passed, f"{engine}: {result.path}: {result.name}: {result.error}"


@pytest.mark.parametrize("engine", ENGINES)
def test_every_discovered_test_ran(engine: str) -> None:
    assert set(_results(engine)) == {c.id for c in CASES}


# --------------------------------------------------------------------------------------------------
# the checks load_pack makes, proven on broken copies of the pack


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "pack"
    shutil.copytree(PACK.root, root, ignore=shutil.ignore_patterns("*.yaml", "*.yml", "*.py", "__pycache__"))
    return root


def test_digest_covers_every_file(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    assert load_pack(root).digest == PACK.digest
    test_file = root / "network" / "gb_net_001_test.rego"
    test_file.write_text(test_file.read_text() + "\n# touched\n")
    assert load_pack(root).digest != PACK.digest


def test_missing_metadata_fails_closed(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "network" / "gb_net_001.rego"
    text = path.read_text()
    path.write_text(text[text.index("package ") :])
    with pytest.raises(EngineError, match="no package-scope # METADATA"):
        load_pack(root)


def test_metadata_without_controls_fails_closed(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "data" / "gb_data_001.rego"
    path.write_text(re.sub(r"#   controls: \[.*\]\n", "", path.read_text()))
    with pytest.raises(EngineError, match="controls"):
        load_pack(root)


def test_duplicate_rule_id_fails_closed(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "data" / "gb_data_002.rego"
    path.write_text(path.read_text().replace("id: GB-DATA-002", "id: GB-DATA-001"))
    with pytest.raises(EngineError, match="already used"):
        load_pack(root)


def test_v0_module_fails_closed(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "lib" / "old.rego").write_text("package glassbox.lib.old\n\ndeny[msg] { msg := 1 }\n")
    with pytest.raises(EngineError, match=r"import rego\.v1"):
        load_pack(root)


def test_failing_rego_test_is_reported(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "network" / "gb_net_001_test.rego"
    path.write_text(path.read_text() + "\ntest_broken if {\n\tcount(rule.deny_results(f.plan_input([]))) == 1\n}\n")
    pack: PolicyPack = load_pack(root)
    broken = [c for c in pack.tests() if c.name == "test_broken"]
    for engine in ENGINES:
        (result,) = run_rego_tests(pack, only=broken, engine=engine)
        assert not result.passed, engine
        assert result.error == "undefined", engine


def test_rego_tests_refuse_an_unknown_engine() -> None:
    with pytest.raises(EngineError, match="opa, regopy or regorus"):
        run_rego_tests(PACK, only=CASES[:1], engine="wasm")


def test_a_rego_test_that_errors_fails_only_itself_on_opa(tmp_path: Path) -> None:
    # a runtime conflict makes the whole-document pass fail: each test is then asked on its own
    root = _copy(tmp_path)
    path = root / "network" / "gb_net_001_test.rego"
    path.write_text(path.read_text() + "\nclash := 1 if true\n\nclash := 2 if true\n\ntest_clash if clash == 1\n")
    pack: PolicyPack = load_pack(root)
    results = {r.name: r for r in run_rego_tests(pack, engine="opa") if r.package.endswith("gb_net_001_test")}
    assert not results["test_clash"].passed and "conflict" in (results["test_clash"].error or "")
    assert all(r.passed for name, r in results.items() if name != "test_clash"), results


def test_interpreter_fallback_agrees_with_bundle(rego_results: dict[str, RegoTestResult]) -> None:
    sample = [c for c in CASES if c.package.startswith(("glassbox.risk", "glassbox.network"))]
    slow = run_rego_tests(PACK, only=sample, use_bundle=False, engine="regopy")
    assert [(r.id, r.passed) for r in slow] == [(c.id, rego_results[c.id].passed) for c in sample]
