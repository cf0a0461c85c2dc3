"""`glassbox ci`: bad input stops a job before it writes anything; the runner's files and token endpoint.

None of these jobs gets as far as a forge: each is refused on what the runner handed it (exit 2, one line naming
the problem, no output, no summary, no ledger).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.commands import _github_actions as gha
from bot.commands.ci import role_arn, web_identity
from bot.errors import ForgeError, UserError
from tests.runner_helpers import FakeTokenService, Job, Result, runner_outputs, token_service, webhook

REPO = "octo-org/infra"
HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
PR_REF = "refs/pull/7/merge"
MERGE = "e5bd3914e2e596debea16f433f57875b5b90bcd6"


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Job:
    ledger = tmp_path / "ledger.jsonl"
    return Job(
        root=tmp_path / "runner",
        monkeypatch=monkeypatch,
        capsys=capsys,
        repository=REPO,
        api_url="http://127.0.0.1:9/api/v3",  # nothing listens: a job that reached the forge would fail differently
        env={"GLASSBOX_TOKEN": "t0k3n", "GLASSBOX_KEYS": str(tmp_path / "keys"), "GLASSBOX_LEDGER": str(ledger)},
    )


@pytest.fixture
def oidc() -> Iterator[FakeTokenService]:
    yield from token_service(REPO)


def refused(result: Result, *needles: str) -> None:
    assert result.code == 2, (result.code, result.out, result.err)
    assert result.err.startswith("glassbox: ") and len(result.err.strip().splitlines()) == 1, result.err
    for needle in needles:
        assert needle in result.err, result.err
    assert result.outputs == {} and result.summary == "", "a refused job writes no output and no summary"


def test_missing_runner_variables_are_named_together(job: Job) -> None:
    result = job.run(
        "pull_request",
        webhook("pull_request.opened", repository__full_name=REPO),
        *("ci", "pull-request"),
        sha="f" * 40,
        ref=PR_REF,
        unset=("GITHUB_RUN_ID", "GITHUB_API_URL"),
    )
    refused(result, "GITHUB_RUN_ID", "GITHUB_API_URL", "are not set")


def test_a_malformed_runner_variable_is_refused(job: Job) -> None:
    result = job.run(
        "pull_request", webhook("pull_request.opened"), "ci", "pull-request", sha="not-a-sha\n::warning::x", ref=PR_REF
    )
    refused(result, "GITHUB_SHA", "is not a 40-hex commit SHA")
    assert "\n::warning" not in result.err


def test_an_event_another_subcommand_handles_names_it(job: Job) -> None:
    result = job.run("push", webhook("push"), "ci", "pull-request", sha=MERGE, ref="refs/heads/main")
    refused(result, "GITHUB_EVENT_NAME is 'push'", "glassbox ci push")


def test_an_unknown_event_is_refused(job: Job) -> None:
    result = job.run("issue_comment", {"action": "created"}, "ci", "review", sha=MERGE, ref="refs/heads/main")
    refused(result, "'issue_comment'", "pull_request, pull_request_review")


@pytest.mark.parametrize(("command", "action"), [("pull-request", "closed"), ("review", "labeled")])
def test_an_action_the_job_does_not_handle_is_refused(job: Job, command: str, action: str) -> None:
    payload = webhook("pull_request.opened", action=action, repository__full_name=REPO)
    result = job.run("pull_request", payload, "ci", command, sha="f" * 40, ref=PR_REF)
    refused(result, f"action {action!r} is not handled", "types:")


def test_a_payload_that_is_not_the_event_is_refused(job: Job) -> None:
    result = job.run("pull_request", webhook("push"), "ci", "pull-request", sha="f" * 40, ref=PR_REF)
    refused(result, "does not match a pull_request event", "pull_request: Field required")


def test_a_payload_field_of_the_wrong_shape_is_named_without_its_value(job: Job) -> None:
    payload = webhook("pull_request.opened", repository__full_name=REPO, pull_request__head__sha="$(id)\n::x::")
    result = job.run("pull_request", payload, "ci", "pull-request", sha="f" * 40, ref=PR_REF)
    refused(result, "pull_request.head.sha")
    assert "$(id)" not in result.err


def test_a_payload_for_another_pr_than_the_runner_ref_is_refused(job: Job) -> None:
    payload = webhook("pull_request.opened", repository__full_name=REPO)
    result = job.run("pull_request", payload, "ci", "pull-request", sha="f" * 40, ref="refs/pull/8/merge")
    refused(result, "refs/pull/7/merge", "not this job's event")


def test_the_number_and_the_pull_request_must_agree(job: Job) -> None:
    payload = webhook("pull_request.opened", repository__full_name=REPO, number=8)
    result = job.run("pull_request", payload, "ci", "pull-request", sha="f" * 40, ref=PR_REF)
    refused(result, "PR #8 and pull_request #7")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b'{"action": "opened", "action": "closed"}', "appears twice"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"n": NaN}', "NaN is not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (b"{", "not strict JSON"),
    ],
)
def test_a_payload_that_is_not_strict_json_is_refused(job: Job, raw: bytes, needle: str) -> None:
    refused(job.run("pull_request", raw, "ci", "pull-request", sha="f" * 40, ref=PR_REF), needle)


def test_an_oversized_payload_is_not_read(job: Job, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gha, "MAX_EVENT_BYTES", 1024)
    payload = webhook("pull_request.opened", repository__full_name=REPO)
    payload["pull_request"]["body"] = "x" * 2048
    refused(job.run("pull_request", payload, "ci", "pull-request", sha="f" * 40, ref=PR_REF), "at most 1024")


def test_an_event_path_that_is_not_a_regular_file_is_refused(job: Job, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = job.run(
        "pull_request", b"{}", "ci", "pull-request", sha="f" * 40, ref=PR_REF, env={"GITHUB_EVENT_PATH": str(fifo)}
    )
    refused(result, "not a regular file")


@pytest.mark.parametrize(
    ("fields", "sha", "needle"),
    [
        ({"ref": "refs/heads/feature"}, MERGE, "deploys only refs/heads/main"),
        ({"deleted": True}, MERGE, "deleted main"),
        ({}, "a" * 40, "but GITHUB_SHA is aaaaaaaaaaaa"),
    ],
)
def test_a_push_that_is_not_a_deploy_is_refused(
    job: Job, oidc: FakeTokenService, fields: dict[str, object], sha: str, needle: str
) -> None:
    payload = webhook("push", repository__full_name=REPO, **fields)
    ref = str(payload["ref"])
    result = job.run("push", payload, "ci", "push", sha=sha, ref=ref, env=oidc.variables())
    refused(result, needle)
    assert oidc.requests == [], "refused before the job's token was asked for"


def test_push_without_the_oidc_variables_says_which_permission_is_missing(job: Job) -> None:
    result = job.run(
        "push", webhook("push", repository__full_name=REPO), "ci", "push", sha=MERGE, ref="refs/heads/main"
    )
    refused(result, "ACTIONS_ID_TOKEN_REQUEST_URL", "id-token: write")


def test_the_simulated_applier_is_refused_in_github_actions(job: Job, oidc: FakeTokenService) -> None:
    result = job.run(
        "push",
        webhook("push", repository__full_name=REPO),
        *("ci", "push"),
        sha=MERGE,
        ref="refs/heads/main",
        env={**oidc.variables(), "GITHUB_ACTIONS": "true", "GLASSBOX_APPLIER": "local"},
    )
    refused(result, "simulated local applier is refused in GitHub Actions")
    assert oidc.requests == []


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        (None, "set GLASSBOX_DEPLOY_ROLE_ARN"),
        ("arn:aws:iam::123456789012:role/glassbox-deploy", "naming both parts"),
        ("arn:aws:iam::1234:role/{project}-{stack}", "not an IAM role ARN"),
    ],
)
def test_a_real_deploy_needs_one_cloud_role_per_stack(
    job: Job, oidc: FakeTokenService, template: str | None, needle: str
) -> None:
    env = {**oidc.variables(), "GITHUB_ACTIONS": "true"}
    if template is not None:
        env["GLASSBOX_DEPLOY_ROLE_ARN"] = template
    result = job.run(
        "push", webhook("push", repository__full_name=REPO), "ci", "push", sha=MERGE, ref="refs/heads/main", env=env
    )
    refused(result, needle)


def test_schedule_without_a_ledger_or_a_store_is_bad_input(job: Job, tmp_path: Path) -> None:
    result = job.run("schedule", webhook("schedule"), "ci", "schedule", sha=MERGE, ref="refs/heads/main")
    refused(result, "ledger not found")
    (tmp_path / "ledger.jsonl").write_text("")
    result = job.run(
        "workflow_dispatch",
        webhook("workflow_dispatch", repository__full_name=REPO),
        *("ci", "schedule", "--attestations", str(tmp_path / "none")),
        sha=MERGE,
        ref="refs/heads/main",
    )
    refused(result, "no attestation store")


# --------------------------------------------------------------------------------------------------
# the runner's files


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "",
        "two\nlines",
        "x\nresult=PASSED\n",
        "a<<EOF\nb\nEOF",
        "ghadelimiter_0000\n",
        "\r\n::set-output name=result::PASSED",
    ],
)
def test_every_output_value_comes_back_as_exactly_that_value(value: str) -> None:
    block = gha.output_block({"title": value, "result": "FAILED"})
    assert runner_outputs(block) == {"title": value, "result": "FAILED"}


def test_an_output_name_is_never_data() -> None:
    with pytest.raises(ValueError, match="not a plain identifier"):
        gha.output_block({"x<<EOF": "y"})


def test_the_summary_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gha, "MAX_SUMMARY_BYTES", 1000)
    path = tmp_path / "summary.md"
    gha.append_summary(path, "é" * 5000)
    text = path.read_text(encoding="utf-8")
    assert len(text.encode()) <= 1000 and "summary cut" in text


# --------------------------------------------------------------------------------------------------
# the runner's token endpoint (a stand-in on 127.0.0.1)


def test_the_job_token_is_asked_for_its_audience_with_the_request_token(oidc: FakeTokenService) -> None:
    token = gha.request_id_token(oidc.url, oidc.request_token, audience="sts.amazonaws.com", repository=REPO)
    assert token.claims["aud"] == "sts.amazonaws.com" and token.subject == f"repo:{REPO}:environment:production"
    (asked,) = oidc.requests
    assert asked["auth"] == f"Bearer {oidc.request_token}" and asked["query"]["api-version"] == ["2.0"]
    assert oidc.request_token not in repr(token) and token.value not in repr(token)


def test_a_refused_request_token_is_an_error_that_does_not_repeat_it(oidc: FakeTokenService) -> None:
    with pytest.raises(ForgeError, match="HTTP 401") as caught:
        gha.request_id_token(oidc.url, "stolen-or-stale", audience="sts.amazonaws.com", repository=REPO)
    assert "stolen-or-stale" not in str(caught.value)


def test_a_token_for_another_repository_is_refused() -> None:
    other = FakeTokenService({"sub": "repo:evil/infra:ref:refs/heads/main", "repository": "evil/infra"})
    with other, pytest.raises(ForgeError, match="names repository 'evil/infra'"):
        gha.request_id_token(other.url, other.request_token, audience="sts.amazonaws.com", repository=REPO)


def test_the_request_token_never_travels_in_clear_beyond_loopback() -> None:
    with pytest.raises(UserError, match="not an https URL"):
        gha.request_id_token("http://203.0.113.7/idtoken", "t", audience="sts.amazonaws.com", repository=REPO)


def test_each_stack_gets_its_own_role_and_a_fresh_token_in_a_private_file(
    oidc: FakeTokenService, tmp_path: Path
) -> None:
    runner = gha.Runner.from_environ(
        {
            **dict.fromkeys(gha.RUNNER_VARIABLES, "x"),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_SHA": MERGE,
            "GITHUB_RUN_ID": "4242",
            **oidc.variables(),
        },
        oidc=True,
    )
    env = web_identity(runner, "arn:aws:iam::123456789012:role/glassbox-deploy-{project}-{stack}", tmp_path / "oidc")
    data, network = env("data/prod"), env("network/dev")
    assert data["AWS_ROLE_ARN"] == "arn:aws:iam::123456789012:role/glassbox-deploy-data-prod"
    assert network["AWS_ROLE_ARN"] == "arn:aws:iam::123456789012:role/glassbox-deploy-network-dev"
    assert data["AWS_ROLE_SESSION_NAME"] == "glassbox-4242"
    assert len(oidc.requests) == 2
    for found in (data, network):
        path = Path(found["AWS_WEB_IDENTITY_TOKEN_FILE"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().count(".") == 2
    assert stat.S_IMODE((tmp_path / "oidc").stat().st_mode) == 0o700


def test_a_role_template_cannot_name_anything_but_a_role() -> None:
    with pytest.raises(UserError, match="not an IAM role ARN"):
        role_arn("arn:aws:iam::123456789012:role/{project}-{stack} --profile admin", "data/prod")
