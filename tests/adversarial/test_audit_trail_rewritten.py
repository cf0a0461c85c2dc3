"""Attacks on the audit trail branch: a commit past the forge (someone with the storage, or a leaked non-service
key) that rewrites an event, deletes one, or is signed by an agent, is flagged by `audit verify` on a clone."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.audit.findings import ViolationKind
from bot.audit.history import verify_from_trail
from bot.forge.server import repo_path
from bot.forge.trail import publish
from bot.records import Actor, ActorKind, Outcome, Subject
from bot.trust.conventions import TRAIL_BRANCH
from bot.trust.keys import load_signer
from bot.trust.ledger import Ledger
from bot.trust.trail import event_path
from tests.forge_helpers import REPO, ForgeEnv, forge_env

GIT_ENV = {
    "GIT_AUTHOR_NAME": "mallory",
    "GIT_AUTHOR_EMAIL": "mallory@x",
    "GIT_COMMITTER_NAME": "mallory",
    "GIT_COMMITTER_EMAIL": "mallory@x",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeEnv]:
    yield from forge_env(tmp_path)


def _published(forge: ForgeEnv, tmp: Path) -> Path:
    """Three CI events on the trail; the forge's bare repository."""
    ci = load_signer(forge.data / "keys", "glassbox-ci")
    ledger = Ledger(tmp / "ledger.jsonl")
    for i in range(3):
        ledger.append(
            ci,
            actor=Actor(id="glassbox-ci", kind=ActorKind.CI),
            action="check",
            outcome=Outcome.ALLOW,
            reason=f"check {i}",
            subject=Subject(pr=i + 1),
        )
    publish(forge.client("glassbox-ci"), ledger, ci)
    return repo_path(forge.data, REPO)


def _git(repo: Path, *args: str, data: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], input=data, capture_output=True, check=True, env={**os.environ, **GIT_ENV}
    )
    return proc.stdout.decode().strip()


def _commit_past_the_forge(bare: Path, tmp: Path, edit: dict[str, bytes | None], *, sign_key: Path | None) -> None:
    """A commit on the trail made directly in the repository's storage: files set (or removed, for None)."""
    index = tmp / "mallory.index"
    env = {"GIT_INDEX_FILE": str(index)}
    parent = _git(bare, "rev-parse", f"refs/heads/{TRAIL_BRANCH}")
    subprocess.run(["git", "-C", str(bare), "read-tree", parent], check=True, env={**os.environ, **env})
    for path, data in edit.items():
        if data is None:
            subprocess.run(
                ["git", "-C", str(bare), "rm", "--cached", "-q", path], check=True, env={**os.environ, **env}
            )
        else:
            blob = _git(bare, "hash-object", "-w", "--stdin", data=data)
            subprocess.run(
                ["git", "-C", str(bare), "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"],
                check=True,
                env={**os.environ, **env},
            )
    tree = (
        subprocess.run(
            ["git", "-C", str(bare), "write-tree"], capture_output=True, check=True, env={**os.environ, **env}
        )
        .stdout.decode()
        .strip()
    )
    args = ["commit-tree", tree, "-p", parent, "-m", "trail: tidy up"]
    if sign_key is not None:
        args = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_key}", *args[:1], "-S", *args[1:]]
    commit = _git(bare, *args)
    _git(bare, "update-ref", f"refs/heads/{TRAIL_BRANCH}", commit, parent)


def _clone(bare: Path, tmp: Path) -> Path:
    clone = tmp / "auditor"
    subprocess.run(
        ["git", "clone", "-q", "--no-checkout", str(bare), str(clone)], check=True, env={**os.environ, **GIT_ENV}
    )
    return clone


def _trail_findings(clone: Path) -> list[str]:
    report = verify_from_trail(clone)
    return [v.message for v in report.violations if v.kind is ViolationKind.TRAIL_TAMPERED]


def test_a_clean_trail_verifies_from_a_fresh_clone(forge: ForgeEnv, tmp_path: Path) -> None:
    bare = _published(forge, tmp_path)
    report = verify_from_trail(_clone(bare, tmp_path))
    assert report.trail is not None and report.ledger_events == 3 and report.ok, [v.line() for v in report.violations]


def test_an_event_rewritten_on_the_trail_is_flagged(forge: ForgeEnv, tmp_path: Path) -> None:
    bare = _published(forge, tmp_path)
    original = _git(bare, "show", f"refs/heads/{TRAIL_BRANCH}:{event_path(2)}").encode()
    key = forge.data / "keys" / "glassbox-ci.key"
    _commit_past_the_forge(bare, tmp_path, {event_path(2): original.replace(b"check 1", b"check X")}, sign_key=key)
    report = verify_from_trail(_clone(bare, tmp_path))
    assert not report.ok
    kinds = {v.kind for v in report.violations}
    assert ViolationKind.TRAIL_TAMPERED in kinds and ViolationKind.CHAIN_BREAK in kinds
    assert any(f"rewrites {event_path(2)}" in m for m in _trail_findings(_clone(bare, tmp_path / "again")))


def test_an_event_deleted_from_the_trail_is_flagged(forge: ForgeEnv, tmp_path: Path) -> None:
    bare = _published(forge, tmp_path)
    _commit_past_the_forge(bare, tmp_path, {event_path(3): None}, sign_key=forge.data / "keys" / "glassbox-ci.key")
    findings = _trail_findings(_clone(bare, tmp_path))
    assert any(f"deletes {event_path(3)}" in m for m in findings), findings


def test_a_trail_commit_signed_by_an_agent_is_flagged(forge: ForgeEnv, tmp_path: Path) -> None:
    bare = _published(forge, tmp_path)
    _commit_past_the_forge(
        bare, tmp_path, {"notes/agent.json": b"{}\n"}, sign_key=forge.data / "keys" / "cost-optimizer.key"
    )
    findings = _trail_findings(_clone(bare, tmp_path))
    assert any("no valid signature by a glassbox service identity" in m for m in findings), findings


def test_an_unsigned_trail_commit_is_flagged(forge: ForgeEnv, tmp_path: Path) -> None:
    bare = _published(forge, tmp_path)
    _commit_past_the_forge(bare, tmp_path, {"notes/x.json": b"{}\n"}, sign_key=None)
    findings = _trail_findings(_clone(bare, tmp_path))
    assert any("no valid signature" in m for m in findings), findings
