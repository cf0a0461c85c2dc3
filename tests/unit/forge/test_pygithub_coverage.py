"""What people call through PyGithub against the embedded forge: branches, commits, issues, labels, collaborators,
organisation teams, review requests, file patches; and a 501, not a 404, for a GitHub endpoint it does not serve."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from github import GithubException

from bot.errors import ForgeError
from bot.records import FileChange
from tests.forge_helpers import REPO, ForgeEnv, forge_env

AGENT = "patch-agent"
BINARY = bytes(range(256)).decode("latin-1")  # NULs and high bytes: git calls it binary


@dataclass
class World:
    forge: ForgeEnv
    pr: Any
    branch: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for forge in forge_env(tmp_path_factory.mktemp("coverage")):
        branch = f"glassbox/{AGENT}/coverage"
        pr = forge.client(AGENT).open_pull_request(
            base="main",
            branch=branch,
            title="coverage",
            body="please look, @dan",
            changes=[
                FileChange(path="infra/network/__main__.py", content="print('network')\nprint('v2')\n"),
                FileChange(path="infra/network/new.txt", content="a\nb\n"),
                FileChange(path="blob.bin", content=BINARY),
                FileChange(path="README.md", delete=True),
            ],
            labels=["glassbox"],
        )
        yield World(forge, pr, branch)


def test_branches_list_and_read(world: World) -> None:
    repo = world.forge.github("carol").get_repo(REPO)
    names = [b.name for b in repo.get_branches()]
    assert names == sorted(names) and {"main", world.branch} <= set(names)
    main = repo.get_branch("main")
    assert main.protected and main.commit.sha == world.pr.base_sha
    by_name = {b.name: b for b in repo.get_branches()}
    assert by_name[world.branch].commit.sha == world.pr.head_sha and not by_name[world.branch].protected


def test_commits_list_from_a_ref_for_a_path(world: World) -> None:
    repo = world.forge.github("carol").get_repo(REPO)
    on_branch = [c.sha for c in repo.get_commits(sha=world.branch)]
    assert on_branch == [world.pr.head_sha, world.pr.base_sha]  # newest first
    assert [c.sha for c in repo.get_commits(sha=world.branch, path="infra/network/new.txt")] == [world.pr.head_sha]
    assert [c.sha for c in repo.get_commits()] == [world.pr.base_sha]  # the default branch
    assert list(repo.get_commits(sha=world.branch, path="no/such/file")) == []
    page = world.forge.ok("carol", "GET", f"/repos/{REPO}/commits?sha={world.branch}&per_page=1")
    assert [c["sha"] for c in page] == [world.pr.head_sha]
    author = world.forge.client(AGENT).get_pull_request(world.pr.number).author
    assert [c.sha for c in repo.get_commits(sha=world.branch, author=author)] == []  # the agent's commit is glassbox's


def test_pull_requests_are_issues(world: World) -> None:
    gh = world.forge.github("carol")
    repo = gh.get_repo(REPO)
    [issue] = [i for i in repo.get_issues(state="open") if i.number == world.pr.number]
    assert issue.pull_request is not None and issue.pull_request.html_url.endswith(f"/pull/{world.pr.number}")
    assert [label.name for label in issue.labels] == ["glassbox"]
    one = repo.get_issue(world.pr.number)
    assert (one.title, one.user.login, one.state) == ("coverage", AGENT, "open")
    assert [i.number for i in repo.get_issues(state="open", labels=["glassbox"])] == [world.pr.number]
    assert list(repo.get_issues(state="open", labels=["nope"])) == []
    assert [i.number for i in repo.get_issues(creator=gh.get_user(AGENT))] == [world.pr.number]
    assert [i.number for i in repo.get_issues(mentioned=gh.get_user("dan"))] == [world.pr.number]
    assert list(repo.get_issues(mentioned=gh.get_user("erin"))) == []
    assert list(repo.get_issues(state="closed")) == [] and list(repo.get_issues(assignee="*")) == []
    assert one.as_pull_request().head.sha == world.pr.head_sha


def test_repository_labels(world: World) -> None:
    repo = world.forge.github("carol").get_repo(REPO)
    made = repo.create_label("risk:critical", "B60205", "needs security")
    assert (made.name, made.color, made.description) == ("risk:critical", "b60205", "needs security")
    assert repo.get_label("risk:critical").color == "b60205"
    assert {"glassbox", "risk:critical"} <= {label.name for label in repo.get_labels()}
    with pytest.raises(GithubException) as err:
        repo.create_label("Risk:Critical", "000000")
    assert err.value.status == 422 and err.value.data["errors"][0]["code"] == "already_exists"
    with pytest.raises(GithubException) as err:
        repo.create_label("bad", "red")
    assert err.value.status == 422 and err.value.data["errors"][0]["field"] == "color"
    with pytest.raises(GithubException) as err:
        repo.get_label("missing")
    assert err.value.status == 404


def test_collaborators_and_their_permission(world: World) -> None:
    repo = world.forge.github("carol").get_repo(REPO)
    logins = {c.login for c in repo.get_collaborators()}
    assert {"alice", AGENT, "glassbox-ci", "forge-admin"} <= logins
    assert {c.login for c in repo.get_collaborators(permission="admin")} == {"forge-admin"}
    assert repo.has_in_collaborators("dan") and not repo.has_in_collaborators("nobody")
    assert repo.get_collaborator_permission("forge-admin") == "admin"
    assert repo.get_collaborator_permission("alice") == "write"
    with pytest.raises(GithubException) as err:
        repo.get_collaborator_permission("nobody")
    assert err.value.status == 404


def test_organisation_teams(world: World) -> None:
    org = world.forge.github("carol").get_organization("acme")
    assert org.login == "acme"
    slugs = [t.slug for t in org.get_teams()]
    assert slugs == sorted(slugs) and {"platform", "security"} <= set(slugs)
    team = org.get_team_by_slug("platform")
    assert team.members_count == 2 and team.organization.login == "acme"
    assert [m.login for m in team.get_members()] == ["carol", "dan"]
    with pytest.raises(GithubException) as err:
        org.get_team_by_slug("nope")
    assert err.value.status == 404


def test_review_requests(world: World) -> None:
    as_agent = world.forge.github(AGENT).get_repo(REPO).get_pull(world.pr.number)
    as_agent.create_review_request(reviewers=["dan", "erin"], team_reviewers=["platform"])
    users, teams = world.forge.github("carol").get_repo(REPO).get_pull(world.pr.number).get_review_requests()
    assert [u.login for u in users] == ["dan", "erin"] and [t.slug for t in teams] == ["platform"]
    assert [
        u.login for u in world.forge.github("carol").get_repo(REPO).get_pull(world.pr.number).requested_reviewers
    ] == [
        "dan",
        "erin",
    ]
    as_agent.delete_review_request(reviewers=["erin"], team_reviewers=["platform"])
    # a submitted review answers the request made of its reviewer, as on GitHub
    world.forge.github("dan").get_repo(REPO).get_pull(world.pr.number).create_review(event="COMMENT", body="ok")
    users, teams = as_agent.get_review_requests()
    assert list(users) == [] and list(teams) == []

    for who, status, field in (([AGENT], 422, "reviewers"), (["glassbox-ci"], 422, "reviewers")):
        with pytest.raises(GithubException) as err:
            as_agent.create_review_request(reviewers=who)
        assert err.value.status == status and err.value.data["errors"][0]["field"] == field
    with pytest.raises(GithubException) as err:  # an agent asks only on its own pull requests
        world.forge.github("network-agent").get_repo(REPO).get_pull(world.pr.number).create_review_request(["dan"])
    assert err.value.status == 403


def test_pull_request_files_carry_a_patch_except_binary_ones(world: World) -> None:
    files = {f.filename: f for f in world.forge.github("carol").get_repo(REPO).get_pull(world.pr.number).get_files()}
    assert files["infra/network/__main__.py"].patch == "@@ -1 +1,2 @@\n print('network')\n+print('v2')"
    assert files["infra/network/new.txt"].patch == "@@ -0,0 +1,2 @@\n+a\n+b"
    assert files["README.md"].patch == "@@ -1 +0,0 @@\n-# infra"
    assert files["blob.bin"].patch is None  # GitHub leaves the patch out for binary files
    compared = world.forge.github("carol").get_repo(REPO).compare("main", world.branch)
    assert {f.filename: f.patch for f in compared.files} == {name: f.patch for name, f in files.items()}


@pytest.mark.parametrize(
    "call",
    [
        lambda repo: repo.get_releases()[0],
        lambda repo: repo.get_commit("main").get_check_suites()[0],
        lambda repo: repo.create_issue("a plain issue"),
    ],
    ids=["releases", "check suites", "create issue"],
)
def test_an_endpoint_this_forge_does_not_serve_is_a_501(world: World, call: Any) -> None:
    repo = world.forge.github("carol").get_repo(REPO)
    with pytest.raises(GithubException) as err:
        call(repo)
    assert err.value.status == 501 and err.value.data["message"].startswith(
        "Not Implemented: this forge does not serve"
    )


def test_the_port_does_not_retry_a_501(world: World) -> None:
    client = world.forge.client("carol")
    before = client.calls
    with pytest.raises(ForgeError) as err:
        client._get("read releases", "/releases")
    assert err.value.status == 501 and not err.value.retryable and client.calls - before == 1
