"""Evaluating the Rego policy pack over one policy input, and the structured results it yields.

The pack (``bot.policy.pack``) is evaluated in one query of ``data.glassbox``; each rule package's
``deny`` / ``warn`` set and the risk package's ``tier`` / ``reasons`` are picked out of that one JSON
document and turned into records. Two engines implement :class:`PolicyEngine`:

* :class:`RegopyEngine` (default): rego-cpp in-process through ``regopy``. The pack is compiled once
  (a bundle from ``Interpreter.build``) and evaluated many times; if the bundle misbehaves on a canary
  input, a reused interpreter is used instead.
* :class:`OpaEngine`: the ``opa`` binary (``opa eval --format json``) when it is on PATH.

Failing closed (I5): any engine error, a NULL/undefined/non-JSON result, a rule package that did not
evaluate or a malformed result raises :class:`bot.errors.EngineError` with ``engine="rego"``; nothing is
ever dropped silently. Engines are asked for JSON only, never text.
"""

from __future__ import annotations

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

from pydantic import Field

from bot.errors import EngineError
from bot.policy.pack import ENGINE, RISK_PACKAGE, ROOT_PACKAGE, PolicyPack, RulePackage
from bot.records import Finding, FindingStatus, Record, RiskTier

QUERY = f"x = data.{ROOT_PACKAGE}"
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


def _normalise(value: Any, path: str) -> Any:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(f"policy input key {key!r} at {path or '(top)'} is not a string")
            out[key] = _normalise(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, list | tuple):
        return [_normalise(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _fail(f"policy input {path}: timestamp without a timezone")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return _timestamp(value) if _RFC3339.match(value) else value
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(f"policy input {path}: {value} is not a JSON number")
        # Pulumi hands whole numbers over as floats; Rego compares 22 and 22.0 as equal, but keep JSON tidy.
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    raise _fail(f"policy input {path}: {type(value).__name__} is not JSON")


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


def normalise_input(document: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-only copy of the policy input with every RFC 3339 timestamp in UTC ``+00:00`` form."""
    if not isinstance(document, Mapping):
        raise _fail("policy input must be an object")
    result = _normalise(document, "")
    assert isinstance(result, dict)
    return result


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
        self._bundle: Any = None
        self.fallback_reason: str | None = None
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

    def _build(self) -> Any:
        try:
            bundle = self._interp.build(QUERY)
        except Exception as exc:
            raise _fail(f"policy pack does not compile: {first_line(exc)}") from None
        if not bundle.ok():
            raise _fail("policy pack does not compile (bundle not ok)")
        return bundle

    def _canary(self) -> None:
        # The same small input through both paths must give the same document.
        canary = normalise_input(
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

    def _raw(self, document: dict[str, Any], *, bundle: bool) -> Any:
        regopy = self._regopy
        try:
            self._interp.set_input(regopy.Input(document))
            output = self._interp.query_bundle(self._bundle) if bundle else self._interp.query(QUERY)
        except Exception as exc:  # RegoError, or JSONDecodeError when rego-cpp writes invalid JSON
            raise _fail(f"evaluation failed: {first_line(exc)}") from None
        # regopy does not notice a NULL output; touching one (str, node) crashes the process.
        if not output._impl:
            detail = ""
            with contextlib.suppress(Exception):  # diagnostics only
                detail = regopy.rego_shared.rego_get_error(self._interp._impl)
            raise _fail(f"evaluation returned no output: {detail[:500] or 'unknown error'}")
        if not output.ok():
            raise _fail(f"evaluation failed: {'; '.join(error_messages(output))}{self._culprits(document)}")
        if not output.results or BINDING not in output.results[0].bindings:
            raise _fail(f"data.{ROOT_PACKAGE} is undefined")
        return output.results[0].bindings[BINDING]

    def _culprits(self, document: dict[str, Any]) -> str:
        """On failure only: which rule packages fail on their own (one query each)."""
        failing: list[str] = []
        for package in [*sorted(self._pack.rules), RISK_PACKAGE]:
            try:
                output = self._interp.query(f"x = data.{package}")
                if not output._impl or not output.ok():
                    failing.append(package)
            except Exception:
                failing.append(package)
        return f" (failing packages: {', '.join(failing)})" if failing else ""

    def evaluate_raw(self, input: Mapping[str, Any]) -> Any:
        """The JSON value of ``data.glassbox`` for this input (for diagnostics and differential tests)."""
        document = normalise_input(input)
        check_shape(document)
        with self._lock:
            return self._raw(document, bundle=self._bundle is not None)

    def evaluate(self, input: Mapping[str, Any]) -> Evaluation:
        return interpret(self.evaluate_raw(input), self._pack, self.name)

    def query(self, ref: str, input: Mapping[str, Any] | None = None) -> Any:
        """Evaluate one reference (e.g. ``data.glassbox.network.gb_net_001``) through the interpreter."""
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


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


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
        document = normalise_input(input)
        check_shape(document)
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


def make_engine(pack: PolicyPack, name: str | None = None) -> PolicyEngine:
    """``regopy`` (default), ``opa``, or ``auto`` (opa when on PATH). ``GLASSBOX_REGO_ENGINE`` sets the default."""
    choice = (name or os.environ.get("GLASSBOX_REGO_ENGINE") or "regopy").lower()
    if choice == "opa" or (choice == "auto" and opa_available()):
        return OpaEngine(pack)
    if choice in ("regopy", "auto"):
        return RegopyEngine(pack)
    raise _fail(f"unknown Rego engine {choice!r}; use regopy, opa or auto")


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
    "check_shape",
    "interpret",
    "make_engine",
    "normalise_input",
    "opa_available",
    "timed",
]
