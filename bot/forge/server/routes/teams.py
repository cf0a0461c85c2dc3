"""Users, organisations and teams: the authenticated user, a named user, an organisation, its teams and a
team's members."""

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


def _org(app: ForgeApp, req: Request) -> Any:
    row = app.store.one("SELECT * FROM orgs WHERE login = ?", req.params["org"])
    if row is None:
        raise not_found()
    return row


def org_json(app: ForgeApp, row: Any) -> dict[str, Any]:
    """The ``organization-full`` schema of an organisation row."""
    login = row["login"]
    api = f"{app.urls.api}/orgs/{login}"
    return {
        "login": login,
        "id": row["id"],
        "node_id": shapes.node_id("Organization", row["id"]),
        "url": api,
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events",
        "hooks_url": f"{api}/hooks",
        "issues_url": f"{api}/issues",
        "members_url": f"{api}/members{{/member}}",
        "public_members_url": f"{api}/public_members{{/member}}",
        "avatar_url": f"{app.urls.web}/avatars/{login}",
        "description": None,
        "name": login,
        "html_url": f"{app.urls.web}/{login}",
        "has_organization_projects": False,
        "has_repository_projects": False,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "type": "Organization",
        "created_at": row["created_at"],
        "updated_at": row["created_at"],
        "archived_at": None,
    }


def get_org(app: ForgeApp, req: Request) -> Response:
    return Response(200, org_json(app, _org(app, req)))


def list_teams(app: ForgeApp, req: Request) -> Response:
    org = _org(app, req)
    rows = app.store.q("SELECT * FROM teams WHERE org = ? ORDER BY slug", org["login"])
    return app.page(req, [shapes.team(r, app.urls, org["login"]) for r in rows])


def get_team(app: ForgeApp, req: Request) -> Response:
    """``GET /orgs/{org}/teams/{team_slug}``: the ``team-full`` schema."""
    org = _org(app, req)
    team = app.store.team(org["login"], req.params["slug"])
    if team is None:
        raise not_found()
    repos = app.store.one("SELECT COUNT(*) AS n FROM repos WHERE owner = ?", org["login"])
    data = {
        **shapes.team(team, app.urls, org["login"]),
        "created_at": org["created_at"],
        "updated_at": org["created_at"],
        "members_count": len(app.store.team_members(team["id"])),
        "repos_count": int(repos["n"]) if repos else 0,
        "organization": org_json(app, org),
    }
    return Response(200, data)
