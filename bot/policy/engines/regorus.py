"""The opt-in engine (``GLASSBOX_REGO_ENGINE=regorus``): regorus (Rust) in-process, one query over every area.

About ten times faster than rego-cpp on a 1,000-resource plan (``bench/bench_rego.py``). Its Python wheels
come from a fork's PyPI project, not from the upstream authors, so the default stays regopy and a
differential test holds both to identical results.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import pydantic_core

from bot.errors import EngineError
from bot.policy.engines.onequery import OneQueryEngine
from bot.policy.engines.results import BINDING, fail
from bot.policy.pack import PolicyPack

REGORUS_DISTRIBUTION = "gordon-to-regorus"


def load_regorus() -> Any:
    """The ``regorus`` module; an engine error naming how to install it when it is missing."""
    try:
        import regorus
    except ImportError as exc:
        raise fail(
            f"the regorus engine is not installed ({exc}); install glassbox[regorus] or use GLASSBOX_REGO_ENGINE=regopy"
        ) from None
    return regorus


def regorus_available() -> bool:
    try:
        load_regorus()
    except EngineError:
        return False
    return True


def regorus_message(exc: BaseException) -> str:
    """regorus errors carry a source excerpt and, often, a Rust backtrace: keep the located message only."""
    text = str(exc).split("Stack backtrace:", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip() and set(line.strip()) - {"|", "^", " "}]
    return " ".join(lines)[:500] or type(exc).__name__


def is_fatal(exc: BaseException) -> bool:
    """Whether ``exc`` must propagate rather than become an engine error.

    A Rust panic reaches Python as pyo3's PanicException, a BaseException: it is an engine error like any
    other, but an interrupt or exit is not ours to swallow."""
    return isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit)


class RegorusEngine(OneQueryEngine):
    """regorus through its Python binding (``import regorus``; distribution ``gordon-to-regorus``).

    Every area of the pack is answered by one query, so the complete rules the areas share (the risk
    assessment, the library's input-sized rules) are evaluated once. The binding's engines must stay on
    the thread that made them, so each thread gets its own, compiled from the pack's modules (a few
    milliseconds); the first is compiled at construction so a pack that does not compile fails here.
    """

    def __init__(self, pack: PolicyPack) -> None:
        self._pack = pack
        self._regorus = load_regorus()
        self._local = threading.local()
        from importlib import metadata

        try:
            version = metadata.version(REGORUS_DISTRIBUTION)
        except metadata.PackageNotFoundError:
            version = "unknown"
        self._name = f"regorus-{version}"
        self._query = self.area_query()
        self._engine()

    @property
    def name(self) -> str:
        return self._name

    def _engine(self) -> Any:
        engine = getattr(self._local, "engine", None)
        if engine is not None:
            return engine
        engine = self._regorus.Engine()
        for module in self._pack.policy_modules:
            try:
                engine.add_policy(module.path, module.source)
            except BaseException as exc:
                if is_fatal(exc):
                    raise
                raise fail(f"{module.path} does not compile: {regorus_message(exc)}") from None
        self._local.engine = engine
        return engine

    def _answer(self, engine: Any, query: str) -> Any:
        try:
            output = engine.eval_query_as_json(query)
        except BaseException as exc:
            if is_fatal(exc):
                raise
            raise fail(f"evaluation failed: {regorus_message(exc)}") from None
        try:
            answer = json.loads(output)
            result = answer["result"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return None  # undefined: regorus answers {} without a result
        if not isinstance(result, list) or len(result) != 1 or not isinstance(result[0], Mapping):
            raise fail(f"evaluation of {query[:80]} gave {len(result) if isinstance(result, list) else 0} results")
        bindings = result[0].get("bindings")
        if not isinstance(bindings, Mapping) or BINDING not in bindings:
            return None
        return bindings[BINDING]

    def _set_input(self, engine: Any, document: Mapping[str, Any]) -> None:
        try:
            # pydantic-core's serializer writes the (already normalised) document about 3x faster than json;
            # whatever it refuses (a lone surrogate, ...) goes through json, which then decides.
            text = pydantic_core.to_json(document).decode("utf-8")
        except Exception:
            text = None
        try:
            if text is None:
                text = json.dumps(document, separators=(",", ":"), allow_nan=False)
            engine.set_input_json(text)
        except (TypeError, ValueError) as exc:
            raise fail(f"policy input is not JSON: {exc}") from None
        except BaseException as exc:
            if is_fatal(exc):
                raise
            raise fail(f"evaluation failed: {regorus_message(exc)}") from None

    def _ask(self, query: str, document: Mapping[str, Any]) -> Any:
        engine = self._engine()
        self._set_input(engine, document)
        return self._answer(engine, query)
