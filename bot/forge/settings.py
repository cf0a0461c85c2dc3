"""Where the forge is and who we are on it: ``--forge-url``, ``--repo``, ``--token``.

Each falls back to the environment (``GLASSBOX_FORGE_URL``, ``GLASSBOX_REPO``, ``GLASSBOX_TOKEN`` then
``GITHUB_TOKEN``); the URL defaults to GitHub's API. A missing or malformed value is a one-line
:class:`~bot.errors.UserError` naming the flag and the variable. The typer option types below are for
every command that talks to the forge.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

import typer

from bot.errors import UserError

GITHUB_API = "https://api.github.com"
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")

ForgeUrlOption = Annotated[
    str | None,
    typer.Option(
        "--forge-url",
        help=f"Forge API base URL. Default: $GLASSBOX_FORGE_URL, else {GITHUB_API}.",
        show_default=False,
    ),
]
RepoOption = Annotated[
    str | None,
    typer.Option("--repo", help="Repository as ORG/NAME. Default: $GLASSBOX_REPO.", show_default=False),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Forge token. Default: $GLASSBOX_TOKEN, else $GITHUB_TOKEN. Prefer the environment.",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class ForgeSettings:
    url: str
    repo: str
    token: str = field(repr=False)

    @property
    def owner(self) -> str:
        return self.repo.split("/", 1)[0]


def resolve_settings(
    forge_url: str | None = None,
    repo: str | None = None,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ForgeSettings:
    environ = os.environ if env is None else env
    url = (forge_url or environ.get("GLASSBOX_FORGE_URL") or GITHUB_API).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise UserError(
            f"forge URL {url!r} is not an http(s) URL: pass --forge-url https://HOST/api/v3 or set GLASSBOX_FORGE_URL"
        )
    name = repo or environ.get("GLASSBOX_REPO")
    if not name:
        raise UserError("no repository given: pass --repo ORG/NAME or set GLASSBOX_REPO")
    if not _REPO.match(name):
        raise UserError(f"repository {name!r} is not ORG/NAME: pass --repo ORG/NAME or set GLASSBOX_REPO")
    secret = token or environ.get("GLASSBOX_TOKEN") or environ.get("GITHUB_TOKEN")
    if not secret or not secret.strip():
        raise UserError("no forge token: pass --token or set GLASSBOX_TOKEN (or GITHUB_TOKEN)")
    if any(c.isspace() for c in secret.strip()):
        raise UserError("the forge token contains whitespace: check --token / GLASSBOX_TOKEN")
    return ForgeSettings(url=url, repo=name, token=secret.strip())
