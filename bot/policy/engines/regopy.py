"""The default engine: rego-cpp in-process through ``regopy``.

The pack is compiled once (a bundle from ``Interpreter.build``, one entrypoint per batch of areas) and
evaluated many times; if the bundle misbehaves on a canary input, a reused interpreter is used instead.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from bot.errors import EngineError
from bot.policy.engines.input import check_shape, normalise_input, prepare_input
from bot.policy.engines.results import (
    BINDING,
    Evaluation,
    PackAnswers,
    fail,
    first_line,
    interpret,
    place,
    restrict,
)
from bot.policy.pack import ROOT_PACKAGE, PolicyPack


def load_regopy() -> Any:
    """The ``regopy`` module (a declared dependency); an engine error if it cannot be imported."""
    try:
        import regopy
    except ImportError as exc:  # pragma: no cover - regopy is a declared dependency
        raise fail(f"regopy is not importable: {exc}") from exc
    return regopy


def rego_input(regopy: Any, document: Any) -> Any:
    """``regopy.Input(document)``, built faster over regopy 1.5's own ctypes bindings.

    regopy's converter costs a Python wrapper, a ``create_string_buffer`` and an ``isinstance`` chain
    per JSON node: about a third of a second for a 1,000-resource plan. This one makes the same C calls
    in the same order (value, then ``ObjectItem`` per key/value pair, then ``Object``/``Array`` with the
    count) with exact type dispatch and encoded object keys reused. Anything unexpected (another regopy,
    a value it cannot take) falls back to ``regopy.Input``, which then decides.
    """
    try:
        shared = regopy.rego_shared
        lib, ok, new_input, free_input = shared.rego, shared.Code.OK, shared.rego_new_input, shared.rego_free_input
        put_str, put_int, put_float = lib.regoInputString, lib.regoInputInt, lib.regoInputFloat
        put_bool, put_null, put_item = lib.regoInputBoolean, lib.regoInputNull, lib.regoInputObjectItem
        put_object, put_array = lib.regoInputObject, lib.regoInputArray
    except AttributeError:
        return regopy.Input(document)
    handle = new_input()
    keys: dict[str, bytes] = {}
    failed = False

    def add(value: Any) -> None:
        nonlocal failed
        kind = type(value)
        if kind is str:
            failed |= put_str(handle, value.encode("utf-8")) != ok
        elif kind is dict:
            for key, item in value.items():
                encoded = keys.get(key)
                if encoded is None:
                    encoded = keys[key] = key.encode("utf-8")
                failed |= put_str(handle, encoded) != ok
                add(item)
                failed |= put_item(handle) != ok
            failed |= put_object(handle, len(value)) != ok
        elif kind is list:
            for item in value:
                add(item)
            failed |= put_array(handle, len(value)) != ok
        elif kind is bool:
            failed |= put_bool(handle, value) != ok
        elif kind is int:
            failed |= put_int(handle, value) != ok
        elif kind is float:
            failed |= put_float(handle, value) != ok
        elif value is None:
            failed |= put_null(handle) != ok
        else:
            raise TypeError(kind.__name__)

    try:
        add(document)
    except Exception:  # regopy's own converter decides (and raises) instead
        failed = True
    if failed:
        free_input(handle)
        return regopy.Input(document)
    converted = regopy.Input.__new__(regopy.Input)
    converted._impl = handle
    return converted


def error_messages(output: Any) -> list[str]:
    """The messages of a failed output's ErrorSeq; never raises (a failed output is fragile)."""
    regopy = load_regopy()
    messages: list[str] = []
    try:
        root = output.node()
        for i in range(len(root)):
            error = root.at(i)
            for j in range(len(error)):
                child = error.at(j)
                if child.kind == regopy.NodeKind.ErrorMessage:
                    messages.append(regopy.rego_shared.rego_node_value(child._impl))
    except Exception:  # noqa: S110 - diagnostics only; the caller fails closed either way
        pass
    return messages or ["unknown error"]


class RegopyEngine(PackAnswers):
    """rego-cpp through regopy: compile once, evaluate many (bundle), or a reused interpreter.

    ``mode``: ``"bundle"`` (compiled bundle), ``"interpreter"`` (one interpreter, recompiling the query
    each time), or ``"auto"`` (bundle, unless it fails a canary evaluation against the interpreter).
    One engine is safe to share between threads: evaluations are serialised by a lock.
    """

    def __init__(self, pack: PolicyPack, *, mode: Literal["auto", "bundle", "interpreter"] = "auto") -> None:
        self._pack = pack
        self._lock = threading.Lock()
        self._regopy = load_regopy()
        self._interp = self._new_interpreter(pack.policy_modules)
        self._batches = area_batches(pack, self.areas)
        batch_source = _batch_module(self._batches)
        if batch_source:
            try:
                self._interp.add_module(f"{BATCH_PACKAGE}.rego", batch_source)
            except Exception as exc:  # RegoError: an area name that is not a plain identifier
                raise fail(f"cannot batch the pack's areas: {first_line(exc)}") from None
        self._bundle: Any = None
        self.fallback_reason: str | None = None
        self.fast_input = True  # rego_input(); False: regopy.Input (for differential tests)
        if mode in ("auto", "bundle"):
            try:
                self._bundle = self._build()
                if mode == "auto":
                    self._canary()
            except EngineError as exc:
                if mode == "bundle":
                    raise
                self._bundle = None
                self.fallback_reason = exc.message
        self._mode = "bundle" if self._bundle is not None else "interpreter"

    @property
    def name(self) -> str:
        return f"regopy-{self._mode}"

    def _new_interpreter(self, modules: Sequence[Any]) -> Any:
        interp = self._regopy.Interpreter()
        # rego-cpp prints compiler errors to stdout unless told not to; errors reach us as data anyway.
        # Per interpreter only: set_default_log_level aborts the process when called a second time.
        interp.log_level = self._regopy.LogLevel.NONE
        for module in modules:
            try:
                interp.add_module(module.path, module.source)
            except Exception as exc:  # RegoError: the module does not parse
                raise fail(f"{module.path} does not compile: {first_line(exc)}") from None
        return interp

    @property
    def batches(self) -> list[list[str]]:
        """The areas queried together, one query per batch (see :func:`area_batches`)."""
        return self._batches

    def _batch_entrypoint(self, index: int) -> str:
        batch = self._batches[index]
        return _entrypoint(batch[0]) if len(batch) == 1 else f"{BATCH_PACKAGE}/batch_{index}"

    def _build(self) -> Any:
        # One entrypoint per batch of areas, queried one by one: rego-cpp 1.5.2 takes longer over the whole of
        # data.glassbox in one query than over its areas one at a time, while one query per area still shares
        # the complete rules its packages use (lib.network.input_ingress_rules, ...); areas importing one
        # another (scope and evidence read risk.tier) share one query so the risk is assessed once.
        # data.glassbox.lib is never queried: its input-sized complete rules are not part of the answer.
        try:
            bundle = self._interp.build(None, [self._batch_entrypoint(i) for i in range(len(self._batches))])
        except Exception as exc:
            raise fail(f"policy pack does not compile: {first_line(exc)}") from None
        if not bundle.ok():
            raise fail("policy pack does not compile (bundle not ok)")
        return bundle

    def _canary(self) -> None:
        # The same small input through both paths must give the same document.
        canary = prepare_input(
            {
                "plan": {"digest": "", "stacks": [], "resources": []},
                "changes": [],
                "files": {"changed_paths": [], "governance_paths": []},
                "evidence": {"present": False},
                "pr": {"number": 0, "author": {"id": "canary", "kind": "human"}, "agent_id": None},
                "registry": {"agent": None, "governance_paths": []},
                "now": "1970-01-01T00:00:00+00:00",
            }
        )
        if self._raw(canary, bundle=True) != self._raw(canary, bundle=False):
            raise fail("compiled bundle disagrees with the interpreter on a canary input")

    def _checked(self, output: Any, what: str, areas: Sequence[str]) -> Any:
        regopy = self._regopy
        # regopy does not notice a NULL output; touching one (str, node) crashes the process.
        if not output._impl:
            detail = ""
            with contextlib.suppress(Exception):  # diagnostics only
                detail = regopy.rego_shared.rego_get_error(self._interp._impl)
            raise fail(f"evaluation of {what} returned no output: {detail[:500] or 'unknown error'}")
        if not output.ok():
            culprits = self._culprits(areas)
            raise fail(f"evaluation of {what} failed: {'; '.join(error_messages(output))}{culprits}")
        return output.results

    def _raw(self, document: dict[str, Any], *, bundle: bool) -> dict[str, Any]:
        """``data.glassbox`` restricted to the rule packages and the risk package, as one JSON document."""
        try:
            self._interp.set_input(
                rego_input(self._regopy, document) if self.fast_input else self._regopy.Input(document)
            )
        except Exception as exc:  # RegoError: the input could not be converted
            raise fail(f"evaluation failed: {first_line(exc)}") from None
        root: dict[str, Any] = {}
        if not bundle:
            # One query (one compilation) answering every area, but never data.glassbox.lib.
            query = ", ".join(f'"{a.split(".", 1)[1]}": data.{a}' for a in self.areas)
            try:
                output = self._interp.query(f"{BINDING} = {{{query}}}")
            except Exception as exc:  # RegoError, or JSONDecodeError when rego-cpp writes invalid JSON
                raise fail(f"evaluation failed: {first_line(exc)}") from None
            results = self._checked(output, f"data.{ROOT_PACKAGE}", [ROOT_PACKAGE])
            value = results[0].bindings.get(BINDING) if results else None
            if not isinstance(value, Mapping):
                raise fail(f"data.{ROOT_PACKAGE} is undefined or not an object")
            return restrict(value, self.packages)
        for index, batch in enumerate(self._batches):
            what = " + ".join(f"data.{a}" for a in batch)
            try:
                output = self._interp.query_bundle_entrypoint(self._bundle, self._batch_entrypoint(index))
            except Exception as exc:  # RegoError, or JSONDecodeError when rego-cpp writes invalid JSON
                raise fail(f"evaluation of {what} failed: {first_line(exc)}") from None
            results = self._checked(output, what, batch)
            value = results[0].expressions[0] if results and results[0].expressions else None
            if len(batch) == 1:
                value = {batch[0].split(".", 1)[1]: value}
            for area in batch:
                part = value.get(area.split(".", 1)[1]) if isinstance(value, Mapping) else None
                if not isinstance(part, Mapping):
                    raise fail(f"data.{area} is undefined or not an object")
                place(root, area, part)
        return restrict(root, self.packages)

    def _culprits(self, areas: Sequence[str]) -> str:
        """On failure only: which packages of the areas fail on their own (one query each, same input)."""
        failing: list[str] = []
        for package in self.packages:
            if not any(package == a or package.startswith(a + ".") for a in areas):
                continue
            try:
                output = self._interp.query(f"{BINDING} = data.{package}")
                if not output._impl or not output.ok():
                    failing.append(package)
            except Exception:
                failing.append(package)
        return f" (failing packages: {', '.join(failing)})" if failing else ""

    def evaluate_raw(self, input: Mapping[str, Any]) -> Any:
        """``data.glassbox`` for this input, restricted to the rule and risk packages (for diagnostics and
        differential tests)."""
        document = prepare_input(input)
        with self._lock:
            return self._raw(document, bundle=self._bundle is not None)

    def evaluate(self, input: Mapping[str, Any]) -> Evaluation:
        return interpret(self.evaluate_raw(input), self._pack, self.name)

    def evaluate_prepared(self, document: dict[str, Any]) -> Evaluation:
        """Evaluate a document exactly as given: it must already be normalised and carry an ``index``
        (:func:`prepare_input`). For differential tests of the index itself; checks use :meth:`evaluate`."""
        check_shape(document)
        if not isinstance(document.get("index"), dict):
            raise fail("prepared policy input without an index")
        with self._lock:
            return interpret(self._raw(document, bundle=self._bundle is not None), self._pack, self.name)

    def query(self, ref: str, input: Mapping[str, Any] | None = None) -> Any:
        """Evaluate one reference (e.g. ``data.glassbox.network.gb_net_001``) through the interpreter."""
        try:
            document = prepare_input(input or {})
        except EngineError:  # not a whole policy input (e.g. a probe of one helper): evaluate it as given
            document = normalise_input(input or {})
        with self._lock:
            try:
                self._interp.set_input(self._regopy.Input(document))
                output = self._interp.query(f"x = {ref}")
            except Exception as exc:
                raise fail(f"{ref}: {first_line(exc)}") from None
            if not output._impl or not output.ok():
                raise fail(f"{ref}: {'; '.join(error_messages(output)) if output._impl else 'no output'}")
            if not output.results or BINDING not in output.results[0].bindings:
                raise fail(f"{ref} is undefined")
            return output.results[0].bindings[BINDING]


BATCH_PACKAGE = "glassbox_engine_batches"
_IMPORT = re.compile(r"^import\s+data\.([A-Za-z_][A-Za-z0-9_.]*)", re.MULTILINE)


def area_batches(pack: PolicyPack, areas: Sequence[str]) -> list[list[str]]:
    """Areas joined when a module of one imports a package of another (``import data.glassbox.risk``), so
    the complete rules they share are evaluated once per query. Batching never changes an answer."""
    parent = {a: a for a in areas}

    def root(a: str) -> str:
        while parent[a] != a:
            a = parent[a]
        return a

    for module in pack.policy_modules:
        own = ".".join(module.package.split(".")[:2])
        if own not in parent:
            continue
        for ref in _IMPORT.findall(module.source):
            other = ".".join(ref.split(".")[:2])
            if other in parent and root(other) != root(own):
                parent[root(own)] = root(other)
    groups: dict[str, list[str]] = {}
    for area in areas:
        groups.setdefault(root(area), []).append(area)
    return sorted(groups.values())


def _batch_module(batches: Sequence[Sequence[str]]) -> str:
    rules = [
        f"batch_{i} := {{" + ", ".join(f'"{a.split(".", 1)[1]}": data.{a}' for a in batch) + "}"
        for i, batch in enumerate(batches)
        if len(batch) > 1
    ]
    return f"package {BATCH_PACKAGE}\n\nimport rego.v1\n\n" + "\n\n".join(rules) + "\n" if rules else ""


def _entrypoint(package: str) -> str:
    return package.replace(".", "/")
