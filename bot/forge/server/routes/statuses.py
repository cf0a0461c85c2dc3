"""Commit statuses: set (by :data:`STATUS_SETTERS` only), list, and the combined status of a ref."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response, not_found
from bot.forge.server.gitrepo import FULL_SHA
from bot.forge.server.routes import repos
from bot.forge.server.store import now_iso

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp


STATUS_SETTERS = {"human", "ci", "bot", "deployer", "admin"}


def _status_json(app: ForgeApp, repo: Any, row: Any) -> dict[str, Any]:
    creator = app.store.user_by_id(row["creator_id"])
    return {
        "url": f"{app.urls.repo(repo['owner'], repo['name'])}/statuses/{row['sha']}",
        "avatar_url": f"{app.urls.web}/avatars/{creator.login if creator else 'ghost'}",
        "id": row["id"],
        "node_id": shapes.node_id("StatusContext", row["id"]),
        "state": row["state"],
        "description": row["description"],
        "target_url": row["target_url"],
        "context": row["context"],
        "created_at": row["created_at"],
        "updated_at": row["created_at"],
        "creator": shapes.user(creator, app.urls) if creator else None,
    }


def create_status(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    user = app.require(req, STATUS_SETTERS, "set commit statuses")
    sha = req.params["sha"]
    if not FULL_SHA.match(sha) or git.object_type(sha) != "commit":
        raise ApiError(422, f"No commit found for SHA: {sha}")
    body = req.body if isinstance(req.body, dict) else {}
    state = body.get("state")
    if state not in ("error", "failure", "pending", "success"):
        raise ApiError(422, "Validation Failed", errors=[{"resource": "Status", "field": "state", "code": "custom"}])
    sid = app.store.insert(
        "INSERT INTO statuses(repo_id, sha, context, state, description, target_url, creator_id, created_at) "
        "VALUES (?,?,?,?,?,?,?,?)",
        repo["id"],
        sha,
        str(body.get("context") or "default"),
        state,
        body.get("description"),
        body.get("target_url"),
        user.id,
        now_iso(),
    )
    row = app.store.one("SELECT * FROM statuses WHERE id = ?", sid)
    return Response(201, _status_json(app, repo, row))


def list_statuses(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    sha = git.resolve_commit(req.params["ref"])
    if sha is None:
        raise not_found()
    rows = app.store.q("SELECT * FROM statuses WHERE repo_id = ? AND sha = ? ORDER BY id DESC", repo["id"], sha)
    return app.page(req, [_status_json(app, repo, r) for r in rows])


def combined_status(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    sha = git.resolve_commit(req.params["ref"])
    if sha is None:
        raise not_found()
    latest = app.store.latest_statuses(repo["id"], sha)
    states = {row["state"] for row in latest.values()}
    if states & {"error", "failure"}:
        state = "failure"
    elif not states or "pending" in states:
        state = "pending"
    else:
        state = "success"
    api = app.urls.repo(repo["owner"], repo["name"])
    data = {
        "state": state,
        "sha": sha,
        "total_count": len(latest),
        "statuses": [_status_json(app, repo, r) for r in latest.values()],
        "repository": shapes.repository(repo, app.urls, repos.open_issues(app, repo["id"])),
        "commit_url": f"{api}/commits/{sha}",
        "url": f"{api}/commits/{sha}/status",
    }
    return Response(200, data)
