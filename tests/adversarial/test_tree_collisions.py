"""A request (or a raw forge call) that makes one path both a file and a directory, or writes two names one case
apart, would leave a tree other than the one judged: git keeps one entry and drops the other. It is bad input at
propose (exit 2, with its ledger event) and a 422 at the forge; no entry is ever dropped in silence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest

from bot.errors import EXIT_BAD_INPUT, ValidationFailed
from bot.propose import _tree_conflicts, propose
from bot.records import Outcome
from tests.adversarial._support import admin, context
from tests.flow_helpers import REPO, Flow, flow_env, request

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    yield from flow_env(tmp_path_factory.mktemp("trees"))


def _bad_input(flow: Flow, tmp_path: Path, changes: list[dict[str, Any]]) -> list[str]:
    req = request(agent_id="network-agent", changes=changes)
    ctx = context(flow, "network-agent", tmp_path)
    with pytest.raises(ValidationFailed) as info:
        propose(req, ctx)
    assert info.value.exit_code == EXIT_BAD_INPUT
    (event,) = ctx.ledger.find(correlation_id=req.correlation_id)
    assert event.action == "propose" and event.outcome is Outcome.DENY and event.details["stage"] == "tree"
    assert event.details["reasons"] == info.value.problems
    assert flow.forge("glassbox-bot").find_open_pull_request(f"glassbox/network-agent/{req.correlation_id}") is None
    return info.value.problems


def test_agent_writes_a_path_as_both_file_and_directory(flow: Flow, tmp_path: Path) -> None:
    problems = _bad_input(
        flow,
        tmp_path,
        [
            {"path": "infra/network/extra", "content": "a\n"},
            {"path": "infra/network/extra/x", "content": "b\n"},
        ],
    )
    assert problems == [
        "path 'infra/network/extra' is written as a file and is also the directory of 'infra/network/extra/x'"
    ]


def test_agent_writes_two_names_that_differ_only_in_case(flow: Flow, tmp_path: Path) -> None:
    problems = _bad_input(
        flow,
        tmp_path,
        [
            {"path": "infra/network/Notes.yaml", "content": "a\n"},
            {"path": "infra/network/notes.yaml", "content": "b\n"},
        ],
    )
    assert any("differ only in case" in p and "'infra/network/Notes.yaml'" in p for p in problems), problems


def test_agent_shadows_a_base_file_with_a_case_variant(flow: Flow, tmp_path: Path) -> None:
    # on a case-insensitive checkout __Main__.py and __main__.py are one file: which one Pulumi runs is luck
    problems = _bad_input(flow, tmp_path, [{"path": "infra/network/__Main__.py", "content": "print('x')\n"}])
    assert any("differ only in case" in p for p in problems), problems


def test_agent_writes_under_a_path_that_is_a_file_in_the_base(flow: Flow, tmp_path: Path) -> None:
    problems = _bad_input(flow, tmp_path, [{"path": "infra/network/Pulumi.dev.yaml/x", "content": "a\n"}])
    under = "'infra/network/Pulumi.dev.yaml'"
    assert problems == [f"path 'infra/network/Pulumi.dev.yaml/x' lies under {under}, which is a file in the base tree"]


def test_replacing_a_file_by_a_directory_in_one_request_is_not_a_collision(flow: Flow, tmp_path: Path) -> None:
    # deleting the file and writing beneath its name is a coherent tree: only the scope rules decide it
    req = request(
        agent_id="network-agent",
        changes=[
            {"path": "infra/network/Pulumi.dev.yaml", "delete": True},
            {"path": "infra/network/Pulumi.dev.yaml.d/x.yaml", "content": "a: 1\n"},
        ],
    )
    assert _tree_conflicts(req, context(flow, "network-agent", tmp_path)) == []


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([("extra", "a"), ("extra/x", "b")], id="file-and-directory"),
        pytest.param([("Extra.yaml", "a"), ("extra.yaml", "b")], id="case-fold"),
        pytest.param([("README.md/x", "a")], id="under-a-base-file"),
        pytest.param([("infra", "a")], id="file-over-a-base-directory"),
    ],
)
def test_the_forge_refuses_a_colliding_tree_and_drops_nothing(flow: Flow, entries: list[tuple[str, str]]) -> None:
    # the agent's own token, straight at the Git Data API: no propose in the way
    bare = git.Repo(flow.bare)
    base_tree = bare.commit("main").tree.hexsha
    status, body = admin(flow).request(
        "network-agent",
        "POST",
        f"/repos/{REPO}/git/trees",
        {
            "base_tree": base_tree,
            "tree": [{"path": p, "mode": "100644", "type": "blob", "content": c} for p, c in entries],
        },
    )
    assert status == 422, body
    assert body["message"].startswith("Invalid tree: ")
