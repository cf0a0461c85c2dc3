"""Attacks on the plan cache: whoever can write its directory without its key, and PR code in the sandbox.

A change deletes the data project's KMS alias (a delete in data/dev and data/prod). Its check is run once with a
fresh cache (every side a miss), which keeps both sides' plans. Each attack then edits that cache (hides the alias
from the cached base, so the delete vanishes; swaps the base and head entries, so the delete becomes a create;
truncates, links, forges under another key) and the same check runs again: the verdict is the fresh one, the
tampered side was planned again, and the rejection was logged. The control shows the poison is not harmless:
under the cache's own key the forged base does change the verdict, and deploy's recomputation, which never reads
the cache, does not follow it. Last, PR code in the sandbox looks for the cache at its default location.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
import pytest

from bot.check.evaluate import CheckRequest, CheckResult, run_check
from bot.check.services import CheckServices
from bot.plan import PlanCache, build_plan, plan_change
from bot.plan import cache as cache_module
from bot.policy.checkov import CheckovWorker
from bot.records import RiskTier, Verdict, canonical_json
from tests.flow_helpers import TEST_GIT_ENV, governed_source
from tests.plan_helpers import close_repos, commit_all, infra_repo, write

pytestmark = pytest.mark.slow

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
ALIAS = 'aws.kms.Alias("data", name=f"alias/{environment}-data", target_key_id=key.key_id)\n'


class Change:
    def __init__(self, root: Path, worker: CheckovWorker) -> None:
        self.src = governed_source(root)
        repo = git.Repo.init(self.src, initial_branch="main")
        repo.git.add("-A")
        repo.git.commit("--no-gpg-sign", "-m", "base", env=TEST_GIT_ENV)
        self.base = repo.head.commit.hexsha
        program = self.src / "infra/data/__main__.py"
        source = program.read_text()
        assert ALIAS in source
        program.write_text(source.replace(ALIAS, ""))
        repo.git.add("-A")
        repo.git.commit("--no-gpg-sign", "-m", "data: drop the key alias", env=TEST_GIT_ENV)
        self.head = repo.head.commit.hexsha
        repo.close()
        self.worker = worker

    def check(self, cache_dir: Path) -> CheckResult:
        with CheckServices(plan_cache=PlanCache(cache_dir)) as services:
            request = CheckRequest(
                repo_path=self.src,
                base=self.base,
                head=self.head,
                author="carol",
                checkov=self.worker,
                services=services,
                now=lambda: NOW,
            )
            return run_check(request)


@pytest.fixture(scope="module")
def worker() -> Iterator[CheckovWorker]:
    with CheckovWorker() as w:
        yield w


@pytest.fixture(scope="module")
def change(tmp_path_factory: pytest.TempPathFactory, worker: CheckovWorker) -> Change:
    return Change(tmp_path_factory.mktemp("estate"), worker)


@pytest.fixture(scope="module")
def fresh(change: Change, tmp_path_factory: pytest.TempPathFactory) -> tuple[Verdict, Path]:
    """The verdict with nothing cached, and the cache that check filled."""
    directory = tmp_path_factory.mktemp("filled") / "cache"
    result = change.check(directory)
    verdict = result.verdict
    assert {s.cache for s in verdict.plan_sources} == {"miss"}, verdict.plan_sources
    assert not verdict.errors, verdict.errors
    assert result.plan is not None
    assert {(c.stack, c.type, c.action.value) for c in result.plan.changes} == {
        ("dev", "aws:kms/alias:Alias", "delete"),
        ("prod", "aws:kms/alias:Alias", "delete"),
    }
    return verdict, directory


def judged(verdict: Verdict) -> dict[str, Any]:
    """Everything a verdict decides (all of it but where its plans came from)."""
    return verdict.model_dump(mode="json", exclude={"plan_sources"})


def sides(verdict: Verdict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in verdict.plan_sources:
        out.setdefault(s.side, set()).add(s.cache)
    return out


def entry_of(directory: Path, side: str) -> Path:
    for path in (directory / cache_module.ENTRIES_DIR).rglob("*.json"):
        if json.loads(path.read_bytes())["side"] == side:
            return path
    raise AssertionError(f"no {side} entry in {directory}")


def without_alias(body: dict[str, Any]) -> dict[str, Any]:
    stacks = [
        {**s, "resources": [r for r in s["resources"] if r["type"] != "aws:kms/alias:Alias"]} for s in body["stacks"]
    ]
    assert stacks != body["stacks"], "the base entry must hold the alias"
    return {**body, "stacks": stacks}


def mac(key: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def write_entry(path: Path, body: dict[str, Any], signature: str) -> None:
    path.write_text(json.dumps({**body, "mac": signature}))


def _body(path: Path) -> dict[str, Any]:
    body = json.loads(path.read_bytes())
    body.pop("mac")
    return dict(body)


# ------------------------------------------------------------------------------------------------- the attacks


def hide_keeping_the_mac(d: Path) -> set[str]:
    base = entry_of(d, "base")
    signature = json.loads(base.read_bytes())["mac"]
    write_entry(base, without_alias(_body(base)), signature)
    return {"base"}


def hide_under_another_key(d: Path) -> set[str]:
    # a MAC that verifies somewhere: under a key the attacker made (another cache directory's)
    base = entry_of(d, "base")
    forged = without_alias(_body(base))
    write_entry(base, forged, mac(secrets.token_bytes(32), forged))
    return {"base"}


def swap_base_and_head(d: Path) -> set[str]:
    base, head = entry_of(d, "base"), entry_of(d, "head")
    base_bytes, head_bytes = base.read_bytes(), head.read_bytes()
    base.write_bytes(head_bytes)
    head.write_bytes(base_bytes)
    return {"base", "head"}


def swap_bodies_keeping_names(d: Path) -> set[str]:
    # each body relabelled with the other's key and side, each keeping its own (valid) MAC
    base, head = entry_of(d, "base"), entry_of(d, "head")
    b, h = json.loads(base.read_bytes()), json.loads(head.read_bytes())
    base.write_text(json.dumps({**h, "key": b["key"], "side": "base"}))
    head.write_text(json.dumps({**b, "key": h["key"], "side": "head"}))
    return {"base", "head"}


def truncate(d: Path) -> set[str]:
    base = entry_of(d, "base")
    data = base.read_bytes()
    base.write_bytes(data[: len(data) // 2])
    return {"base"}


def link_to_the_head(d: Path) -> set[str]:
    base, head = entry_of(d, "base"), entry_of(d, "head")
    base.unlink()
    base.symlink_to(head)
    return {"base"}


def garbage(d: Path) -> set[str]:
    entry_of(d, "head").write_bytes(os.urandom(512))
    return {"head"}


ATTACKS: list[Callable[[Path], set[str]]] = [
    hide_keeping_the_mac,
    hide_under_another_key,
    swap_base_and_head,
    swap_bodies_keeping_names,
    truncate,
    link_to_the_head,
    garbage,
]


def _copy(filled: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    shutil.copytree(filled, directory, symlinks=True)
    return directory


def test_an_untouched_cache_serves_both_sides_and_the_same_verdict(
    change: Change, fresh: tuple[Verdict, Path], tmp_path: Path
) -> None:
    verdict, filled = fresh
    again = change.check(_copy(filled, tmp_path)).verdict
    assert sides(again) == {"base": {"hit"}, "head": {"hit"}}
    assert judged(again) == judged(verdict)


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.__name__)
def test_a_tampered_entry_is_planned_again_and_cannot_change_the_verdict(
    change: Change,
    fresh: tuple[Verdict, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    attack: Callable[[Path], set[str]],
) -> None:
    verdict, filled = fresh
    directory = _copy(filled, tmp_path)
    tampered = attack(directory)
    with caplog.at_level(logging.WARNING, logger=cache_module.__name__):
        again = change.check(directory).verdict
    assert judged(again) == judged(verdict)
    assert sides(again) == {side: {"miss" if side in tampered else "hit"} for side in ("base", "head")}
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == len(tampered), caplog.text
    # the side planned again was kept again, verified: the next check reads it back
    assert sides(change.check(directory).verdict) == {"base": {"hit"}, "head": {"hit"}}


def test_the_poison_matters_only_to_the_key_holder_and_never_to_deploy(
    change: Change, fresh: tuple[Verdict, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whoever reads mac.key (this uid, outside the sandbox) is trusted: a base forged under it is served...
    verdict, filled = fresh
    directory = _copy(filled, tmp_path)
    key = (directory / cache_module.KEY_FILE).read_bytes()
    base = entry_of(directory, "base")
    forged = without_alias(_body(base))
    write_entry(base, forged, mac(key, forged))
    poisoned = change.check(directory).verdict
    assert sides(poisoned)["base"] == {"hit"}
    # ...and it changes the verdict: the prod delete is gone, high risk becomes low, fewer approvals are needed.
    # That is what every attack above tried without the key.
    assert verdict.risk is RiskTier.HIGH and poisoned.risk is RiskTier.LOW
    assert poisoned.required_approvals != verdict.required_approvals
    assert poisoned.change.plan_digest != verdict.change.plan_digest
    # deploy recomputes with build_plan, which never reads a cache (not even the one the environment names) and
    # compares digests: it gets the truth, so deploy refuses the poisoned verdict
    monkeypatch.setenv(cache_module.DIR_ENV, str(directory))
    recomputed = build_plan(change.src, change.base, change.head)
    assert recomputed.digest == verdict.change.plan_digest != poisoned.change.plan_digest


# ------------------------------------------------------------------------------------------------- PR code


PROBE = """
import os
import pulumi_aws as aws

CACHE = {cache!r}
found = [p for p in (CACHE, os.path.join(CACHE, "mac.key"), os.path.join(CACHE, "entries")) if os.path.exists(p)]
with open("/proc/self/mountinfo") as fh:
    mounts = sorted({{line.split()[4] for line in fh if line.strip()}})
aws.s3.Bucket("probe", tags={{"found": ",".join(found) or "nothing", "mounts": " ".join(mounts)}})
"""


def test_pr_code_in_the_sandbox_cannot_see_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the default location, under this user's data directory
    monkeypatch.delenv(cache_module.DIR_ENV)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = cache_module.configured_cache()
    assert cache is not None and cache.directory == tmp_path / "home/.local/share/glassbox/plan-cache"
    where = str(cache.directory)

    repo = infra_repo(tmp_path / "repo", projects=())
    before = repo.head.commit.hexsha
    write(repo, "infra/probe/Pulumi.yaml", "name: probe\nruntime: python\n")
    write(repo, "infra/probe/Pulumi.dev.yaml", "config:\n  glassbox:environment: dev\n")
    write(repo, "infra/probe/__main__.py", PROBE.format(cache=where))
    first = commit_all(repo, "probe")
    write(repo, "infra/probe/__main__.py", PROBE.format(cache=where) + "# again, with entries in the cache\n")
    second = commit_all(repo, "probe again")

    close_repos()
    plan_change(tmp_path / "repo", before, first, cache=cache)
    assert list((cache.directory / cache_module.ENTRIES_DIR).rglob("*.json")), "the cache holds an entry"
    planned = plan_change(tmp_path / "repo", first, second, cache=cache)
    assert {(s.side, s.cache) for s in planned.sources} == {("base", "miss"), ("head", "miss")}
    probes = [r for r in [*planned.plan.base_resources, *planned.plan.resources] if r.name == "probe"]
    assert len(probes) == 2
    for probe in probes:
        tags = probe.inputs["tags"]
        assert tags["found"] == "nothing"
        mounts = tags["mounts"].split()
        assert any(m.endswith("/infra/probe") for m in mounts), mounts  # the probe did read its mount table
        # "/" and "/tmp" are fresh tmpfs mounts; no host path above or at the cache is mounted
        exposed = [m for m in mounts if m not in ("/", "/tmp") and (where + "/").startswith(m.rstrip("/") + "/")]
        assert exposed == [], exposed
