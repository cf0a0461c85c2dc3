"""Check runs on the embedded forge, driven by PyGithub (as users call them) and by the port (as glassbox does)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from github import GithubException

from bot.errors import ForgeError
from bot.forge.model import (
    MAX_ANNOTATIONS_PER_REQUEST,
    AnnotationLevel,
    CheckAnnotation,
    CheckConclusion,
    CheckRunStatus,
)
from bot.records import FileChange
from tests.forge_helpers import REPO, ForgeEnv, forge_env

AGENT = "patch-agent"
FILE = "infra/network/x.yaml"


def _pr(forge: ForgeEnv, name: str = "runs") -> Any:
    return forge.client(AGENT).open_pull_request(
        base="main",
        branch=f"glassbox/{AGENT}/{name}",
        title=name,
        body="",
        changes=[FileChange(path=FILE, content="x: 1\ny: 2\n")],
    )


def _annotation(i: int, level: str = "warning") -> dict[str, Any]:
    return {"path": FILE, "start_line": 1, "end_line": 2, "annotation_level": level, "message": f"finding {i}"}


def _annotations(n: int) -> list[CheckAnnotation]:
    return [
        CheckAnnotation(path=FILE, start_line=i + 1, end_line=i + 1, level=AnnotationLevel.FAILURE, message=f"m{i}")
        for i in range(n)
    ]


def test_pygithub_creates_reads_and_lists_a_check_run_with_its_annotations(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    repo = forge.github("glassbox-ci").get_repo(REPO)
    created = repo.create_check_run(
        name="glassbox/check",
        head_sha=pr.head_sha,
        conclusion="failure",
        details_url="https://ci.example/run/1",
        external_id="verdict-1",
        output={
            "title": "FAILED, risk high",
            "summary": "two findings",
            "text": "details",
            "annotations": [_annotation(0, "failure"), {**_annotation(1), "title": "GB-NET-001", "raw_details": "d"}],
        },
    )
    assert created.status == "completed" and created.conclusion == "failure" and created.completed_at is not None

    run = forge.github("carol").get_repo(REPO).get_check_run(created.id)
    assert (run.name, run.head_sha, run.external_id) == ("glassbox/check", pr.head_sha, "verdict-1")
    assert run.details_url == "https://ci.example/run/1"
    assert (run.output.title, run.output.summary, run.output.text) == ("FAILED, risk high", "two findings", "details")
    assert run.output.annotations_count == 2
    assert run.app.slug == "glassbox-ci"  # a service identity is an app; who made the run is never hidden
    assert [p.number for p in run.pull_requests] == [pr.number]

    first, second = list(run.get_annotations())
    assert (first.path, first.start_line, first.end_line, first.annotation_level) == (FILE, 1, 2, "failure")
    assert (second.title, second.raw_details, second.message) == ("GB-NET-001", "d", "finding 1")
    assert first.blob_href.endswith(f"/blob/{pr.head_sha}/{FILE}")

    listed = list(
        forge.github("carol").get_repo(REPO).get_commit(pr.head_sha).get_check_runs(check_name="glassbox/check")
    )
    assert [r.id for r in listed] == [created.id]
    assert list(repo.get_commit(pr.head_sha).get_check_runs(check_name="other")) == []


def test_fifty_annotations_per_request_then_each_update_appends(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    repo = forge.github("glassbox-ci").get_repo(REPO)
    output = {"title": "t", "summary": "s"}
    too_many = [_annotation(i) for i in range(MAX_ANNOTATIONS_PER_REQUEST + 1)]
    with pytest.raises(GithubException) as err:
        repo.create_check_run(name="c", head_sha=pr.head_sha, output={**output, "annotations": too_many})
    assert err.value.status == 422 and err.value.data["errors"][0]["field"] == "output.annotations"

    run = repo.create_check_run(name="c", head_sha=pr.head_sha, output={**output, "annotations": too_many[:50]})
    run.edit(output={**output, "annotations": too_many[:50]})
    run.edit(output={"summary": "s2", "annotations": too_many[:20]}, conclusion="neutral")
    again = repo.get_check_run(run.id)
    assert again.output.annotations_count == 120 and len(list(again.get_annotations())) == 120
    assert (again.output.title, again.output.summary, again.conclusion) == ("t", "s2", "neutral")


def test_only_the_creator_updates_a_run_and_a_persons_run_has_no_app(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    mine = forge.github("carol").get_repo(REPO).create_check_run(name="lint", head_sha=pr.head_sha)
    assert mine.app is None and mine.status == "queued" and mine.conclusion is None
    theirs = forge.github("glassbox-bot").get_repo(REPO).get_check_run(mine.id)
    with pytest.raises(GithubException) as err:
        theirs.edit(conclusion="success")
    assert err.value.status == 403
    assert forge.github("carol").get_repo(REPO).get_check_run(mine.id).conclusion is None


def test_agents_cannot_create_check_runs(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    with pytest.raises(GithubException) as err:
        forge.github(AGENT).get_repo(REPO).create_check_run(name="glassbox/check", head_sha=pr.head_sha)
    assert err.value.status == 403 and "cannot create check runs" in err.value.data["message"]


def _with(key: str, value: Any) -> dict[str, Any]:
    return {"output": {"title": "t", "summary": "s", "annotations": [{**_annotation(0), key: value}]}}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ForgeEnv, str]]:
    for forge in forge_env(tmp_path_factory.mktemp("check-runs")):
        yield forge, _pr(forge).head_sha


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"),
        ({"head_sha": "0" * 40}, "head_sha"),
        ({"conclusion": "stale"}, "conclusion"),
        ({"status": "completed"}, "conclusion"),
        ({"status": "waiting"}, "status"),
        ({"completed_at": "2026-01-31T12:00:00Z"}, "conclusion"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"output": {"summary": "s"}}, "output.title"),
        ({"output": {"title": "t", "summary": "s" * 65536}}, "output.summary"),
        ({"output": {"title": "t", "summary": "s", "images": [{"alt": "a", "image_url": "u"}]}}, "output.images"),
        ({"actions": [{"label": "fix", "identifier": "f", "description": "d"}]}, "actions"),
        (_with("message", None), "output.annotations[0].message"),
        (_with("end_line", 0), "output.annotations[0].end_line"),
        (_with("start_line", 3), "output.annotations[0].end_line"),
        (_with("annotation_level", "error"), "output.annotations[0].annotation_level"),
        (_with("title", "x" * 256), "output.annotations[0].title"),
        (_with("start_column", 2), "output.annotations[0].start_column"),
        (_with("message", "m" * (64 * 1024 + 1)), "output.annotations[0].message"),
    ],
)
def test_a_bad_field_is_a_422_naming_it(shared: tuple[ForgeEnv, str], change: dict[str, Any], field: str) -> None:
    forge, head = shared
    status, data = forge.request(
        "glassbox-ci", "POST", f"/repos/{REPO}/check-runs", {"name": "c", "head_sha": head, **change}
    )
    assert status == 422, data
    assert data["errors"][0]["field"] == field and data["errors"][0]["message"].startswith(field + ": "), data


def test_a_conclusion_completes_a_run_and_a_new_status_reopens_it(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    repo = forge.github("glassbox-ci").get_repo(REPO)
    run = repo.create_check_run(name="c", head_sha=pr.head_sha, status="in_progress")
    assert run.status == "in_progress" and run.started_at is not None
    run.edit(conclusion="success")
    assert run.status == "completed" and run.completed_at is not None
    run.edit(status="queued")
    assert run.status == "queued" and run.conclusion is None and run.completed_at is None


def test_commit_lists_the_latest_run_per_name_unless_asked_for_all(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    repo = forge.github("glassbox-ci").get_repo(REPO)
    old = repo.create_check_run(name="glassbox/check", head_sha=pr.head_sha, conclusion="failure")
    new = repo.create_check_run(name="glassbox/check", head_sha=pr.head_sha, conclusion="success")
    other = repo.create_check_run(name="other", head_sha=pr.head_sha, status="in_progress")
    commit = repo.get_commit(pr.head_sha)
    assert {r.id for r in commit.get_check_runs()} == {new.id, other.id}
    assert {r.id for r in commit.get_check_runs(filter="all")} == {old.id, new.id, other.id}
    assert [r.id for r in commit.get_check_runs(status="in_progress")] == [other.id]
    by_branch = forge.client("carol").list_check_runs(f"glassbox/{AGENT}/runs", name="glassbox/check")
    assert [(r.id, r.conclusion) for r in by_branch] == [(new.id, CheckConclusion.SUCCESS)]


def test_the_port_sends_annotations_in_batches_of_fifty(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    ci = forge.client("glassbox-ci")
    before = ci.calls
    run = ci.create_check_run(
        pr.head_sha,
        name="glassbox/check",
        conclusion=CheckConclusion.FAILURE,
        title="FAILED",
        summary="s",
        annotations=_annotations(120),
        external_id="v1",
    )
    assert ci.calls - before == 3  # one creation with 50, two updates with 50 and 20
    assert (run.status, run.conclusion, run.annotations_count, run.app) == (
        CheckRunStatus.COMPLETED,
        CheckConclusion.FAILURE,
        120,
        "glassbox-ci",
    )
    lines = [a.start_line for a in forge.github("carol").get_repo(REPO).get_check_run(run.id).get_annotations()]
    assert lines == list(range(1, 121))


def test_a_lost_answer_neither_duplicates_the_run_nor_its_annotations(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    forge.faults(
        {"method": "POST", "path": "/check-runs$", "nth": 1, "kind": "drop", "when": "after"},
        {"method": "PATCH", "path": "/check-runs/", "nth": 1, "kind": "502", "when": "after"},
    )
    ci = forge.client("glassbox-ci")
    run = ci.create_check_run(
        pr.head_sha,
        name="glassbox/check",
        conclusion=CheckConclusion.SUCCESS,
        title="PASSED",
        summary="s",
        annotations=_annotations(70),
        external_id="v2",
    )
    assert ci.retries == 2
    every = list(forge.github("carol").get_repo(REPO).get_commit(pr.head_sha).get_check_runs(filter="all"))
    assert [r.id for r in every] == [run.id]
    assert run.annotations_count == 70


def test_a_forge_that_cannot_make_check_runs_is_an_error_without_retries(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    with pytest.raises(ForgeError) as err:
        forge.client(AGENT).create_check_run(
            pr.head_sha, name="glassbox/check", conclusion=CheckConclusion.SUCCESS, title="t", summary="s"
        )
    assert err.value.status == 403 and not err.value.retryable
