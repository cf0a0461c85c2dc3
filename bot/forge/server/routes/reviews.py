"""Pull request reviews and review requests.

Reviews: humans and admins only, no self-approval, pinned to the commit they were given on. Review requests:
asked of people who can review (never the PR's author) or of teams, by anyone who may write to the PR (an agent
only on its own); a submitted review answers the request, as on GitHub.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response, invalid
from bot.forge.server.gitrepo import FULL_SHA
from bot.forge.server.routes import issues, pulls, teams
from bot.forge.server.store import now_iso

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp


def _review_json(app: ForgeApp, repo: Any, pull: Any, row: Any) -> dict[str, Any]:
    api = app.urls.repo(repo["owner"], repo["name"])
    html = f"{app.urls.repo_web(repo['owner'], repo['name'])}/pull/{pull['number']}#pullrequestreview-{row['id']}"
    data = {
        "id": row["id"],
        "node_id": shapes.node_id("PullRequestReview", row["id"]),
        "user": teams.user_json(app, row["user_id"]),
        "body": row["body"],
        "state": row["state"],
        "commit_id": row["commit_id"],
        "html_url": html,
        "pull_request_url": f"{api}/pulls/{pull['number']}",
        "_links": {"html": shapes.link(html), "pull_request": shapes.link(f"{api}/pulls/{pull['number']}")},
        "author_association": "MEMBER",
    }
    if row["state"] != "PENDING":
        data["submitted_at"] = row["submitted_at"]
    return data


def list_reviews(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    rows = app.store.q("SELECT * FROM reviews WHERE pull_id = ? ORDER BY id", pull["id"])
    return app.page(req, [_review_json(app, repo, pull, r) for r in rows])


def create_review(app: ForgeApp, req: Request) -> Response:
    repo, git, pull = pulls.pull_of(app, req)
    user = app.require(req, {"human", "admin"}, "review pull requests")
    body = req.body if isinstance(req.body, dict) else {}
    event = body.get("event")
    states = {
        "APPROVE": "APPROVED",
        "REQUEST_CHANGES": "CHANGES_REQUESTED",
        "COMMENT": "COMMENTED",
        None: "PENDING",
    }
    if event not in states:
        raise ApiError(422, f"Unprocessable Entity: event {event!r} is not one of APPROVE, REQUEST_CHANGES, COMMENT")
    if pull["state"] != "open":
        raise ApiError(422, "Unprocessable Entity: Can not review a closed pull request")
    if pull["user_id"] == user.id and event == "APPROVE":
        raise ApiError(422, "Unprocessable Entity", errors=["Can not approve your own pull request"])
    if pull["user_id"] == user.id and event == "REQUEST_CHANGES":
        raise ApiError(422, "Unprocessable Entity", errors=["Can not request changes on your own pull request"])
    head_sha, _ = pulls.heads(git, pull)
    commit_id = str(body.get("commit_id") or head_sha)
    if not FULL_SHA.match(commit_id) or git.object_type(commit_id) != "commit":
        raise ApiError(422, "Unprocessable Entity: commit_id is not a commit of this repository")
    review_id = app.store.insert(
        "INSERT INTO reviews(pull_id, user_id, state, body, commit_id, submitted_at) VALUES (?,?,?,?,?,?)",
        pull["id"],
        user.id,
        states[event],
        str(body.get("body") or ""),
        commit_id,
        now_iso(),
    )
    if event is not None:  # a submitted review answers the request made of this reviewer
        app.store.db.execute("DELETE FROM review_requests WHERE pull_id = ? AND user_id = ?", (pull["id"], user.id))
    row = app.store.one("SELECT * FROM reviews WHERE id = ?", review_id)
    return Response(200, _review_json(app, repo, pull, row))


def dismiss_review(app: ForgeApp, req: Request) -> Response:
    """``PUT .../reviews/{id}/dismissals``: a person withdraws a review; approvals count again from here."""
    repo, git, pull = pulls.pull_of(app, req)
    user = app.require(req, {"human", "admin"}, "dismiss reviews")
    body = req.body if isinstance(req.body, dict) else {}
    if not isinstance(body.get("message"), str) or not body["message"].strip():
        raise ApiError(
            422, "Validation Failed", errors=[{"resource": "PullRequestReview", "field": "message", "code": "missing"}]
        )
    row = app.store.one("SELECT * FROM reviews WHERE id = ? AND pull_id = ?", int(req.params["review"]), pull["id"])
    if row is None:
        raise ApiError(404, "Not Found")
    if row["state"] == "PENDING":
        raise ApiError(422, "Unprocessable Entity: Can not dismiss a pending review")
    app.store.db.execute("UPDATE reviews SET state = 'DISMISSED' WHERE id = ?", (row["id"],))
    app.store.record_issue_event(pull["id"], "review_dismissed", user.id, pulls.heads(git, pull)[0])
    row = app.store.one("SELECT * FROM reviews WHERE id = ?", row["id"])
    return Response(200, _review_json(app, repo, pull, row))


REVIEWER_KINDS = {"human", "admin"}
"""Who can review here (:func:`create_review`), so who a review may be requested of."""


def _requested(body: Any) -> tuple[list[str], list[str]]:
    body = body if isinstance(body, dict) else {}
    out = []
    for key in ("reviewers", "team_reviewers"):
        value = body.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise invalid("PullRequest", key, "must be a list of names")
        out.append(value)
    if not out[0] and not out[1]:
        raise invalid("PullRequest", "reviewers", "give reviewers or team_reviewers", "missing_field")
    return out[0], out[1]


def list_requested_reviewers(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    users = [shapes.user(u, app.urls) for u in pulls.requested_users(app, pull)]
    teams_ = [shapes.team(t, app.urls, repo["owner"]) for t in pulls.requested_teams(app, pull)]
    return Response(200, {"users": users, "teams": teams_})


def request_reviewers(app: ForgeApp, req: Request) -> Response:
    """``POST .../pulls/{n}/requested_reviewers``: 201 with the pull request."""
    repo, git, pull = pulls.pull_of(app, req)
    issues.check_issue_write(req, pull)
    logins, slugs = _requested(req.body)
    if pull["state"] != "open":
        raise invalid("PullRequest", "state", "review can only be requested on an open pull request")
    users = []
    for login in logins:
        user = app.store.user_by_login(login)
        if user is None:
            raise invalid(
                "PullRequest", "reviewers", f"{login} is not a collaborator of {repo['owner']}/{repo['name']}"
            )
        if user.id == pull["user_id"]:
            raise invalid("PullRequest", "reviewers", "review cannot be requested from the pull request's author")
        if user.kind not in REVIEWER_KINDS:
            raise invalid("PullRequest", "reviewers", f"{login} is a {user.kind} identity and cannot review")
        users.append(user)
    found = []
    for slug in slugs:
        team = app.store.team(repo["owner"], slug)
        if team is None:
            raise invalid("PullRequest", "team_reviewers", f"no team {slug} in {repo['owner']}")
        found.append(team)
    stamp = now_iso()
    for user in users:
        if not app.store.one("SELECT 1 FROM review_requests WHERE pull_id = ? AND user_id = ?", pull["id"], user.id):
            app.store.insert(
                "INSERT INTO review_requests(pull_id, user_id, created_at) VALUES (?,?,?)", pull["id"], user.id, stamp
            )
    for team in found:
        if not app.store.one("SELECT 1 FROM review_requests WHERE pull_id = ? AND team_id = ?", pull["id"], team["id"]):
            app.store.insert(
                "INSERT INTO review_requests(pull_id, team_id, created_at) VALUES (?,?,?)",
                pull["id"],
                team["id"],
                stamp,
            )
    return Response(201, pulls.pull_json(app, repo, git, pull, full=False))


def remove_requested_reviewers(app: ForgeApp, req: Request) -> Response:
    """``DELETE .../pulls/{n}/requested_reviewers``: 200 with the pull request."""
    repo, git, pull = pulls.pull_of(app, req)
    issues.check_issue_write(req, pull)
    logins, slugs = _requested(req.body)
    for login in logins:
        user = app.store.user_by_login(login)
        if user is not None:
            app.store.db.execute("DELETE FROM review_requests WHERE pull_id = ? AND user_id = ?", (pull["id"], user.id))
    for slug in slugs:
        team = app.store.team(repo["owner"], slug)
        if team is not None:
            app.store.db.execute(
                "DELETE FROM review_requests WHERE pull_id = ? AND team_id = ?", (pull["id"], team["id"])
            )
    return Response(200, pulls.pull_json(app, repo, git, pull, full=False))
