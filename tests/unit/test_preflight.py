"""The pre-flight's would-be commit: built from objects alone, it is the commit a work tree would give."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import git
import pytest

from bot.check.preflight import would_be_commit
from bot.errors import UserError
from bot.propose import build_evidence
from bot.records import ChangeRequest
from bot.registry import load_registry
from bot.trust.conventions import commit_message, decision_record_path
from bot.trust.gitenv import commit_env
from bot.trust.keys import generate_key
from tests.factories import change_request_data
from tests.flow_helpers import ROOT, TEST_GIT_ENV


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, **(env or {})}
    return subprocess.run(["git", *args], cwd=cwd, env=full, check=True, capture_output=True, text=True).stdout


def test_the_would_be_commit_is_the_work_tree_commit(tmp_path: Path) -> None:
    base_dir = tmp_path / "base"
    shutil.copytree(ROOT / "registry", base_dir / "registry")
    shutil.copytree(ROOT / "infra" / "network", base_dir / "infra" / "network")
    (base_dir / "tools").mkdir()
    (base_dir / "tools" / "run.sh").write_text("#!/bin/sh\necho old\n")
    (base_dir / "tools" / "run.sh").chmod(0o755)
    (base_dir / "README.md").write_text("# estate\n")
    _git(base_dir, "init", "-q", "-b", "main")
    _git(base_dir, "add", "-A")
    _git(base_dir, "commit", "-q", "--no-gpg-sign", "-m", "base", env=TEST_GIT_ENV)
    base_sha = _git(base_dir, "rev-parse", "HEAD").strip()

    data = change_request_data(
        changes=[
            {"path": "infra/network/Pulumi.dev.yaml", "content": "config:\n  network:bastionSize: t3.micro\r\n"},
            {"path": "tools/run.sh", "content": "#!/bin/sh\necho new ü\n"},  # keeps its executable mode
            {"path": "docs/new/notes.md", "content": "new file in new directories\n"},
            {"path": "README.md", "delete": True},
            {"path": "never/there.txt", "delete": True},
        ]
    )
    request = ChangeRequest.model_validate(data)
    signer = generate_key(tmp_path / "keys", request.agent_id)
    record = build_evidence(request, load_registry(base_dir / "registry"), "sha256:" + "0" * 64, signer)

    # the way a work tree makes it: clone, write, add -A, commit
    reference = tmp_path / "reference"
    _git(tmp_path, "clone", "-q", str(base_dir), str(reference))
    for change in request.changes:
        target = reference / change.path
        if change.delete:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((change.content or "").encode("utf-8"))
    evidence = reference / decision_record_path(request.correlation_id, request.requested_at)
    evidence.parent.mkdir(parents=True, exist_ok=True)
    evidence.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    _git(reference, "add", "-A")
    who = commit_env(request.agent_id, f"{request.agent_id}@agents.glassbox", committer=("p", "p@x"))
    _git(reference, "commit", "-q", "--no-gpg-sign", "-m", commit_message(record), env=who)
    expected = git.Repo(reference).head.commit

    work = tmp_path / "work"
    _git(tmp_path, "clone", "-q", "--shared", "--no-checkout", str(base_dir), str(work))
    repo = git.Repo(work)
    made = repo.commit(would_be_commit(work, base_sha, request, record))
    try:
        assert made.tree.hexsha == expected.tree.hexsha
        assert [p.hexsha for p in made.parents] == [base_sha]
        assert made.message == expected.message
        assert (made.author.name, made.author.email) == (request.agent_id, f"{request.agent_id}@agents.glassbox")
        assert (made.tree / "tools/run.sh").mode == 0o100755
        assert [p.name for p in work.iterdir()] == [".git"]  # nothing was checked out
    finally:
        repo.close()
        git.Repo(reference).close()


def test_a_change_naming_a_directory_of_the_base_is_refused(tmp_path: Path) -> None:
    base_dir = tmp_path / "base"
    shutil.copytree(ROOT / "registry", base_dir / "registry")
    _git(base_dir, "init", "-q", "-b", "main")
    _git(base_dir, "add", "-A")
    _git(base_dir, "commit", "-q", "--no-gpg-sign", "-m", "base", env=TEST_GIT_ENV)
    request = ChangeRequest.model_validate(change_request_data(changes=[{"path": "registry", "delete": True}]))
    record = build_evidence(
        request, load_registry(base_dir / "registry"), "sha256:" + "0" * 64, generate_key(tmp_path, request.agent_id)
    )
    with pytest.raises(UserError, match="registry is a directory"):
        would_be_commit(base_dir, _git(base_dir, "rev-parse", "HEAD").strip(), request, record)
