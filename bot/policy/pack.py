"""The Rego policy pack as data: its modules, each rule package's METADATA, and the pack digest.

A pack is a directory of ``.rego`` files (``policy-pack/``). Loading it checks the habits the engine
relies on and fails closed with :class:`bot.errors.EngineError` when one is broken:

* every module is Rego v1 (``import rego.v1``): rego-cpp silently accepts v0 syntax otherwise;
* one package per file, and no package split across files;
* every rule package (``glassbox.<area>.<id>``, not ``lib``, not ``risk``, not ``*_test``) carries a
  package-scope ``# METADATA`` block with ``custom.id``, ``custom.severity``, ``custom.controls`` and
  ``custom.remediation``, defines ``deny`` and/or ``warn``, and has a unique id;
* the risk package ``glassbox.risk`` exists.

The pack digest is :func:`bot.records.digest` over the sorted ``[path, sha256]`` list of every
``.rego`` file (tests included), so a verdict names exactly the policy text it was judged by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from bot.errors import EngineError
from bot.records import Record, RiskTier, digest, sha256_hex

ENGINE = "rego"
ROOT_PACKAGE = "glassbox"
RISK_PACKAGE = "glassbox.risk"
LIB_PREFIX = "glassbox.lib."
TEST_SUFFIX = "_test"

RuleKind = Literal["deny", "warn"]

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][A-Za-z0-9_.]*)\s*$", re.MULTILINE)
_REGO_V1 = re.compile(r"^import\s+rego\.v1\s*$", re.MULTILINE)
_KIND = re.compile(r"^(deny|warn)\s+contains\b", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\s*(?:if\b|\{|:?=)", re.MULTILINE)


# How a rule's METADATA names the policy input's JSON Schema (`glassbox schema policy-input`): OPA resolves
# `schema.policy_input` to `policy_input.json` in the directory given to `opa check --schema`.
INPUT_SCHEMA_REF = "schema.policy_input"
INPUT_SCHEMA_FILE = "schema/policy_input.json"


def default_pack_dir() -> Path:
    """``policy-pack/`` of the repository this package runs from."""
    return Path(__file__).resolve().parents[2] / "policy-pack"


class RuleMetadata(Record):
    """What a rule package's ``# METADATA`` block says about the rule."""

    id: str = Field(pattern=r"^GB-[A-Z]+-[0-9]{3}$", description="Stable rule id, e.g. GB-NET-001.")
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    severity: RiskTier
    controls: list[str] = Field(min_length=1)
    remediation: str = Field(min_length=1)


class RulePackage(Record):
    package: str
    path: str
    metadata: RuleMetadata
    kinds: list[RuleKind] = Field(min_length=1, description="Which of deny/warn the package defines.")


@dataclass(frozen=True)
class RegoModule:
    path: str  # POSIX path relative to the pack root
    package: str
    source: str
    sha256: str

    @property
    def is_test(self) -> bool:
        return self.package.endswith(TEST_SUFFIX)


@dataclass(frozen=True)
class RegoTestCase:
    package: str
    name: str
    path: str

    @property
    def ref(self) -> str:
        return f"data.{self.package}.{self.name}"

    @property
    def id(self) -> str:
        return f"{self.package}::{self.name}"


@dataclass(frozen=True)
class PolicyPack:
    root: Path
    modules: tuple[RegoModule, ...]
    rules: dict[str, RulePackage] = field(default_factory=dict)
    digest: str = ""

    @property
    def policy_modules(self) -> tuple[RegoModule, ...]:
        """The modules evaluated on real input: everything but ``*_test`` packages."""
        return tuple(m for m in self.modules if not m.is_test)

    @property
    def test_modules(self) -> tuple[RegoModule, ...]:
        return tuple(m for m in self.modules if m.is_test)

    def rule_for_id(self, rule_id: str) -> RulePackage | None:
        return next((r for r in self.rules.values() if r.metadata.id == rule_id), None)

    def tests(self) -> list[RegoTestCase]:
        """Every ``test_`` rule of the pack's ``*_test`` packages, in file order."""
        cases: list[RegoTestCase] = []
        for module in self.test_modules:
            for name in _TEST_RULE.findall(module.source):
                case = RegoTestCase(package=module.package, name=name, path=module.path)
                if case not in cases:
                    cases.append(case)
        return cases


def _fail(message: str) -> EngineError:
    return EngineError(f"policy pack: {message}", engine=ENGINE)


def is_rule_package(package: str) -> bool:
    return (
        package.startswith(ROOT_PACKAGE + ".")
        and not package.startswith(LIB_PREFIX)
        and package != RISK_PACKAGE
        and not package.endswith(TEST_SUFFIX)
    )


def package_metadata(source: str, path: str) -> dict[str, Any] | None:
    """The YAML of the ``# METADATA`` comment block right above the ``package`` line, if any."""
    lines = source.splitlines()
    package_line = next((i for i, line in enumerate(lines) if _PACKAGE.match(line)), None)
    if package_line is None:
        return None
    # Walk up over the comment block that ends at the package line.
    start = package_line
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    block = lines[start:package_line]
    marker = next((i for i, line in enumerate(block) if line.strip() == "# METADATA"), None)
    if marker is None:
        return None
    body = []
    for line in block[marker + 1 :]:
        text = line.lstrip()[1:]
        body.append(text[1:] if text.startswith(" ") else text)
    try:
        data = yaml.safe_load("\n".join(body))
    except yaml.YAMLError as exc:
        raise _fail(f"{path}: METADATA is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise _fail(f"{path}: METADATA must be a mapping")
    return data


def _rule_metadata(data: dict[str, Any] | None, path: str) -> RuleMetadata:
    if data is None:
        raise _fail(f"{path}: rule package has no package-scope # METADATA block")
    if {"input": INPUT_SCHEMA_REF} not in (data.get("schemas") or []):
        raise _fail(
            f"{path}: METADATA must name the policy input's schema (schemas: [input: {INPUT_SCHEMA_REF}]), "
            "so that OPA's type checker knows what `input` holds"
        )
    custom = data.get("custom")
    if not isinstance(custom, dict):
        raise _fail(f"{path}: METADATA has no custom: block (id, severity, controls, remediation)")
    try:
        return RuleMetadata.model_validate(
            {
                "id": custom.get("id"),
                "title": data.get("title"),
                "description": data.get("description"),
                "severity": custom.get("severity"),
                "controls": custom.get("controls"),
                "remediation": custom.get("remediation"),
            }
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise _fail(f"{path}: METADATA invalid: {problems}") from None


def load_pack(root: Path | str | None = None) -> PolicyPack:
    """Read and check every ``.rego`` file under ``root`` (default: the repository's ``policy-pack/``)."""
    base = Path(root) if root is not None else default_pack_dir()
    if not base.is_dir():
        raise _fail(f"{base} is not a directory")
    modules: list[RegoModule] = []
    owners: dict[str, str] = {}
    for file in sorted(base.rglob("*.rego")):
        rel = file.relative_to(base).as_posix()
        try:
            raw = file.read_bytes()
            source = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read {rel}: {exc}") from exc
        packages = _PACKAGE.findall(source)
        if len(packages) != 1:
            raise _fail(f"{rel}: expected exactly one package line, found {len(packages)}")
        package = packages[0]
        if not (package == ROOT_PACKAGE or package.startswith(ROOT_PACKAGE + ".")):
            raise _fail(f"{rel}: package {package} is outside {ROOT_PACKAGE}.*")
        if not _REGO_V1.search(source):
            raise _fail(f"{rel}: missing 'import rego.v1' (v0 syntax is not allowed)")
        if package in owners:
            raise _fail(f"{rel}: package {package} is already defined in {owners[package]} (one package per file)")
        owners[package] = rel
        modules.append(RegoModule(path=rel, package=package, source=source, sha256=sha256_hex(raw)))
    if not modules:
        raise _fail(f"no .rego files under {base}")
    if RISK_PACKAGE not in owners:
        raise _fail(f"the risk package {RISK_PACKAGE} is missing")

    rules: dict[str, RulePackage] = {}
    ids: dict[str, str] = {}
    for module in modules:
        if not is_rule_package(module.package):
            continue
        meta = _rule_metadata(package_metadata(module.source, module.path), module.path)
        if meta.id in ids:
            raise _fail(f"{module.path}: rule id {meta.id} is already used by {ids[meta.id]}")
        ids[meta.id] = module.path
        kinds = sorted(set(_KIND.findall(module.source)))
        if not kinds:
            raise _fail(f"{module.path}: rule package defines neither deny nor warn")
        rules[module.package] = RulePackage.model_validate(
            {"package": module.package, "path": module.path, "metadata": meta, "kinds": kinds}
        )

    pack_digest = digest(sorted([m.path, m.sha256] for m in modules))
    return PolicyPack(root=base, modules=tuple(modules), rules=rules, digest=pack_digest)
