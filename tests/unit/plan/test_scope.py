"""Which projects and stacks a change touches, read from git trees (no program is run here)."""

from __future__ import annotations

from pathlib import Path

import git

from bot.plan.project import find_projects
from bot.plan.scope import TouchedStack, changed_paths, touched_stacks
from tests.plan_helpers import append, commit_all, edit, infra_repo, write


def _touched(repo: git.Repo, base: str, head: str) -> list[tuple[str, str]]:
    b, h = repo.commit(base), repo.commit(head)
    found = touched_stacks(changed_paths(b, h), find_projects(b), find_projects(h))
    return [(t.path, t.stack) for t in found]


def test_projects_are_found_with_their_stacks(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path)
    projects = find_projects(repo.head.commit)

    assert sorted(projects) == ["infra/data", "infra/identity", "infra/network"]
    data = projects["infra/data"]
    assert data.name == "data" and data.main == "__main__.py"
    assert data.stack_files == {"dev": "infra/data/Pulumi.dev.yaml", "prod": "infra/data/Pulumi.prod.yaml"}
    config = data.stack_config(repo.head.commit, "prod")
    assert config.environment == "prod" and config.region == "eu-west-1"
    assert config.values["data:dbDeletionProtection"] == "true"
    assert config.values["data:dbAllocatedStorage"] == "200"
    assert config.values["data:privateSubnetIds"] == '["subnet-0prod000000000a1", "subnet-0prod000000000b1"]'


def test_stack_file_touches_that_stack_and_program_touches_all(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path)
    start = repo.head.commit.hexsha
    edit(repo, "infra/network/Pulumi.dev.yaml", "bastionSize: t3.small", "bastionSize: t3.micro")
    config_only = commit_all(repo, "dev bastion")
    append(repo, "infra/data/__main__.py", "\n# a comment is still a change to the program\n")
    program = commit_all(repo, "data program")
    write(repo, "docs/notes.md", "outside infra\n")
    outside = commit_all(repo, "notes")

    assert _touched(repo, start, config_only) == [("infra/network", "dev")]
    assert _touched(repo, config_only, program) == [("infra/data", "dev"), ("infra/data", "prod")]
    assert _touched(repo, program, outside) == []


def test_new_stack_deleted_stack_and_new_project(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path, projects=("identity",))
    start = repo.head.commit.hexsha
    write(repo, "infra/identity/Pulumi.staging.yaml", "config:\n  glassbox:environment: staging\n")
    (Path(repo.working_dir) / "infra/identity/Pulumi.dev.yaml").unlink()
    write(repo, "infra/queue/Pulumi.yaml", "name: queue\nruntime: python\n")
    write(repo, "infra/queue/Pulumi.test.yaml", "config: {}\n")
    write(repo, "infra/queue/__main__.py", "")
    head = commit_all(repo, "stacks move")

    assert _touched(repo, start, head) == [
        ("infra/identity", "dev"),
        ("infra/identity", "staging"),
        ("infra/queue", "test"),
    ]


def test_paths_outside_known_projects_touch_nothing() -> None:
    paths = ["infra/a/Pulumi.yaml", "infra/a/lib/helpers.py", "infra/b/Pulumi.prod.yml", "README.md"]
    assert touched_stacks(paths, {}, {}) == []
    assert TouchedStack("infra/a", "dev") < TouchedStack("infra/b", "dev")


def test_stack_config_namespaces_keys_and_keeps_secrets_as_ciphertext(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path, projects=())
    write(
        repo,
        "infra/app/Pulumi.yaml",
        "name: app\nruntime: python\nconfig:\n  replicas:\n    default: 2\n  app:tier: web\n",
    )
    write(
        repo,
        "infra/app/Pulumi.dev.yaml",
        "config:\n  size: small\n  enabled: true\n  token:\n    secure: v1:cipher\n  app:ports: [80, 443]\n",
    )
    commit_all(repo, "app")
    project = find_projects(repo.head.commit)["infra/app"]

    config = project.stack_config(repo.head.commit, "dev")

    assert config.values == {
        "app:replicas": "2",
        "app:tier": "web",
        "app:size": "small",
        "app:enabled": "true",
        "app:token": "v1:cipher",
        "app:ports": "[80, 443]",
    }
    assert config.secret_keys == ["app:token"]
    assert config.environment == "dev" and config.region is None
