"""What a long-lived checker keeps between checks: the trust anchors, read once per base commit.

Checks through one :class:`CheckServices` against the same base read the registry, waivers, checkov policy and
policy pack from it once; a new base commit (here: one whose registry gives the security team another member) is
read afresh, and its registry is the one the verdict is judged under.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
import pytest

from bot.check import evaluate
from bot.check.evaluate import CheckRequest, run_check
from bot.check.services import CheckServices
from bot.policy.checkov import CheckovWorker
from bot.records import Verdict
from tests.flow_helpers import TEST_GIT_ENV, governed_source

pytestmark = pytest.mark.slow

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def worker() -> Iterator[CheckovWorker]:
    with CheckovWorker() as w:
        yield w


def commit(repo: git.Repo, message: str) -> str:
    repo.git.add("-A")
    repo.git.commit("--no-gpg-sign", "-m", message, env=TEST_GIT_ENV)
    return repo.head.commit.hexsha


def test_anchors_are_read_once_per_base_commit(
    tmp_path: Path, worker: CheckovWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = governed_source(tmp_path)
    repo = git.Repo.init(src, initial_branch="main")
    base = commit(repo, "base")
    config = src / "infra/network/Pulumi.dev.yaml"
    config.write_text(config.read_text().replace("flowLogRetentionDays: 30", "flowLogRetentionDays: 14"))
    head = commit(repo, "network/dev: two weeks of flow logs")
    repo.git.checkout(base)
    teams = src / "registry/teams.yaml"
    teams.write_text(teams.read_text().replace("members: [alice, bob, grace]", "members: [alice, bob, grace, dan]"))
    new_base = commit(repo, "security: dan joins")
    repo.git.checkout("main")
    repo.close()

    reads: list[str] = []
    real = evaluate.load_anchors

    def counted(commit: Any, scratch: Path) -> evaluate.Anchors:
        reads.append(commit.hexsha)
        return real(commit, scratch)

    monkeypatch.setattr(evaluate, "load_anchors", counted)

    def check(services: CheckServices, on: str) -> Verdict:
        request = CheckRequest(
            repo_path=src, base=on, head=head, author="carol", checkov=worker, services=services, now=lambda: NOW
        )
        return run_check(request).verdict

    with CheckServices() as services:
        first = check(services, base)
        second = check(services, base)
        assert reads == [base]
        assert second.model_dump(exclude={"time_verified"}) == first.model_dump(exclude={"time_verified"})
        moved = check(services, new_base)
        assert reads == [base, new_base]
        assert moved.change.registry_digest != first.change.registry_digest
        # the earlier base is still held
        check(services, base)
        assert reads == [base, new_base]
    # a check without services reads its anchors every time
    check_alone = CheckRequest(repo_path=src, base=base, head=head, author="carol", checkov=worker, now=lambda: NOW)
    run_check(check_alone)
    assert reads == [base, new_base, base]
