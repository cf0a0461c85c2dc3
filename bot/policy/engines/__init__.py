"""The Rego engines: evaluating the policy pack over one policy input, and choosing which engine does it.

The pack (``bot.policy.pack``) is evaluated over the policy input plus its derived ``index``
(:func:`prepare_input`); each rule package's ``deny`` / ``warn`` set and the risk package's ``tier`` /
``reasons`` are picked out of the JSON value of ``data.glassbox`` (regopy: one query per area,
``data.glassbox.network``, ``data.glassbox.risk``, ...) and turned into records. Two engines implement
:class:`PolicyEngine`:

* :class:`RegopyEngine` (default): rego-cpp in-process through ``regopy``. The pack is compiled once
  (a bundle from ``Interpreter.build``) and evaluated many times; if the bundle misbehaves on a canary
  input, a reused interpreter is used instead.
* :class:`RegorusEngine`: regorus (Rust) in-process, one query over every area; about ten times
  faster than rego-cpp on a 1,000-resource plan (``bench/bench_rego.py``). Opt-in
  (``GLASSBOX_REGO_ENGINE=regorus``): its Python wheels come from a fork's PyPI project, not from the
  upstream authors, so the default stays regopy and a differential test holds both to identical results.
* :class:`OpaEngine`: the ``opa`` binary (``opa eval --format json``) when it is on PATH.

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
from bot.policy.engines.opa import OpaEngine, opa_available
from bot.policy.engines.results import Evaluation, PolicyEngine, fail
from bot.policy.pack import PolicyPack

ENGINE_CHOICES = ("regopy", "regorus", "opa", "auto")


def make_engine(pack: PolicyPack, name: str | None = None) -> PolicyEngine:
    """``regopy`` (default), ``regorus``, ``opa``, or ``auto`` (opa when on PATH, else regopy).
    ``GLASSBOX_REGO_ENGINE`` sets the default; an engine that is asked for and missing is an error, never
    a silent substitute.

    In-process engines are kept per pack digest (the last few), so a second check against the same pack
    skips compilation."""
    choice = (name or os.environ.get("GLASSBOX_REGO_ENGINE") or "regopy").strip().lower()
    if choice == "opa" or (choice == "auto" and opa_available()):
        return OpaEngine(pack)
    if choice in ("regopy", "auto"):
        return kept_engine("regopy", pack)
    if choice == "regorus":
        return kept_engine("regorus", pack)
    raise fail(f"unknown Rego engine {choice!r}; use one of {', '.join(ENGINE_CHOICES)}")


def timed(engine: PolicyEngine, input: Mapping[str, Any]) -> tuple[Evaluation, float]:
    """An evaluation and its wall time in milliseconds (for bench scripts and logs)."""
    start = time.perf_counter()
    evaluation = engine.evaluate(input)
    return evaluation, (time.perf_counter() - start) * 1000
