"""Pull request reviews: humans and admins only, no self-approval, pinned to the commit they were given on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response
from bot.forge.server.gitrepo import FULL_SHA
from bot.forge.server.routes import pulls, teams
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
