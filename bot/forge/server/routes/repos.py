"""Repositories: ``GET /repos/{owner}/{repo}`` and the repository object other resources embed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response
from bot.forge.server.gitrepo import ZERO_SHA
from bot.forge.server.routes import teams

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp


def open_issues(app: ForgeApp, repo_id: int) -> int:
    row = app.store.one("SELECT COUNT(*) AS n FROM pulls WHERE repo_id = ? AND state = 'open'", repo_id)
    return int(row["n"]) if row else 0


def repo_json(app: ForgeApp, repo: Any, full: bool = False) -> dict[str, Any]:
    return shapes.repository(repo, app.urls, open_issues(app, repo["id"]), full=full)


def get_repo(app: ForgeApp, req: Request) -> Response:
    repo, _ = app.repo(req)
    return Response(200, repo_json(app, repo, full=True))


def list_activity(app: ForgeApp, req: Request) -> Response:
    """``GET /repos/{owner}/{repo}/activity?ref=``: who moved a branch, newest first, as GitHub lists it."""
    repo, git = app.repo(req)
    ref = req.query.get("ref", "")
    if not ref:
        raise ApiError(422, "Validation Failed: ref is required")
    full = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
    items = []
    for a in app.store.ref_activity(repo["id"], full):
        if a["before"] == ZERO_SHA:
            kind = "branch_creation"
        elif a["after"] == ZERO_SHA:
            kind = "branch_deletion"
        elif git.object_type(a["before"]) == "commit" and not git.is_ancestor(a["before"], a["after"]):
            kind = "force_push"
        else:
            kind = "push"
        items.append(
            {
                "id": a["id"],
                "node_id": shapes.node_id("RepositoryActivity", a["id"]),
                "before": a["before"],
                "after": a["after"],
                "ref": full,
                "timestamp": a["at"],
                "activity_type": kind,
                "actor": teams.user_json(app, a["user_id"]),
            }
        )
    items.reverse()
    return app.page(req, items)
