"""Forge settings: flags, then environment, then GitHub's API; one clear line when something is missing."""

from __future__ import annotations

import pytest

from bot.errors import UserError
from bot.forge.settings import GITHUB_API, resolve_settings


def test_flags_win_over_environment() -> None:
    env = {"GLASSBOX_FORGE_URL": "http://127.0.0.1:1/api/v3", "GLASSBOX_REPO": "a/b", "GLASSBOX_TOKEN": "t1"}
    s = resolve_settings("http://127.0.0.1:2/api/v3/", "c/d", "t2", env=env)
    assert (s.url, s.repo, s.token, s.owner) == ("http://127.0.0.1:2/api/v3", "c/d", "t2", "c")
    assert "t2" not in repr(s)


def test_environment_fallbacks() -> None:
    s = resolve_settings(env={"GLASSBOX_REPO": "a/b", "GITHUB_TOKEN": "gh"})
    assert (s.url, s.token) == (GITHUB_API, "gh")
    s = resolve_settings(env={"GLASSBOX_REPO": "a/b", "GITHUB_TOKEN": "gh", "GLASSBOX_TOKEN": "gb"})
    assert s.token == "gb"


@pytest.mark.parametrize(
    ("kwargs", "env", "needle"),
    [
        ({}, {"GLASSBOX_TOKEN": "t"}, "--repo ORG/NAME or set GLASSBOX_REPO"),
        ({"repo": "nope"}, {"GLASSBOX_TOKEN": "t"}, "is not ORG/NAME"),
        ({"repo": "a/b"}, {}, "--token or set GLASSBOX_TOKEN (or GITHUB_TOKEN)"),
        ({"repo": "a/b", "forge_url": "ftp://x"}, {"GLASSBOX_TOKEN": "t"}, "--forge-url"),
        ({"repo": "a/b", "token": "a b"}, {}, "whitespace"),
    ],
)
def test_missing_or_wrong_is_one_line(kwargs: dict[str, str], env: dict[str, str], needle: str) -> None:
    with pytest.raises(UserError) as err:
        resolve_settings(env=env, **kwargs)
    assert needle in err.value.message and "\n" not in err.value.message
