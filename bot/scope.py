"""One scope function for every door an agent writes through: ``propose`` and the check of any PR it opened
or pushed to apply these same rules (I13), so an agent gains nothing by going around ``glassbox propose``.

The rules read only trusted anchors: the agent's registry entry and the base commit's tree. What a change
request alone carries (its requester, its file contents, its budgets against the ledger) stays with propose.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from collections.abc import Iterable
from pathlib import PurePosixPath

import git

from bot.records import Autonomy
from bot.redaction import find_secrets
from bot.registry import Agent, AgentStatus, Registry, is_governance_path, path_in_scope

PROPOSE_TOOL = "propose_change"
"""The tool an agent must be granted to write at all, through propose or straight through the forge."""

STACK_FILE_NAME = re.compile(r"Pulumi\.([A-Za-z0-9_.-]+)\.yaml")


# '.git' in any case, and the NTFS short names of '.git' and '.gitmodules' (CVE-2014-9390, CVE-2019-1353)
_GIT_METADATA = re.compile(r"\.git|\.gitmodules|git~\d+|gitmod~\d+")


def path_problems(path: str) -> list[str]:
    """Why a change path is unsafe on its face (before looking at scope)."""
    problems = []
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        problems.append(f"path {path!r} is absolute; use a repository-relative path")
    if "\\" in path:
        problems.append(f"path {path!r} contains a backslash")
    if "%" in path and urllib.parse.unquote(path) != path:
        problems.append(f"path {path!r} is URL-encoded; give the plain path")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        problems.append(f"path {path!r} contains control characters")
    if unicodedata.normalize("NFKC", path) != path or not path.isascii():
        problems.append(f"path {path!r} contains non-ASCII or look-alike characters")
    parts = PurePosixPath(path).parts
    if ".." in parts or ".." in path.split("/"):
        problems.append(f"path {path!r} contains '..' and could escape the repository")
    if "." in path.split("/") or "//" in path or path.endswith("/"):
        problems.append(f"path {path!r} is not normalised (no '.', '//' or trailing '/')")
    named = [p for p in path.split("/") if p not in ("", ".", "..")]
    if any(p != p.rstrip(". ") for p in named):
        # Windows drops a trailing dot or space: 'registry.' would be written into 'registry'
        problems.append(f"path {path!r} has a component ending in a dot or a space")
    if any(_GIT_METADATA.fullmatch(p.rstrip(". ").casefold()) for p in named):
        problems.append(f"path {path!r} names git metadata (.git, .gitmodules or a short-name alias of them)")
    if find_secrets(path):
        problems.append(f"path {path!r} contains a secret; a file name lands in the repository in clear")
    return problems


def _base_entry(commit: git.Commit, path: str) -> str | None:
    """'symlink', 'file', 'dir' or None for ``path`` at ``commit``; any symlinked parent counts."""
    tree = commit.tree
    parts = path.split("/")
    for i in range(len(parts)):
        sub = "/".join(parts[: i + 1])
        try:
            obj = tree / sub
        except KeyError:
            return None
        if obj.type == "blob" and obj.mode == 0o120000:
            return "symlink"
        if i == len(parts) - 1:
            return "dir" if obj.type == "tree" else "file"
    return None


def _project_and_stack(path: str) -> tuple[str | None, str | None]:
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] == "infra":
        m = STACK_FILE_NAME.fullmatch(parts[-1])
        return parts[1], (m.group(1) if m and len(parts) == 3 else None)
    return None, None


def _project_stacks(commit: git.Commit, project: str) -> list[str]:
    try:
        tree = commit.tree / f"infra/{project}"
    except KeyError:
        return []
    stacks = []
    for blob in tree.blobs:
        m = STACK_FILE_NAME.fullmatch(blob.name)
        if m:
            stacks.append(m.group(1))
    return sorted(stacks)


def agent_reasons(registry: Registry, agent_id: str) -> tuple[Agent | None, list[str]]:
    """(the agent's entry, every reason it may not write at all): unknown, not active, no write tool, autonomy."""
    agent = registry.find_agent(agent_id)
    if agent is None:
        return None, [f"unknown agent {agent_id!r}: it is not registered in registry/agents.yaml"]
    reasons: list[str] = []
    if agent.status is not AgentStatus.ACTIVE:
        reasons.append(f"agent {agent.id!r} is {agent.status.value}")
    if PROPOSE_TOOL not in agent.tools:
        reasons.append(f"agent {agent.id!r} is not granted the {PROPOSE_TOOL!r} tool")
    if agent.autonomy is Autonomy.READ_ONLY:
        reasons.append(f"agent {agent.id!r} is read_only: it may not write at all")
    elif agent.autonomy is Autonomy.RECOMMEND:
        reasons.append(
            f"agent {agent.id!r} has autonomy 'recommend': it may file a recommendation for a person to act on, "
            "not open a pull request"
        )
    return agent, reasons


def draft_reasons(agent: Agent, *, draft: bool, readied_by_person: bool) -> list[str]:
    """A ``draft`` agent's PR stays a draft until a person (never the agent) marks it ready for review."""
    if agent.autonomy is Autonomy.DRAFT and not draft and not readied_by_person:
        return [
            f"agent {agent.id!r} has autonomy 'draft': its pull requests must be drafts until a person marks them ready"
        ]
    return []


def path_reasons(agent: Agent, base: git.Commit, path: str, *, delete: bool, base_name: str = "the base") -> list[str]:
    """Why ``agent`` may not write (or delete) ``path`` over the ``base`` tree; empty when it may."""
    face = path_problems(path)
    reasons = list(face)
    if is_governance_path(path):  # said even when the path is also malformed: the agent learns both
        return [*reasons, f"path {path!r} is a governance path; agents never change governance (I2)"]
    if face:
        return reasons
    if not path_in_scope(agent, path):
        reasons.append(f"path {path!r} is outside agent {agent.id!r}'s path globs {agent.scope.paths}")
    kind = _base_entry(base, path)
    if kind == "symlink":
        reasons.append(f"path {path!r} is (or lies under) a symlink in the base tree")
    elif kind == "dir":
        reasons.append(f"path {path!r} is a directory in the base tree")
    elif kind is None and delete:
        reasons.append(f"path {path!r} does not exist on {base_name}; nothing to delete")
    return reasons


def project_stack_reasons(
    agent: Agent, base: git.Commit, paths: Iterable[str], declared: Iterable[tuple[str, str]] = ()
) -> list[str]:
    """Projects and stacks ``paths`` touch (a program file touches every stack of its project) outside the
    agent's scope, with any ``declared`` (project, stack) pairs."""
    touched_projects: set[str] = set()
    touched_stacks: set[tuple[str, str]] = set()
    for path in paths:
        if path_problems(path) or is_governance_path(path):
            continue
        project, stack = _project_and_stack(path)
        if project:
            touched_projects.add(project)
            stacks = [stack] if stack else _project_stacks(base, project)
            touched_stacks.update((project, s) for s in stacks)
    reasons = []
    allowed_projects = set(agent.scope.projects)
    for project in sorted(touched_projects - allowed_projects):
        reasons.append(f"project {project!r} is outside agent {agent.id!r}'s projects {sorted(allowed_projects)}")
    allowed_stacks = set(agent.scope.stacks)
    named = set(declared)
    for project, stack in sorted(touched_stacks | named):
        if stack not in allowed_stacks:
            reasons.append(
                f"stack {project}/{stack} is outside agent {agent.id!r}'s stacks {sorted(allowed_stacks)}"
                + ("" if (project, stack) in named else " (a program change touches every stack of its project)")
            )
    return reasons
