"""Builders for plan tests: a real git repository holding glassbox's sample infra projects."""

from __future__ import annotations

import shutil
from pathlib import Path

import git

REPO_ROOT = Path(__file__).resolve().parent.parent
INFRA = REPO_ROOT / "infra"
CHECKOV_PYTHON = REPO_ROOT / ".tools" / "checkov" / "bin" / "python"


# Repositories handed out, closed by tests/unit/plan/conftest.py (GitPython keeps `git cat-file` pipes open).
OPENED: list[git.Repo] = []


def close_repos() -> None:
    while OPENED:
        OPENED.pop().close()


def infra_repo(path: Path, projects: tuple[str, ...] = ("network", "data", "identity")) -> git.Repo:
    """A fresh repository at ``path`` whose first commit holds ``infra/<project>`` for each project."""
    repo = git.Repo.init(path, initial_branch="main")
    OPENED.append(repo)
    with repo.config_writer() as config:
        config.set_value("user", "name", "Plan Test")
        config.set_value("user", "email", "plan-test@example.com")
        config.set_value("commit", "gpgsign", "false")
    for project in projects:
        shutil.copytree(INFRA / project, path / "infra" / project, ignore=shutil.ignore_patterns("__pycache__"))
    (path / "README.md").write_text("sample estate\n", encoding="utf-8")
    commit_all(repo, "initial estate")
    return repo


def commit_all(repo: git.Repo, message: str) -> str:
    """Stage every change in the work tree (including deletions) and commit; return the SHA."""
    repo.git.add(A=True)
    repo.git.commit("-m", message, "--allow-empty")
    return repo.head.commit.hexsha


def edit(repo: git.Repo, relative: str, old: str, new: str) -> None:
    """Replace ``old`` (which must occur once) by ``new`` in a file of the work tree."""
    target = Path(repo.working_dir) / relative
    text = target.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {relative}"
    target.write_text(text.replace(old, new), encoding="utf-8")


def append(repo: git.Repo, relative: str, text: str) -> None:
    target = Path(repo.working_dir) / relative
    target.write_text(target.read_text(encoding="utf-8") + text, encoding="utf-8")


def write(repo: git.Repo, relative: str, text: str) -> None:
    target = Path(repo.working_dir) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def one_program(path: Path, program: str) -> tuple[str, str]:
    """A fresh repository at ``path`` whose second commit adds project ``app`` (stack ``dev``, eu-central-1)
    running ``program``: (first commit, second commit)."""
    repo = infra_repo(path, projects=())
    before = repo.head.commit.hexsha
    write(repo, "infra/app/Pulumi.yaml", "name: app\nruntime: python\n")
    write(repo, "infra/app/Pulumi.dev.yaml", "config:\n  aws:region: eu-central-1\n")
    write(repo, "infra/app/__main__.py", program)
    return before, commit_all(repo, "app")
