"""Under injected faults, opening a PR still ends with one branch, one commit and one PR."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from github import GithubException

from bot.errors import ForgeError
from bot.forge.github import RetryPolicy
from bot.forge.model import StatusState
from bot.forge.server import repo_path
from tests.forge_helpers import REPO, ForgeEnv, changes

AGENT = "patch-agent"
WRITES = r"^/repos/[^/]+/[^/]+/(git/(trees|commits|refs)|pulls|issues/\d+/labels)$"


def _git(forge: ForgeEnv, *args: str) -> str:
    bare = repo_path(forge.data, REPO)
    return subprocess.run(["git", f"--git-dir={bare}", *args], capture_output=True, check=True, text=True).stdout


def _open(forge: ForgeEnv, name: str = "faulty", **kwargs: Any) -> Any:
    agent = forge.client(AGENT, **kwargs)
    pr = agent.open_pull_request(
        base="main",
        branch=f"glassbox/{AGENT}/{name}",
        title="under faults",
        body="",
        changes=changes(3),
        labels=["glassbox"],
    )
    return agent, pr


def _assert_exactly_one(forge: ForgeEnv, name: str = "faulty") -> None:
    forge.admin("DELETE", "/_glassbox/faults")
    branches = [line for line in _git(forge, "for-each-ref", "--format=%(refname)", "refs/heads/").split() if line]
    assert branches == ["refs/heads/glassbox/patch-agent/" + name, "refs/heads/main"]
    assert _git(forge, "rev-list", "--count", f"main..glassbox/{AGENT}/{name}").strip() == "1"
    unreachable = _git(forge, "fsck", "--unreachable", "--no-reflogs", "--no-progress")
    assert "commit" not in unreachable
    pulls = forge.admin("GET", f"/api/v3/repos/{REPO}/pulls?state=all")
    assert [p["head"]["ref"] for p in pulls] == [f"glassbox/{AGENT}/{name}"]
    assert [label["name"] for label in pulls[0]["labels"]] == ["glassbox"]


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("kind", ["502", "drop"])
def test_every_call_failing_once(forge: ForgeEnv, when: str, kind: str) -> None:
    forge.faults({"first": True, "kind": kind, "when": when})
    agent, pr = _open(forge)
    assert pr.labels == ["glassbox"]
    assert agent.retries >= 6
    _assert_exactly_one(forge)


def test_429_with_retry_after_is_honoured(forge: ForgeEnv) -> None:
    forge.faults({"path": WRITES, "first": True, "kind": "429", "when": "before", "retry_after": 3})
    _agent, _pr = _open(forge)
    assert forge.sleeps and all(s == 3.0 for s in forge.sleeps)
    _assert_exactly_one(forge)


def test_secondary_rate_limit_is_retried(forge: ForgeEnv) -> None:
    forge.faults({"method": "POST", "path": r"/pulls$", "nth": 1, "kind": "secondary", "retry_after": 2})
    _open(forge)
    assert forge.sleeps == [2.0]
    _assert_exactly_one(forge)


@pytest.mark.parametrize("path", [r"/git/commits$", r"/git/refs$", r"/pulls$", r"/labels$"])
def test_dropped_connection_after_the_side_effect(forge: ForgeEnv, path: str) -> None:
    forge.faults({"method": "POST", "path": path, "nth": 1, "kind": "drop", "when": "after"})
    agent, _pr = _open(forge)
    assert agent.retries == 1
    _assert_exactly_one(forge)


def test_seeded_fraction_of_calls_failing(forge: ForgeEnv) -> None:
    forge.faults({"fraction": 0.4, "kind": "502", "when": "after"}, seed=7)
    _open(forge, policy=RetryPolicy(attempts=12, base_delay=0.0, max_delay=0.0))
    _assert_exactly_one(forge)


def test_gives_up_with_a_retryable_error(forge: ForgeEnv) -> None:
    forge.faults({"every": True, "kind": "502"})
    with pytest.raises(ForgeError) as failed:
        _open(forge, policy=RetryPolicy(attempts=3, base_delay=0.1, max_delay=0.1))
    assert failed.value.retryable and failed.value.status == 502
    assert forge.sleeps == [0.1, 0.1]


def test_merge_dropped_after_it_happened_reports_merged(forge: ForgeEnv) -> None:
    _agent, pr = _open(forge)
    forge.admin(
        "PUT",
        f"/api/v3/repos/{REPO}/branches/main/protection",
        {
            "required_status_checks": None,
            "enforce_admins": False,
            "required_pull_request_reviews": None,
            "restrictions": None,
        },
    )
    bot = forge.client("glassbox-bot")
    forge.faults({"method": "PUT", "path": r"/merge$", "nth": 1, "kind": "drop", "when": "after"})
    result = bot.merge(pr.number, expected_head_sha=pr.head_sha)
    assert result.merged and result.sha == bot.branch_head("main")
    assert bot.retries == 1


def test_comment_lost_after_posting_is_not_duplicated(forge: ForgeEnv) -> None:
    agent, pr = _open(forge)
    forge.faults({"method": "POST", "path": r"/comments$", "nth": 1, "kind": "502", "when": "after"})
    agent.comment(pr.number, "hello")
    comments = forge.admin("GET", f"/api/v3/repos/{REPO}/issues/{pr.number}/comments")
    assert [c["body"] for c in comments] == ["hello"]


def test_status_retry_keeps_one_outcome(forge: ForgeEnv) -> None:
    _agent, pr = _open(forge)
    ci = forge.client("glassbox-ci")
    forge.faults({"method": "POST", "path": r"/statuses/", "nth": 1, "kind": "drop", "when": "after"})
    ci.set_status(pr.head_sha, context="glassbox/check", state=StatusState.SUCCESS)
    assert [(s.context, s.state) for s in ci.list_statuses(pr.head_sha)] == [("glassbox/check", "success")]


def test_rate_limit_reset_header_sets_the_delay(forge: ForgeEnv) -> None:
    agent = forge.client(AGENT, clock=lambda: 1000.0)
    exc = GithubException(
        403,
        {"message": "API rate limit exceeded for user"},
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1012"},
    )
    transient = agent._classify(exc)
    assert transient is not None and transient.delay == 12.0
    assert agent._classify(GithubException(404, {"message": "Not Found"}, {})) is None
    assert agent._classify(GithubException(403, {"message": "Resource not accessible"}, {})) is None


def test_caller_retry_after_giving_up_mid_way_reuses_the_branch(forge: ForgeEnv) -> None:
    forge.faults({"method": "POST", "path": r"/pulls$", "every": True, "kind": "502"})
    with pytest.raises(ForgeError):
        _open(forge, policy=RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0))
    forge.admin("DELETE", "/_glassbox/faults")
    # the branch exists without a PR; a later attempt (a new commit) moves it and opens the one PR
    _agent, pr = _open(forge)
    assert _git(forge, "rev-parse", f"glassbox/{AGENT}/faulty").strip() == pr.head_sha
    pulls = forge.admin("GET", f"/api/v3/repos/{REPO}/pulls?state=all")
    assert len(pulls) == 1


def test_bad_token_is_a_user_error(forge: ForgeEnv) -> None:
    from bot.errors import UserError
    from bot.forge.github import GitHubForge
    from bot.forge.settings import ForgeSettings

    client = GitHubForge(ForgeSettings(url=forge.url, repo=REPO, token="gbt_wrong"))
    with pytest.raises(UserError) as err:
        client.branch_head("main")
    assert "401" in err.value.message and "GLASSBOX_TOKEN" in err.value.message
    assert "gbt_wrong" not in forge.log.getvalue()
