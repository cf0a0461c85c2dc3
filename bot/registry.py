"""The registry: who may do what. Loading, validation (schema + cross-file rules) and scope resolution.

Files under ``registry/``: ``agents.yaml``, ``tools.yaml``, ``teams.yaml``, ``approval-matrix.yaml`` and
``trust.yaml``, each with a JSON Schema in ``registry/schema/`` generated from the models below
(``glassbox registry schemas`` rewrites them; a test keeps them in step). YAML keys equal field names.
"""

from __future__ import annotations

import fnmatch
import json
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

import jsonschema
from pydantic import Field, ValidationError, model_validator

from bot.documents import load_document
from bot.errors import UserError, ValidationFailed
from bot.keyformat import KeyFormatError, keyid_for, parse_public_key
from bot.records import Autonomy, Identifier, Record, RiskTier, digest, validation_lines

GOVERNANCE_PATHS: tuple[str, ...] = ("policy-pack/", "registry/", ".github/", "CODEOWNERS", ".glassbox/")


class AgentStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class BlastRadius(StrEnum):
    READ = "read"
    DRAFT = "draft"
    WRITE = "write"


class KeyRole(StrEnum):
    COMMIT_SIGNER = "commit-signer"
    VERDICT_SIGNER = "verdict-signer"
    DEPLOY_SIGNER = "deploy-signer"
    LEDGER_SIGNER = "ledger-signer"


# --------------------------------------------------------------------------------------------------
# file models


class Scope(Record):
    paths: list[str] = Field(min_length=1, description="Repository path globs the agent may change.")
    projects: list[str] = Field(default_factory=list, description="Pulumi projects (directory names under infra/).")
    stacks: list[str] = Field(default_factory=list, description="Stacks the agent may change, e.g. dev.")
    resource_types: list[str] = Field(default_factory=list, description="Globs of Pulumi type tokens.")
    max_risk: RiskTier = RiskTier.LOW


class Budgets(Record):
    changes_per_day: int = Field(ge=0)
    open_prs: int = Field(ge=0)


class Agent(Record):
    id: Identifier
    display_name: str = Field(min_length=1)
    owner_team: str
    status: AgentStatus
    autonomy: Autonomy
    allowed_requesters: list[str] = Field(default_factory=list, description="People or team:<id> entries.")
    tools: list[str] = Field(default_factory=list)
    scope: Scope
    confidence_threshold: float = Field(ge=0.0, le=1.0)
    budgets: Budgets


class AgentsFile(Record):
    schema_version: Literal[1] = 1
    agents: list[Agent]


class Tool(Record):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    description: str = Field(min_length=1)
    blast_radius: BlastRadius


class ToolsFile(Record):
    schema_version: Literal[1] = 1
    tools: list[Tool]


class Person(Record):
    id: Identifier
    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


class ServiceIdentity(Record):
    id: Identifier
    kind: Literal["ci", "deployer", "bot"]
    description: str = ""
    github_app_id: int | None = Field(
        default=None,
        ge=1,
        description="The GitHub App this identity acts as, when it is one: the required status checks it publishes"
        " (glassbox/check for ci, glassbox/approvals for bot) are pinned to that app, so a status set by any other"
        " account (an agent's token among them) never satisfies them.",
    )


class Team(Record):
    id: Identifier
    description: str = ""
    members: list[str]
    break_glass: bool = Field(default=False, description="Members may open break-glass grants.")
    reviews_break_glass: bool = Field(
        default=False, description="Members may close post-incident reviews of break-glass uses."
    )


class TeamsFile(Record):
    schema_version: Literal[1] = 1
    people: list[Person]
    service_identities: list[ServiceIdentity]
    teams: list[Team]


class Requirement(Record):
    team: str
    count: int = Field(ge=1)


class TierRule(Record):
    required: list[Requirement] = Field(default_factory=list)
    auto_merge: bool = Field(default=False, description="Whether an `auto` agent may merge this tier unreviewed.")


class ApprovalMatrix(Record):
    schema_version: Literal[1] = 1
    tiers: dict[RiskTier, TierRule]

    @model_validator(mode="after")
    def _all_tiers(self) -> ApprovalMatrix:
        missing = [t.value for t in RiskTier if t not in self.tiers]
        if missing:
            raise ValueError(f"every risk tier needs an entry; missing: {', '.join(missing)}")
        return self


class TrustKey(Record):
    identity: str
    keyid: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    public_key: str = Field(description="OpenSSH public key line: ssh-ed25519 AAAA... [comment]")
    roles: list[KeyRole] = Field(min_length=1)


class TrustFile(Record):
    schema_version: Literal[1] = 1
    keys: list[TrustKey] = Field(default_factory=list)


class EstateStack(Record):
    name: str = Field(min_length=1)
    environment: str = Field(min_length=1, description="The stack's environment class (prod, staging, dev, ...).")


class EstateProject(Record):
    name: str = Field(min_length=1, description="The project's `name:` in its Pulumi.yaml.")
    directory: str = Field(min_length=1, description="Repository-relative directory holding Pulumi.yaml.")
    owners: list[str] = Field(default_factory=list)
    stacks: list[EstateStack]


class EstateFile(Record):
    """The governed estate: which projects exist, where, with which stacks of which environment class. Read from
    the base commit, it decides each stack's environment and each project's identity, never the change's files."""

    schema_version: Literal[1] = 1
    projects: list[EstateProject]

    def project_at(self, directory: str) -> EstateProject | None:
        return next((p for p in self.projects if p.directory == directory), None)

    def environment(self, project: str, stack: str) -> str | None:
        for p in self.projects:
            if p.name == project:
                return next((s.environment for s in p.stacks if s.name == stack), None)
        return None


ESTATE_FILE = "estate.yaml"

FILES: dict[str, type[Record]] = {
    "agents.yaml": AgentsFile,
    "tools.yaml": ToolsFile,
    "teams.yaml": TeamsFile,
    "approval-matrix.yaml": ApprovalMatrix,
    "trust.yaml": TrustFile,
}


def schema_for(filename: str) -> dict[str, Any]:
    model = FILES[filename]
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://glassbox.dev/schema/registry/{filename.removesuffix('.yaml')}.json"
    return schema


def schema_path(root: Path, filename: str) -> Path:
    return root / "schema" / (filename.removesuffix(".yaml") + ".schema.json")


def write_schemas(root: Path) -> list[Path]:
    written = []
    for filename in FILES:
        path = schema_path(root, filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema_for(filename), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------------
# side configs beside the registry (siem.yaml, retention.yaml, controls.yaml): one loader for all

ConfigT = TypeVar("ConfigT", bound=Record)


def config_schema(model: type[Record], name: str) -> dict[str, Any]:
    """The JSON Schema of a registry-side config file, as published under ``registry/schema/``."""
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://glassbox.dev/schema/registry/{name}.json"
    return schema


def load_config(path: Path, model: type[ConfigT], *, name: str, what: str) -> ConfigT:
    """Load ``path``: checked against ``schema/<name>.schema.json`` beside it (or the model's), then parsed."""
    data = load_document(path)
    schema_file = path.parent / "schema" / f"{name}.schema.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8")) if schema_file.exists() else config_schema(model, name)
    problems = [
        f"{path}: {'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(data)
    ]
    if problems:
        raise ValidationFailed(problems, summary=f"{what} {path} is invalid")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(validation_lines(str(path), exc), summary=f"{what} {path} is invalid") from None


# --------------------------------------------------------------------------------------------------
# the loaded registry


@dataclass(frozen=True)
class Registry:
    root: Path
    agents: AgentsFile
    tools: ToolsFile
    teams: TeamsFile
    approval_matrix: ApprovalMatrix
    trust: TrustFile
    digest: str
    estate: EstateFile | None = None  # None when registry/estate.yaml is absent: every stack counts as prod

    def agent(self, agent_id: str) -> Agent:
        for agent in self.agents.agents:
            if agent.id == agent_id:
                return agent
        raise UserError(f"unknown agent {agent_id!r}; registered agents: {', '.join(self.agent_ids())}")

    def find_agent(self, agent_id: str) -> Agent | None:
        return next((a for a in self.agents.agents if a.id == agent_id), None)

    def agent_ids(self) -> list[str]:
        return [a.id for a in self.agents.agents]

    def team(self, team_id: str) -> Team | None:
        return next((t for t in self.teams.teams if t.id == team_id), None)

    def members(self, team_id: str) -> list[str]:
        team = self.team(team_id)
        return list(team.members) if team else []

    def identity_kind(self, identity: str) -> str | None:
        """agent | human | ci | deployer | bot, or None for an unknown identity."""
        if self.find_agent(identity):
            return "agent"
        if any(p.id == identity for p in self.teams.people):
            return "human"
        for service in self.teams.service_identities:
            if service.id == identity:
                return service.kind
        return None

    def service_identity(self, kind: str) -> str | None:
        return next((s.id for s in self.teams.service_identities if s.kind == kind), None)

    def keys_for(self, identity: str | None = None, role: KeyRole | None = None) -> list[TrustKey]:
        return [
            k
            for k in self.trust.keys
            if (identity is None or k.identity == identity) and (role is None or role in k.roles)
        ]

    def requester_allowed(self, agent: Agent, requester: str) -> bool:
        for entry in agent.allowed_requesters:
            if entry == requester:
                return True
            if entry.startswith("team:") and requester in self.members(entry.removeprefix("team:")):
                return True
        return False


def registry_digest(root: Path) -> str:
    """Digest over each registry file's bytes, so any edit changes it."""
    entries = []
    for filename in sorted([*FILES, ESTATE_FILE]):
        path = root / filename
        data = path.read_bytes() if path.exists() else b""
        entries.append({"file": filename, "sha256": digest(data.decode("utf-8", errors="replace"))})
    return digest(entries)


def _load_raw(root: Path) -> tuple[dict[str, Any], list[str]]:
    raw: dict[str, Any] = {}
    problems: list[str] = []
    for filename in FILES:
        path = root / filename
        if not path.exists():
            problems.append(f"{path}: file is missing")
            continue
        try:
            raw[filename] = load_document(path)
        except UserError as exc:
            problems.append(exc.message)
    return raw, problems


def _schema_problems(root: Path, filename: str, data: Any) -> list[str]:
    path = schema_path(root, filename)
    schema = json.loads(path.read_text(encoding="utf-8")) if path.exists() else schema_for(filename)
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        problems.append(f"{root / filename}: {where}: {err.message}")
    return problems


def load_registry(root: Path) -> Registry:
    """Load and fully validate the registry; raise ValidationFailed listing every problem."""
    if not root.is_dir():
        raise UserError(f"{root}: registry directory not found (pass --registry DIR)")
    raw, problems = _load_raw(root)
    models: dict[str, Record] = {}
    for filename, data in raw.items():
        schema_problems = _schema_problems(root, filename, data)
        if schema_problems:
            problems.extend(schema_problems)
            continue
        try:
            models[filename] = FILES[filename].model_validate(data)
        except ValidationError as exc:
            problems.extend(validation_lines(str(root / filename), exc))
    if problems or len(models) != len(FILES):
        raise ValidationFailed(problems, summary=f"registry {root} is invalid")
    registry = Registry(
        root=root,
        agents=models["agents.yaml"],  # type: ignore[arg-type]
        tools=models["tools.yaml"],  # type: ignore[arg-type]
        teams=models["teams.yaml"],  # type: ignore[arg-type]
        approval_matrix=models["approval-matrix.yaml"],  # type: ignore[arg-type]
        trust=models["trust.yaml"],  # type: ignore[arg-type]
        digest=registry_digest(root),
        estate=load_config(root / ESTATE_FILE, EstateFile, name="estate", what="estate")
        if (root / ESTATE_FILE).exists()
        else None,
    )
    problems = cross_file_problems(registry)
    if problems:
        raise ValidationFailed(problems, summary=f"registry {root} is invalid")
    return registry


# --------------------------------------------------------------------------------------------------
# cross-file rules


def glob_problem(pattern: str) -> str | None:
    """Why a path glob is unsafe, or None. Globs are repository-relative POSIX patterns."""
    if not pattern:
        return "empty glob"
    if pattern.startswith("/") or pattern.startswith("~") or (len(pattern) > 1 and pattern[1] == ":"):
        return f"glob {pattern!r} is absolute; use a repository-relative path"
    if "\\" in pattern:
        return f"glob {pattern!r} uses a backslash; use '/'"
    if ".." in PurePosixPath(pattern).parts:
        return f"glob {pattern!r} escapes the repository with '..'"
    if pattern in ("*", "**", "**/*"):
        return f"glob {pattern!r} matches the whole repository, governance paths included"
    return None


# Governance directories and files are matched at ANY depth (a nested ``infra/x/.github/`` is what a
# case-insensitive or a monorepo-aware tool may read), under Unicode compatibility and case folding.
_GOVERNANCE_DIRS = frozenset(g.rstrip("/").casefold() for g in GOVERNANCE_PATHS if g.endswith("/"))
_GOVERNANCE_FILES = frozenset(g.casefold() for g in GOVERNANCE_PATHS if not g.endswith("/")) | {
    # git metadata a change could use to hide or redirect content (diff and merge drivers, submodules, LFS)
    ".gitattributes",
    ".gitmodules",
    ".lfsconfig",
}


def _path_segments(path: str) -> list[str]:
    """``path`` as a checkout on any filesystem would name it: NFKC, case-folded, invisible format characters
    dropped, ``\\`` as ``/``, empty and ``.`` segments gone, trailing dots and spaces stripped (Windows)."""
    text = unicodedata.normalize("NFKC", path).casefold().replace("\\", "/")
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return [s.rstrip(". ") for s in text.split("/") if s not in ("", ".")]


def is_governance_path(path: str) -> bool:
    """Whether ``path`` is (or lies under) a governance path: the one predicate propose, check, approvals and
    audit all use. A path that escapes with ``..`` is governance too: it cannot be placed, so it is not trusted."""
    segments = _path_segments(path)
    if not segments or ".." in segments:
        return True
    return any(s in _GOVERNANCE_DIRS for s in segments) or segments[-1] in _GOVERNANCE_FILES


def _dupes(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]


def cross_file_problems(reg: Registry) -> list[str]:
    root = reg.root
    agents_f, tools_f, teams_f = root / "agents.yaml", root / "tools.yaml", root / "teams.yaml"
    matrix_f, trust_f = root / "approval-matrix.yaml", root / "trust.yaml"
    problems: list[str] = []

    agent_ids = [a.id for a in reg.agents.agents]
    people = [p.id for p in reg.teams.people]
    services = [s.id for s in reg.teams.service_identities]
    team_ids = [t.id for t in reg.teams.teams]
    tool_ids = [t.id for t in reg.tools.tools]

    for dup in _dupes(agent_ids):
        problems.append(f"{agents_f}: agents: duplicate agent id {dup!r}")
    for dup in _dupes(tool_ids):
        problems.append(f"{tools_f}: tools: duplicate tool id {dup!r}")
    for dup in _dupes(team_ids):
        problems.append(f"{teams_f}: teams: duplicate team id {dup!r}")
    for dup in _dupes(people + services + agent_ids):
        problems.append(f"{teams_f}: identity {dup!r} is declared more than once (people, services, agents)")
    for kind in ("ci", "deployer"):
        if sum(1 for s in reg.teams.service_identities if s.kind == kind) != 1:
            problems.append(f"{teams_f}: service_identities: exactly one identity of kind {kind!r} is required")

    # teams: members must be people; agents and service identities never review or approve (I1)
    for ti, team in enumerate(reg.teams.teams):
        for mi, member in enumerate(team.members):
            where = f"{teams_f}: teams.{ti}.members.{mi}"
            if member in agent_ids:
                problems.append(f"{where}: {member!r} is an agent; agents cannot be team members (they never approve)")
            elif member in services:
                problems.append(f"{where}: {member!r} is a service identity; only people may be team members")
            elif member not in people:
                problems.append(f"{where}: unknown identity {member!r}; declare it under people")

    for ai, agent in enumerate(reg.agents.agents):
        where = f"{agents_f}: agents.{ai}"
        if agent.owner_team not in team_ids:
            problems.append(f"{where}.owner_team: unknown team {agent.owner_team!r}")
        for ti, tool in enumerate(agent.tools):
            if tool not in tool_ids:
                problems.append(f"{where}.tools.{ti}: tool {tool!r} is not in the catalog (tools.yaml)")
        for ri, req in enumerate(agent.allowed_requesters):
            if req.startswith("team:"):
                if req.removeprefix("team:") not in team_ids:
                    problems.append(f"{where}.allowed_requesters.{ri}: unknown team {req!r}")
            elif req not in people and req not in services:
                problems.append(f"{where}.allowed_requesters.{ri}: unknown identity {req!r}")
        for gi, glob in enumerate(agent.scope.paths):
            why = glob_problem(glob)
            if why:
                problems.append(f"{where}.scope.paths.{gi}: {why}")
            elif any(fnmatch.fnmatch(gov.rstrip("/") + "/x", glob) or glob.startswith(gov) for gov in GOVERNANCE_PATHS):
                problems.append(f"{where}.scope.paths.{gi}: glob {glob!r} reaches a governance path")
        if agent.status is AgentStatus.SUSPENDED and (agent.budgets.open_prs > 0 or agent.budgets.changes_per_day > 0):
            problems.append(
                f"{where}.budgets: agent {agent.id!r} is suspended but still has an open budget; set both to 0"
            )
        if agent.autonomy is Autonomy.READ_ONLY and "propose_change" in agent.tools:
            problems.append(f"{where}.tools: a read_only agent cannot hold the write tool 'propose_change'")

    for tier, rule in reg.approval_matrix.tiers.items():
        for qi, need in enumerate(rule.required):
            where = f"{matrix_f}: tiers.{tier.value}.required.{qi}"
            needed_team = reg.team(need.team)
            if needed_team is None:
                problems.append(f"{where}.team: unknown team {need.team!r}")
            elif sum(1 for m in needed_team.members if m in people) < need.count:
                problems.append(f"{where}.count: team {need.team!r} has fewer people than the {need.count} required")
        if rule.auto_merge and tier is not RiskTier.LOW:
            problems.append(f"{matrix_f}: tiers.{tier.value}.auto_merge: only the low tier may auto-merge")

    known = set(agent_ids) | set(people) | set(services)
    keyids: list[str] = []
    for ki, key in enumerate(reg.trust.keys):
        where = f"{trust_f}: keys.{ki}"
        if key.identity not in known:
            problems.append(f"{where}.identity: unknown identity {key.identity!r}")
        try:
            raw = parse_public_key(key.public_key)
        except KeyFormatError as exc:
            problems.append(f"{where}.public_key: {exc}")
        else:
            if keyid_for(raw) != key.keyid:
                problems.append(f"{where}.keyid: does not match the public key (expected {keyid_for(raw)})")
        keyids.append(key.keyid)
    for dup in _dupes(keyids):
        problems.append(f"{trust_f}: keys: key {dup} is listed more than once")
    return problems


# --------------------------------------------------------------------------------------------------
# scope


def path_in_scope(agent: Agent, path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, glob) for glob in agent.scope.paths)


def resolved_scope(reg: Registry, agent_id: str) -> dict[str, Any]:
    """The agent entry with what it resolves to: tools with their blast radius, requester people."""
    agent = reg.agent(agent_id)
    tools = {t.id: t for t in reg.tools.tools}
    requesters: set[str] = set()
    for entry in agent.allowed_requesters:
        if entry.startswith("team:"):
            requesters.update(reg.members(entry.removeprefix("team:")))
        else:
            requesters.add(entry)
    return {
        "agent": agent.model_dump(mode="json"),
        "tools": [
            {"id": t, "blast_radius": tools[t].blast_radius.value, "description": tools[t].description}
            for t in agent.tools
        ],
        "requesters": sorted(requesters),
        "owner_team_members": reg.members(agent.owner_team),
        "governance_paths": list(GOVERNANCE_PATHS),
        "signing_keys": [k.keyid for k in reg.keys_for(agent.id)],
    }
