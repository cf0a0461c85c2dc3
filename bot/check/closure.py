"""Proportional evaluation: checkov and Rego judge the changed closure, the rest of the estate comes from its base.

A check's cost should follow the change, not the estate. This module owns how a check evaluates only what a
change can affect while giving **the verdict a full evaluation would give**: the same findings (rule, resource,
status, message, details, in the same order), the same risk tier and the same reasons.

**What "the same findings" has to cover.** A full evaluation judges every resource of the touched stacks at head:
checkov reports failures on untouched resources as pre-existing warnings (``checkov_findings`` in
:mod:`bot.check.evaluate`), and the pack's resource rules deny on untouched resources too (an unprotected prod
database in a stack the PR touches fails the PR). So restricting the engines to the changed closure and dropping
the rest would change verdicts. Instead a finding about a resource is taken from one of two evaluations:

- **the head closure**: the engine evaluates the head estate limited to ``evaluated`` (the changed resources, what
  can affect them, and what their findings read), and only its findings on ``affected`` resources are kept;
- **the base estate**: for every other resource the finding is its finding at the base commit, from a full
  evaluation of the base side, cached under a digest of exactly what was evaluated (the base side of every PR
  against the same main, and of every pre-flight of an agent's loop, is the same).

**Why that is exact.** A resource's findings are a function of what lies within a few relation hops of it (the
radius ``r``, below) and the relations among those. ``affected`` is every resource within ``r`` hops of a changed
one, so a resource outside it sees, within its radius, only unchanged resources and relations: its findings at head
are its findings at base. ``evaluated`` is every resource within ``r`` hops of an affected one, so each affected
resource is judged with all it reads. Relations are taken over both sides (a block that named a bucket at base
relates to it even when it names another at head), and "changed" is wider than the plan's changes: every create,
update, replace and delete, and any resource whose record differs at all (dependencies, parent, label). What is
global in a rendering (Terraform addresses, which the estate's size renumbers; the id index) changes no finding:
findings are kept by URN and put back at head's addresses, in the worker's order, so ``checkov_findings`` still
tells a change's failures (deny at high) from pre-existing ones (warn) exactly as before.

**The relations**, type-agnostic (no type is unknown to them):

- Pulumi dependencies, both ways: Pulumi records one for every input that carries another resource's output, and
  every reference the Terraform rendering writes (:mod:`bot.plan.terraform`: ids, ARNs and names of resources the
  referrer depends on) is one of them. checkov's graph edges come from those references, and from any attribute
  value that reads like a Terraform address (``aws_vpc.main.id``); such a value anywhere in either side's
  rendering is a doubt (below), since checkov would join on it;
- a resource's parent, both ways (a component and its children);
- the pack's companion join (``policy-pack/lib/s3.rego``): a resource whose ``bucket`` input (absent or null: the
  empty name) names another resource's logical name or ``bucket`` input in the same project and stack: public
  access blocks, encryption, versioning, ACLs and bucket policies with their bucket, and any lookalike of any type.

An explicit provider is not a relation: neither the rendering nor any rule reads it, and a shared one would join
every resource of a stack.

**The radius.** Rego: 1 (a bucket's findings read its companions; every other result reads one resource), for
the reviewed pack only (:data:`REVIEWED_POLICY`: the digest of every policy module, lib included; the rules
whose results are per resource of ``plan.resources`` are :data:`ESTATE_RULES`; the others and the risk tier read
the changes, files, evidence, PR and registry, which the closure input keeps whole). checkov: computed from the
worker's own graph checks (:func:`checkov_reach`): a graph check's solvers pass results along connections one
hop per connection condition, so a resource's result reads at most as far as the longest chain of distinct
connection conditions whose types glassbox renders (3 for checkov 3.3's NACL check); resource checks read one
resource.

**On any doubt the evaluation is full**, and so exactly what it was: ``GLASSBOX_PROPORTIONAL=off`` (or the check
request's ``proportional=False``); a pack other than the reviewed one; a graph check whose solvers this module
cannot bound, or whose types include every type; a dependency or parent URN on neither side; an attribute value
that reads like a Terraform address; a closure that covers the whole estate (nothing to save), or, with nothing
cached yet for the base, more than half of it; a result on a resource the closure does not know.

**The cache** (:class:`ResultCache`) keeps base-side results in the process (the pre-flight, the MCP server, a
bench) and, when ``GLASSBOX_EVALUATION_CACHE_DIR`` names a directory, on disk for the next process (a CI runner
that keeps it). A key is the digest of what was evaluated: the rendered base plan with checkov's version and
policy (severities, skips); or the base policy input (resources with their registry environments) with the policy
modules and the engine. An entry decides findings on untouched resources, so whoever can write the directory
could decide them: it must be this uid's alone (created 0700, refused when others may write it, when it is a
symlink or lies inside the repository being checked, which is PR content; entries 0600, written atomically).
Entries carry no MAC: one that names another key, or whose body does not match its digest, is a miss; PR code
never runs as this uid outside the sandbox, and this uid could as well change glassbox.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import os
import re
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from bot.check.policy_input import NoEvidence, build_policy_input
from bot.plan.model import Plan, Resource
from bot.plan.terraform import TERRAFORM_TYPES, address_map, to_terraform_plan
from bot.policy.checkov import CheckovFinding, CheckovReport, CheckovWorker, Severity
from bot.policy.engines.results import PolicyResult
from bot.policy.pack import PolicyPack, load_pack
from bot.records import Finding, Record, RiskTier, digest
from bot.registry import Registry

SWITCH_ENV = "GLASSBOX_PROPORTIONAL"
CACHE_DIR_ENV = "GLASSBOX_EVALUATION_CACHE_DIR"
OFF_VALUES = frozenset({"off", "0", "false", "no"})

# The digest of every policy module (lib included, tests not) of the pack whose rules were read for this module:
# which results are per resource of `plan.resources` (ESTATE_RULES), which joins they make (the companion join,
# REGO_REACH), and that nothing else reads `plan.resources`. Any other pack is evaluated in full.
REVIEWED_POLICY = "sha256:c58dc374395f37830ff310ea275266567a8343b5478c265fe35321ca69e70ffd"
# Rules whose results are each about one resource of plan.resources (its URN is the result's resource) and read
# that resource alone, or, for buckets, also the companions that name it.
ESTATE_RULES = frozenset(
    {f"GB-DATA-{n:03d}" for n in range(1, 11)}
    | {f"GB-IAM-{n:03d}" for n in range(1, 6)}
    | {f"GB-NET-{n:03d}" for n in range(1, 6)}
)
REGO_REACH = 1
# A graph check with more connection conditions than this is not bounded here (the search is exponential).
_MAX_CONDITIONS = 16

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BASE_AUTHOR = "glassbox-base-estate"

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Record)
_T = TypeVar("_T")
RegoAnswer = tuple[list[Finding], RiskTier, list[str], str]
RegoEvaluate = Callable[[Any, dict[str, Any]], RegoAnswer]


def proportional_enabled(explicit: bool | None = None) -> bool:
    """``explicit`` when given, else on unless ``GLASSBOX_PROPORTIONAL`` says off."""
    if explicit is not None:
        return explicit
    return os.environ.get(SWITCH_ENV, "").strip().lower() not in OFF_VALUES


class Doubt(Exception):
    """A reason to evaluate in full."""


# --------------------------------------------------------------------------------------------------
# the relations


_Key = tuple[str, str, str]


@dataclass(frozen=True)
class Relations:
    """Both sides of a plan as one undirected relation graph over URNs, and what changed."""

    head: frozenset[str]
    changed: frozenset[str]
    links: Mapping[str, frozenset[str]]  # dependencies and parents, both ways
    names: Mapping[str, frozenset[_Key]]  # the keys a resource is known by: its logical name, its bucket input
    refs: Mapping[str, frozenset[_Key]]  # the key its bucket input names, at either side
    known_by: Mapping[_Key, frozenset[str]]  # key -> the resources known by it
    named_by: Mapping[_Key, frozenset[str]]  # key -> the resources whose bucket input names it

    @classmethod
    def of(cls, plan: Plan) -> Relations:
        """The relations of ``plan``; :class:`Doubt` when a dependency or parent names a resource on neither side."""
        head = {r.urn: r for r in plan.resources}
        base = {r.urn: r for r in plan.base_resources}
        known = head.keys() | base.keys()
        changed = {c.urn for c in plan.changes} | (head.keys() ^ base.keys())
        changed |= {urn for urn, r in head.items() if urn in base and base[urn] != r}
        links: dict[str, set[str]] = collections.defaultdict(set)
        names: dict[str, set[_Key]] = collections.defaultdict(set)
        refs: dict[str, set[_Key]] = collections.defaultdict(set)
        for resource in (*plan.base_resources, *plan.resources):
            urn = resource.urn
            for other in (*resource.dependencies, *([resource.parent] if resource.parent else [])):
                if other not in known:
                    raise Doubt(f"{urn} refers to {other}, which is on neither side of the plan")
                links[urn].add(other)
                links[other].add(urn)
            scope = (resource.project, resource.stack)
            names[urn].add((*scope, resource.name))
            ref = resource.inputs.get("bucket")
            if isinstance(ref, str):
                names[urn].add((*scope, ref))
            # as the engine's index keys companions (bot.policy.engines.input): absent or null is the empty name,
            # any other non-text value names nothing
            if ref is None or isinstance(ref, str):
                refs[urn].add((*scope, ref or ""))
        return cls(
            head=frozenset(head),
            changed=frozenset(changed),
            links=_frozen(links),
            names=_frozen(names),
            refs=_frozen(refs),
            known_by=_frozen(_invert(names)),
            named_by=_frozen(_invert(refs)),
        )

    def neighbours(self, urn: str) -> set[str]:
        out = set(self.links.get(urn, ()))
        for key in self.names.get(urn, ()):
            out |= self.named_by.get(key, frozenset())
        for key in self.refs.get(urn, ()):
            out |= self.known_by.get(key, frozenset())
        out.discard(urn)
        return out

    def ball(self, seeds: Iterable[str], radius: int) -> frozenset[str]:
        """Every URN within ``radius`` hops of ``seeds`` (the seeds included)."""
        seen = set(seeds)
        frontier = set(seen)
        for _ in range(radius):
            reached: set[str] = set()
            for urn in frontier:
                reached |= self.neighbours(urn)
            frontier = reached - seen
            if not frontier:
                break
            seen |= frontier
        return frozenset(seen)


def _invert(mapping: Mapping[str, set[_Key]]) -> dict[_Key, set[str]]:
    out: dict[_Key, set[str]] = collections.defaultdict(set)
    for urn, keys in mapping.items():
        for key in keys:
            out[key].add(urn)
    return out


def _frozen(mapping: Mapping[Any, set[Any]]) -> dict[Any, frozenset[Any]]:
    return {k: frozenset(v) for k, v in mapping.items()}


@dataclass(frozen=True)
class Selection:
    """``affected``: the URNs whose findings the head closure decides (within ``radius`` of a change);
    ``evaluated``: the head URNs the engine is handed (within ``radius`` of an affected one)."""

    affected: frozenset[str]
    evaluated: frozenset[str]


def select(relations: Relations, radius: int) -> Selection:
    affected = relations.ball(relations.changed, radius)
    return Selection(affected, relations.ball(affected, radius) & relations.head)


# --------------------------------------------------------------------------------------------------
# how far a checkov result reads


_REACH: dict[tuple[str, tuple[str, ...]], int | str] = {}
_REACH_LOCK = threading.Lock()


def checkov_reach(worker: CheckovWorker) -> int:
    """How many relation hops one resource's checkov results may read, for the checks ``worker`` runs (its
    checkov version, without its policy's skipped checks); :class:`Doubt` when a check cannot be bounded.

    A graph check's solvers decide per resource and pass results on only through the resources a connection
    condition joins, one hop per condition, each condition once: so the reach is the longest chain of distinct
    conditions, each sharing a type with the next, among the types glassbox renders (others never appear)."""
    key = (worker.version(), tuple(worker.policy.skipped_ids))
    with _REACH_LOCK:
        known = _REACH.get(key)
    if known is None:
        try:
            known = reach_of(worker.checks(), set(key[1]))
        except Doubt as exc:
            known = str(exc)
        with _REACH_LOCK:
            _REACH[key] = known
    if isinstance(known, str):
        raise Doubt(known)
    return known


def reach_of(checks: Sequence[Mapping[str, Any]], skipped: set[str]) -> int:
    """:func:`checkov_reach` of a worker's ``checks`` answer, without the ``skipped`` check ids."""
    rendered = frozenset(TERRAFORM_TYPES.values())
    reach = 0
    for check in checks:
        if check["id"] in skipped:
            continue
        if check.get("opaque"):
            raise Doubt(f"checkov's {check['id']} has a solver whose reach is unknown")
        conditions: list[tuple[frozenset[str], frozenset[str]]] = []
        for sides in check.get("connections", []):
            a, b = (frozenset(side) for side in sides)
            if {"all", "*"} & (a | b):
                raise Doubt(f"checkov's {check['id']} connects every resource type")
            if a & rendered and b & rendered:
                conditions.append((a & rendered, b & rendered))
        if len(conditions) > _MAX_CONDITIONS:
            raise Doubt(f"checkov's {check['id']} has {len(conditions)} connection conditions")
        reach = max(reach, longest_chain(conditions))
    return reach


def longest_chain(conditions: Sequence[tuple[frozenset[str], frozenset[str]]]) -> int:
    """The most conditions a walk over types can use, each once, every step from one side of a condition to
    its other side (a type on both sides may step to itself)."""
    memo: dict[tuple[str, frozenset[int]], int] = {}

    def longest(at: str, used: frozenset[int]) -> int:
        if (at, used) not in memo:
            best = 0
            for i, (a, b) in enumerate(conditions):
                if i not in used:
                    ahead = (b if at in a else frozenset()) | (a if at in b else frozenset())
                    for step in ahead:
                        best = max(best, 1 + longest(step, used | {i}))
            memo[at, used] = best
        return memo[at, used]

    types = {t for a, b in conditions for t in a | b}
    return max((longest(t, frozenset()) for t in types), default=0)


# --------------------------------------------------------------------------------------------------
# the base side's results, cached


class CheckovFailure(Record):
    """A failed check at the base, by URN (addresses are renumbered when the estate changes)."""

    urn: str
    check_id: str
    name: str
    severity: Severity
    file: str
    guideline: str | None = None


class _Entry(Record):
    schema_version: Literal[1] = 1
    key: str
    body_digest: str
    body: list[dict[str, Any]]


_KEPT = 16
_MAX_ENTRY_BYTES = 64 << 20
_memory: collections.OrderedDict[str, list[Record]] = collections.OrderedDict()
_memory_lock = threading.Lock()


class ResultCache:
    """Base-side results: kept in the process (the last few), and under ``directory`` when one is given."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.hits = 0
        self.misses = 0

    @classmethod
    def configured(cls, repository: Path | None = None) -> ResultCache:
        """The process's cache, on disk too where ``GLASSBOX_EVALUATION_CACHE_DIR`` names a usable directory:
        one owned by this uid and private to it, not a symlink, not inside ``repository`` (PR content). An
        unusable one is logged and left out: it only costs speed."""
        configured = os.environ.get(CACHE_DIR_ENV, "").strip()
        if not configured:
            return cls()
        directory = Path(os.path.abspath(configured))
        try:
            _private_directory(directory, repository)
        except OSError as exc:
            log.warning("evaluation cache %s left out: %s", directory, exc)
            return cls()
        return cls(directory)

    @staticmethod
    def clear_memory() -> None:
        with _memory_lock:
            _memory.clear()

    def get(self, key: str, model: type[M]) -> list[M] | None:
        with _memory_lock:
            found = _memory.get(key)
            if found is not None:
                _memory.move_to_end(key)
        if found is None and self.directory is not None:
            found = self._read(key, model)
            if found is not None:
                self._remember(key, found)
        if found is None or not all(isinstance(item, model) for item in found):
            self.misses += 1
            return None
        self.hits += 1
        return [item for item in found if isinstance(item, model)]

    def put(self, key: str, items: Sequence[Record]) -> None:
        self._remember(key, list(items))
        if self.directory is not None:
            body = [item.model_dump(mode="json") for item in items]
            entry = _Entry(key=key, body_digest=digest(body), body=body)
            fd, tmp = tempfile.mkstemp(prefix=".entry.", dir=self.directory)  # 0600
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(entry.model_dump_json())
                os.replace(tmp, self._path(key))
            except OSError as exc:
                log.warning("evaluation cache %s: cannot write an entry: %s", self.directory, exc)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    @staticmethod
    def _remember(key: str, items: list[Any]) -> None:
        with _memory_lock:
            _memory[key] = items
            _memory.move_to_end(key)
            while len(_memory) > _KEPT:
                _memory.popitem(last=False)

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{key.removeprefix('sha256:')}.json"

    def _read(self, key: str, model: type[M]) -> list[M] | None:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("evaluation cache entry %s left out: %s", path, exc)
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
                raise ValueError("not a private regular file of this user")
            if info.st_size > _MAX_ENTRY_BYTES:
                raise ValueError(f"larger than {_MAX_ENTRY_BYTES} bytes")
            with os.fdopen(os.dup(fd), "rb") as fh:
                entry = _Entry.model_validate_json(fh.read())
            if entry.key != key or entry.body_digest != digest(entry.body):
                raise ValueError("its key or body does not verify")
            return [model.model_validate(item) for item in entry.body]
        except (OSError, ValueError, ValidationError) as exc:
            log.warning("evaluation cache entry %s left out: %s", path, str(exc).splitlines()[0])
            return None
        finally:
            os.close(fd)


def _private_directory(directory: Path, repository: Path | None) -> None:
    if repository is not None:
        inside = os.path.realpath(directory), os.path.realpath(repository)
        if os.path.commonpath(inside) == inside[1]:
            raise OSError(f"it lies inside the repository being checked ({repository})")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise OSError("not a directory (a symlink?)")
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise OSError("not private to this user (chmod 700)")


# --------------------------------------------------------------------------------------------------
# the evaluations


def policy_digest(pack: PolicyPack) -> str:
    """The digest :data:`REVIEWED_POLICY` is compared with: every policy module's path and content."""
    return digest([[m.path, m.sha256] for m in pack.policy_modules])


def restrict_input(data: Mapping[str, Any], urns: frozenset[str]) -> dict[str, Any]:
    """The policy input with ``plan.resources`` limited to ``urns`` (in plan order); everything else whole."""
    plan = dict(data["plan"])
    plan["resources"] = [r for r in plan["resources"] if r.get("urn") in urns]
    return {**data, "plan": plan}


def restrict_terraform_plan(document: Mapping[str, Any], addresses: frozenset[str]) -> dict[str, Any]:
    """A rendered Terraform plan limited to ``addresses``: the same entries, so the same names, values and
    references as the whole rendering (a reference to a resource left out joins nothing)."""

    def kept(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return [item for item in items if item["address"] in addresses]

    configuration = document["configuration"]
    return {
        **document,
        "planned_values": {"root_module": {"resources": kept(document["planned_values"]["root_module"]["resources"])}},
        "resource_changes": kept(document["resource_changes"]),
        "configuration": {
            **configuration,
            "root_module": {"resources": kept(configuration["root_module"]["resources"])},
        },
    }


def reads_like_an_address(document: Mapping[str, Any], types: Iterable[str]) -> bool:
    """Some attribute value of a rendered plan mentions ``<type>.`` for one of ``types``: checkov draws a graph
    edge from any value word that reads like a resource address, whatever the dependencies say."""
    pattern = "|".join(re.escape(t) + r"\." for t in sorted(set(types)))
    if not pattern:
        return False
    values = [r["values"] for r in document["planned_values"]["root_module"]["resources"]]
    return re.search(pattern, json.dumps(values)) is not None


class Proportional:
    """One check's proportional evaluation of one plan: :meth:`rego` and :meth:`checkov` each give what a full
    evaluation gives, evaluating the changed closure, and fall back to the full evaluation on any doubt."""

    def __init__(self, plan: Plan, registry: Registry, *, cache: ResultCache | None = None) -> None:
        self.plan = plan
        self.registry = registry
        self.cache = cache if cache is not None else ResultCache()
        self._relations: Relations | None = None
        self._doubt: str | None = None
        try:
            self._relations = Relations.of(plan)
        except Doubt as exc:
            self._doubt = str(exc)
        self.evaluated: dict[str, int] = {}  # per engine: the resources handed to it (for logs and benches)

    def describe(self, estate: int) -> str:
        """For the verdict's ``verifier.evaluation``: per engine, how many of the estate's resources it was handed
        (all of them when it evaluated in full), e.g. ``proportional rego=12/1000 checkov=9/1000``."""
        parts = [f"{engine}={self.evaluated[engine]}/{estate}" for engine in sorted(self.evaluated)]
        return " ".join(["proportional", *parts])

    @property
    def relations(self) -> Relations:
        if self._relations is None:
            raise Doubt(self._doubt or "no relations")
        return self._relations

    # ---- Rego

    def rego(self, pack: Path | PolicyPack, data: dict[str, Any], evaluate: RegoEvaluate) -> RegoAnswer:
        """``evaluate(pack, data)``'s answer, evaluating only the closure where that gives the same answer."""
        try:
            return self._rego(pack, data, evaluate)
        except Doubt as exc:
            log.info("Rego evaluates the whole estate: %s", exc)
            self.evaluated["rego"] = len(data["plan"]["resources"])
            return evaluate(pack, data)

    def _rego(self, pack: Path | PolicyPack, data: dict[str, Any], evaluate: RegoEvaluate) -> RegoAnswer:
        loaded = pack if isinstance(pack, PolicyPack) else load_pack(pack)
        if policy_digest(loaded) != REVIEWED_POLICY:
            raise Doubt("the policy pack is not the one whose rules this closure was drawn for")
        relations = self.relations
        selection = select(relations, REGO_REACH)
        base = self._base_rego(loaded, _worth(selection, relations))
        self.evaluated["rego"] = len(selection.evaluated)
        findings, tier, reasons, engine = evaluate(pack, restrict_input(data, selection.evaluated))
        merged: list[Finding] = []
        for f in findings:
            if f.rule_id not in ESTATE_RULES or f.resource in selection.affected:
                merged.append(f)
            elif f.resource not in relations.head:
                raise Doubt(f"{f.rule_id} answered about {f.resource!r}, which is no resource of the estate")
        for r in base:
            if r.resource in selection.affected:
                continue
            if r.resource not in relations.head:
                raise Doubt(f"{r.rule_id} answered about {r.resource!r} at the base, which is no unchanged resource")
            merged.append(r.to_finding())
        merged.sort(key=lambda f: (f.status.value, f.rule_id, f.resource or "", f.message))
        return merged, tier, reasons, engine

    def _base_rego(self, pack: PolicyPack, worth_warming: bool) -> list[PolicyResult]:
        from bot.policy.engines import make_engine

        engine = make_engine(pack)
        base = Plan.model_construct(
            base_commit=self.plan.base_commit,
            head_commit=self.plan.base_commit,
            stacks=[],
            resources=self.plan.base_resources,
            base_resources=[],
            changes=[],
            digest=None,
        )
        # a neutral document: the base estate alone, no change, no PR facts (only ESTATE_RULES can answer); built
        # only when its digest or its evaluation is wanted, once
        document = functools.cache(
            lambda: build_policy_input(
                plan=base,
                changed_paths=[],
                governance_paths=[],
                evidence=NoEvidence(),
                author_id=_BASE_AUTHOR,
                author_is_agent=False,
                pr_number=None,
                base_ref="",
                head_sha=self.plan.base_commit,
                registry=self.registry,
                now=_EPOCH,
            )
        )
        key = base_fact(
            self.plan.base_resources,
            ("rego key", engine.name, self.registry.digest, self.plan.base_commit),
            lambda: digest(
                {"kind": "rego", "engine": engine.name, "policy": REVIEWED_POLICY, "input": digest(document())}
            ),
        )
        cached = self.cache.get(key, PolicyResult)
        if cached is not None:
            return cached
        if not worth_warming:
            raise Doubt("nothing is cached for the base, and the closure is most of the estate")
        results = engine.evaluate(document()).results
        stray = sorted({r.rule_id for r in results} - ESTATE_RULES)
        if stray:
            raise Doubt(f"rules other than the estate's answered about the base estate alone: {', '.join(stray)}")
        self.cache.put(key, results)
        return list(results)

    # ---- checkov

    def checkov(self, worker: CheckovWorker) -> CheckovReport:
        """The failures of ``worker``'s scan of the whole rendered head plan, scanning only the closure where
        that gives the same failures (attributed to the same addresses, in the same order)."""
        document = to_terraform_plan(self.plan.resources)
        try:
            return self._checkov(worker, document)
        except Doubt as exc:
            log.info("checkov scans the whole estate: %s", exc)
            self.evaluated["checkov"] = len(document["resource_changes"])
            return worker.scan_plan(document)

    def _checkov(self, worker: CheckovWorker, document: dict[str, Any]) -> CheckovReport:
        relations = self.relations
        base_resources = self.plan.base_resources
        selection = select(relations, checkov_reach(worker))
        head_urns = address_map(self.plan.resources)
        head_addresses = {urn: address for address, urn in head_urns.items()}
        evaluated = frozenset(head_addresses[u] for u in selection.evaluated if u in head_addresses)
        if len(evaluated) == len(head_addresses):
            raise Doubt("the closure is the whole estate")
        base_document = base_fact(base_resources, ("terraform",), lambda: to_terraform_plan(base_resources))
        types = {r["type"] for d in (document, base_document) for r in d["planned_values"]["root_module"]["resources"]}
        if reads_like_an_address(document, types) or reads_like_an_address(base_document, types):
            raise Doubt("an attribute value reads like a Terraform address, which checkov would join on")
        key = digest(
            {
                "kind": "checkov",
                "checkov": worker.version(),
                "policy": digest(worker.policy),
                "plan": base_fact(base_resources, ("terraform digest",), lambda: digest(base_document)),
            }
        )
        failures = self.cache.get(key, CheckovFailure)
        if failures is None:
            if 2 * len(evaluated) > len(head_addresses):
                raise Doubt("nothing is cached for the base, and the closure is most of the estate")
            failures = _failures(worker.scan_plan(base_document), address_map(self.plan.base_resources))
            self.cache.put(key, failures)
        self.evaluated["checkov"] = len(evaluated)
        report = worker.scan_plan(restrict_terraform_plan(document, evaluated))
        merged = []
        for f in report.failed:
            urn = head_urns.get(f.resource_address)
            if urn is None:
                raise Doubt(f"checkov failed {f.resource_address!r}, which the rendering does not name")
            if urn in selection.affected:
                merged.append(f)
        for base_failure in failures:
            if base_failure.urn in selection.affected:
                continue
            address = head_addresses.get(base_failure.urn)
            if address is None:
                raise Doubt(f"{base_failure.urn} failed at the base, and is no unchanged resource at head")
            merged.append(
                CheckovFinding(
                    check_id=base_failure.check_id,
                    name=base_failure.name,
                    severity=base_failure.severity,
                    status="failed",
                    resource_address=address,
                    file=base_failure.file,
                    guideline=base_failure.guideline,
                )
            )
        merged.sort(key=lambda f: (f.file, f.resource_address, f.check_id))  # the worker's order
        return CheckovReport(
            version=report.version,
            findings=merged,
            passed_count=0,
            failed_count=len(merged),
            resource_count=len(head_addresses),
            skipped_checks=report.skipped_checks,
        )


# What the closure derives from a base estate alone (its rendering, the digests that key its cached results), kept
# for the last few bases a process judged: a long-lived pre-flight judges every change an agent tries against one
# main, and its plan cache hands back that base's very Resource objects each time (bot.plan.cache).
BASE_FACTS_KEPT = 4
_base_facts: collections.OrderedDict[tuple[int, ...], tuple[list[Resource], dict[tuple[str, ...], Any]]] = (
    collections.OrderedDict()
)
_base_facts_lock = threading.Lock()


def base_fact(resources: Sequence[Resource], name: tuple[str, ...], make: Callable[[], _T]) -> _T:
    """``make()``, a function of the base ``resources`` and of what ``name`` spells out, worked out once per base.

    A base is known by the identity of its Resource objects (frozen records), not by their content: comparing
    content would cost what is saved. The objects are held here while their base is kept, so no other object can
    take one's identity meanwhile; a base built afresh (planned again, read by another cache) is another base.
    What is returned is shared: callers only read it."""
    ids = tuple(map(id, resources))
    with _base_facts_lock:
        held = _base_facts.get(ids)
        if held is not None:
            _base_facts.move_to_end(ids)
            if name in held[1]:
                return held[1][name]  # type: ignore[no-any-return]
    value = make()
    with _base_facts_lock:
        held = _base_facts.get(ids)
        if held is None:
            held = _base_facts[ids] = (list(resources), {})
            while len(_base_facts) > BASE_FACTS_KEPT:
                _base_facts.popitem(last=False)
        held[1][name] = value
    return value


def _worth(selection: Selection, relations: Relations) -> bool:
    """Whether evaluating the closure saves anything; :class:`Doubt` when it is the whole estate. The answer is
    whether it is worth also evaluating the base in full (nothing cached): only for at most half the estate."""
    if len(selection.evaluated) == len(relations.head):
        raise Doubt("the closure is the whole estate")
    return 2 * len(selection.evaluated) <= len(relations.head)


def _failures(report: CheckovReport, urns: Mapping[str, str]) -> list[CheckovFailure]:
    out = []
    for f in report.failed:
        urn = urns.get(f.resource_address)
        if urn is None:
            raise Doubt(f"checkov failed {f.resource_address!r} at the base, which the rendering does not name")
        out.append(
            CheckovFailure(
                urn=urn, check_id=f.check_id, name=f.name, severity=f.severity, file=f.file, guideline=f.guideline
            )
        )
    return out
