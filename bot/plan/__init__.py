"""The plan: what a pull request changes in the infrastructure, computed from Pulumi programs without a cloud.

``build_plan(repo, base, head)`` finds the Pulumi projects and stacks the change touches, runs each one's
program at base and at head under the Pulumi SDK's mock runtime (in a sandbox subprocess, see
:mod:`bot.plan.runner`), and diffs the registered resources into a sealed :class:`Plan`. ``plan_change`` does
the same and may take a side's resources from a :class:`PlanCache` instead of a sandbox run, saying for each
stack and side which it was; ``build_plan`` never uses a cache (deploy's recomputation runs every program).

Modules: ``model`` (records), ``project`` (projects in a git tree), ``scope`` (touched stacks),
``mockcloud`` (deterministic mock ids), ``sandbox`` (the subprocess), ``runner`` (the parent side),
``pool`` (warm sandboxes for long-lived callers), ``cache`` (plans already computed, MAC'd), ``diff`` (resource
changes), ``terraform`` (Terraform-plan JSON for checkov).
"""

from __future__ import annotations

import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import git
from git.objects import Commit

from bot.errors import EngineError, UserError
from bot.plan.cache import PlanCache
from bot.plan.diff import diff_stack
from bot.plan.model import Plan, PropertyChange, Resource, ResourceChange, StackRef
from bot.plan.pool import SandboxPool
from bot.plan.project import Project, find_projects
from bot.plan.runner import SANDBOX_MODES, SANDBOX_NAMESPACES, SANDBOX_NONE, Job, Sandbox, run_jobs
from bot.plan.scope import TouchedStack, changed_paths, touched_stacks
from bot.records import PlanSource

if TYPE_CHECKING:
    from bot.registry import EstateFile

__all__ = [
    "SANDBOX_MODES",
    "SANDBOX_NAMESPACES",
    "SANDBOX_NONE",
    "Plan",
    "PlanCache",
    "PlannedChange",
    "PropertyChange",
    "Resource",
    "ResourceChange",
    "Sandbox",
    "SandboxPool",
    "StackRef",
    "build_plan",
    "plan_change",
]

Side = Literal["base", "head"]


@dataclass(frozen=True)
class PlannedChange:
    """A plan and, per touched stack and side, where its resources came from."""

    plan: Plan
    sources: list[PlanSource]


def build_plan(repo_path: Path, base: str, head: str, *, timeout: float = 120, sandbox: Sandbox | None = None) -> Plan:
    """Plan the change from ``base`` to ``head`` of the git repository at ``repo_path``, running every program.

    ``timeout`` bounds each sandbox (one per ref); ``sandbox`` says how PR code is isolated (default: the
    namespaces sandbox with its default limits). Raises :class:`bot.errors.UserError` for a
    repository or ref that does not exist and :class:`bot.errors.EngineError` when a program fails.
    """
    return plan_change(repo_path, base, head, timeout=timeout, sandbox=sandbox).plan


def plan_change(
    repo_path: Path,
    base: str,
    head: str,
    *,
    timeout: float = 120,
    sandbox: Sandbox | None = None,
    cache: PlanCache | None = None,
    estate: EstateFile | None = None,
    pool: SandboxPool | None = None,
    write_behind: bool = False,
) -> PlannedChange:
    """:func:`build_plan`, taking a side's resources from ``cache`` when a verified entry has them and keeping
    what each sandbox run reported there. ``estate`` (the registry's, at the base) is part of every key. The
    cache is not used for ``Sandbox(mode="none")``: a program outside the sandbox could reach it. With ``pool``,
    each side that runs takes a warm sandbox of its own from it (:mod:`bot.plan.pool`), used for that side only.
    With ``write_behind``, what a run reported is kept for ``cache`` to write once the caller releases it
    (:meth:`PlanCache.put_soon`, :meth:`PlanCache.release`; every read of the cache releases and waits for it)."""
    repo = _open(repo_path)
    sandbox = sandbox or Sandbox()
    if sandbox.mode != SANDBOX_NAMESPACES:
        cache = None
    if cache is not None:
        cache.admit(repo_path)
    try:
        return _build(repo, base, head, timeout, sandbox, cache, estate, pool, write_behind)
    finally:
        repo.close()  # GitPython keeps `git cat-file` processes per Repo until closed


@dataclass
class _Side:
    name: Side
    commit: Commit
    projects: dict[str, Project]
    jobs: list[Job]
    key: str | None = None
    resources: dict[tuple[str, str], list[Resource]] | None = None

    @property
    def ref(self) -> str:
        return f"{self.name} {self.commit.hexsha[:12]}"


def _build(
    repo: git.Repo,
    base: str,
    head: str,
    timeout: float,
    sandbox: Sandbox,
    cache: PlanCache | None,
    estate: EstateFile | None,
    pool: SandboxPool | None = None,
    write_behind: bool = False,
) -> PlannedChange:
    base_commit = _resolve(repo, base)
    head_commit = _resolve(repo, head)
    base_projects = find_projects(base_commit)
    head_projects = find_projects(head_commit)
    touched = touched_stacks(changed_paths(base_commit, head_commit), base_projects, head_projects)

    with tempfile.TemporaryDirectory(prefix="glassbox-plan-") as scratch:
        root = Path(scratch)
        sides = [
            _Side("base", base_commit, base_projects, _jobs(touched, base_projects, base_commit, root / "base")),
            _Side("head", head_commit, head_projects, _jobs(touched, head_projects, head_commit, root / "head")),
        ]
        # Two refs, two processes: on two cores the base and head batches overlap almost fully. Each side's run
        # starts as soon as its look-up missed and its tree is exported, the head's first: the base is the side
        # the cache usually holds, and reading and verifying its entry overlaps the head's run. Look-ups and
        # exports read git here, in one thread: a GitPython Repo is not safe to share.
        runs: dict[Side, Future[dict[tuple[str, str], list[Resource]]]] = {}
        with ThreadPoolExecutor(max_workers=2) as threads:
            for side in reversed(sides):
                if cache is not None and side.jobs:
                    side.key = cache.key(
                        side.name, side.commit, side.jobs, sandbox=sandbox, timeout=timeout, estate=estate
                    )
                    side.resources = cache.get(side.key, side.name, side.jobs)
                if side.resources is None:
                    _export(side, root / side.name)
                    runs[side.name] = threads.submit(
                        run_jobs, side.jobs, ref=side.ref, timeout=timeout, sandbox=sandbox, pool=pool
                    )
            failures = [runs[side.name].exception() for side in sides if side.name in runs]
        engine_errors = [e for e in failures if isinstance(e, EngineError)]
        other = [e for e in failures if e is not None and not isinstance(e, EngineError)]
        if other:
            raise other[0]
        if engine_errors:
            # Both sides' failures in one message: a broken base is as much a deny (I5) as a broken head.
            causes = [e.message.removeprefix("plan: ") for e in engine_errors]
            raise EngineError("; ".join(causes), engine="plan")
        sources: list[PlanSource] = []
        for side in sides:
            status: Literal["hit", "miss", "off"] = "hit" if side.resources is not None else "miss"
            if side.resources is None:
                side.resources = runs[side.name].result()
                if cache is not None and side.key is not None:
                    keep = cache.put_soon if write_behind else cache.put
                    keep(side.key, side.name, side.jobs, side.resources)
                else:
                    status = "off"
            sources += [PlanSource(project=j.project, stack=j.stack, side=side.name, cache=status) for j in side.jobs]
        base_resources = sides[0].resources or {}
        head_resources = sides[1].resources or {}
        base_jobs, head_jobs = sides[0].jobs, sides[1].jobs

    # A stack's environment is the head's when the stack exists at head, else the base's.
    by_key = {(j.project, j.stack): j for j in [*base_jobs, *head_jobs]}
    stacks = [
        StackRef(project=j.project, stack=j.stack, environment=j.environment, path=j.path)
        for _, j in sorted(by_key.items())
    ]
    resources: list[Resource] = []
    olds: list[Resource] = []
    changes: list[ResourceChange] = []
    for key in sorted(by_key):
        old = base_resources.get(key, [])
        new = head_resources.get(key, [])
        olds.extend(old)
        resources.extend(new)
        changes.extend(diff_stack(old, new))

    plan = Plan(
        base_commit=base_commit.hexsha,
        head_commit=head_commit.hexsha,
        stacks=stacks,
        resources=resources,
        base_resources=olds,
        changes=changes,
    )
    return PlannedChange(plan.sealed(), sorted(sources, key=lambda s: (s.project, s.stack, s.side)))


def _jobs(touched: list[TouchedStack], projects: dict[str, Project], commit: Commit, root: Path) -> list[Job]:
    """The jobs of one side; each project is exported under ``root`` only if the side has to run (:func:`_export`)."""
    jobs: list[Job] = []
    for item in touched:
        project = projects.get(item.path)
        if project is None or item.stack not in project.stack_files:
            continue  # the project or the stack does not exist on this side
        config = project.stack_config(commit, item.stack)
        jobs.append(
            Job(
                project=project.name,
                stack=item.stack,
                environment=config.environment,
                path=item.path,
                directory=project.directory_under(root),
                main=project.main,
                config=config.values,
                secret_keys=config.secret_keys,
                region=config.region,
            )
        )
    return jobs


def _export(side: _Side, root: Path) -> None:
    for path in dict.fromkeys(job.path for job in side.jobs):
        side.projects[path].export(side.commit, root)


def _open(repo_path: Path) -> git.Repo:
    try:
        return git.Repo(repo_path)
    except (git.NoSuchPathError, git.InvalidGitRepositoryError):
        raise UserError(f"--repo {repo_path}: not a git repository; pass the repository's root") from None


def _resolve(repo: git.Repo, ref: str) -> Commit:
    try:
        commit = repo.commit(ref)
    except (git.BadName, ValueError):
        where = repo.working_dir
        raise UserError(f"ref {ref!r} does not name a commit in {where}; pass a branch, tag or SHA") from None
    return commit
