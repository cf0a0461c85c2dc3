"""Which projects and stacks a change touches, from the paths it changes.

Rules: a changed ``Pulumi.<stack>.yaml`` touches that stack only; any other file of a project (its program,
``Pulumi.yaml``, a helper module) touches every stack the project has at base or at head. A project that
exists on one side only (added or deleted) is touched on both sides; the missing side runs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from git.objects import Commit

from bot.plan.project import STACK_FILE, Project, project_of


@dataclass(frozen=True, order=True)
class TouchedStack:
    path: str  # project directory, e.g. infra/data
    stack: str


def changed_paths(base: Commit, head: Commit) -> list[str]:
    """Every path added, deleted, modified or renamed between ``base`` and ``head`` (both names of a rename)."""
    paths: set[str] = set()
    for change in base.diff(head):
        for path in (change.a_path, change.b_path):
            if path:
                paths.add(path)
    return sorted(paths)


def touched_stacks(
    paths: Iterable[str], base_projects: dict[str, Project], head_projects: dict[str, Project]
) -> list[TouchedStack]:
    every = {**base_projects, **head_projects}
    touched: set[TouchedStack] = set()
    for path in paths:
        directory = project_of(path, every)
        if directory is None:
            continue
        relative = PurePosixPath(path).relative_to(directory)
        match = STACK_FILE.match(relative.name) if len(relative.parts) == 1 else None
        if match:
            touched.add(TouchedStack(directory, match.group("stack")))
            continue
        stacks = set(base_projects[directory].stack_files) if directory in base_projects else set()
        if directory in head_projects:
            stacks |= set(head_projects[directory].stack_files)
        touched.update(TouchedStack(directory, stack) for stack in stacks)
    return sorted(touched)
