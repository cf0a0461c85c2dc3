"""Attack: poison the plan cache a CI check restores from the Actions cache.

The check job restores its plan cache directory from ``actions/cache``; any workflow run of the repository (a PR
of an agent's, whose workflow it can edit on its branch) can save an entry there, and so choose everything in the
directory: entries, and a ``mac.key`` of its own under which they verify. The attacker plants a base plan without
the data project's KMS alias, so that a PR deleting the alias would be judged as changing nothing. With the key
held apart (``GLASSBOX_PLAN_CACHE_KEY``, a CI secret) the planted key is never read, every planted entry is a
miss, and the verdict is the fresh one. The control: had the directory's own key been trusted (the default for a
local cache), the same poison would have changed the verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
import pytest

from bot.check.evaluate import CheckRequest, run_check
from bot.check.services import CheckServices
from bot.plan import PlanCache
from bot.plan import cache as cache_module
from bot.policy.checkov import CheckovWorker
from bot.records import RiskTier, Verdict, canonical_json
from tests.flow_helpers import TEST_GIT_ENV, governed_source

pytestmark = pytest.mark.slow

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
ALIAS = 'aws.kms.Alias("data", name=f"alias/{environment}-data", target_key_id=key.key_id)\n'
SECRET = secrets.token_bytes(32)  # the CI secret: the attacker never sees it


@pytest.fixture(scope="module")
def worker() -> Iterator[CheckovWorker]:
    with CheckovWorker() as w:
        yield w


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A PR that deletes the data project's KMS alias (in data/dev and data/prod)."""
    src = governed_source(tmp_path_factory.mktemp("estate"))
    r = git.Repo.init(src, initial_branch="main")
    r.git.add("-A")
    r.git.commit("--no-gpg-sign", "-m", "base", env=TEST_GIT_ENV)
    base = r.head.commit.hexsha
    program = src / "infra/data/__main__.py"
    program.write_text(program.read_text().replace(ALIAS, ""))
    r.git.add("-A")
    r.git.commit("--no-gpg-sign", "-m", "data: drop the key alias", env=TEST_GIT_ENV)
    head = r.head.commit.hexsha
    r.close()
    return src, base, head


def check(repo: tuple[Path, str, str], worker: CheckovWorker, cache: PlanCache) -> Verdict:
    src, base, head = repo
    with CheckServices(plan_cache=cache) as services:
        request = CheckRequest(
            repo_path=src, base=base, head=head, author="carol", checkov=worker, services=services, now=lambda: NOW
        )
        return run_check(request).verdict


def sides(verdict: Verdict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in verdict.plan_sources:
        out.setdefault(s.side, set()).add(s.cache)
    return out


def plant(directory: Path, saved_by_ci: Path) -> None:
    """What the attacker's run saves: CI's entries (the cache is readable), the base without the alias, and a
    ``mac.key`` of its own under which every entry verifies."""
    shutil.copytree(saved_by_ci, directory)
    key = secrets.token_bytes(cache_module.KEY_BYTES)
    (directory / cache_module.KEY_FILE).write_bytes(key)
    (directory / cache_module.KEY_FILE).chmod(0o600)
    for path in (directory / cache_module.ENTRIES_DIR).rglob("*.json"):
        body: dict[str, Any] = json.loads(path.read_bytes())
        body.pop("mac")
        if body["side"] == "base":
            body["stacks"] = [
                {**s, "resources": [r for r in s["resources"] if r["type"] != "aws:kms/alias:Alias"]}
                for s in body["stacks"]
            ]
        signature = hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()
        path.write_text(json.dumps({**body, "mac": signature}))


def test_entries_planted_in_the_actions_cache_cannot_change_the_verdict(
    repo: tuple[Path, str, str], worker: CheckovWorker, tmp_path: Path
) -> None:
    # CI's own run, under the secret: fills the directory it then saves
    saved = tmp_path / "saved"
    fresh = check(repo, worker, PlanCache(saved, mac_key=SECRET))
    assert sides(fresh) == {"base": {"miss"}, "head": {"miss"}}
    assert fresh.risk is RiskTier.HIGH  # deleting the prod alias
    assert not (saved / cache_module.KEY_FILE).exists()

    poisoned = tmp_path / "restored"
    plant(poisoned, saved)
    cache = PlanCache(poisoned, mac_key=SECRET)
    again = check(repo, worker, cache)
    assert sides(again) == {"base": {"miss"}, "head": {"miss"}}, "every planted entry is a miss"
    assert cache.rejected == 2
    assert again.model_dump(mode="json", exclude={"plan_sources", "time_verified"}) == fresh.model_dump(
        mode="json", exclude={"plan_sources", "time_verified"}
    )

    # the control: the same directory trusted under its own key would have served the planted base
    control = tmp_path / "control"
    plant(control, saved)
    trusted = check(repo, worker, PlanCache(control))
    assert sides(trusted)["base"] == {"hit"}
    assert trusted.risk is not RiskTier.HIGH and trusted.change.plan_digest != fresh.change.plan_digest
