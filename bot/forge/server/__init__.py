"""The embedded forge: GitHub's REST v3 subset that glassbox uses, over bare git repos and SQLite.

``init_forge`` builds a forge from a working tree and a registry; ``start_forge`` serves one from a
background thread (tests); ``serve`` serves one in the foreground (``glassbox forge serve``). Everything
binds 127.0.0.1 only.
"""

from __future__ import annotations

from bot.forge.server.app import ForgeApp, repo_path
from bot.forge.server.http import HOST, serve, start_forge
from bot.forge.server.setup import ADMIN, InitResult, init_forge, load_tokens

__all__ = ["ADMIN", "HOST", "ForgeApp", "InitResult", "init_forge", "load_tokens", "repo_path", "serve", "start_forge"]
