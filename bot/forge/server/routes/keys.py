"""SSH signing keys of accounts: what the forge verifies commit signatures against (:mod:`..signing`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bot.forge.server.api import ApiError, Request, Response, invalid
from bot.forge.server.signing import normalised_key

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp

# GitHub's accepted key types (its request schema's pattern)
_KEY_TYPE = re.compile(
    r"^(ssh-(rsa|dss|ed25519) |ecdsa-sha2-nistp(256|384|521) |(sk-ssh-ed25519|sk-ecdsa-sha2-nistp256)@openssh\.com )"
)
MAX_TITLE_CHARS = 100


def _key_json(row: Any) -> dict[str, Any]:
    return {"key": row["key"], "id": row["id"], "title": row["title"], "created_at": row["created_at"]}


def list_mine(app: ForgeApp, req: Request) -> Response:
    assert req.user is not None
    return app.page(req, [_key_json(r) for r in app.store.signing_keys(req.user.id)])


def list_for_user(app: ForgeApp, req: Request) -> Response:
    user = app.store.user_by_login(req.params["login"])
    if user is None:
        raise ApiError(404, "Not Found")
    return app.page(req, [_key_json(r) for r in app.store.signing_keys(user.id)])


def add_mine(app: ForgeApp, req: Request) -> Response:
    """``POST /user/ssh_signing_keys``: a key of a type GitHub takes, not already registered to anyone."""
    assert req.user is not None
    body = req.body if isinstance(req.body, dict) else {}
    line = body.get("key")
    if not isinstance(line, str) or not _KEY_TYPE.match(line):
        raise invalid("Key", "key", "must be an OpenSSH public key, e.g. ssh-ed25519 AAAA...", "custom")
    title = body.get("title", "")
    if not isinstance(title, str) or len(title) > MAX_TITLE_CHARS:
        raise invalid("Key", "title", f"must be a string of at most {MAX_TITLE_CHARS} characters")
    key = normalised_key(line)
    if key is None:
        raise invalid("Key", "key", "is not a public key ssh-keygen can read", "custom")
    if app.store.one("SELECT 1 FROM signing_keys WHERE key = ?", key):
        raise invalid("Key", "key", "is already in use", "already_exists")
    row_id = app.store.add_signing_key(req.user.id, title or key.split()[0], key)
    app.verifications.clear()  # a commit this key signed may verify now
    row = app.store.one("SELECT * FROM signing_keys WHERE id = ?", row_id)
    return Response(201, _key_json(row))
