"""The environment every git command glassbox runs to make a commit: who, and nothing from the host.

A commit's author and committer are facts of the audit trail, so they are always given explicitly; the host's
git configuration (``~/.gitconfig``, ``/etc/gitconfig``: identities, hooks, signing defaults) never takes part.
"""

from __future__ import annotations

import os
from datetime import datetime


def isolated_git_env() -> dict[str, str]:
    """Variables that keep the host's global and system git configuration out of a command."""
    return {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def commit_env(
    name: str, email: str, *, committer: tuple[str, str] | None = None, when: datetime | None = None
) -> dict[str, str]:
    """The environment for one commit by ``name <email>`` (committed by ``committer`` when given)."""
    c_name, c_email = committer or (name, email)
    env = {
        **isolated_git_env(),
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": c_name,
        "GIT_COMMITTER_EMAIL": c_email,
    }
    if when is not None:
        stamp = f"{int(when.timestamp())} +0000"
        env["GIT_AUTHOR_DATE"] = stamp
        env["GIT_COMMITTER_DATE"] = stamp
    return env
