"""Every response shape the bot reads, checked against GitHub's OpenAPI description."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.forge.model import CheckConclusion, StatusState
from bot.records import FileChange
from tests.forge_helpers import REPO, ForgeEnv, forge_env
from tests.unit.forge import openapi

R = "/repos/{owner}/{repo}"
LAPTOP_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOWeFXURnm6wznVgjckmSb8MVPw1Cz3FcJwcw0A1VqbW laptop"


@pytest.fixture(scope="module")
def spec() -> None:
    try:
        openapi.document()
    except openapi.Unavailable as exc:
        pytest.skip(f"GitHub's OpenAPI description is unavailable: {exc}")


@dataclass
class State:
    forge: ForgeEnv
    pr: int
    head: str
    base: str
    tree: str
    blob: str
    branch: str
    run: int


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[State]:
    for forge in forge_env(tmp_path_factory.mktemp("conformance")):
        agent = forge.client("patch-agent")
        branch = "glassbox/patch-agent/conformance"
        pr = agent.open_pull_request(
            base="main",
            branch=branch,
            title="t",
            body="b",
            changes=[
                FileChange(path="infra/network/x.yaml", content="x: 1\n"),
                FileChange(path="README.md", delete=True),
            ],
            labels=["glassbox"],
        )
        forge.client("glassbox-ci").set_status(pr.head_sha, context="glassbox/check", state=StatusState.SUCCESS)
        agent.comment(pr.number, "hello")
        for state in ("closed", "open"):  # lifecycle events for GET .../issues/{n}/events
            forge.request("carol", "PATCH", f"/repos/{REPO}/pulls/{pr.number}", {"state": state})
        commit = forge.admin("GET", f"/api/v3/repos/{REPO}/git/commits/{pr.head_sha}")
        tree = forge.admin("GET", f"/api/v3/repos/{REPO}/git/trees/{commit['tree']['sha']}?recursive=1")
        blob = next(e["sha"] for e in tree["tree"] if e["type"] == "blob")
        run = forge.client("glassbox-ci").create_check_run(
            pr.head_sha, name="glassbox/check", conclusion=CheckConclusion.SUCCESS, title="PASSED", summary="ok"
        )
        yield State(forge, pr.number, pr.head_sha, pr.base_sha, commit["tree"]["sha"], blob, branch, run.id)


# (identity, method, concrete path template, OpenAPI path, expected status, body)
CASES: list[tuple[str, str, str, str, int, Any]] = [
    ("carol", "GET", "/user", "/user", 200, None),
    ("carol", "GET", "/users/dan", "/users/{username}", 200, None),
    ("carol", "GET", "/repos/{R}", R, 200, None),
    ("carol", "POST", "/user/ssh_signing_keys", "/user/ssh_signing_keys", 201, {"title": "laptop", "key": LAPTOP_KEY}),
    ("dan", "POST", "/user/ssh_signing_keys", "/user/ssh_signing_keys", 422, {"key": LAPTOP_KEY}),
    ("carol", "GET", "/user/ssh_signing_keys", "/user/ssh_signing_keys", 200, None),
    ("carol", "GET", "/users/dan/ssh_signing_keys", "/users/{username}/ssh_signing_keys", 200, None),
    ("carol", "GET", "/repos/{R}/branches/main", R + "/branches/{branch}", 200, None),
    ("forge-admin", "GET", "/repos/{R}/branches/main/protection", R + "/branches/{branch}/protection", 200, None),
    ("carol", "GET", "/repos/{R}/git/ref/heads/main", R + "/git/ref/{ref}", 200, None),
    ("carol", "GET", "/repos/{R}/git/matching-refs/heads/glassbox", R + "/git/matching-refs/{ref}", 200, None),
    ("carol", "GET", "/repos/{R}/git/commits/{head}", R + "/git/commits/{commit_sha}", 200, None),
    ("carol", "GET", "/repos/{R}/git/trees/{tree}", R + "/git/trees/{tree_sha}", 200, None),
    ("carol", "GET", "/repos/{R}/git/blobs/{blob}", R + "/git/blobs/{file_sha}", 200, None),
    (
        "carol",
        "POST",
        "/repos/{R}/git/trees",
        R + "/git/trees",
        201,
        {"base_tree": "{tree}", "tree": [{"path": "n.txt", "mode": "100644", "type": "blob", "content": "n"}]},
    ),
    (
        "carol",
        "POST",
        "/repos/{R}/git/commits",
        R + "/git/commits",
        201,
        {"message": "m", "tree": "{tree}", "parents": ["{head}"]},
    ),
    ("carol", "POST", "/repos/{R}/git/refs", R + "/git/refs", 201, {"ref": "refs/heads/carol/x", "sha": "{head}"}),
    ("carol", "PATCH", "/repos/{R}/git/refs/heads/carol/x", R + "/git/refs/{ref}", 200, {"sha": "{head}"}),
    ("carol", "POST", "/repos/{R}/pulls", R + "/pulls", 201, {"title": "c", "head": "carol/x", "base": "main"}),
    ("carol", "POST", "/repos/{R}/pulls", R + "/pulls", 422, {"title": "c", "head": "carol/x", "base": "main"}),
    ("carol", "GET", "/repos/{R}/pulls?state=all&head=acme:{branch}", R + "/pulls", 200, None),
    ("carol", "GET", "/repos/{R}/pulls/{pr}", R + "/pulls/{pull_number}", 200, None),
    ("carol", "GET", "/repos/{R}/pulls/{pr}/files", R + "/pulls/{pull_number}/files", 200, None),
    ("carol", "GET", "/repos/{R}/pulls/{pr}/commits", R + "/pulls/{pull_number}/commits", 200, None),
    ("carol", "POST", "/repos/{R}/pulls/{pr}/reviews", R + "/pulls/{pull_number}/reviews", 200, {"event": "COMMENT"}),
    ("carol", "GET", "/repos/{R}/pulls/{pr}/reviews", R + "/pulls/{pull_number}/reviews", 200, None),
    (
        "patch-agent",
        "POST",
        "/repos/{R}/pulls/{pr}/reviews",
        R + "/pulls/{pull_number}/reviews",
        403,
        {"event": "APPROVE"},
    ),
    ("carol", "PUT", "/repos/{R}/pulls/{pr}/merge", R + "/pulls/{pull_number}/merge", 405, {"sha": "{head}"}),
    ("carol", "PUT", "/repos/{R}/pulls/{pr}/merge", R + "/pulls/{pull_number}/merge", 409, {"sha": "{base}"}),
    ("carol", "POST", "/repos/{R}/issues/{pr}/labels", R + "/issues/{issue_number}/labels", 200, {"labels": ["x"]}),
    ("carol", "GET", "/repos/{R}/issues/{pr}/labels", R + "/issues/{issue_number}/labels", 200, None),
    ("carol", "GET", "/repos/{R}/issues/{pr}/comments", R + "/issues/{issue_number}/comments", 200, None),
    ("carol", "GET", "/repos/{R}/activity?ref=refs/heads/{branch}", R + "/activity", 200, None),
    ("carol", "POST", "/repos/{R}/issues/{pr}/comments", R + "/issues/{issue_number}/comments", 201, {"body": "hi"}),
    (
        "glassbox-ci",
        "POST",
        "/repos/{R}/statuses/{head}",
        R + "/statuses/{sha}",
        201,
        {"state": "pending", "context": "c"},
    ),
    ("carol", "GET", "/repos/{R}/commits/{head}/status", R + "/commits/{ref}/status", 200, None),
    ("carol", "GET", "/repos/{R}/commits/{head}/statuses", R + "/commits/{ref}/statuses", 200, None),
    ("carol", "GET", "/repos/{R}/commits/{head}", R + "/commits/{ref}", 200, None),
    ("carol", "GET", "/repos/{R}/contents/infra/network/x.yaml?ref={branch}", R + "/contents/{path}", 200, None),
    ("carol", "GET", "/repos/{R}/contents/infra?ref=main", R + "/contents/{path}", 200, None),
    ("carol", "GET", "/repos/{R}/compare/main...{branch}", R + "/compare/{basehead}", 200, None),
    ("carol", "GET", "/orgs/acme/teams/platform/members", "/orgs/{org}/teams/{team_slug}/members", 200, None),
    ("carol", "GET", "/orgs/acme", "/orgs/{org}", 200, None),
    ("carol", "GET", "/orgs/acme/teams", "/orgs/{org}/teams", 200, None),
    ("carol", "GET", "/orgs/acme/teams/platform", "/orgs/{org}/teams/{team_slug}", 200, None),
    ("carol", "GET", "/repos/{R}/branches?protected=true", R + "/branches", 200, None),
    ("carol", "GET", "/repos/{R}/commits?sha={branch}&path=infra/network/x.yaml&per_page=5", R + "/commits", 200, None),
    ("carol", "GET", "/repos/{R}/issues?state=all&labels=glassbox", R + "/issues", 200, None),
    ("carol", "GET", "/repos/{R}/issues/{pr}", R + "/issues/{issue_number}", 200, None),
    ("carol", "GET", "/repos/{R}/issues/99", R + "/issues/{issue_number}", 404, None),
    ("carol", "POST", "/repos/{R}/labels", R + "/labels", 201, {"name": "risk:high", "color": "b60205"}),
    ("carol", "POST", "/repos/{R}/labels", R + "/labels", 422, {"name": "RISK:HIGH"}),
    ("carol", "GET", "/repos/{R}/labels", R + "/labels", 200, None),
    ("carol", "GET", "/repos/{R}/labels/risk:high", R + "/labels/{name}", 200, None),
    ("carol", "GET", "/repos/{R}/labels/nope", R + "/labels/{name}", 404, None),
    ("carol", "GET", "/repos/{R}/collaborators?permission=push", R + "/collaborators", 200, None),
    ("carol", "GET", "/repos/{R}/collaborators/dan", R + "/collaborators/{username}", 204, None),
    ("carol", "GET", "/repos/{R}/collaborators/nobody", R + "/collaborators/{username}", 404, None),
    (
        "carol",
        "GET",
        "/repos/{R}/collaborators/forge-admin/permission",
        R + "/collaborators/{username}/permission",
        200,
        None,
    ),
    (
        "patch-agent",
        "POST",
        "/repos/{R}/pulls/{pr}/requested_reviewers",
        R + "/pulls/{pull_number}/requested_reviewers",
        201,
        {"reviewers": ["dan"], "team_reviewers": ["platform"]},
    ),
    (
        "patch-agent",
        "POST",
        "/repos/{R}/pulls/{pr}/requested_reviewers",
        R + "/pulls/{pull_number}/requested_reviewers",
        422,
        {"reviewers": ["patch-agent"]},
    ),
    (
        "carol",
        "GET",
        "/repos/{R}/pulls/{pr}/requested_reviewers",
        R + "/pulls/{pull_number}/requested_reviewers",
        200,
        None,
    ),
    (
        "patch-agent",
        "DELETE",
        "/repos/{R}/pulls/{pr}/requested_reviewers",
        R + "/pulls/{pull_number}/requested_reviewers",
        200,
        {"reviewers": ["dan"]},
    ),
    (
        "glassbox-ci",
        "POST",
        "/repos/{R}/check-runs",
        R + "/check-runs",
        201,
        {
            "name": "lint",
            "head_sha": "{head}",
            "status": "in_progress",
            "details_url": "https://ci.example/1",
            "external_id": "1",
            "output": {
                "title": "t",
                "summary": "s",
                "annotations": [
                    {
                        "path": "README.md",
                        "start_line": 2,
                        "end_line": 2,
                        "start_column": 1,
                        "end_column": 4,
                        "annotation_level": "notice",
                        "message": "m",
                        "title": "t",
                        "raw_details": "r",
                    },
                ],
            },
        },
    ),
    ("carol", "GET", "/repos/{R}/check-runs/{run}", R + "/check-runs/{check_run_id}", 200, None),
    (
        "glassbox-ci",
        "PATCH",
        "/repos/{R}/check-runs/{run}",
        R + "/check-runs/{check_run_id}",
        200,
        {
            "conclusion": "failure",
            "output": {
                "summary": "s",
                "annotations": [
                    {"path": "README.md", "start_line": 1, "end_line": 3, "annotation_level": "failure", "message": "m"}
                ],
            },
        },
    ),
    (
        "carol",
        "GET",
        "/repos/{R}/check-runs/{run}/annotations",
        R + "/check-runs/{check_run_id}/annotations",
        200,
        None,
    ),
    (
        "carol",
        "GET",
        "/repos/{R}/commits/{head}/check-runs?check_name=glassbox/check",
        R + "/commits/{ref}/check-runs",
        200,
        None,
    ),
    ("carol", "GET", "/repos/{R}/pulls/99", R + "/pulls/{pull_number}", 404, None),
    ("carol", "PATCH", "/repos/{R}/pulls/{pr}", R + "/pulls/{pull_number}", 200, {"body": "edited"}),
    (
        "forge-admin",
        "PUT",
        "/repos/{R}/branches/main/protection",
        R + "/branches/{branch}/protection",
        200,
        {
            "required_status_checks": {"strict": False, "contexts": ["glassbox/check", "glassbox/approvals"]},
            "enforce_admins": False,
            "required_pull_request_reviews": {"required_approving_review_count": 1},
            "restrictions": None,
        },
    ),
    (
        "forge-admin",
        "POST",
        "/repos/{R}/branches/main/protection/required_signatures",
        R + "/branches/{branch}/protection/required_signatures",
        200,
        None,
    ),
]


def _fill(value: Any, st: State) -> Any:
    if isinstance(value, str):
        return value.format(
            R=REPO, pr=st.pr, head=st.head, base=st.base, tree=st.tree, blob=st.blob, branch=st.branch, run=st.run
        )
    if isinstance(value, list):
        return [_fill(v, st) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, st) for k, v in value.items()}
    return value


def test_responses_match_github_openapi(spec: None, state: State) -> None:
    # One test, the cases in order: they share one forge and build on each other (a key registered, then refused
    # to another user; a branch created, moved, then a PR opened from it), so they must not be spread over the
    # suite's workers. Every case runs; the failure lists each one that did not match.
    failures: list[str] = []
    for identity, method, path, api, status, body in CASES:
        case = f"{identity} {method} {api} {status}"
        got, data = state.forge.request(identity, method, _fill(path, state), _fill(body, state))
        if got != status:
            failures.append(f"{case}: got {got}: {str(data)[:300]}")
            continue
        try:
            openapi.validate(method, api, status, data)
        except jsonschema.ValidationError as exc:
            failures.append(f"{case}: {exc.message[:300]}")
    assert not failures, "\n".join(failures)


def test_lifecycle_events_match_github_openapi(spec: None, state: State) -> None:
    # GitHub's description types closed/reopened as state-change events (listed under the timeline's union)
    events = state.forge.ok("carol", "GET", f"/repos/{REPO}/issues/{state.pr}/events")
    assert [e["event"] for e in events][:2] == ["closed", "reopened"] and events[0]["actor"]["login"] == "carol"
    for event in events:
        openapi.validate_component("state-change-issue-event", event)


def test_a_dismissed_review_matches_github_openapi(spec: None, state: State) -> None:
    status, review = state.forge.request(
        "dan", "POST", f"/repos/{REPO}/pulls/{state.pr}/reviews", {"event": "APPROVE", "commit_id": state.head}
    )
    assert status == 200, review
    path = f"/repos/{REPO}/pulls/{state.pr}/reviews/{review['id']}/dismissals"
    status, data = state.forge.request("carol", "PUT", path, {"message": "approved the wrong change"})
    assert status == 200 and data["state"] == "DISMISSED", data
    openapi.validate("PUT", R + "/pulls/{pull_number}/reviews/{review_id}/dismissals", 200, data)


def test_every_route_the_server_serves_is_covered(state: State) -> None:
    from bot.forge.server.app import ForgeApp

    app = ForgeApp(state.forge.data)
    try:
        routes = [(verb, pattern, handler.__name__) for verb, pattern, handler in app.routes]
    finally:
        app.close()
    hit = set()
    for _identity, method, path, _api, _status, _body in CASES:
        concrete = "/" + _fill(path, state).split("?", 1)[0].lstrip("/")
        name = next((h for verb, pattern, h in routes if verb == method and pattern.match(concrete)), None)
        hit.add(name)
    # conveniences GitHub documents differently or has deprecated; not read by the bot
    extras = {"list_refs", "get_ref", "delete_ref", "get_merged", "delete_protection", "remove_label"}
    extras |= {"dismiss_review", "list_events"}  # covered by their own tests above
    assert {h for _v, _p, h in routes} - hit - extras == set()


@pytest.mark.parametrize("path", ["/nope", "/repos/acme/other", "/repos/acme/other/wiki", "/orgs/nobody/teams/x/y"])
def test_what_does_not_exist_is_githubs_404(spec: None, state: State, path: str) -> None:
    status, data = state.forge.request("carol", "GET", path)
    assert status == 404
    assert data["message"] == "Not Found" and data["documentation_url"].startswith("https://docs.github.com")
    openapi.validate("GET", R + "/pulls/{pull_number}", 404, data)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/repos/acme/infra/wiki"),
        ("GET", "/repos/acme/infra/pulls/1/x"),
        ("DELETE", "/repos/acme/infra"),
        ("GET", "/repos/acme/infra/commits/{head}/check-suites"),
        ("GET", "/repos/acme/infra/branches/main/protection/required_status_checks"),
        ("GET", "/orgs/acme/members"),
        ("GET", "/user/repos"),
        ("GET", "/search/issues?q=x"),
    ],
)
def test_a_github_endpoint_this_forge_does_not_serve_is_a_501(spec: None, state: State, method: str, path: str) -> None:
    status, data = state.forge.request("carol", method, _fill(path, state))
    assert status == 501, data
    assert data["message"].startswith(f"Not Implemented: this forge does not serve {method} ")
    openapi.validate_component("basic-error", data)


def test_the_501_prefixes_are_githubs_top_level_resources(spec: None) -> None:
    from bot.forge.server.app import GITHUB_RESOURCES

    assert {p.split("/")[1] for p in openapi.document()["paths"]} - {""} == GITHUB_RESOURCES


def test_bad_or_missing_token_is_401(state: State) -> None:
    req = urllib.request.Request(f"{state.forge.url}/user")  # noqa: S310 - 127.0.0.1 only
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)  # noqa: S310
    assert err.value.code == 401
    req.add_header("Authorization", "Bearer wrong")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)  # noqa: S310
    assert err.value.code == 401 and json.loads(err.value.read())["message"] == "Bad credentials"


def test_cache_lives_outside_the_repository() -> None:
    assert Path(__file__).resolve().parents[3] not in openapi.cache_dir().resolve().parents
