"""An event about another repository is refused before glassbox acts on it, whichever job receives it.

The payload's ``repository`` (and a PR's ``base.repo``) must be the repository the job runs in
(``GITHUB_REPOSITORY``): a payload swapped for one about ``evil-org/infra`` would otherwise have this repository's
keys judge, merge or deploy by another repository's numbers and commits. The refusal comes first: no forge call, no
status, no ledger event, no token asked for, no output. Names differing only in case are one repository on GitHub.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.flow_helpers import REPO, Flow, flow_env
from tests.forge_helpers import ForgeEnv
from tests.runner_helpers import FakeTokenService, Job, Result, token_service, webhook

pytestmark = [pytest.mark.e2e]

OTHER = "evil-org/infra"
HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
MERGE = "e5bd3914e2e596debea16f433f57875b5b90bcd6"
THIS = {"repository__full_name": REPO}
BASE = {"pull_request__base__repo__full_name": REPO}


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    yield from flow_env(tmp_path_factory.mktemp("other-repo"))


@pytest.fixture
def oidc() -> Iterator[FakeTokenService]:
    yield from token_service(REPO)


@pytest.fixture
def job(flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Job:
    return Job(
        root=tmp_path / "runner",
        monkeypatch=monkeypatch,
        capsys=capsys,
        repository=REPO,
        api_url=flow.url,
        env={
            "GLASSBOX_TOKEN": flow.tokens["glassbox-bot"],
            "GLASSBOX_KEYS": str(flow.keys),
            "GLASSBOX_LEDGER": str(tmp_path / "ledger.jsonl"),
            "GLASSBOX_APPLIER": "local",
        },
    )


def _forge_calls(flow: Flow) -> int:
    """API requests the forge has served (its admin endpoints, which this reads through, are not counted)."""
    admin = ForgeEnv(data=flow.data, url=flow.url, tokens=flow.tokens, stop=lambda: None, log=None)  # type: ignore[arg-type]
    return admin.stats().get("requests", 0)


def _refused_untouched(result: Result, flow: Flow, calls_before: int, tmp_path: Path) -> None:
    assert result.code == 2, (result.out, result.err)
    assert OTHER in result.err and REPO in result.err and "another repository" in result.err
    assert result.outputs == {} and result.summary == ""
    assert not (tmp_path / "ledger.jsonl").exists()
    assert _forge_calls(flow) == calls_before


@pytest.mark.parametrize(
    ("event", "fixture", "command", "fields"),
    [
        ("pull_request", "pull_request.opened", "pull-request", {"repository__full_name": OTHER, **BASE}),
        ("pull_request", "pull_request.opened", "review", {**THIS, "pull_request__base__repo__full_name": OTHER}),
        ("pull_request_review", "pull_request_review.submitted", "review", {"repository__full_name": OTHER, **BASE}),
        ("workflow_dispatch", "workflow_dispatch", "schedule", {"repository__full_name": OTHER}),
    ],
)
def test_a_pull_request_or_audit_event_for_another_repository_is_refused(
    flow: Flow, job: Job, tmp_path: Path, event: str, fixture: str, command: str, fields: dict[str, str]
) -> None:
    payload = webhook(fixture, **fields)
    before = _forge_calls(flow)
    result = job.run(event, payload, "ci", command, sha="f" * 40, ref="refs/pull/7/merge")
    _refused_untouched(result, flow, before, tmp_path)


def test_a_push_to_another_repository_is_not_deployed(
    flow: Flow, job: Job, oidc: FakeTokenService, tmp_path: Path
) -> None:
    before = _forge_calls(flow)
    result = job.run(
        "push",
        webhook("push", repository__full_name=OTHER),
        *("ci", "push", "--repo-path", str(flow.bare)),
        sha=MERGE,
        ref="refs/heads/main",
        env=oidc.variables(),
    )
    _refused_untouched(result, flow, before, tmp_path)
    assert oidc.requests == []


def test_a_job_token_for_another_repository_stops_the_deploy_before_anything_is_verified(
    flow: Flow, job: Job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(job.env, "GLASSBOX_TOKEN", flow.tokens["glassbox-deployer"])
    claims = {"sub": f"repo:{OTHER}:environment:production", "repository": OTHER}
    with FakeTokenService(claims) as foreign:
        result = job.run(
            "push",
            webhook("push", repository__full_name=REPO),
            *("ci", "push", "--repo-path", str(flow.bare), "--state", str(tmp_path / "state")),
            sha=MERGE,
            ref="refs/heads/main",
            env=foreign.variables(),
        )
    assert result.code == 3 and f"names repository '{OTHER}'" in result.err
    assert result.outputs == {} and not (tmp_path / "ledger.jsonl").exists()


def test_a_name_that_differs_only_in_case_is_this_repository(job: Job, tmp_path: Path) -> None:
    payload = webhook("workflow_dispatch", repository__full_name=REPO.upper())
    result = job.run("workflow_dispatch", payload, "ci", "schedule", sha=MERGE, ref="refs/heads/main")
    assert result.code == 2 and "ledger not found" in result.err  # past the repository check, to the next one
