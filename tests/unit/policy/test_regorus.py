"""The regorus engine: identical results to regopy on every input we have, failing closed, thread use.

regorus is opt-in (``GLASSBOX_REGO_ENGINE=regorus``); these tests hold it to the default engine's answers
over the differential corpus (random estates of every resource kind the pack inspects), the mixed estates
used by the benches, and the hand-made inputs of the engine tests.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from bot.errors import EngineError
from bot.policy.engines import make_engine
from bot.policy.engines.regopy import RegopyEngine
from bot.policy.engines.regorus import RegorusEngine, regorus_available
from bot.policy.engines.results import Evaluation
from bot.policy.pack import load_pack
from tests.unit.policy.rego_inputs import (
    add_conflicting_rule,
    assert_same_evaluation,
    change,
    compliant_bucket,
    copy_pack,
    mixed_resources,
    policy_input,
    resource,
)
from tests.unit.policy.test_rego_speed_equivalence import CORPUS, IDS

PACK = load_pack()


def test_regorus_is_installed_by_the_lock() -> None:
    assert regorus_available(), "regorus is missing: run `make test` (it installs requirements.lock)"


@pytest.mark.parametrize(("name", "doc"), CORPUS, ids=IDS)
def test_regorus_matches_regopy_on_the_corpus(
    name: str, doc: dict[str, Any], regopy: RegopyEngine, regorus: RegorusEngine
) -> None:
    assert_same_evaluation(regopy.evaluate(doc), regorus.evaluate(doc))


@pytest.mark.parametrize("n", [1, 250, 1000])
@pytest.mark.parametrize("agent", [True, False], ids=["agent", "human"])
def test_regorus_matches_regopy_on_bench_estates(
    n: int, agent: bool, regopy: RegopyEngine, regorus: RegorusEngine
) -> None:
    doc = policy_input(mixed_resources(n), agent=agent)
    ours = regorus.evaluate(doc)
    assert_same_evaluation(regopy.evaluate(doc), ours)
    if n == 1000:
        assert ours.denies, "the 1,000-resource estate carries known violations"


def test_regorus_matches_regopy_on_hand_made_cases(regopy: RegopyEngine, regorus: RegorusEngine) -> None:
    sg = resource(
        "aws:ec2/securityGroup:SecurityGroup",
        "bastion",
        {"ingress": [{"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}]},
    )
    governance = policy_input([], agent=True, paths=["policy-pack/network/gb_net_001.rego"], scope={"max_risk": "high"})
    governance["evidence"] = {"present": False}
    low_confidence = policy_input(mixed_resources(30), agent=True, evidence_overrides={"confidence_score": 0.1})
    low_confidence["changes"].append(change(resource("aws:rds/instance:Instance", "old", {}), "delete"))
    for doc in (
        policy_input([sg]),
        policy_input(compliant_bucket("logs")),
        policy_input(compliant_bucket("logs", env="dev"), agent=True),
        governance,
        low_confidence,
    ):
        ours = regorus.evaluate(doc)
        assert_same_evaluation(regopy.evaluate(doc), ours)
    assert {r.rule_id for r in regorus.evaluate(governance).denies} >= {"GB-EVD-001", "GB-GOV-001", "GB-SCOPE-003"}


def test_regorus_names_itself_with_its_version(regorus: RegorusEngine) -> None:
    # The verdict records the engine (versions.rego), so an auditor sees which implementation decided.
    assert regorus.name.startswith("regorus-")
    assert regorus.name != "regorus-unknown"
    assert regorus.evaluate(policy_input([])).engine == regorus.name


def test_make_engine_selects_regorus_by_name_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_engine(PACK, "regorus").name.startswith("regorus-")
    monkeypatch.setenv("GLASSBOX_REGO_ENGINE", "regorus")
    assert make_engine(PACK).name.startswith("regorus-")
    monkeypatch.setenv("GLASSBOX_REGO_ENGINE", "regopy")
    assert make_engine(PACK).name.startswith("regopy-")


def test_missing_regorus_is_an_error_not_a_substitute(monkeypatch: pytest.MonkeyPatch) -> None:
    # Asked for and not installed: refuse, naming the way out; never fall back to another engine quietly.
    monkeypatch.setitem(sys.modules, "regorus", None)
    with pytest.raises(EngineError, match="regorus engine is not installed") as info:
        RegorusEngine(load_pack())
    assert "GLASSBOX_REGO_ENGINE=regopy" in info.value.message
    assert not regorus_available()


def test_each_thread_gets_its_own_engine(regopy: RegopyEngine, regorus: RegorusEngine) -> None:
    # The binding's engines panic when used from a thread other than their creator's; the check runs
    # Rego beside checkov in threads, so one RegorusEngine must serve any thread.
    doc = policy_input(mixed_resources(40), agent=True)
    expected = regopy.evaluate(doc)
    answers: list[Evaluation] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            answers.append(regorus.evaluate(doc))
        except BaseException as exc:  # a panic is a BaseException
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(answers) == 3
    for answer in answers:
        assert_same_evaluation(expected, answer)


def test_broken_policy_file_fails_closed_under_regorus(tmp_path: Path) -> None:
    root = copy_pack(tmp_path)
    path = root / "data" / "gb_data_006.rego"
    path.write_text(path.read_text().replace("deny contains result if {", "deny contains result if {{", 1))
    with pytest.raises(EngineError, match=r"data/gb_data_006\.rego does not compile") as info:
        RegorusEngine(load_pack(root))
    assert info.value.engine == "rego"
    assert "Stack backtrace" not in info.value.message


def test_runtime_conflict_fails_closed_under_regorus(tmp_path: Path) -> None:
    root = copy_pack(tmp_path)
    add_conflicting_rule(root)
    engine = RegorusEngine(load_pack(root))
    with pytest.raises(EngineError, match="evaluation failed") as info:
        engine.evaluate(policy_input([]))
    assert "gb_net_099" in info.value.message


def test_regorus_refuses_an_input_without_the_contract_shape(regorus: RegorusEngine) -> None:
    doc = policy_input([])
    del doc["changes"]
    with pytest.raises(EngineError, match="changes must be a list"):
        regorus.evaluate(doc)
    with pytest.raises(EngineError, match="not a JSON number"):
        regorus.evaluate({**policy_input([]), "now": float("inf")})


def test_regorus_query_answers_one_reference(regorus: RegorusEngine) -> None:
    assert regorus.query("time.parse_rfc3339_ns(input.now)", {"now": "2026-11-25T10:00:00Z"}) == 1795600800000000000
    with pytest.raises(EngineError, match="is undefined"):
        regorus.query("data.glassbox.no_such_package.rule", {})


def test_text_no_engine_can_read_fails_closed_on_both(regopy: RegopyEngine, regorus: RegorusEngine) -> None:
    # A lone surrogate is not UTF-8: neither engine may evaluate around it, and neither may crash.
    doc = policy_input([])
    doc["pr"]["author"]["id"] = "\ud800x"
    for engine in (regopy, regorus):
        with pytest.raises(EngineError, match="evaluation failed"):
            engine.evaluate(doc)


def test_large_numbers_and_unicode_reach_regorus_intact(regorus: RegorusEngine) -> None:
    doc = {"n": 2**62 + 1, "s": 'é\u2028"\\', "f": 1.5e300}
    assert regorus.query("input", doc) == doc
