"""Issue labels and comments of pull requests; agents touch only their own PRs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response
from bot.forge.server.routes import pulls, teams
from bot.forge.server.store import now_iso

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp


def _check_issue_write(req: Request, pull: Any) -> None:
    assert req.user is not None
    if req.user.kind == "agent" and pull["user_id"] != req.user.id:
        raise ApiError(403, "Resource not accessible by integration: agents may only touch their own PRs")


def list_labels(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    items = [shapes.label(row, app.urls, repo["owner"], repo["name"]) for row in app.store.labels_of(pull["id"])]
    return app.page(req, items)


def add_labels(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    _check_issue_write(req, pull)
    body = req.body
    names = body.get("labels") if isinstance(body, dict) else body
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ApiError(422, 'Invalid request.\n\n"labels" must be a list of names.')
    app.store.add_labels(repo["id"], pull["id"], names)
    items = [shapes.label(row, app.urls, repo["owner"], repo["name"]) for row in app.store.labels_of(pull["id"])]
    return Response(200, items)


def remove_label(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    _check_issue_write(req, pull)
    row = app.store.one("SELECT id FROM labels WHERE repo_id = ? AND name = ?", repo["id"], req.params["name"])
    if row is None:
        raise ApiError(404, "Label does not exist")
    app.store.db.execute("DELETE FROM pull_labels WHERE pull_id = ? AND label_id = ?", (pull["id"], row["id"]))
    items = [shapes.label(r, app.urls, repo["owner"], repo["name"]) for r in app.store.labels_of(pull["id"])]
    return Response(200, items)


def _comment_json(app: ForgeApp, repo: Any, pull: Any, row: Any) -> dict[str, Any]:
    api = app.urls.repo(repo["owner"], repo["name"])
    web = app.urls.repo_web(repo["owner"], repo["name"])
    return {
        "id": row["id"],
        "node_id": shapes.node_id("IssueComment", row["id"]),
        "url": f"{api}/issues/comments/{row['id']}",
        "html_url": f"{web}/pull/{pull['number']}#issuecomment-{row['id']}",
        "issue_url": f"{api}/issues/{pull['number']}",
        "body": row["body"],
        "user": teams.user_json(app, row["user_id"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "author_association": "MEMBER",
    }


def list_comments(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    rows = app.store.q("SELECT * FROM comments WHERE pull_id = ? ORDER BY id", pull["id"])
    return app.page(req, [_comment_json(app, repo, pull, r) for r in rows])


def create_comment(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    _check_issue_write(req, pull)
    assert req.user is not None
    body = req.body if isinstance(req.body, dict) else {}
    text = body.get("body")
    if not isinstance(text, str) or not text:
        raise ApiError(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
    stamp = now_iso()
    cid = app.store.insert(
        "INSERT INTO comments(pull_id, user_id, body, created_at, updated_at) VALUES (?,?,?,?,?)",
        pull["id"],
        req.user.id,
        text,
        stamp,
        stamp,
    )
    row = app.store.one("SELECT * FROM comments WHERE id = ?", cid)
    return Response(201, _comment_json(app, repo, pull, row))


def list_events(app: ForgeApp, req: Request) -> Response:
    """``GET .../issues/{n}/events``: the PR's lifecycle events, oldest first, each with its actor."""
    repo, _git, pull = pulls.pull_of(app, req)
    api = app.urls.repo(repo["owner"], repo["name"])
    rows = app.store.q("SELECT * FROM issue_events WHERE pull_id = ? ORDER BY id", pull["id"])
    items = [
        {
            "id": r["id"],
            "node_id": shapes.node_id("IssueEvent", r["id"]),
            "url": f"{api}/issues/events/{r['id']}",
            "actor": teams.user_json(app, r["user_id"]),
            "event": r["event"],
            "commit_id": r["commit_id"],
            "commit_url": f"{api}/commits/{r['commit_id']}" if r["commit_id"] else None,
            "created_at": r["created_at"],
            "performed_via_github_app": None,
        }
        for r in rows
    ]
    return app.page(req, items)
