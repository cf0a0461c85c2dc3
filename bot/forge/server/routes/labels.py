"""Repository labels: list, create, read one by name. Labelling a pull request is :mod:`.issues`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response, invalid

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp

MAX_NAME_CHARS = 50
MAX_DESCRIPTION_CHARS = 100
_COLOR = re.compile(r"^[0-9A-Fa-f]{6}$")


def list_labels(app: ForgeApp, req: Request) -> Response:
    repo, _git = app.repo(req)
    rows = app.store.q("SELECT * FROM labels WHERE repo_id = ? ORDER BY name", repo["id"])
    return app.page(req, [shapes.label(r, app.urls, repo["owner"], repo["name"]) for r in rows])


def get_label(app: ForgeApp, req: Request) -> Response:
    repo, _git = app.repo(req)
    row = app.store.one("SELECT * FROM labels WHERE repo_id = ? AND name = ?", repo["id"], req.params["name"])
    if row is None:
        raise ApiError(404, "Not Found")
    return Response(200, shapes.label(row, app.urls, repo["owner"], repo["name"]))


def create_label(app: ForgeApp, req: Request) -> Response:
    """``POST /repos/{owner}/{repo}/labels``: a name unique regardless of case, a 6-digit hex colour."""
    repo, _git = app.repo(req)
    body = req.body if isinstance(req.body, dict) else {}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid("Label", "name", "is required", "missing_field")
    if len(name) > MAX_NAME_CHARS:
        raise invalid("Label", "name", f"must be at most {MAX_NAME_CHARS} characters")
    color = body.get("color", "ededed")
    if not isinstance(color, str) or not _COLOR.match(color.removeprefix("#")):
        raise invalid("Label", "color", "must be 6 hexadecimal digits, e.g. f29513")
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS):
        raise invalid("Label", "description", f"must be a string of at most {MAX_DESCRIPTION_CHARS} characters")
    if app.store.one("SELECT 1 FROM labels WHERE repo_id = ? AND lower(name) = lower(?)", repo["id"], name):
        raise invalid("Label", "name", f"a label named {name!r} already exists", "already_exists")
    label_id = app.store.insert(
        "INSERT INTO labels(repo_id, name, color, description) VALUES (?,?,?,?)",
        repo["id"],
        name,
        color.removeprefix("#").lower(),
        description,
    )
    row = app.store.one("SELECT * FROM labels WHERE id = ?", label_id)
    assert row is not None
    return Response(201, shapes.label(row, app.urls, repo["owner"], repo["name"]))
