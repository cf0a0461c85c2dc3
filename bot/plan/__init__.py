"""The plan: what a pull request changes in the infrastructure, computed from Pulumi programs without a cloud.

``build_plan(repo, base, head)`` finds the Pulumi projects and stacks the change touches, runs each one's
program at base and at head under the Pulumi SDK's mock runtime (in a sandbox subprocess, see
:mod:`bot.plan.runner`), and diffs the registered resources into a sealed :class:`Plan`.

Modules: ``model`` (records), ``project`` (projects in a git tree), ``scope`` (touched stacks),
``mockcloud`` (deterministic mock ids), ``sandbox`` (the subprocess), ``runner`` (the parent side),
``diff`` (resource changes), ``terraform`` (Terraform-plan JSON for checkov).
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import git
from git.objects import Commit

from bot.errors import EngineError, UserError
from bot.plan.diff import diff_stack
from bot.plan.model import Plan, PropertyChange, Resource, ResourceChange, StackRef
from bot.plan.project import Project, find_projects
from bot.plan.runner import SANDBOX_MODES, SANDBOX_NAMESPACES, SANDBOX_NONE, Job, Sandbox, run_jobs
from bot.plan.scope import TouchedStack, changed_paths, touched_stacks

__all__ = [
    "SANDBOX_MODES",
    "SANDBOX_NAMESPACES",
    "SANDBOX_NONE",
    "Plan",
    "PropertyChange",
    "Resource",
    "ResourceChange",
    "Sandbox",
    "StackRef",
    "build_plan",
]


def build_plan(repo_path: Path, base: str, head: str, *, timeout: float = 120, sandbox: Sandbox | None = None) -> Plan:
    """Plan the change from ``base`` to ``head`` of the git repository at ``repo_path``.

    ``timeout`` bounds each sandbox (one per ref); ``sandbox`` says how PR code is isolated (default: the
    namespaces sandbox with its default limits). Raises :class:`bot.errors.UserError` for a
    repository or ref that does not exist and :class:`bot.errors.EngineError` when a program fails.
    """
    repo = _open(repo_path)
    try:
        return _build(repo, base, head, timeout, sandbox or Sandbox())
    finally:
        repo.close()  # GitPython keeps `git cat-file` processes per Repo until closed


def _build(repo: git.Repo, base: str, head: str, timeout: float, sandbox: Sandbox) -> Plan:
    base_commit = _resolve(repo, base)
    head_commit = _resolve(repo, head)
    base_projects = find_projects(base_commit)
    head_projects = find_projects(head_commit)
    touched = touched_stacks(changed_paths(base_commit, head_commit), base_projects, head_projects)

    with tempfile.TemporaryDirectory(prefix="glassbox-plan-") as scratch:
        root = Path(scratch)
        base_jobs = _jobs(touched, base_projects, base_commit, root / "base")
        head_jobs = _jobs(touched, head_projects, head_commit, root / "head")
        # Two refs, two processes: on two cores the base and head batches overlap almost fully.
        with ThreadPoolExecutor(max_workers=2) as pool:
            base_ref, head_ref = f"base {base_commit.hexsha[:12]}", f"head {head_commit.hexsha[:12]}"
            base_run = pool.submit(run_jobs, base_jobs, ref=base_ref, timeout=timeout, sandbox=sandbox)
            head_run = pool.submit(run_jobs, head_jobs, ref=head_ref, timeout=timeout, sandbox=sandbox)
            failures = [run.exception() for run in (base_run, head_run)]
        engine_errors = [e for e in failures if isinstance(e, EngineError)]
        other = [e for e in failures if e is not None and not isinstance(e, EngineError)]
        if other:
            raise other[0]
        if engine_errors:
            # Both sides' failures in one message: a broken base is as much a deny (I5) as a broken head.
            causes = [e.message.removeprefix("plan: ") for e in engine_errors]
            raise EngineError("; ".join(causes), engine="plan")
        base_resources = base_run.result()
        head_resources = head_run.result()

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
    return plan.sealed()


def _jobs(touched: list[TouchedStack], projects: dict[str, Project], commit: Commit, root: Path) -> list[Job]:
    jobs: list[Job] = []
    exported: dict[str, Path] = {}
    for item in touched:
        project = projects.get(item.path)
        if project is None or item.stack not in project.stack_files:
            continue  # the project or the stack does not exist on this side
        if item.path not in exported:
            exported[item.path] = project.export(commit, root)
        config = project.stack_config(commit, item.stack)
        jobs.append(
            Job(
                project=project.name,
                stack=item.stack,
                environment=config.environment,
                path=item.path,
                directory=exported[item.path],
                main=project.main,
                config=config.values,
                secret_keys=config.secret_keys,
                region=config.region,
            )
        )
    return jobs


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
