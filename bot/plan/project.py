"""Pulumi projects as they exist in one git commit: discovery, stack config, and export to a directory.

A project is a directory under ``infra/`` holding ``Pulumi.yaml``; its stacks are the
``Pulumi.<stack>.yaml`` files beside it. Everything is read from the commit's tree through GitPython,
never from the user's work tree, so a plan of two refs does not depend on what is checked out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from git.objects import Blob, Commit, Tree

from bot.documents import MAX_DOCUMENT_BYTES, parse_document
from bot.errors import EngineError, UserError

INFRA_ROOT = "infra"
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")
STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>[^/]+)\.ya?ml$")
ENVIRONMENT_KEY = "glassbox:environment"
REGION_KEY = "aws:region"


@dataclass(frozen=True)
class StackConfig:
    """What the program of one stack sees: ``PULUMI_CONFIG`` and which keys of it are secret."""

    values: dict[str, str]
    secret_keys: list[str]
    environment: str
    region: str | None


@dataclass(frozen=True)
class Project:
    """One project at one commit."""

    path: str
    name: str
    main: str
    settings: dict[str, Any]
    stack_files: dict[str, str] = field(default_factory=dict)  # stack name → repo-relative path

    def stack_config(self, commit: Commit, stack: str) -> StackConfig:
        """The stack's config as the Pulumi CLI would hand it to the program (all values strings)."""
        values: dict[str, str] = {}
        secret: set[str] = set()
        defaults = self.settings.get("config") or {}
        if not isinstance(defaults, dict):
            raise _bad(self, stack, "Pulumi.yaml: 'config' must be a mapping")
        for key, raw in defaults.items():
            value = raw.get("default") if isinstance(raw, dict) and ("default" in raw or "type" in raw) else raw
            if value is not None:
                self._put(values, secret, str(key), value)
        document = _yaml(commit, self.stack_files[stack], self, stack)
        config = document.get("config") or {}
        if not isinstance(config, dict):
            raise _bad(self, stack, f"{self.stack_files[stack]}: 'config' must be a mapping")
        for key, value in config.items():
            self._put(values, secret, str(key), value)
        environment = values.get(ENVIRONMENT_KEY) or stack
        return StackConfig(values, sorted(secret), environment, values.get(REGION_KEY))

    def _put(self, values: dict[str, str], secret: set[str], key: str, value: Any) -> None:
        full = key if ":" in key else f"{self.name}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Ciphertext only: the plan never decrypts. A changed secret is still a changed input.
            secret.add(full)
            values[full] = str(value["secure"])
        elif isinstance(value, str):
            values[full] = value
        elif isinstance(value, bool):
            values[full] = "true" if value else "false"
        elif isinstance(value, int | float):
            values[full] = json.dumps(value)
        else:
            values[full] = json.dumps(value, sort_keys=True)

    def directory_under(self, destination: Path) -> Path:
        """Where :meth:`export` writes the project under ``destination``."""
        return destination / self.path

    def export(self, commit: Commit, destination: Path) -> Path:
        """Write the project's files at ``commit`` under ``destination/<path>``; return that directory."""
        target = self.directory_under(destination)
        tree = commit.tree / self.path
        for item in tree.traverse():
            if not isinstance(item, Blob):
                continue
            relative = PurePosixPath(item.path).relative_to(self.path)
            out = target / Path(*relative.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            if item.mode == Blob.link_mode:
                continue  # a symlink could point outside the export; programs do not need them
            out.write_bytes(item.data_stream.read())
        return target


def find_projects(commit: Commit | None) -> dict[str, Project]:
    """Every project under ``infra/`` at ``commit``, keyed by its repository-relative directory."""
    if commit is None:
        return {}
    try:
        root = commit.tree / INFRA_ROOT
    except KeyError:
        return {}
    if not isinstance(root, Tree):
        return {}
    projects: dict[str, Project] = {}
    for item in root.traverse():
        if not isinstance(item, Blob) or item.name not in PROJECT_FILES:
            continue
        directory = str(PurePosixPath(item.path).parent)
        if directory in projects:
            continue
        settings = _settings(item, directory)
        name = str(settings.get("name") or PurePosixPath(directory).name)
        main = str(settings.get("main") or "__main__.py")
        parent = commit.tree / directory
        stacks: dict[str, str] = {}
        for child in parent.blobs:
            match = STACK_FILE.match(child.name)
            if match:
                stacks[match.group("stack")] = str(child.path)
        projects[directory] = Project(directory, name, main, settings, stacks)
    return projects


def project_of(path: str, projects: dict[str, Project]) -> str | None:
    """The directory of the innermost project containing ``path``, if any."""
    best: str | None = None
    for directory in projects:
        if path.startswith(directory + "/") and (best is None or len(directory) > len(best)):
            best = directory
    return best


def _document(blob: Blob, source: str) -> Any:
    """A YAML file of the commit through the same limited loader as requests (size, aliases, expansion, depth):
    a stack config is a file the most restricted agent may write, and it is read in the checker's process."""
    if blob.size > MAX_DOCUMENT_BYTES:
        raise UserError(f"{source}: {blob.size} bytes is larger than {MAX_DOCUMENT_BYTES}; refusing to read it")
    try:
        text = blob.data_stream.read().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{source}: not UTF-8 text") from None
    return parse_document(text, source)


def _settings(blob: Blob, directory: str) -> dict[str, Any]:
    try:
        data = _document(blob, f"{directory}/{blob.name}")
    except UserError as exc:
        raise EngineError(f"project at {directory}: {exc.message}", engine="plan") from None
    if not isinstance(data, dict):
        raise EngineError(f"project at {directory}: Pulumi.yaml must be a mapping", engine="plan")
    return data


def _yaml(commit: Commit, path: str, project: Project, stack: str) -> dict[str, Any]:
    blob = commit.tree / path
    try:
        data = _document(blob, path)
    except UserError as exc:
        raise _bad(project, stack, exc.message) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _bad(project, stack, f"{path} must be a mapping")
    return data


def _bad(project: Project, stack: str, cause: str) -> EngineError:
    return EngineError(f"project {project.name!r} stack {stack!r}: {cause}", engine="plan")
