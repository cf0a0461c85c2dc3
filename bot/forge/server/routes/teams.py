"""Users, organisations and teams: the authenticated user, a named user, and a team's members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import Request, Response, not_found
from bot.forge.server.store import now_iso

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp


def user_json(app: ForgeApp, user_id: int) -> dict[str, Any] | None:
    """The simple-user object of ``user_id``; None for an unknown id."""
    user = app.store.user_by_id(user_id)
    return shapes.user(user, app.urls) if user else None


def get_user(app: ForgeApp, req: Request) -> Response:
    assert req.user is not None
    row = app.store.one("SELECT created_at FROM users WHERE id = ?", req.user.id)
    data = shapes.full_user(req.user, app.urls, row["created_at"] if row else now_iso())
    data.update(
        {
            "private_gists": 0,
            "total_private_repos": 0,
            "owned_private_repos": 0,
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": False,
        }
    )
    return Response(200, data)


def get_named_user(app: ForgeApp, req: Request) -> Response:
    user = app.store.user_by_login(req.params["login"])
    if user is None:
        raise not_found()
    row = app.store.one("SELECT created_at FROM users WHERE id = ?", user.id)
    return Response(200, shapes.full_user(user, app.urls, row["created_at"] if row else now_iso()))


def team_members(app: ForgeApp, req: Request) -> Response:
    team = app.store.team(req.params["org"], req.params["slug"])
    if team is None:
        raise not_found()
    return app.page(req, [shapes.user(u, app.urls) for u in app.store.team_members(team["id"])])
