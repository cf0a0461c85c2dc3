"""The default engine: OPA's own Go evaluator, in process.

PyPI ``opa-golib-python-bindings`` embeds OPA (a c-shared ``libopabridge.so`` built from
open-policy-agent/opa) behind a ctypes wrapper. It is installed by ``make`` in a step of its own, pinned by
version and hash (``requirements-opa.lock``); its metadata asks for Python 3.14 although the wheel has no
CPython ABI dependency, hence ``--ignore-requires-python`` there (README, Dependencies).

The pack's policy modules are added to one engine per pack; every area is answered by one query whose
prepared form the library keeps, so each evaluation costs one pass. Evaluations on an engine are serialised
by the library's lock. A Rego ``print`` is collected, never written to the process's stderr.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from bot.errors import EngineError
from bot.policy.engines.onequery import OneQueryEngine
from bot.policy.engines.results import BINDING, fail
from bot.policy.pack import PolicyPack

OPA_DISTRIBUTION = "opa-golib-python-bindings"
OPA_VERSIONS = {"0.4.4": "1.20.2"}
"""The OPA release each pinned bindings release embeds (the library cannot tell: ``opa.runtime()`` is empty)."""


def load_opa() -> Any:
    """The ``opa_bindings`` module; an engine error naming how to install it when it is missing."""
    try:
        import opa_bindings
    except (ImportError, OSError) as exc:  # OSError: the shared library does not load on this platform
        raise fail(
            f"the embedded OPA engine is not installed ({exc}); run `make` (it installs requirements-opa.lock) "
            "or choose another engine with GLASSBOX_REGO_ENGINE=regopy"
        ) from None
    return opa_bindings


def opa_embedded_available() -> bool:
    try:
        load_opa()
    except EngineError:
        return False
    return True


def opa_version() -> str:
    """``opa-<OPA release>`` for the installed bindings (``opa-unknown`` for an unpinned release)."""
    try:
        bindings = metadata.version(OPA_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "opa-unknown"
    return f"opa-{OPA_VERSIONS.get(bindings, 'unknown')}"


def opa_message(exc: BaseException) -> str:
    return (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip()[:500]


class EmbeddedOpaEngine(OneQueryEngine):
    """OPA in process over the pack's policy modules (``GLASSBOX_REGO_ENGINE=opa``, the default)."""

    def __init__(self, pack: PolicyPack) -> None:
        self._pack = pack
        self._opa = load_opa()
        self._name = opa_version()
        self._lock = threading.Lock()
        self.prints: list[tuple[str, str]] = []
        self._query = self.area_query()
        self._engine = self._opa.OpaEngine()
        self._engine.print_handler = lambda message, location: self.prints.append((message, location))
        for module in pack.policy_modules:
            try:
                self._engine.add_policy(module.path, module.source)
            except self._opa.OpaError as exc:
                raise fail(f"{module.path} does not compile: {opa_message(exc)}") from None
        self._ask(f"{BINDING} := true", {})  # OPA compiles every module here: a broken pack fails now

    @property
    def name(self) -> str:
        return self._name

    def _ask(self, query: str, document: Mapping[str, Any]) -> Any:
        try:
            with self._lock:
                rows = self._engine.eval_query(query, dict(document))
        except self._opa.OpaError as exc:
            raise fail(f"evaluation failed: {opa_message(exc)}") from None
        except (TypeError, ValueError) as exc:
            raise fail(f"policy input is not JSON: {exc}") from None
        if not rows:
            return None
        if len(rows) != 1 or not isinstance(rows[0], Mapping):
            raise fail(f"evaluation of {query[:80]} gave {len(rows)} results")
        return rows[0].get(BINDING)
