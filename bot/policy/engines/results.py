"""What every engine shares: the records an evaluation yields, the engine protocol, and reading an answer.

An engine hands back the JSON value of ``data.glassbox`` (restricted to the rule packages and the risk
package); :func:`interpret` picks each rule package's ``deny`` / ``warn`` set and the risk package's
``tier`` / ``reasons`` out of it and turns them into records, failing closed (:func:`fail`) on a package
that did not evaluate or a malformed result.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import Field

from bot.errors import EngineError
from bot.policy.pack import ENGINE, RISK_PACKAGE, ROOT_PACKAGE, PolicyPack, RulePackage
from bot.records import Finding, FindingStatus, Record, RiskTier

# The variable every engine query binds its answer to (``x = data.glassbox...``).
BINDING = "x"


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


def fail(message: str) -> EngineError:
    """The engine error every failure of an engine raises (fail closed, I5)."""
    return EngineError(message, engine=ENGINE)


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
            raise fail(f"rule package {rule.package} ({meta.id}): {kind} is undefined")
        if not isinstance(items, list):
            raise fail(f"rule package {rule.package} ({meta.id}): {kind} is not a set")
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("msg"), str):
                raise fail(f"rule package {rule.package} ({meta.id}): {kind} item without a msg: {item!r:.200}")
            resource = item.get("resource")
            if resource is not None and not isinstance(resource, str):
                raise fail(f"rule package {rule.package} ({meta.id}): resource must be a string")
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
        raise fail(f"data.{ROOT_PACKAGE} is undefined or not an object")
    results: list[PolicyResult] = []
    for package, rule in sorted(pack.rules.items()):
        doc = _package_doc(root, package)
        if not isinstance(doc, Mapping):
            raise fail(f"rule package {package} ({rule.metadata.id}) did not evaluate")
        results.extend(_results_of(rule, doc))
    risk = _package_doc(root, RISK_PACKAGE)
    if not isinstance(risk, Mapping):
        raise fail(f"{RISK_PACKAGE} did not evaluate")
    tier = risk.get("tier")
    reasons = risk.get("reasons")
    if tier not in {t.value for t in RiskTier}:
        raise fail(f"{RISK_PACKAGE}.tier is {tier!r}, not one of low|medium|high|critical")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise fail(f"{RISK_PACKAGE}.reasons is not a set of strings")
    results.sort(key=lambda r: (r.status, r.rule_id, r.resource or "", r.message))
    return Evaluation(
        results=results,
        tier=RiskTier(tier),
        reasons=sorted(reasons),
        engine=engine,
        pack_digest=pack.digest,
    )


def place(root: dict[str, Any], package: str, value: Any) -> None:
    """Put ``value`` at ``package``'s path below the root package (``glassbox.risk`` → ``root["risk"]``)."""
    node = root
    parts = package.split(".")[1:]
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def restrict(whole: Mapping[str, Any], packages: Sequence[str]) -> dict[str, Any]:
    """Only ``packages`` of ``whole`` (a value of ``data.glassbox``), each at its own path."""
    root: dict[str, Any] = {}
    for package in packages:
        value = _package_doc(whole, package)
        if value is not None:
            place(root, package, value)
    return root


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


class PackAnswers:
    """An in-process engine's pack, and what one evaluation of it answers (packages, and the areas above them)."""

    _pack: PolicyPack

    @property
    def pack(self) -> PolicyPack:
        return self._pack

    @property
    def packages(self) -> list[str]:
        return answered_packages(self._pack)

    @property
    def areas(self) -> list[str]:
        return pack_areas(self._pack)
