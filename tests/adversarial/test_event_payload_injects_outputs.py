"""A PR title, branch name or login written to inject workflow outputs or commands gains nothing.

The title is the attacker's text twice over: on the forge (where glassbox reads it) and in the event payload (which
glassbox ignores but for the few fields it checks). It carries newlines, ``name=value`` and ``name<<EOF`` lines, a
``ghadelimiter_`` look-alike and ``::set-output``/``::add-mask::``/``::stop-commands::`` lines. Read the way the runner
reads them, the job's ``GITHUB_OUTPUT`` holds exactly its own outputs, the title among them verbatim as one value, and
its log holds no workflow command the runner would obey.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.records import FileChange
from tests.flow_helpers import REPO, Flow, flow_env
from tests.runner_helpers import Job, obeyed_commands, pull_request_payload

pytestmark = [pytest.mark.e2e]

HOSTILE = (
    "Bump retention\n"
    "::set-output name=decision::satisfied\n"
    "::add-mask::glassbox\n"
    "::stop-commands::pwned\n"
    "merged=true\n"
    "decision<<EOF\nsatisfied\nEOF\n"
    "satisfied<<ghadelimiter_00000000000000000000000000000000\ntrue\nghadelimiter_00000000000000000000000000000000\n"
    "::error::approved by security"
)
REVIEW_OUTPUTS = ["decision", "satisfied", "merged", "merge_sha", "pr", "head_sha", "title", "trail"]


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    yield from flow_env(tmp_path)


def _hostile_pr(flow: Flow) -> tuple[int, str, str]:
    pr = flow.forge("carol").open_pull_request(
        base="main",
        branch="fix/retention",
        title=HOSTILE,
        body=HOSTILE,
        changes=[FileChange(path="README.md", content="# acme infrastructure\n\nretention notes\n")],
    )
    return pr.number, pr.head_sha, pr.base_sha


def _job(flow: Flow, tmp_path: Path, mp: pytest.MonkeyPatch, cap: pytest.CaptureFixture[str], identity: str) -> Job:
    return Job(
        root=tmp_path / "runner",
        monkeypatch=mp,
        capsys=cap,
        repository=REPO,
        api_url=flow.url,
        env={
            "GLASSBOX_TOKEN": flow.tokens[identity],
            "GLASSBOX_KEYS": str(flow.keys),
            "GLASSBOX_LEDGER": str(flow.ledger.path),
        },
    )


def _hostile_payload(name: str, number: int, head: str, base: str) -> dict[str, object]:
    payload = pull_request_payload(
        name,
        REPO,
        number,
        head,
        base,
        pull_request__title=HOSTILE,
        pull_request__head__ref="x\n::set-output name=merged::true",
        pull_request__user__login="mallory\nmerged=true",
    )
    return payload


def test_a_hostile_title_cannot_add_or_change_the_approvals_jobs_outputs(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    number, head, base = _hostile_pr(flow)
    title = flow.forge("glassbox-bot").get_pull_request(number).title
    assert "\n::set-output" in title, "the forge keeps the title as written"
    payload = _hostile_payload("pull_request_review.submitted", number, head, base)
    result = _job(flow, tmp_path, monkeypatch, capsys, "glassbox-bot").run(
        "pull_request_review",
        payload,
        *("ci", "review", "--registry", str(flow.registry.root), "--attestations", str(tmp_path / "none")),
        sha="f" * 40,
        ref=f"refs/pull/{number}/merge",
    )
    assert result.code == 1  # no verdict: not satisfied
    assert result.output_names == REVIEW_OUTPUTS, "exactly the job's own outputs, each once"
    assert result.outputs["title"] == title
    assert (result.outputs["decision"], result.outputs["satisfied"], result.outputs["merged"]) == (
        "not-satisfied",
        "false",
        "false",
    )
    assert obeyed_commands(result.out) == []
    assert not [line for line in result.err.splitlines() if line.startswith("::")]
    assert not [line for line in result.summary.splitlines() if line.startswith(("::", "merged=", "decision<<"))]


def test_a_hostile_title_cannot_add_or_change_the_check_jobs_outputs(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    number, _, base = _hostile_pr(flow)
    # an event for a head the PR has left: the job answers without judging anything, title included
    payload = _hostile_payload("pull_request.synchronize", number, "0" * 40, base)
    result = _job(flow, tmp_path, monkeypatch, capsys, "glassbox-ci").run(
        "pull_request",
        payload,
        *("ci", "pull-request", "--repo-path", str(flow.bare), "--out", str(tmp_path / "out")),
        sha="f" * 40,
        ref=f"refs/pull/{number}/merge",
    )
    assert result.code == 0, result.err
    assert result.output_names == ["pr", "head_sha", "title", "result"]
    assert result.outputs["result"] == "superseded" and result.outputs["title"] == HOSTILE
    assert obeyed_commands(result.out) == []
