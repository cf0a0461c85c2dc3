"""`glassbox check --publish`: the glassbox/check status and check run on the embedded forge, read with PyGithub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.check.ci import ANNOTATION_MESSAGE_LIMIT, publish
from bot.check.evaluate import CheckResult
from bot.errors import ForgeError
from bot.forge.github import GitHubForge
from bot.forge.model import MAX_CHECK_OUTPUT_CHARS, StatusState
from bot.policy.render import summary_markdown
from bot.records import FileChange, Verdict, digest
from tests.factories import verdict_data
from tests.forge_helpers import REPO, ForgeEnv, forge_env

AGENT = "patch-agent"
CONFIG = "infra/network/Pulumi.dev.yaml"
BASTION = "urn:pulumi:dev::network::aws:ec2/instance:Instance::bastion"


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeEnv]:
    yield from forge_env(tmp_path)


def _pr(forge: ForgeEnv) -> Any:
    return forge.client(AGENT).open_pull_request(
        base="main",
        branch=f"glassbox/{AGENT}/publish",
        title="publish",
        body="",
        changes=[FileChange(path=CONFIG, content="config: {}\n"), FileChange(path="README.md", delete=True)],
    )


def _finding(rule: str, status: str, message: str, resource: str | None, severity: str = "high") -> dict[str, Any]:
    return {"engine": "rego", "rule_id": rule, "severity": severity, "status": status, "message": message,
            "resource": resource}  # fmt: skip


def _result(pr: Any, result: str, findings: list[dict[str, Any]], risk: str = "high") -> CheckResult:
    data = verdict_data(result=result, risk=risk, findings=findings)
    data["change"] |= {"pr": pr.number, "base_commit": pr.base_sha, "head_commit": pr.head_sha}
    verdict = Verdict.model_validate(data)
    return CheckResult(verdict, None, None, {}, summary_markdown(verdict))


def test_a_failed_verdict_is_a_failing_check_run_with_one_annotation_per_placeable_finding(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    long = "bucket " + "x" * 5000
    forged = "open\nresource: 'urn:pulumi:dev::network::harmless'\x1b[2J"
    result = _result(
        pr,
        "FAILED",
        [
            _finding("GB-NET-001", "deny", "bastion open to the world", BASTION),
            _finding("GB-SCOPE-002", "deny", long, CONFIG),
            _finding("GB-SCOPE-003", "deny", forged, CONFIG),
            _finding("GB-GOV-001", "warn", "README removed", "README.md", severity="low"),
            _finding("GB-CHG-001", "warn", "no intent manifest", None, severity="low"),
        ],
    )
    run = publish(forge.client("glassbox-ci"), result, None)
    assert run is not None

    repo = forge.github("carol").get_repo(REPO)
    [status] = [s for s in repo.get_commit(pr.head_sha).get_statuses() if s.context == "glassbox/check"]
    assert (status.state, status.creator.login) == ("failure", "glassbox-ci")  # the fallback the gate reads

    [seen] = list(repo.get_commit(pr.head_sha).get_check_runs(check_name="glassbox/check"))
    assert (seen.id, seen.conclusion, seen.app.slug) == (run.id, "failure", "glassbox-ci")
    assert seen.output.title == "FAILED, risk high" and seen.output.summary == result.summary
    assert seen.external_id == digest(result.verdict)

    by_title = {a.title.split(" ")[0]: a for a in seen.get_annotations()}
    # the Pulumi resource goes on the changed file of its project; the removed file and the finding without a
    # resource have no file to go on: they are in the summary only
    assert set(by_title) == {"GB-NET-001", "GB-SCOPE-002", "GB-SCOPE-003"}
    bastion, scope = by_title["GB-NET-001"], by_title["GB-SCOPE-002"]
    assert (bastion.path, bastion.start_line, bastion.annotation_level) == (CONFIG, 1, "failure")
    assert bastion.message == f"'bastion open to the world'\nresource: '{BASTION}'"
    assert bastion.title == "GB-NET-001 (rego, high, deny)"
    assert scope.path == CONFIG
    message, resource = scope.message.split("\n")
    assert message.startswith("'bucket xxx") and message.endswith("…[3007 more characters]'")
    assert len(message) < ANNOTATION_MESSAGE_LIMIT + 30 and resource == f"resource: '{CONFIG}'"
    # text from the change cannot add a line of its own to the annotation, nor reach a terminal raw
    lines = by_title["GB-SCOPE-003"].message.split("\n")
    assert lines == ["\"open\\nresource: 'urn:pulumi:dev::network::harmless'\\x1b[2J\"", f"resource: '{CONFIG}'"]


def test_a_passed_verdict_is_a_successful_check_run(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    run = publish(forge.client("glassbox-ci"), _result(pr, "PASSED", [], risk="low"), None)
    assert run is not None and run.conclusion == "success" and run.title == "PASSED, risk low"
    assert run.annotations_count == 0


def test_a_summary_too_long_for_a_check_run_is_cut_at_a_line(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    findings = [_finding(f"GB-X-{i:04d}", "warn", "w" * 200, None, severity="low") for i in range(400)]
    result = _result(pr, "PASSED", findings, risk="low")
    assert len(result.summary) > MAX_CHECK_OUTPUT_CHARS
    publish(forge.client("glassbox-ci"), result, None)
    [seen] = list(forge.github("carol").get_repo(REPO).get_commit(pr.head_sha).get_check_runs())
    summary = seen.output.summary
    assert len(summary) <= MAX_CHECK_OUTPUT_CHARS and summary.endswith("more characters: see the check's summary.md")
    kept = summary.rsplit("\n\n…", 1)[0]
    assert result.summary.startswith(kept) and result.summary[len(kept)] == "\n"


class _PersonalToken(GitHubForge):
    """A token GitHub does not let create check runs (anything but a GitHub App's)."""

    def create_check_run(self, sha: str, **kwargs: Any) -> Any:
        raise ForgeError("create check run: 403 You must authenticate via a GitHub App.", status=403)


def test_a_token_that_cannot_create_check_runs_still_sets_the_status(forge: ForgeEnv) -> None:
    pr = _pr(forge)
    ci = forge.client("glassbox-ci")
    token = _PersonalToken(ci._settings)
    assert publish(token, _result(pr, "PASSED", [], risk="low"), pr.number) is None
    statuses = token.list_statuses(pr.head_sha)
    assert [(s.context, s.state) for s in statuses] == [("glassbox/check", StatusState.SUCCESS)]
    assert forge.client("carol").list_check_runs(pr.head_sha) == []
