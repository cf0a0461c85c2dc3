"""Running the pack's Rego unit tests (``test_`` rules of ``*_test`` packages) as ``opa test`` would.

Each test rule must be exactly ``true``; undefined, false or an engine error is a failure with its reason.
With OPA (the default, in process) every module is added to one engine and the whole ``data`` document is
evaluated once; each test's value is read from it. A test that errors makes that pass fail, and then each
test is asked on its own, so one error fails only its test. With regopy all modules (policies, helpers,
fixtures and tests) are compiled once into a bundle with one entrypoint per test; if the bundle cannot be
built, each test is queried through a reused interpreter instead. With regorus one engine holds every
module and answers one query per test. A test that errors never stops the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field

from bot.errors import EngineError
from bot.policy.engines.opa_embedded import load_opa, opa_message
from bot.policy.engines.regopy import error_messages
from bot.policy.engines.regorus import is_fatal, load_regorus, regorus_message
from bot.policy.engines.results import first_line
from bot.policy.pack import ENGINE, PolicyPack, RegoTestCase
from bot.records import Record


class RegoTestResult(Record):
    package: str
    name: str
    path: str
    passed: bool
    error: str | None = Field(default=None, description="Why it failed: false, undefined, or the engine error.")
    duration_ms: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.package}::{self.name}"


def _entrypoint(case: RegoTestCase) -> str:
    return "/".join([*case.package.split("."), case.name])


def _verdict(output: Any) -> tuple[bool, str | None]:
    if not output._impl:  # NULL output: never touch it further (see bot.policy.engines.regopy)
        return False, "engine returned no output"
    if not output.ok():
        return False, "; ".join(error_messages(output))
    if not output.results:
        return False, "undefined"
    result = output.results[0]
    values = list(result.bindings.values()) or list(result.expressions)
    if not values:
        return False, "undefined"
    if values[0] is True:
        return True, None
    return False, f"evaluated to {values[0]!r:.200} instead of true"


def run_rego_tests(
    pack: PolicyPack,
    only: Sequence[RegoTestCase] | None = None,
    *,
    use_bundle: bool = True,
    engine: str = "opa",
) -> list[RegoTestResult]:
    """Run every test of ``pack`` (or just ``only``) and return one result per test, in pack order.

    ``engine``: ``opa`` (in process), ``regopy`` or ``regorus``."""
    cases = list(only) if only is not None else pack.tests()
    if engine == "opa":
        return _run_opa(pack, cases)
    if engine == "regorus":
        return _run_regorus(pack, cases)
    if engine != "regopy":
        raise EngineError(f"Rego tests run on opa, regopy or regorus, not {engine!r}", engine=ENGINE)
    import regopy

    interp = regopy.Interpreter()
    interp.log_level = regopy.LogLevel.NONE
    for module in pack.modules:
        try:
            interp.add_module(module.path, module.source)
        except Exception as exc:  # RegoError: a module does not parse; every test fails with the cause
            raise EngineError(f"{module.path} does not compile: {first_line(exc)}", engine=ENGINE) from None
    interp.set_input(regopy.Input({}))

    bundle: Any = None
    if cases and use_bundle:
        try:
            bundle = interp.build(None, [_entrypoint(c) for c in cases])
            if not bundle.ok():
                bundle = None
        except Exception:
            bundle = None

    def one(case: RegoTestCase) -> tuple[bool, str | None]:
        try:
            if bundle is not None:
                output = interp.query_bundle_entrypoint(bundle, _entrypoint(case))
            else:
                output = interp.query(f"x = {case.ref}")
            return _verdict(output)
        except Exception as exc:
            return False, first_line(exc)

    return _run_each(cases, one)


def _run_each(
    cases: Sequence[RegoTestCase], one: Callable[[RegoTestCase], tuple[bool, str | None]]
) -> list[RegoTestResult]:
    """One timed result per case; ``one`` answers (passed, why not) and never raises for a failing test."""
    results: list[RegoTestResult] = []
    for case in cases:
        start = time.perf_counter()
        passed, error = one(case)
        results.append(
            RegoTestResult(
                package=case.package,
                name=case.name,
                path=case.path,
                passed=passed,
                error=error,
                duration_ms=(time.perf_counter() - start) * 1000,
            )
        )
    return results


def _run_regorus(pack: PolicyPack, cases: Sequence[RegoTestCase]) -> list[RegoTestResult]:
    regorus = load_regorus()
    engine = regorus.Engine()
    for module in pack.modules:
        try:
            engine.add_policy(module.path, module.source)
        except BaseException as exc:  # a module that does not parse: every test fails with the cause
            if is_fatal(exc):
                raise
            raise EngineError(f"{module.path} does not compile: {regorus_message(exc)}", engine=ENGINE) from None
    engine.set_input_json("{}")

    def one(case: RegoTestCase) -> tuple[bool, str | None]:
        try:
            answer = json.loads(engine.eval_query_as_json(f"x := {case.ref}"))
        except BaseException as exc:  # an engine error (or a Rust panic) fails this test only
            if is_fatal(exc):
                raise
            return False, regorus_message(exc)
        found = answer.get("result") or []
        if not found:
            return False, "undefined"
        value = found[0].get("bindings", {}).get("x")
        if value is True:
            return True, None
        return False, f"evaluated to {value!r:.200} instead of true"

    return _run_each(cases, one)


def _run_opa(pack: PolicyPack, cases: Sequence[RegoTestCase]) -> list[RegoTestResult]:
    opa = load_opa()
    engine = opa.OpaEngine()
    engine.print_handler = lambda message, location: None  # a test's print() is not ours to show
    for module in pack.modules:
        try:
            engine.add_policy(module.path, module.source)
        except opa.OpaError as exc:  # a module that does not parse: every test fails with the cause
            raise EngineError(f"{module.path} does not compile: {opa_message(exc)}", engine=ENGINE) from None
    try:
        whole: Any = engine.eval_document("", {})
    except opa.OpaError:
        whole = None  # some test errors: ask each on its own below

    def one(case: RegoTestCase) -> tuple[bool, str | None]:
        if isinstance(whole, dict):
            node: Any = whole
            for part in case.package.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            value = node.get(case.name) if isinstance(node, dict) else None
            if value is True:
                return True, None
            if value is not None:
                return False, f"evaluated to {value!r:.200} instead of true"
            return False, "undefined"
        try:
            value = engine.eval_document(case.ref.removeprefix("data."), {})
        except opa.OpaUndefinedError:
            return False, "undefined"
        except opa.OpaError as exc:
            return False, opa_message(exc)
        if value is True:
            return True, None
        return False, f"evaluated to {value!r:.200} instead of true"

    return _run_each(cases, one)
