"""Repositories: ``GET /repos/{owner}/{repo}`` and the repository object other resources embed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import Request, Response

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
