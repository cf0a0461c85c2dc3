"""The Rego engines: evaluating the policy pack over one policy input, and choosing which engine does it.

The pack (``bot.policy.pack``) is evaluated over the policy input plus its derived ``index``
(:func:`prepare_input`); each rule package's ``deny`` / ``warn`` set and the risk package's ``tier`` /
``reasons`` are picked out of the JSON value of ``data.glassbox`` (regopy: one query per area,
``data.glassbox.network``, ``data.glassbox.risk``, ...) and turned into records. These engines implement
:class:`PolicyEngine`:

* :class:`~bot.policy.engines.opa_embedded.EmbeddedOpaEngine` (default): OPA's own Go engine in process.
* :class:`RegopyEngine`: rego-cpp in-process through ``regopy``. The pack is compiled once
  (a bundle from ``Interpreter.build``) and evaluated many times; if the bundle misbehaves on a canary
  input, a reused interpreter is used instead.
* :class:`RegorusEngine`: regorus (Rust) in-process, one query over every area; about ten times
  faster than rego-cpp on a 1,000-resource plan (``bench/bench_rego.py``). Opt-in
  (``GLASSBOX_REGO_ENGINE=regorus``): its Python wheels come from a fork's PyPI project, not from the
  upstream authors; a differential test holds all three in-process engines to identical results.
* :class:`OpaEngine` (``opa-binary``): the ``opa`` executable (``opa eval --format json``) when it is on PATH.
* :class:`CrossCheckedEngine`: any two of them, failing closed when they disagree (``GLASSBOX_REGO_CROSSCHECK``).

Failing closed (I5): any engine error, a NULL/undefined/non-JSON result, a rule package that did not
evaluate or a malformed result raises :class:`bot.errors.EngineError` with ``engine="rego"``; nothing is
ever dropped silently. Engines are asked for JSON only, never text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from bot.policy.engines.cache import kept_engine
from bot.policy.engines.opa import OpaEngine
from bot.policy.engines.opa_embedded import opa_embedded_available
from bot.policy.engines.results import Evaluation, PolicyEngine, fail
from bot.policy.pack import PolicyPack

ENGINE_CHOICES = ("opa", "regopy", "regorus", "opa-binary", "auto")
CROSSCHECK_VARIABLE = "GLASSBOX_REGO_CROSSCHECK"


def make_engine(pack: PolicyPack, name: str | None = None, *, crosscheck: str | None = None) -> PolicyEngine:
    """``opa`` (OPA's engine in process, the default), ``regopy``, ``regorus``, ``opa-binary`` (the ``opa``
    executable), or ``auto`` (embedded OPA when installed, else regopy). ``GLASSBOX_REGO_ENGINE`` sets the
    default; an engine that is asked for and missing is an error, never a silent substitute.

    ``crosscheck`` (default ``GLASSBOX_REGO_CROSSCHECK``) names a second engine: both evaluate every input and
    any disagreement fails closed (:class:`CrossCheckedEngine`).

    In-process engines are kept per pack digest (the last few), so a second check against the same pack
    skips compilation."""
    primary = _one_engine(pack, (name or os.environ.get("GLASSBOX_REGO_ENGINE") or "opa").strip().lower())
    second = (crosscheck if crosscheck is not None else os.environ.get(CROSSCHECK_VARIABLE, "")).strip().lower()
    if not second:
        return primary
    return CrossCheckedEngine(primary, _one_engine(pack, second))


def _one_engine(pack: PolicyPack, choice: str) -> PolicyEngine:
    if choice == "auto":
        choice = "opa" if opa_embedded_available() else "regopy"
    if choice == "opa-binary":
        return OpaEngine(pack)
    if choice in ("opa", "regopy", "regorus"):
        return kept_engine(choice, pack)
    raise fail(f"unknown Rego engine {choice!r}; use one of {', '.join(ENGINE_CHOICES)}")


class CrossCheckedEngine:
    """N-version evaluation: two independent engines answer every input, and only an identical answer counts.

    A disagreement (different findings, tier or reasons) is an engine error naming both answers: the verdict
    fails closed with both in its errors, rather than trusting either."""

    def __init__(self, primary: PolicyEngine, second: PolicyEngine) -> None:
        if primary.name == second.name:
            raise fail(f"cross-checking {primary.name} against itself proves nothing; name a different engine")
        self._primary, self._second = primary, second

    @property
    def name(self) -> str:
        return f"{self._primary.name}+{self._second.name}"

    @property
    def pack(self) -> PolicyPack:
        return self._primary.pack

    def evaluate(self, input: Mapping[str, Any]) -> Evaluation:
        first = self._primary.evaluate(input)
        other = self._second.evaluate(input)
        if _answer(first) != _answer(other):
            raise fail(
                f"engines disagree: {self._primary.name} answered {_summary(first)}; "
                f"{self._second.name} answered {_summary(other)}"
            )
        return first.model_copy(update={"engine": self.name})


def _answer(evaluation: Evaluation) -> Any:
    return evaluation.model_dump(mode="json", exclude={"engine"})


def _summary(evaluation: Evaluation) -> str:
    found = sorted(f"{r.status}:{r.rule_id}:{r.resource or '-'}" for r in evaluation.results)
    return f"tier {evaluation.tier.value}, {len(found)} result(s) [{', '.join(found)[:600]}]"


def timed(engine: PolicyEngine, input: Mapping[str, Any]) -> tuple[Evaluation, float]:
    """An evaluation and its wall time in milliseconds (for bench scripts and logs)."""
    start = time.perf_counter()
    evaluation = engine.evaluate(input)
    return evaluation, (time.perf_counter() - start) * 1000
