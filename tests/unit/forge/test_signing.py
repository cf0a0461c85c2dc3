"""A commit signed by the caller (SSH, through ``ssh-keygen -Y sign``) lands intact: git verifies it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot.forge.model import GitIdentity, commit_payload, commit_sha
from bot.forge.server import repo_path
from tests.forge_helpers import REPO, ForgeEnv, changes

AGENT = "patch-agent"
pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")


def _ssh_signer(key: Path, seen: list[bytes]) -> object:
    def sign(payload: bytes) -> str:
        seen.append(payload)
        out = subprocess.run(
            ["ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(key)], input=payload, capture_output=True, check=True
        )
        return out.stdout.decode("ascii")

    return sign


def test_signed_commit_verifies_with_git(forge: ForgeEnv, tmp_path: Path) -> None:
    seen: list[bytes] = []
    agent = forge.client(AGENT)
    author = GitIdentity(name="Patching agent", email="patch-agent@agents.glassbox.local")
    pr = agent.open_pull_request(
        base="main",
        branch=f"glassbox/{AGENT}/signed",
        title="signed",
        body="",
        changes=changes(2),
        author=author,
        signer=_ssh_signer(forge.data / "keys" / f"{AGENT}.key", seen),  # type: ignore[arg-type]
    )
    assert len(seen) == 1 and seen[0].startswith(b"tree ")

    checkout = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(repo_path(forge.data, REPO)), str(checkout)], check=True)
    public = (forge.data / "keys" / f"{AGENT}.pub").read_text().split()
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'{author.email} namespaces="git" {public[0]} {public[1]}\n')

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, check=False)

    git("config", "gpg.format", "ssh")
    git("config", "gpg.ssh.allowedSignersFile", str(signers))
    verified = git("verify-commit", pr.head_sha)
    assert verified.returncode == 0, verified.stderr
    assert 'Good "git" signature' in verified.stderr
    assert git("log", "-1", "--format=%an <%ae>", pr.head_sha).stdout.strip() == f"{author.name} <{author.email}>"


def test_commit_bytes_and_sha_match_git(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    who = GitIdentity(name="A", email="a@example.com", date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    payload = commit_payload(empty_tree, [], who, who, "msg")
    bare = tmp_path / "r.git"
    subprocess.run(["git", "init", "--bare", "--quiet", str(bare)], check=True)
    out = subprocess.run(
        ["git", f"--git-dir={bare}", "hash-object", "-t", "commit", "--stdin"], input=payload, capture_output=True
    )
    assert out.stdout.decode().strip() == commit_sha(payload)
    env = {
        "GIT_AUTHOR_NAME": "A",
        "GIT_AUTHOR_EMAIL": "a@example.com",
        "GIT_AUTHOR_DATE": "1767323045 +0000",
        "GIT_COMMITTER_NAME": "A",
        "GIT_COMMITTER_EMAIL": "a@example.com",
        "GIT_COMMITTER_DATE": "1767323045 +0000",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    by_git = subprocess.run(
        ["git", f"--git-dir={bare}", "commit-tree", empty_tree, "-m", "msg"], capture_output=True, env=env, text=True
    )
    assert by_git.stdout.strip() == commit_sha(payload)
