"""glassbox's Rego policy pack as Pulumi CrossGuard policies: the same rules, the same answers, under `pulumi preview`.

The policies here evaluate ``policy-pack/`` (the directory above this one) through ``bot.policy.engines``, the
engine ``glassbox check`` uses; no rule is re-written in Python. Each CrossGuard call becomes a policy input of
docs/contracts.md's shape:

* ``plan.resources`` are the stack's resources mapped to the contract's resource record (project and stack from
  the URN, ``environment`` from the stack config ``glassbox:environment`` else the stack name, camelCase props,
  whole floats as ints, secrets as ``[secret sha256:<hex>]``, unknowns as ``[unknown]``), exactly as
  ``bot.plan`` records them under the mock runtime;
* everything only glassbox knows is absent: no ``changes`` (CrossGuard shows the planned state, not base→head),
  no changed ``files``, no ``evidence``, a human ``pr`` with no agent and no ``registry.agent``.

So the rules of the change, scope, evidence and governance areas cannot fire here (see :data:`GLASSBOX_ONLY_AREAS`);
the resource rules (network, data, identity) answer as in ``glassbox check``.

Policies (a deny is a mandatory violation, a warn an advisory one; every message starts with the rule id):

* ``glassbox-<area>`` / ``glassbox-<area>-advisory``: resource validators for the rules of :data:`PER_RESOURCE_RULES`,
  whose verdict on a resource never depends on another resource (an ingress rule, a policy document, a flag);
* ``glassbox-stack`` / ``glassbox-stack-advisory``: one stack validator for every other rule: the cross-resource
  ones (a bucket without a public access block, encryption or versioning resource) and any rule not yet classified,
  so a new rule is enforced from the day it lands, at stack level, without editing this file.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from bot.errors import GlassboxError
from bot.plan.mockcloud import mock_id, urn_type
from bot.plan.sandbox import normalize
from bot.policy.engines import make_engine
from bot.policy.engines.results import Evaluation, PolicyEngine, PolicyResult
from bot.policy.pack import PolicyPack, load_pack
from bot.records import RiskTier, digest
from bot.registry import GOVERNANCE_PATHS

PACK_NAME = "glassbox-crossguard"
PACK_DIR = Path(__file__).resolve().parent.parent  # policy-pack/
STACK_TYPE = "pulumi:pulumi:Stack"
ENVIRONMENT_KEY = "glassbox:environment"
CROSSGUARD_AUTHOR = "pulumi-crossguard"

# Pulumi's wire signatures (sdk/go/common/resource/properties.go): values are turned back into the wire form so
# that bot.plan.sandbox.normalize, the function that built the plan, digests them byte for byte the same way.
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a protocol constant, not a secret
_ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
_ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
_UNKNOWN = UNKNOWN_STRING_VALUE
_UNKNOWNS = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)

# Rule areas whose inputs only glassbox has, and what they read: under CrossGuard these rules cannot fire.
GLASSBOX_ONLY_AREAS: dict[str, str] = {
    "change": "the base-to-head resource changes and the agent's declared expected_changes (GB-CHG-*)",
    "scope": "the PR's agent and its registry scope: stacks, resource types, risk ceiling (GB-SCOPE-*)",
    "evidence": "the agent's evidence record: provenance, justification, digest (GB-EVD-*)",
    "governance": "the paths the PR changes: policy pack, registry, CI, CODEOWNERS (GB-GOV-*)",
}

# Rules whose verdict on one resource depends on that resource alone, by area: each gets a resource validator.
# The rest of the pack (cross-resource rules, rules added later) is reported by the stack validator.
PER_RESOURCE_RULES: dict[str, frozenset[str]] = {
    "network": frozenset({"GB-NET-001", "GB-NET-002", "GB-NET-003", "GB-NET-004", "GB-NET-005"}),
    "data": frozenset(
        {"GB-DATA-001", "GB-DATA-002", "GB-DATA-006", "GB-DATA-007", "GB-DATA-008", "GB-DATA-009", "GB-DATA-010"}
    ),
    "identity": frozenset({"GB-IAM-001", "GB-IAM-002", "GB-IAM-003", "GB-IAM-004", "GB-IAM-005"}),
}

DESCRIPTION = (
    "glassbox's Rego policy pack (policy-pack/) evaluated by glassbox's own engine under CrossGuard: each deny is "
    "a mandatory violation and each warn an advisory one, the message led by the rule id. The resource rules "
    "(GB-NET, GB-DATA, GB-IAM) answer as in `glassbox check`. The change, scope, evidence and governance rules "
    "(GB-CHG, GB-SCOPE, GB-EVD, GB-GOV) cannot fire here: they read the base-to-head changes, the pull request, "
    "the agent's registry entry and its evidence record, which only `glassbox check` has."
)

_SEVERITY = {t: Severity(t.value) for t in RiskTier}


# --------------------------------------------------------------------------------------------------
# CrossGuard resources → docs/contracts.md resource records


def _wire(value: Any) -> Any:
    """A CrossGuard property value back in Pulumi's wire form, reading through the SDK's proxies.

    The proxies raise on an unknown value; reading key by key keeps the unknown as its sentinel instead.
    """
    if isinstance(value, Secret):
        return {_SIG_KEY: _SECRET_SIG, "value": _wire(value.value)}
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        kind = _ASSET_SIG if isinstance(value, pulumi.Asset) else _ARCHIVE_SIG
        body = {k: _wire(getattr(value, k)) for k in ("path", "text", "uri", "assets") if hasattr(value, k)}
        return {_SIG_KEY: kind, **body}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            try:
                out[str(key)] = _wire(value[key])
            except UnknownValueError:
                out[str(key)] = _UNKNOWN
        return out
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items: list[Any] = []
        for i in range(len(value)):
            try:
                items.append(_wire(value[i]))
            except UnknownValueError:
                items.append(_UNKNOWN)
        return items
    if isinstance(value, str) and value in _UNKNOWNS:
        return _UNKNOWN  # the plan knows one unknown, whatever its type
    return value


def inputs_of(props: Mapping[str, Any], secret_outputs: Iterable[str] = ()) -> dict[str, Any]:
    """The contract's ``inputs``: props in camelCase as CrossGuard gives them, normalised as the plan does.

    ``secret_outputs`` (the resource's ``additionalSecretOutputs``) are digested too: the analyzer hands a policy
    plaintext for secrets, so those names are the only secrets it can still tell apart.
    """
    wired = _wire(props)
    assert isinstance(wired, dict)
    for name in secret_outputs:
        if name in wired and not (isinstance(wired[name], dict) and wired[name].get(_SIG_KEY) == _SECRET_SIG):
            wired[name] = {_SIG_KEY: _SECRET_SIG, "value": wired[name]}
    normalised = normalize(wired)
    assert isinstance(normalised, dict)
    return normalised


def urn_stack_project(urn: str) -> tuple[str, str]:
    """(stack, project) of ``urn:pulumi:<stack>::<project>::<type>::<name>``."""
    parts = urn.split("::")
    if len(parts) < 4 or not parts[0].startswith("urn:pulumi:"):
        raise ValueError(f"not a Pulumi resource URN: {urn!r}")
    return parts[0].removeprefix("urn:pulumi:"), parts[1]


def stack_environment(stack: str) -> str:
    """``glassbox:environment`` from the stack's config when the CLI passed it to the pack, else the stack name."""
    try:
        value = pulumi.runtime.get_config(ENVIRONMENT_KEY)
    except Exception:  # no runtime settings in this process: the documented fallback applies
        value = None
    return value if isinstance(value, str) and value else stack


def _is_default_provider(urn: str | None, name: str | None) -> bool:
    return bool(name) and (name == "default" or str(name).startswith("default_")) and "pulumi:providers:" in (urn or "")


def counts(resource_type: str, name: str, urn: str) -> bool:
    """Whether the plan would hold this resource: never the root stack, never a default provider."""
    return resource_type != STACK_TYPE and not (
        resource_type.startswith("pulumi:providers:") and _is_default_provider(urn, name)
    )


def record(
    *,
    urn: str,
    resource_type: str,
    name: str,
    props: Mapping[str, Any],
    protect: bool = False,
    parent: str | None = None,
    provider_urn: str | None = None,
    provider_name: str | None = None,
    dependencies: Iterable[str] = (),
    secret_outputs: Iterable[str] = (),
    environment: str | None = None,
) -> dict[str, Any]:
    """One resource in docs/contracts.md's shape."""
    stack, project = urn_stack_project(urn)
    return {
        "urn": urn,
        "project": project,
        "stack": stack,
        "environment": environment or stack_environment(stack),
        "type": resource_type,
        "name": name,
        # as in the plan: a child of the stack has no parent, the default provider is no provider
        "parent": parent if parent and urn_type(parent) != STACK_TYPE else None,
        "provider": None if provider_urn is None or _is_default_provider(provider_urn, provider_name) else provider_urn,
        "protect": bool(protect),
        "dependencies": sorted({d for d in dependencies if urn_type(d) != STACK_TYPE}),
        "inputs": inputs_of(props, secret_outputs),
    }


def record_of_resource(resource: PolicyResource, environment: str | None = None) -> dict[str, Any]:
    """A stack validator's resource as a contract record."""
    opts = resource.opts
    parent = opts.parent if opts is not None and opts.parent else (resource.parent.urn if resource.parent else None)
    return record(
        urn=resource.urn,
        resource_type=resource.resource_type,
        name=resource.name,
        props=resource.props,
        protect=bool(opts.protect) if opts is not None else False,
        parent=parent,
        provider_urn=resource.provider.urn if resource.provider else None,
        provider_name=resource.provider.name if resource.provider else None,
        dependencies=[d.urn for d in resource.dependencies or []],
        secret_outputs=list(opts.additional_secret_outputs or []) if opts is not None else [],
        environment=environment,
    )


def record_of_args(args: ResourceValidationArgs, environment: str | None = None) -> dict[str, Any]:
    """A resource validator's resource as a contract record (CrossGuard gives it no dependencies)."""
    opts = args.opts
    return record(
        urn=args.urn,
        resource_type=args.resource_type,
        name=args.name,
        props=args.props,
        protect=bool(opts.protect) if opts is not None else False,
        parent=opts.parent if opts is not None else None,
        provider_urn=args.provider.urn if args.provider else None,
        provider_name=args.provider.name if args.provider else None,
        secret_outputs=list(opts.additional_secret_outputs or []) if opts is not None else [],
        environment=environment,
    )


def resolve_bucket_references(records: list[dict[str, Any]], resources: Sequence[PolicyResource]) -> None:
    """Fill a companion's unknown ``bucket`` input from the bucket it depends on, as the plan's mock cloud would.

    In a preview a new bucket's id is unknown, so its public access block, encryption and versioning resources
    would name no bucket and the cross-resource rules would deny a bucket that has them all. The plan's mock
    cloud answers a bucket's id with its name (``bot.plan.mockcloud.mock_id``); this does the same from the
    property dependency CrossGuard reports.
    """
    by_urn = {r["urn"]: r for r in records}
    for resource in resources:
        mine = by_urn.get(resource.urn)
        deps = (resource.property_dependencies or {}).get("bucket") or []
        if mine is None or mine["inputs"].get("bucket") != "[unknown]" or len(deps) != 1:
            continue
        target = by_urn.get(deps[0].urn)
        if target is not None:
            mine["inputs"]["bucket"] = mock_id(target["urn"], target["type"], target["inputs"])


# --------------------------------------------------------------------------------------------------
# policy input and evaluation


def policy_input(resources: list[dict[str, Any]], now: datetime | None = None) -> dict[str, Any]:
    """docs/contracts.md's policy input for resources alone: everything glassbox-only is absent."""
    ordered = sorted(resources, key=lambda r: str(r["urn"]))
    stacks = sorted({(r["project"], r["stack"], r["environment"]) for r in ordered})
    return {
        "plan": {
            "digest": digest(ordered),
            "stacks": [{"project": p, "stack": s, "environment": e} for p, s, e in stacks],
            "resources": ordered,
        },
        "changes": [],
        "files": {"changed_paths": [], "governance_paths": []},
        "evidence": {"present": False, "digest_verified": False},
        "pr": {
            "number": None,
            "author": {"id": CROSSGUARD_AUTHOR, "kind": "human"},
            "agent_id": None,
            "base_ref": None,
            "head_sha": None,
        },
        "registry": {"agent": None, "governance_paths": list(GOVERNANCE_PATHS)},
        "now": (now or datetime.now(UTC)).isoformat(),
    }


class Evaluator:
    """The pack and its engine, loaded once per process, and a small memo of evaluations.

    CrossGuard calls the deny and the advisory policy of an area with the same resource, and the stack policies
    with the same stack: the memo (keyed by the resources' digest) makes that one evaluation.
    """

    def __init__(
        self,
        pack_dir: Path = PACK_DIR,
        *,
        engine: Callable[[PolicyPack], PolicyEngine] = make_engine,
        memo_size: int = 256,
    ) -> None:
        self._pack_dir = pack_dir
        self._make_engine = engine
        self._lock = threading.Lock()
        self._pack: PolicyPack | None = None
        self._engine: PolicyEngine | None = None
        self._memo: OrderedDict[str, Evaluation] = OrderedDict()
        self._memo_size = memo_size

    @property
    def pack(self) -> PolicyPack:
        with self._lock:
            if self._pack is None:
                self._pack = load_pack(self._pack_dir)
            return self._pack

    def _engine_for(self) -> PolicyEngine:
        pack = self.pack
        with self._lock:
            if self._engine is None:
                self._engine = self._make_engine(pack)
            return self._engine

    def evaluate(self, resources: list[dict[str, Any]]) -> Evaluation:
        key = digest(sorted(resources, key=lambda r: str(r["urn"])))
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        evaluation = self._engine_for().evaluate(policy_input(resources))
        with self._lock:
            self._memo[key] = evaluation
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return evaluation


def area_of(result: PolicyResult) -> str:
    """``network`` of ``glassbox.network.gb_net_001``."""
    parts = result.package.split(".")
    return parts[1] if len(parts) > 2 else ""


def per_resource(result: PolicyResult) -> bool:
    return result.rule_id in PER_RESOURCE_RULES.get(area_of(result), frozenset())


def message(result: PolicyResult) -> str:
    """What CrossGuard prints under the policy's description: the rule id first, then the rule's own words."""
    text = f"{result.rule_id} ({result.severity.value} {result.status}): {result.message}"
    return f"{text}. Fix: {result.remediation.strip()}" if result.remediation else text


def _engine_failure(exc: Exception) -> str:
    detail = exc.message if isinstance(exc, GlassboxError) else f"{type(exc).__name__}: {exc}"
    return f"GB-ENGINE (critical deny): the glassbox policy pack could not evaluate, so this fails closed: {detail}"


# --------------------------------------------------------------------------------------------------
# validators


def stack_validator(evaluator: Evaluator, kind: str) -> Callable[[StackValidationArgs, ReportViolation], None]:
    """Reports the ``kind`` (deny or warn) results of every rule without a resource validator."""

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        try:
            kept = [r for r in args.resources if counts(r.resource_type, r.name, r.urn)]
            records = [record_of_resource(r) for r in kept]
            resolve_bucket_references(records, kept)
            evaluation = evaluator.evaluate(records)
        except Exception as exc:  # I5: a pack that cannot answer is a deny, never a silent pass
            if kind == "deny":
                report(_engine_failure(exc), None)
            return
        urns = {r["urn"] for r in records}
        for result in evaluation.results:
            if result.status == kind and not per_resource(result):
                report(message(result), result.resource if result.resource in urns else None)

    return validate


def resource_validator(
    evaluator: Evaluator, area: str, kind: str
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """Reports the ``kind`` results of ``area``'s per-resource rules for one resource, evaluated on its own."""
    ids = PER_RESOURCE_RULES[area]

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if not counts(args.resource_type, args.name, args.urn):
            return
        try:
            evaluation = evaluator.evaluate([record_of_args(args)])
        except Exception as exc:  # fail closed, as above
            if kind == "deny":
                report(_engine_failure(exc), args.urn)
            return
        for result in evaluation.results:
            if result.status == kind and result.rule_id in ids:
                report(message(result), args.urn)

    return validate


def _worst(pack: PolicyPack, ids: Iterable[str]) -> Severity | None:
    tiers = [rule.metadata.severity for rule in pack.rules.values() if rule.metadata.id in set(ids)]
    return _SEVERITY[max(tiers, key=lambda t: t.rank)] if tiers else None


def policies(evaluator: Evaluator | None = None) -> list[Policy]:
    """Every policy of the pack; the pack's rule metadata (not its engine) is read here, once."""
    ev = evaluator or Evaluator()
    pack = ev.pack
    out: list[Policy] = []
    for area, ids in PER_RESOURCE_RULES.items():
        rules = [rule for rule in pack.rules.values() if rule.metadata.id in ids]
        listed = ", ".join(sorted(rule.metadata.id for rule in rules))
        for kind, suffix, level in (
            ("deny", "", EnforcementLevel.MANDATORY),
            ("warn", "-advisory", EnforcementLevel.ADVISORY),
        ):
            covered = [rule.metadata.id for rule in rules if kind in rule.kinds]
            if not covered:
                continue
            out.append(
                ResourceValidationPolicy(
                    name=f"glassbox-{area}{suffix}",
                    description=f"glassbox {area} rules, each resource on its own ({kind} results of {listed}).",
                    validate=resource_validator(ev, area, kind),
                    enforcement_level=level,
                    severity=_worst(pack, covered),
                    tags=["glassbox", area],
                )
            )
    for kind, suffix, level in (
        ("deny", "", EnforcementLevel.MANDATORY),
        ("warn", "-advisory", EnforcementLevel.ADVISORY),
    ):
        out.append(
            StackValidationPolicy(
                name=f"glassbox-stack{suffix}",
                description=(
                    f"glassbox rules that look across a stack's resources, and every rule without a resource "
                    f"validator ({kind} results). " + glassbox_only_note()
                ),
                validate=stack_validator(ev, kind),
                enforcement_level=level,
                tags=["glassbox", "stack"],
            )
        )
    return out


def glassbox_only_note() -> str:
    areas = "; ".join(f"{area}: {what}" for area, what in GLASSBOX_ONLY_AREAS.items())
    return f"Not available under CrossGuard, so these rules cannot fire here: {areas}."


__all__ = [
    "DESCRIPTION",
    "GLASSBOX_ONLY_AREAS",
    "PACK_NAME",
    "PER_RESOURCE_RULES",
    "Evaluator",
    "inputs_of",
    "message",
    "policies",
    "policy_input",
    "record",
    "record_of_args",
    "record_of_resource",
    "resolve_bucket_references",
    "resource_validator",
    "stack_validator",
]
