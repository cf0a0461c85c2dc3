"""Evaluating the Rego policy pack over one policy input, and the structured results it yields.

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

import collections
import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

import pydantic_core
from pydantic import Field

from bot.errors import EngineError
from bot.policy.pack import ENGINE, RISK_PACKAGE, ROOT_PACKAGE, PolicyPack, RulePackage
from bot.records import Finding, FindingStatus, Record, RiskTier

BINDING = "x"

# RFC 3339 date-times; rego-cpp's time builtins reject a "Z" suffix, so every one is rewritten to UTC "+00:00".
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class PolicyResult(Record):
    """One deny or warn from one rule package, with the rule's metadata attached."""

    rule_id: str
    package: str
    severity: RiskTier
    status: Literal["deny", "warn"]
    message: str
    resource: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    controls: list[str] = Field(default_factory=list)
    remediation: str = ""
    engine: Literal["rego"] = "rego"

    def to_finding(self) -> Finding:
        return Finding(
            engine="rego",
            rule_id=self.rule_id,
            severity=self.severity,
            status=FindingStatus(self.status),
            message=self.message,
            resource=self.resource,
            controls=list(self.controls),
            remediation=self.remediation,
            details=dict(self.details),
        )


class Evaluation(Record):
    """Everything one evaluation of the pack decided."""

    results: list[PolicyResult]
    tier: RiskTier
    reasons: list[str]
    engine: str = Field(description="Which implementation evaluated, e.g. regopy-bundle or opa.")
    pack_digest: str

    @property
    def denies(self) -> list[PolicyResult]:
        return [r for r in self.results if r.status == "deny"]

    @property
    def warns(self) -> list[PolicyResult]:
        return [r for r in self.results if r.status == "warn"]

    @property
    def passed(self) -> bool:
        return not self.denies


class PolicyEngine(Protocol):
    """Evaluates one pack over a policy input (``docs/contracts.md``)."""

    @property
    def name(self) -> str: ...

    @property
    def pack(self) -> PolicyPack: ...

    def evaluate(self, input: Mapping[str, Any]) -> Evaluation: ...


def _fail(message: str) -> EngineError:
    return EngineError(message, engine=ENGINE)


# --------------------------------------------------------------------------------------------------
# input normalisation


def _timestamp(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return value  # looks like a timestamp but is not one: leave the string as it is
    return parsed.astimezone(UTC).isoformat()


# Where a value sits, built only when an error names it: (parent, key or index), None at the top.
_At = tuple[Any, str | int] | None


def _where(at: _At) -> str:
    parts: list[str] = []
    while at is not None:
        at, key = at
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(reversed(parts)).lstrip(".")


def _normalise(value: Any, at: _At) -> Any:
    kind = type(value)
    if kind is str:
        # Cheap test first: most strings are not timestamps and never reach the regex.
        if len(value) >= 19 and value[4:5] == "-" and _RFC3339.match(value):
            return _timestamp(value)
        return value
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(f"policy input key {key!r} at {_where(at) or '(top)'} is not a string")
            out[key] = _normalise(item, (at, key))
        return out
    if kind is list or isinstance(value, list | tuple):
        return [_normalise(item, (at, i)) for i, item in enumerate(value)]
    if kind is bool or value is None or kind is int:
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _fail(f"policy input {_where(at)}: timestamp without a timezone")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return _timestamp(value) if _RFC3339.match(value) else value
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(f"policy input {_where(at)}: {value} is not a JSON number")
        # Pulumi hands whole numbers over as floats; Rego compares 22 and 22.0 as equal, but keep JSON tidy.
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    raise _fail(f"policy input {_where(at)}: {type(value).__name__} is not JSON")


# The containers the pack reads by plain reference (no defaults, for speed): a missing one would make
# rules silently undefined, so the engine refuses such an input instead.
_SHAPE: dict[str, type] = {"plan": dict, "changes": list, "files": dict, "evidence": dict, "pr": dict, "registry": dict}


def check_shape(document: Mapping[str, Any]) -> None:
    """Raise unless ``document`` has the top-level shape of docs/contracts.md's policy input."""
    for key, kind in _SHAPE.items():
        if not isinstance(document.get(key), kind):
            raise _fail(f"policy input: {key} must be {'an object' if kind is dict else 'a list'}")
    if not isinstance(document["plan"].get("resources"), list):
        raise _fail("policy input: plan.resources must be a list")


class _NotPlain(Exception):
    """Raised by :func:`_plain` at anything but plain JSON built from dict/list/str/int/bool/None/float."""


def _plain_str(value: str) -> str:
    if len(value) >= 19 and value[4:5] == "-" and _RFC3339.match(value):
        return _timestamp(value)
    return value


def _plain_float(value: float) -> float | int:
    if not math.isfinite(value):
        raise _NotPlain
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _plain(value: Any) -> Any:
    """:func:`_normalise` for plain JSON values (what json.loads and the plan builder produce), without
    tracking where each value sits and with leaves handled inline: about twice as fast. Anything else
    (another Mapping, a tuple, a datetime, a bad key or number) raises :class:`_NotPlain`, and the caller
    starts again with :func:`_normalise`, which converts it or names where it is."""
    kind = type(value)
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            t = type(item)
            if t is str:
                out[key] = _plain_str(item) if len(item) >= 19 else item
            elif t is int or t is bool or item is None:
                out[key] = item
            elif t is float:
                out[key] = _plain_float(item)
            else:
                out[key] = _plain(item)
        return out
    if kind is list:
        items: list[Any] = []
        for item in value:
            t = type(item)
            if t is str:
                items.append(_plain_str(item) if len(item) >= 19 else item)
            elif t is int or t is bool or item is None:
                items.append(item)
            elif t is float:
                items.append(_plain_float(item))
            else:
                items.append(_plain(item))
        return items
    if kind is str:
        return _plain_str(value)
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return _plain_float(value)
    raise _NotPlain


def normalise_input(document: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-only copy of the policy input with every RFC 3339 timestamp in UTC ``+00:00`` form."""
    if not isinstance(document, Mapping):
        raise _fail("policy input must be an object")
    try:
        result = _plain(document)
    except (_NotPlain, RecursionError):
        result = _normalise(document, None)
    assert isinstance(result, dict)
    return result


# --------------------------------------------------------------------------------------------------
# the derived index (docs/contracts.md, "Derived index")
#
# rego-cpp walks a list at roughly 5-20 µs per element and does not memoise function calls, so a pack
# that scans 1,000 resources once per rule pays seconds. The engine therefore adds ``index``: positions
# of resources and changes grouped by raw field values. It carries no policy (no "is prod", no "is
# tag-only"): rules decide per group on a representative and then expand the group's positions.


def _key(value: Any) -> tuple[str, Any]:
    """A hashable stand-in for one JSON value: equal keys only for equal values of the same JSON type
    (so 1 and 1.0, or true and 1, never share a group: finer groups are always safe)."""
    kind = type(value)
    if kind is str:
        return ("s", value)
    if kind is bool:
        return ("b", value)
    if kind is int:
        return ("i", value)
    if value is None:
        return ("n", None)
    return ("j", json.dumps(value, sort_keys=True, separators=(",", ":")))


def _as_list(value: Any) -> list[Any]:
    """Python twin of ``util.as_list``: lists stay, null is empty, anything else is one item."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _changed_paths_key(change: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    # Everything util.risk's tag_only reads: the set of `path` values of `changed` (an item without a
    # path, or not an object, is kept as itself so it never merges with a path).
    items = _as_list(change.get("changed", []))
    paths = {
        _key(x["path"]) if isinstance(x, Mapping) and "path" in x else ("x", json.dumps(x, sort_keys=True))
        for x in items
    }
    return tuple(sorted(paths))


_MISSING = ("m", None)


def _field(row: Mapping[str, Any], name: str) -> tuple[str, Any]:
    # A missing key and a null are different to Rego (undefined vs null): keep them apart.
    return _key(row[name]) if name in row else _MISSING


def _groups(rows: Sequence[Mapping[str, Any]], key: Any, singletons: bool) -> list[dict[str, list[int]]]:
    if singletons:
        return [{"changes": [i]} for i in range(len(rows))]
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(key(row), []).append(i)
    return [{"changes": positions} for positions in groups.values()]


def derive_index(document: Mapping[str, Any], *, singletons: bool = False) -> dict[str, Any]:
    """The ``index`` of a (normalised, shape-checked) policy input; positions ascend within each group.

    - ``resources_by_type``: ``{type: [i, ...]}``, positions in ``plan.resources`` (string types only);
    - ``bucket_companions``: ``{"project|stack|bucket": [i, ...]}``, resources by their ``bucket`` input
      (absent or null: ``""``), keyed as ``lib.s3``'s ``scope_key`` (resources whose key is not text left out);
    - ``change_types``: ``[{"changes": [i, ...]}]``, changes grouped by ``type``;
    - ``change_stacks``: changes grouped by (``project``, ``stack``);
    - ``change_classes``: changes grouped by (``type``, ``action``, ``environment``, set of ``changed[].path``).
    Groups keep the order in which their first change appears. ``singletons`` puts every change in a
    group of its own (what rules see is then per change, as without an index; differential tests).
    """
    by_type: dict[str, list[int]] = {}
    for i, resource in enumerate(document["plan"]["resources"]):
        kind = resource.get("type") if isinstance(resource, Mapping) else None
        if isinstance(kind, str):
            by_type.setdefault(kind, []).append(i)
    companions: dict[str, list[int]] = {}
    for i, resource in enumerate(document["plan"]["resources"]):
        key = _bucket_key(resource)
        if key is not None:
            companions.setdefault(key, []).append(i)
    changes = [c if isinstance(c, Mapping) else {} for c in document["changes"]]
    return {
        "resources_by_type": by_type,
        "bucket_companions": companions,
        "change_types": _groups(changes, lambda c: _field(c, "type"), singletons),
        "change_stacks": _groups(changes, lambda c: (_field(c, "project"), _field(c, "stack")), singletons),
        "change_classes": _groups(
            changes,
            lambda c: (_field(c, "type"), _field(c, "action"), _field(c, "environment"), _changed_paths_key(c)),
            singletons,
        ),
    }


def _bucket_key(resource: Any) -> str | None:
    """Python twin of ``lib.s3``'s ``scope_key(r, util.input_value(r, "bucket", ""))``: None when Rego's
    concat would be undefined (a non-string part, or inputs that are not an object)."""
    if not isinstance(resource, Mapping):
        return None
    inputs = resource.get("inputs", {})
    if not isinstance(inputs, Mapping):
        return None
    ref = inputs.get("bucket")
    parts = [resource.get("project", ""), resource.get("stack", ""), "" if ref is None else ref]
    return "|".join(parts) if all(isinstance(p, str) for p in parts) else None


def prepare_input(document: Mapping[str, Any]) -> dict[str, Any]:
    """What an engine evaluates: the normalised, shape-checked input plus its derived ``index``.

    An ``index`` the caller supplied is replaced: only the engine's own derivation is trusted.
    """
    prepared = normalise_input(document)
    check_shape(prepared)
    prepared["index"] = derive_index(prepared)
    return prepared


# --------------------------------------------------------------------------------------------------
# reading one engine's JSON answer


def _package_doc(root: Mapping[str, Any], package: str) -> Any:
    node: Any = root
    for part in package.split(".")[1:]:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _results_of(rule: RulePackage, doc: Mapping[str, Any]) -> Iterator[PolicyResult]:
    meta = rule.metadata
    for kind in rule.kinds:
        items = doc.get(kind)
        if items is None:
            raise _fail(f"rule package {rule.package} ({meta.id}): {kind} is undefined")
        if not isinstance(items, list):
            raise _fail(f"rule package {rule.package} ({meta.id}): {kind} is not a set")
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("msg"), str):
                raise _fail(f"rule package {rule.package} ({meta.id}): {kind} item without a msg: {item!r:.200}")
            resource = item.get("resource")
            if resource is not None and not isinstance(resource, str):
                raise _fail(f"rule package {rule.package} ({meta.id}): resource must be a string")
            yield PolicyResult(
                rule_id=meta.id,
                package=rule.package,
                severity=meta.severity,
                status=kind,
                message=item["msg"],
                resource=resource,
                details={k: v for k, v in item.items() if k not in ("msg", "resource")},
                controls=list(meta.controls),
                remediation=meta.remediation,
            )


def answered_packages(pack: PolicyPack) -> list[str]:
    """What one evaluation answers: every rule package, then the risk package."""
    return [*sorted(pack.rules), RISK_PACKAGE]


def pack_areas(pack: PolicyPack) -> list[str]:
    """``glassbox.<area>`` above every package answered (``glassbox.network``, ..., ``glassbox.risk``)."""
    return sorted({".".join(p.split(".")[:2]) for p in answered_packages(pack)})


def interpret(root: Any, pack: PolicyPack, engine: str) -> Evaluation:
    """Turn the value of ``data.glassbox`` into an :class:`Evaluation`, checking every package answered."""
    if not isinstance(root, Mapping):
        raise _fail(f"data.{ROOT_PACKAGE} is undefined or not an object")
    results: list[PolicyResult] = []
    for package, rule in sorted(pack.rules.items()):
        doc = _package_doc(root, package)
        if not isinstance(doc, Mapping):
            raise _fail(f"rule package {package} ({rule.metadata.id}) did not evaluate")
        results.extend(_results_of(rule, doc))
    risk = _package_doc(root, RISK_PACKAGE)
    if not isinstance(risk, Mapping):
        raise _fail(f"{RISK_PACKAGE} did not evaluate")
    tier = risk.get("tier")
    reasons = risk.get("reasons")
    if tier not in {t.value for t in RiskTier}:
        raise _fail(f"{RISK_PACKAGE}.tier is {tier!r}, not one of low|medium|high|critical")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise _fail(f"{RISK_PACKAGE}.reasons is not a set of strings")
    results.sort(key=lambda r: (r.status, r.rule_id, r.resource or "", r.message))
    return Evaluation(
        results=results,
        tier=RiskTier(tier),
        reasons=sorted(reasons),
        engine=engine,
        pack_digest=pack.digest,
    )


# --------------------------------------------------------------------------------------------------
# regopy (rego-cpp in-process)


def _regopy() -> Any:
    try:
        import regopy
    except ImportError as exc:  # pragma: no cover - regopy is a declared dependency
        raise _fail(f"regopy is not importable: {exc}") from exc
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
    regopy = _regopy()
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


class RegopyEngine:
    """rego-cpp through regopy: compile once, evaluate many (bundle), or a reused interpreter.

    ``mode``: ``"bundle"`` (compiled bundle), ``"interpreter"`` (one interpreter, recompiling the query
    each time), or ``"auto"`` (bundle, unless it fails a canary evaluation against the interpreter).
    One engine is safe to share between threads: evaluations are serialised by a lock.
    """

    def __init__(self, pack: PolicyPack, *, mode: Literal["auto", "bundle", "interpreter"] = "auto") -> None:
        self._pack = pack
        self._lock = threading.Lock()
        self._regopy = _regopy()
        self._interp = self._new_interpreter(pack.policy_modules)
        self._batches = area_batches(pack, self.areas)
        batch_source = _batch_module(self._batches)
        if batch_source:
            try:
                self._interp.add_module(f"{BATCH_PACKAGE}.rego", batch_source)
            except Exception as exc:  # RegoError: an area name that is not a plain identifier
                raise _fail(f"cannot batch the pack's areas: {first_line(exc)}") from None
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

    @property
    def pack(self) -> PolicyPack:
        return self._pack

    def _new_interpreter(self, modules: Sequence[Any]) -> Any:
        interp = self._regopy.Interpreter()
        # rego-cpp prints compiler errors to stdout unless told not to; errors reach us as data anyway.
        # Per interpreter only: set_default_log_level aborts the process when called a second time.
        interp.log_level = self._regopy.LogLevel.NONE
        for module in modules:
            try:
                interp.add_module(module.path, module.source)
            except Exception as exc:  # RegoError: the module does not parse
                raise _fail(f"{module.path} does not compile: {first_line(exc)}") from None
        return interp

    @property
    def packages(self) -> list[str]:
        return answered_packages(self._pack)

    @property
    def areas(self) -> list[str]:
        return pack_areas(self._pack)

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
            raise _fail(f"policy pack does not compile: {first_line(exc)}") from None
        if not bundle.ok():
            raise _fail("policy pack does not compile (bundle not ok)")
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
            raise _fail("compiled bundle disagrees with the interpreter on a canary input")

    def _checked(self, output: Any, what: str, areas: Sequence[str]) -> Any:
        regopy = self._regopy
        # regopy does not notice a NULL output; touching one (str, node) crashes the process.
        if not output._impl:
            detail = ""
            with contextlib.suppress(Exception):  # diagnostics only
                detail = regopy.rego_shared.rego_get_error(self._interp._impl)
            raise _fail(f"evaluation of {what} returned no output: {detail[:500] or 'unknown error'}")
        if not output.ok():
            culprits = self._culprits(areas)
            raise _fail(f"evaluation of {what} failed: {'; '.join(error_messages(output))}{culprits}")
        return output.results

    def _raw(self, document: dict[str, Any], *, bundle: bool) -> dict[str, Any]:
        """``data.glassbox`` restricted to the rule packages and the risk package, as one JSON document."""
        try:
            self._interp.set_input(
                rego_input(self._regopy, document) if self.fast_input else self._regopy.Input(document)
            )
        except Exception as exc:  # RegoError: the input could not be converted
            raise _fail(f"evaluation failed: {first_line(exc)}") from None
        root: dict[str, Any] = {}
        if not bundle:
            # One query (one compilation) answering every area, but never data.glassbox.lib.
            query = ", ".join(f'"{a.split(".", 1)[1]}": data.{a}' for a in self.areas)
            try:
                output = self._interp.query(f"{BINDING} = {{{query}}}")
            except Exception as exc:  # RegoError, or JSONDecodeError when rego-cpp writes invalid JSON
                raise _fail(f"evaluation failed: {first_line(exc)}") from None
            results = self._checked(output, f"data.{ROOT_PACKAGE}", [ROOT_PACKAGE])
            value = results[0].bindings.get(BINDING) if results else None
            if not isinstance(value, Mapping):
                raise _fail(f"data.{ROOT_PACKAGE} is undefined or not an object")
            return _restrict(value, self.packages)
        for index, batch in enumerate(self._batches):
            what = " + ".join(f"data.{a}" for a in batch)
            try:
                output = self._interp.query_bundle_entrypoint(self._bundle, self._batch_entrypoint(index))
            except Exception as exc:  # RegoError, or JSONDecodeError when rego-cpp writes invalid JSON
                raise _fail(f"evaluation of {what} failed: {first_line(exc)}") from None
            results = self._checked(output, what, batch)
            value = results[0].expressions[0] if results and results[0].expressions else None
            if len(batch) == 1:
                value = {batch[0].split(".", 1)[1]: value}
            for area in batch:
                part = value.get(area.split(".", 1)[1]) if isinstance(value, Mapping) else None
                if not isinstance(part, Mapping):
                    raise _fail(f"data.{area} is undefined or not an object")
                _place(root, area, part)
        return _restrict(root, self.packages)

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
            raise _fail("prepared policy input without an index")
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
                raise _fail(f"{ref}: {first_line(exc)}") from None
            if not output._impl or not output.ok():
                raise _fail(f"{ref}: {'; '.join(error_messages(output)) if output._impl else 'no output'}")
            if not output.results or BINDING not in output.results[0].bindings:
                raise _fail(f"{ref} is undefined")
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


def _place(root: dict[str, Any], package: str, value: Any) -> None:
    """Put ``value`` at ``package``'s path below the root package (``glassbox.risk`` → ``root["risk"]``)."""
    node = root
    parts = package.split(".")[1:]
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _restrict(whole: Mapping[str, Any], packages: Sequence[str]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for package in packages:
        value = _package_doc(whole, package)
        if value is not None:
            _place(root, package, value)
    return root


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------------
# regorus (Rust) in-process

REGORUS_DISTRIBUTION = "gordon-to-regorus"


def _regorus() -> Any:
    try:
        import regorus
    except ImportError as exc:
        raise _fail(
            f"the regorus engine is not installed ({exc}); install glassbox[regorus] or use GLASSBOX_REGO_ENGINE=regopy"
        ) from None
    return regorus


def regorus_available() -> bool:
    try:
        _regorus()
    except EngineError:
        return False
    return True


def _regorus_message(exc: BaseException) -> str:
    """regorus errors carry a source excerpt and, often, a Rust backtrace: keep the located message only."""
    text = str(exc).split("Stack backtrace:", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip() and set(line.strip()) - {"|", "^", " "}]
    return " ".join(lines)[:500] or type(exc).__name__


def _fatal(exc: BaseException) -> bool:
    # A Rust panic reaches Python as pyo3's PanicException, a BaseException: it is an engine error like any
    # other, but an interrupt or exit is not ours to swallow.
    return isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit)


class RegorusEngine:
    """regorus through its Python binding (``import regorus``; distribution ``gordon-to-regorus``).

    Every area of the pack is answered by one query, so the complete rules the areas share (the risk
    assessment, the library's input-sized rules) are evaluated once. The binding's engines must stay on
    the thread that made them, so each thread gets its own, compiled from the pack's modules (a few
    milliseconds); the first is compiled at construction so a pack that does not compile fails here.
    """

    def __init__(self, pack: PolicyPack) -> None:
        self._pack = pack
        self._regorus = _regorus()
        self._local = threading.local()
        from importlib import metadata

        try:
            version = metadata.version(REGORUS_DISTRIBUTION)
        except metadata.PackageNotFoundError:
            version = "unknown"
        self._name = f"regorus-{version}"
        fields = ", ".join(f'"{a.split(".", 1)[1]}": data.{a}' for a in self.areas)
        self._query = f"{BINDING} := {{{fields}}}"
        self._engine()

    @property
    def name(self) -> str:
        return self._name

    @property
    def pack(self) -> PolicyPack:
        return self._pack

    @property
    def packages(self) -> list[str]:
        return answered_packages(self._pack)

    @property
    def areas(self) -> list[str]:
        return pack_areas(self._pack)

    def _engine(self) -> Any:
        engine = getattr(self._local, "engine", None)
        if engine is not None:
            return engine
        engine = self._regorus.Engine()
        for module in self._pack.policy_modules:
            try:
                engine.add_policy(module.path, module.source)
            except BaseException as exc:
                if _fatal(exc):
                    raise
                raise _fail(f"{module.path} does not compile: {_regorus_message(exc)}") from None
        self._local.engine = engine
        return engine

    def _answer(self, engine: Any, query: str) -> Any:
        try:
            output = engine.eval_query_as_json(query)
        except BaseException as exc:
            if _fatal(exc):
                raise
            raise _fail(f"evaluation failed: {_regorus_message(exc)}") from None
        try:
            answer = json.loads(output)
            result = answer["result"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return None  # undefined: regorus answers {} without a result
        if not isinstance(result, list) or len(result) != 1 or not isinstance(result[0], Mapping):
            raise _fail(f"evaluation of {query[:80]} gave {len(result) if isinstance(result, list) else 0} results")
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
            raise _fail(f"policy input is not JSON: {exc}") from None
        except BaseException as exc:
            if _fatal(exc):
                raise
            raise _fail(f"evaluation failed: {_regorus_message(exc)}") from None

    def _raw(self, document: dict[str, Any]) -> dict[str, Any]:
        engine = self._engine()
        self._set_input(engine, document)
        value = self._answer(engine, self._query)
        if not isinstance(value, Mapping):
            raise _fail(f"data.{ROOT_PACKAGE} is undefined or not an object")
        return _restrict(value, self.packages)

    def evaluate_raw(self, input: Mapping[str, Any]) -> Any:
        """``data.glassbox`` for this input, restricted to the rule and risk packages."""
        return self._raw(prepare_input(input))

    def evaluate(self, input: Mapping[str, Any]) -> Evaluation:
        return interpret(self.evaluate_raw(input), self._pack, self.name)

    def evaluate_prepared(self, document: dict[str, Any]) -> Evaluation:
        """Evaluate a document exactly as given (normalised, with an ``index``); see RegopyEngine."""
        check_shape(document)
        if not isinstance(document.get("index"), dict):
            raise _fail("prepared policy input without an index")
        return interpret(self._raw(document), self._pack, self.name)

    def query(self, ref: str, input: Mapping[str, Any] | None = None) -> Any:
        """Evaluate one reference (e.g. ``data.glassbox.network.gb_net_001``)."""
        try:
            document = prepare_input(input or {})
        except EngineError:
            document = normalise_input(input or {})
        engine = self._engine()
        self._set_input(engine, document)
        value = self._answer(engine, f"{BINDING} := {ref}")
        if value is None:
            raise _fail(f"{ref} is undefined")
        return value


# --------------------------------------------------------------------------------------------------
# the opa binary


class OpaEngine:
    """``opa eval --format json`` over the pack's policy modules; one process per evaluation."""

    def __init__(self, pack: PolicyPack, *, binary: str | None = None, timeout: float = 120.0) -> None:
        found = binary or shutil.which("opa")
        if not found:
            raise _fail("the opa binary is not on PATH")
        self._binary = found
        self._pack = pack
        self._timeout = timeout

    @property
    def name(self) -> str:
        return "opa"

    @property
    def pack(self) -> PolicyPack:
        return self._pack

    def evaluate_raw(self, input: Mapping[str, Any]) -> Any:
        document = prepare_input(input)
        args = [self._binary, "eval", "--format", "json", "--stdin-input"]
        for module in self._pack.policy_modules:
            args += ["--data", str(self._pack.root / module.path)]
        args.append(f"data.{ROOT_PACKAGE}")
        try:
            proc = subprocess.run(
                args,
                input=json.dumps(document),
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _fail(f"opa eval could not run: {exc}") from None
        try:
            answer = json.loads(proc.stdout) if proc.stdout.strip() else None
        except json.JSONDecodeError:
            raise _fail(f"opa eval wrote non-JSON output (exit {proc.returncode})") from None
        if proc.returncode != 0 or not isinstance(answer, dict) or answer.get("errors"):
            errors = answer.get("errors") if isinstance(answer, dict) else None
            detail = json.dumps(errors)[:500] if errors else proc.stderr.strip()[:500]
            raise _fail(f"opa eval failed (exit {proc.returncode}): {detail}")
        try:
            return answer["result"][0]["expressions"][0]["value"]
        except (KeyError, IndexError, TypeError):
            raise _fail(f"data.{ROOT_PACKAGE} is undefined") from None

    def evaluate(self, input: Mapping[str, Any]) -> Evaluation:
        return interpret(self.evaluate_raw(input), self._pack, self.name)


# --------------------------------------------------------------------------------------------------
# choosing an engine


def opa_available() -> bool:
    return shutil.which("opa") is not None


# Compiled regopy engines by pack digest: a process that checks many PRs against one base pack (the
# pre-flight, the demo, a CI runner) compiles it once. The digest covers every module's bytes, and an
# engine reads nothing of the pack but its modules and rule metadata, so equal digests are equal engines.
_ENGINES: collections.OrderedDict[tuple[str, str], RegopyEngine | RegorusEngine] = collections.OrderedDict()
_ENGINES_LOCK = threading.Lock()
_ENGINES_KEPT = 4

ENGINE_CHOICES = ("regopy", "regorus", "opa", "auto")


def _kept_engine(kind: str, pack: PolicyPack) -> RegopyEngine | RegorusEngine:
    key = (kind, pack.digest)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is not None:
            _ENGINES.move_to_end(key)
            return engine
    engine = RegorusEngine(pack) if kind == "regorus" else RegopyEngine(pack)
    if not pack.digest:
        return engine
    with _ENGINES_LOCK:
        _ENGINES[key] = engine
        while len(_ENGINES) > _ENGINES_KEPT:
            _ENGINES.popitem(last=False)
    return engine


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
        return _kept_engine("regopy", pack)
    if choice == "regorus":
        return _kept_engine("regorus", pack)
    raise _fail(f"unknown Rego engine {choice!r}; use one of {', '.join(ENGINE_CHOICES)}")


def timed(engine: PolicyEngine, input: Mapping[str, Any]) -> tuple[Evaluation, float]:
    """An evaluation and its wall time in milliseconds (for bench scripts and logs)."""
    start = time.perf_counter()
    evaluation = engine.evaluate(input)
    return evaluation, (time.perf_counter() - start) * 1000


__all__ = [
    "Evaluation",
    "OpaEngine",
    "PolicyEngine",
    "PolicyResult",
    "RegopyEngine",
    "RegorusEngine",
    "check_shape",
    "derive_index",
    "interpret",
    "make_engine",
    "normalise_input",
    "opa_available",
    "prepare_input",
    "regorus_available",
    "timed",
]
