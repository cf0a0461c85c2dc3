"""Embedded forge rules not covered by the flow test: merge methods, blocking reviews, drafts, pagination,
fault plans from the data dir."""

from __future__ import annotations

import io
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ForgeError
from bot.forge.model import MergeMethod, StatusState
from bot.forge.server import init_forge, load_tokens, repo_path, start_forge
from bot.records import FileChange
from tests.forge_helpers import REPO, ForgeEnv, changes, make_source

AGENT = "patch-agent"


def _green_pr(forge: ForgeEnv, name: str, *, draft: bool = False) -> Any:
    agent = forge.client(AGENT)
    pr = agent.open_pull_request(
        base="main",
        branch=f"glassbox/{AGENT}/{name}",
        title=name,
        body="",
        changes=changes(2, f"d/{name}"),
        draft=draft,
    )
    ci = forge.client("glassbox-ci")
    for context in ("glassbox/check", "glassbox/approvals"):
        ci.set_status(pr.head_sha, context=context, state=StatusState.SUCCESS)
    return pr


def test_merge_commit_has_two_parents_and_the_merger_as_author(forge: ForgeEnv) -> None:
    pr = _green_pr(forge, "m")
    forge.github("alice").get_repo(REPO).get_pull(pr.number).create_review(event="APPROVE")
    result = forge.client("alice").merge(pr.number, expected_head_sha=pr.head_sha, method=MergeMethod.MERGE)
    assert result.merged
    bare = repo_path(forge.data, REPO)
    out = subprocess.run(
        ["git", f"--git-dir={bare}", "log", "-1", "--format=%P|%an", "main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == f"{pr.base_sha} {pr.head_sha}|Alice Moreau"
    again = forge.client("alice").merge(pr.number, expected_head_sha=pr.head_sha)
    assert not again.merged and "not mergeable" in again.message


def test_changes_requested_blocks_and_drafts_cannot_merge(forge: ForgeEnv) -> None:
    pr = _green_pr(forge, "cr")
    repo = forge.github("alice").get_repo(REPO)
    repo.get_pull(pr.number).create_review(event="APPROVE")
    forge.github("bob").get_repo(REPO).get_pull(pr.number).create_review(event="REQUEST_CHANGES", body="no")
    blocked = forge.client("glassbox-bot").merge(pr.number, expected_head_sha=pr.head_sha)
    assert not blocked.merged and "Changes have been requested" in blocked.message

    draft = _green_pr(forge, "draft", draft=True)
    assert forge.client("carol").get_pull_request(draft.number).draft
    repo.get_pull(draft.number).create_review(event="APPROVE")
    refused = forge.client("glassbox-bot").merge(draft.number, expected_head_sha=draft.head_sha)
    assert not refused.merged and "draft" in refused.message


def test_ci_and_deployer_cannot_merge_and_agents_cannot_touch_others_prs(forge: ForgeEnv) -> None:
    pr = _green_pr(forge, "x")
    for identity in ("glassbox-ci", "glassbox-deployer"):
        with pytest.raises(ForgeError) as err:
            forge.client(identity).merge(pr.number, expected_head_sha=pr.head_sha)
        assert err.value.status == 403
    with pytest.raises(ForgeError) as err:
        forge.client("network-agent").comment(pr.number, "hijack")
    assert err.value.status == 403


def test_pagination_sends_link_headers(forge: ForgeEnv) -> None:
    pr = forge.client(AGENT).open_pull_request(
        base="main", branch=f"glassbox/{AGENT}/pages", title="p", body="", changes=changes(45)
    )
    url = f"{forge.url}/repos/{REPO}/pulls/{pr.number}/files?per_page=20&page=2"
    req = urllib.request.Request(url, headers={"Authorization": f"token {forge.tokens['carol']}"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - 127.0.0.1 only
        body, link = json.loads(resp.read()), resp.headers["Link"]
    assert len(body) == 20
    assert 'page=3>; rel="next"' in link and 'rel="last"' in link and 'page=1>; rel="first"' in link
    assert link.count("http://127.0.0.1:") == 4
    assert len(forge.client("carol").list_changed_files(pr.number)) == 45


def test_commit_and_statuses_by_branch_name_with_slashes(forge: ForgeEnv) -> None:
    pr = _green_pr(forge, "slash")
    carol = forge.client("carol")
    assert {s.context for s in carol.list_statuses(pr.head_ref)} == {"glassbox/check", "glassbox/approvals"}
    assert carol.read_file("d/slash/file0000.yaml", pr.head_ref) == b"index: 0\n"
    assert carol.read_file("nope", pr.head_ref) is None
    assert carol.branch_head("does/not/exist") is None


def test_fault_plan_from_the_data_dir(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    data = tmp_path / "forge"
    init_forge(data, REPO, src)
    (data / "faults.json").write_text(json.dumps({"rules": [{"path": "/git/trees$", "nth": 1, "kind": "502"}]}))
    url, stop = start_forge(data, log=io.StringIO())
    try:
        from bot.forge.github import GitHubForge, RetryPolicy
        from bot.forge.settings import ForgeSettings

        sleeps: list[float] = []
        client = GitHubForge(
            ForgeSettings(url=url, repo=REPO, token=load_tokens(data)[AGENT]),
            sleep=sleeps.append,
            policy=RetryPolicy(base_delay=0.25),
        )
        client.open_pull_request(
            base="main", branch=f"glassbox/{AGENT}/f", title="f", body="", changes=[FileChange(path="a", content="a")]
        )
        assert client.retries == 1 and sleeps == [0.25]
    finally:
        stop()
