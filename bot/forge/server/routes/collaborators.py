"""Repository collaborators: every forge identity has access to the forge's repositories; the forge admin as
``admin``, every other identity with ``write`` (what an identity may actually do is decided per endpoint, e.g.
:data:`~bot.forge.server.routes.pulls.MERGERS`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response, invalid
from bot.forge.server.store import User

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp

_PERMISSIONS = ("pull", "triage", "push", "maintain", "admin")
_GRANTS = {"admin": set(_PERMISSIONS), "write": {"pull", "triage", "push"}}


def role(user: User) -> str:
    """The repository role of ``user``: ``admin`` for the forge admin, ``write`` for every other identity."""
    return "admin" if user.kind == "admin" else "write"


def collaborator_json(app: ForgeApp, user: User) -> dict[str, Any]:
    granted = _GRANTS[role(user)]
    return {
        **shapes.user(user, app.urls),
        "permissions": {p: p in granted for p in _PERMISSIONS},
        "role_name": role(user),
    }


def _users(app: ForgeApp) -> list[User]:
    rows = app.store.q("SELECT id FROM users ORDER BY login")
    return [u for u in (app.store.user_by_id(r["id"]) for r in rows) if u is not None]


def list_collaborators(app: ForgeApp, req: Request) -> Response:
    """``GET .../collaborators``, optionally only those holding ``permission``."""
    app.repo(req)
    wanted = req.query.get("permission")
    if wanted is not None and wanted not in _PERMISSIONS:
        raise invalid("Collaborator", "permission", "must be one of " + ", ".join(_PERMISSIONS))
    affiliation = req.query.get("affiliation", "all")
    if affiliation not in ("outside", "direct", "all"):
        raise invalid("Collaborator", "affiliation", "must be outside, direct or all")
    users = [] if affiliation == "outside" else _users(app)  # nobody here is an outside collaborator
    items = [collaborator_json(app, u) for u in users if wanted is None or wanted in _GRANTS[role(u)]]
    return app.page(req, items)


def check_collaborator(app: ForgeApp, req: Request) -> Response:
    """``GET .../collaborators/{username}``: 204 when the account is a collaborator, 404 otherwise."""
    app.repo(req)
    if app.store.user_by_login(req.params["login"]) is None:
        raise ApiError(404, "Not Found")
    return Response(204)


def get_permission(app: ForgeApp, req: Request) -> Response:
    app.repo(req)
    user = app.store.user_by_login(req.params["login"])
    if user is None:
        raise ApiError(404, f"{req.params['login']} is not a user")
    return Response(200, {"permission": role(user), "role_name": role(user), "user": collaborator_json(app, user)})
