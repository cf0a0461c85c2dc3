"""The plan cache on a runner: `glassbox ci pull-request` keeps plans only under a key held apart from the cache.

Each check job starts from an empty ``RUNNER_TEMP`` and restores the plan cache directory as ``actions/cache``
would (a copy of what the previous job saved). Two PRs against the same main: with the ``GLASSBOX_PLAN_CACHE_KEY``
secret the second plans only its head, and its verdict says so; without the secret nothing is cached at all (a key
kept in the directory would travel with it to whoever can write the Actions cache).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.plan import cache as cache_module
from bot.propose import propose
from bot.records import Verdict
from bot.trust.attestations import stored_verdict
from tests.flow_helpers import REPO, Flow, _dev_network_config, flow_env, request
from tests.runner_helpers import Job, Result, pull_request_payload

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    yield from flow_env(tmp_path, required_approvals=0)


def check_job(
    flow: Flow,
    tmp_path: Path,
    name: str,
    days: int,
    mp: pytest.MonkeyPatch,
    cap: pytest.CaptureFixture[str],
    *,
    restore: Path | None = None,
    **env: str,
) -> tuple[Result, Verdict, Path]:
    """Open a PR setting network/dev's flow-log retention to ``days`` and run the check job for it, its plan cache
    directory first restored from ``restore`` (what an earlier job saved), as actions/cache/restore does."""
    proposal = propose(
        request(changes=[{"path": "infra/network/Pulumi.dev.yaml", "content": _dev_network_config(days)}]),
        flow.propose_context("cost-optimizer"),
    )
    pull = flow.forge("glassbox-ci").get_pull_request(proposal.pr_number)
    runner_temp = tmp_path / "runner" / name / "temp"
    runner_temp.mkdir(parents=True)
    if restore is not None:
        shutil.copytree(restore, runner_temp / "glassbox-plan-cache")
    job = Job(
        root=tmp_path / "runner" / name,
        monkeypatch=mp,
        capsys=cap,
        repository=REPO,
        api_url=flow.url,
        env={
            "GLASSBOX_TOKEN": flow.tokens["glassbox-ci"],
            "GLASSBOX_KEYS": str(flow.keys),
            "GLASSBOX_LEDGER": str(flow.ledger.path),
            "RUNNER_TEMP": str(runner_temp),
            **env,
        },
    )
    out = runner_temp / "glassbox-check"
    result = job.run(
        "pull_request",
        pull_request_payload("pull_request.opened", REPO, pull.number, pull.head_sha, pull.base_sha),
        *("ci", "pull-request", "--repo-path", str(flow.bare), "--out", str(out)),
        sha="f" * 40,
        ref=f"refs/pull/{pull.number}/merge",
    )
    assert result.code == 0, result.out + result.err
    verdict = stored_verdict(Path(result.outputs["attestations"]), pull.head_sha, flow.registry)
    assert verdict is not None
    return result, verdict, runner_temp / "glassbox-plan-cache"


def sides(verdict: Verdict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for source in verdict.plan_sources:
        found.setdefault(source.side, set()).add(source.cache)
    return found


def test_with_the_secret_the_second_pr_against_main_plans_only_its_head(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = secrets.token_hex(32)
    _, first, saved = check_job(flow, tmp_path, "first", 14, monkeypatch, capsys, GLASSBOX_PLAN_CACHE_KEY=key)
    assert sides(first) == {"base": {"miss"}, "head": {"miss"}}
    assert saved.is_dir() and not (saved / cache_module.KEY_FILE).exists(), "the key never enters the directory"

    # the next job, on a fresh runner, restores what the first saved
    _, second, _ = check_job(
        flow, tmp_path, "second", 21, monkeypatch, capsys, restore=saved, GLASSBOX_PLAN_CACHE_KEY=key
    )
    assert sides(second) == {"base": {"hit"}, "head": {"miss"}}
    assert second.change.base_commit == first.change.base_commit


def test_without_the_secret_a_runner_caches_nothing(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, verdict, directory = check_job(flow, tmp_path, "first", 14, monkeypatch, capsys)
    assert sides(verdict) == {"base": {"off"}, "head": {"off"}}
    assert not directory.exists()
    assert verdict.verifier["plan_cache"] == "off"


def test_a_malformed_secret_fails_the_job_naming_it(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(AssertionError, match=cache_module.KEY_ENV):
        check_job(flow, tmp_path, "first", 14, monkeypatch, capsys, GLASSBOX_PLAN_CACHE_KEY="not-hex")
