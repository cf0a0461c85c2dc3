"""End to end over real HTTP on 127.0.0.1: an agent's PR through reviews, protection and merge."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from github import GithubException

from bot.errors import ForgeError
from bot.forge.model import FileStatus, MergeMethod, ReviewState, StatusState
from bot.forge.server import repo_path
from bot.records import FileChange
from tests.forge_helpers import REPO, ForgeEnv, forge_env

pytestmark = pytest.mark.e2e

AGENT = "patch-agent"
REVIEWER = "carol"
CONTEXTS = ("glassbox/check", "glassbox/approvals")


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeEnv]:
    yield from forge_env(tmp_path)


def _git(path: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={path}", *args], capture_output=True, check=True, text=True).stdout


def test_agent_pr_reviews_stale_approval_and_merge(forge: ForgeEnv) -> None:
    agent, ci, bot = (forge.client(i) for i in (AGENT, "glassbox-ci", "glassbox-bot"))
    branch = f"glassbox/{AGENT}/0192f0c8-0000-7000-8000-000000000001"
    pr = agent.open_pull_request(
        base="main",
        branch=branch,
        title="Patch the database engine",
        body="Rationale: advisory.",
        changes=[
            FileChange(path="infra/network/Pulumi.dev.yaml", content="config:\n  network:cidr: 10.1.0.0/16\n"),
            FileChange(path="infra/network/extra.yaml", content="x: 1\n"),
            FileChange(path="README.md", delete=True),
        ],
        labels=["glassbox", "risk:medium"],
    )
    assert pr.author == AGENT and pr.state == "open" and pr.head_ref == branch and pr.base_ref == "main"
    assert sorted(pr.labels) == ["glassbox", "risk:medium"]
    files = {f.path: f.status for f in agent.list_changed_files(pr.number)}
    assert files == {
        "infra/network/Pulumi.dev.yaml": FileStatus.MODIFIED,
        "infra/network/extra.yaml": FileStatus.ADDED,
        "README.md": FileStatus.REMOVED,
    }
    # one commit on the branch, parented on main
    bare = repo_path(forge.data, REPO)
    assert _git(bare, "rev-list", "--count", f"main..{branch}").strip() == "1"

    # the agent cannot approve, merge, set statuses or push to main (I1)
    agent_gh = forge.github(AGENT).get_repo(REPO)
    with pytest.raises(GithubException) as denied:
        agent_gh.get_pull(pr.number).create_review(event="APPROVE")
    assert denied.value.status == 403
    with pytest.raises(ForgeError) as refused:
        agent.merge(pr.number, expected_head_sha=pr.head_sha)
    assert refused.value.status == 403
    with pytest.raises(ForgeError) as refused:
        agent.set_status(pr.head_sha, context="glassbox/check", state=StatusState.SUCCESS)
    assert refused.value.status == 403
    with pytest.raises(GithubException) as denied:
        agent_gh.get_git_ref("heads/main").edit(pr.head_sha, force=True)
    assert denied.value.status == 403

    # a human author cannot approve their own PR (GitHub's 422 and message)
    dan = forge.client("dan")
    own = dan.open_pull_request(
        base="main", branch="dan/own", title="own", body="", changes=[FileChange(path="own.txt", content="1\n")]
    )
    with pytest.raises(GithubException) as denied:
        forge.github("dan").get_repo(REPO).get_pull(own.number).create_review(event="APPROVE")
    assert denied.value.status == 422 and "Can not approve your own pull request" in str(denied.value.data)

    # green statuses but no approval: refused (405)
    for context in CONTEXTS:
        ci.set_status(pr.head_sha, context=context, state=StatusState.SUCCESS, description="ok")
    assert {s.context: s.state for s in bot.list_statuses(pr.head_sha)} == dict.fromkeys(CONTEXTS, "success")
    refusal = bot.merge(pr.number, expected_head_sha=pr.head_sha)
    assert not refusal.merged and "approving review" in refusal.message

    # carol approves on the head commit
    carol_pr = forge.github(REVIEWER).get_repo(REPO).get_pull(pr.number)
    carol_pr.create_review(commit=carol_pr.base.repo.get_commit(pr.head_sha), event="APPROVE", body="lgtm")
    reviews = bot.list_reviews(pr.number)
    assert [(r.user, r.state, r.commit_id) for r in reviews] == [(REVIEWER, ReviewState.APPROVED, pr.head_sha)]
    assert reviews[0].submitted_at is not None

    # a later push makes that approval stale for branch protection
    new_tree = _git(bare, "rev-parse", f"{pr.head_sha}^{{tree}}").strip()
    pushed = agent_gh.create_git_commit(
        "follow-up", agent_gh.get_git_tree(new_tree), [agent_gh.get_git_commit(pr.head_sha)]
    )
    agent_gh.get_git_ref(f"heads/{branch}").edit(pushed.sha)
    moved = bot.get_pull_request(pr.number)
    assert moved.head_sha == pushed.sha != pr.head_sha
    for context in CONTEXTS:
        ci.set_status(moved.head_sha, context=context, state=StatusState.SUCCESS)
    stale = bot.merge(pr.number, expected_head_sha=moved.head_sha)
    assert not stale.merged and "approvals on the current head" in stale.message
    # and the old head is no longer mergeable at all (409)
    assert "Head branch was modified" in bot.merge(pr.number, expected_head_sha=pr.head_sha).message

    # a red required status blocks even with a fresh approval
    carol_pr.create_review(event="APPROVE")
    ci.set_status(moved.head_sha, context="glassbox/check", state=StatusState.FAILURE)
    red = bot.merge(pr.number, expected_head_sha=moved.head_sha)
    assert not red.merged and "glassbox/check" in red.message
    ci.set_status(moved.head_sha, context="glassbox/check", state=StatusState.SUCCESS)

    result = bot.merge(pr.number, expected_head_sha=moved.head_sha, method=MergeMethod.SQUASH)
    assert result.merged and result.sha
    done = bot.get_pull_request(pr.number)
    assert done.merged and done.state == "closed" and done.merge_commit_sha == result.sha
    assert bot.branch_head("main") == result.sha
    # a real commit in the bare repo, authored by the merging identity, carrying the change
    assert _git(bare, "log", "-1", "--format=%an|%P", "main").strip() == f"glassbox-bot|{pr.base_sha}"
    assert bot.read_file("infra/network/extra.yaml", "main") == b"x: 1\n"
    assert bot.read_file("README.md", "main") is None
    assert {f.path for f in bot.compare(pr.base_sha, "main")} == set(files)
    assert bot.list_team_members("platform") == ["carol", "dan"]
    assert agent.comment(pr.number, "merged, thanks").user == AGENT

    # no token ever reached the server log
    log = forge.log.getvalue()
    assert "/api/v3/repos/acme/infra/pulls" in log
    for token in forge.tokens.values():
        assert token not in log


def test_open_pull_request_is_idempotent_on_branch(forge: ForgeEnv) -> None:
    agent = forge.client(AGENT)
    kwargs = {
        "base": "main",
        "branch": f"glassbox/{AGENT}/again",
        "title": "t",
        "body": "b",
        "changes": [FileChange(path="infra/network/a.yaml", content="a\n")],
    }
    first = agent.open_pull_request(**kwargs)  # type: ignore[arg-type]
    second = agent.open_pull_request(**kwargs)  # type: ignore[arg-type]
    assert first.number == second.number and first.head_sha == second.head_sha


def test_agent_refs_outside_its_namespace_are_refused(forge: ForgeEnv) -> None:
    agent = forge.client(AGENT)
    with pytest.raises(ForgeError) as refused:
        agent.open_pull_request(
            base="main",
            branch="glassbox/network-agent/x",
            title="t",
            body="",
            changes=[FileChange(path="a", content="a")],
        )
    assert refused.value.status == 403
