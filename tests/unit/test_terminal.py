"""What people read in the terminal is the data itself: brackets in URNs and messages are never eaten as markup."""

from __future__ import annotations

import io

from rich.console import Console

from bot.commands._common import console, styled
from bot.trust.gitenv import commit_env

URN = "[urn:pulumi:dev::network::aws:ec2/securityGroup:SecurityGroup::app]"


def _render(*items: object) -> str:
    out = Console(file=io.StringIO(), markup=False, highlight=False, width=200)
    for item in items:
        out.print(item)
    assert isinstance(out.file, io.StringIO)
    return out.file.getvalue()


def test_a_plain_line_with_a_urn_prints_whole() -> None:
    assert not console._markup  # the shared console never reads data as markup
    assert URN in _render(f"allows port 22 to admin port 22 {URN}")


def test_styled_escapes_every_argument_but_keeps_its_own_style() -> None:
    text = styled("[red]denied[/] {} at {}", "[bold]not a style[/]", URN)
    assert text.plain == f"denied [bold]not a style[/] at {URN}"
    assert any(span.style == "red" for span in text.spans)


def test_commit_env_names_both_people_and_shuts_out_the_host_config() -> None:
    env = commit_env("frank", "frank@example.com", committer=("bot", "bot@glassbox"))
    assert (env["GIT_AUTHOR_NAME"], env["GIT_COMMITTER_EMAIL"]) == ("frank", "bot@glassbox")
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] != ""
