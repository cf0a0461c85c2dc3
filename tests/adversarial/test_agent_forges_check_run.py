"""An agent forges the glassbox/check check run. GitHub shows a check run beside the commit status of the same name,
so a green "glassbox/check" run looks like a passed check. It must not open the door: an agent's token cannot make
check runs at all, and a check run anyone else makes is never what the merge gate (or the forge's protection)
counts: they read the glassbox/check commit status, and the gate only the one the CI identity set. Real forge over
HTTP, real git, PyGithub as an attacker would use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from github import Auth, Github, GithubException

from bot.approvals import protection
from bot.check.ci import attest_and_record, pr_check_request
from bot.check.evaluate import run_check
from bot.propose import propose
from bot.records import VerdictResult
from bot.trust.attestations import store_attestation
from tests.adversarial._support import admin
from tests.flow_helpers import REPO, Flow, ci_check, flow_env, merge, request

pytestmark = pytest.mark.e2e

AGENT = "cost-optimizer"  # an `auto` agent: its low-risk PASSED change merges without a human


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    for f in flow_env(tmp_path, required_approvals=0):
        want = protection.desired(f.registry)
        protection.apply(f.forge("forge-admin"), want)
        yield f


def _github(flow: Flow, identity: str) -> Github:
    return Github(base_url=flow.url, auth=Auth.Token(flow.tokens[identity]), retry=None)


def _judged_but_not_published(flow: Flow, pr_number: int) -> None:
    """CI's signed PASS verdict is filed, but CI never set its status (its step died before publishing)."""
    forge = flow.forge("glassbox-ci")
    pr = forge.get_pull_request(pr_number)
    result = run_check(pr_check_request(forge, pr, flow.bare))
    assert result.verdict.result is VerdictResult.PASSED, result.summary
    attest_and_record(result, signer=flow.signer("glassbox-ci"), ledger=flow.ledger)
    assert result.attestation is not None
    store_attestation(flow.attestations, pr.head_sha, result.attestation)


def test_an_agents_token_cannot_create_a_check_run(flow: Flow) -> None:
    proposal = propose(request(), flow.propose_context(AGENT))
    head = flow.forge(AGENT).get_pull_request(proposal.pr_number).head_sha
    repo = _github(flow, AGENT).get_repo(REPO)
    for name in ("glassbox/check", "glassbox/approvals", "anything"):
        with pytest.raises(GithubException) as err:
            repo.create_check_run(
                name=name, head_sha=head, conclusion="success", output={"title": "PASSED", "summary": "ok"}
            )
        assert err.value.status == 403
    assert flow.forge("carol").list_check_runs(head) == []


def test_a_green_check_run_from_anyone_but_ci_does_not_merge(flow: Flow) -> None:
    proposal = propose(request(), flow.propose_context(AGENT))
    _judged_but_not_published(flow, proposal.pr_number)
    head = flow.forge(AGENT).get_pull_request(proposal.pr_number).head_sha
    # a person and the bot, both allowed to make check runs, each make a green glassbox/check one
    for identity in ("carol", "glassbox-bot"):
        _github(flow, identity).get_repo(REPO).create_check_run(
            name="glassbox/check", head_sha=head, conclusion="success", output={"title": "PASSED", "summary": "ok"}
        )

    outcome = merge(flow, proposal.pr_number)
    assert not outcome.merged
    assert any(f"glassbox/check has not been reported on {head[:12]}" in r for r in outcome.reasons), outcome.reasons

    # the forge's own protection agrees: a check run is not the required glassbox/check status
    status, body = admin(flow).request("glassbox-bot", "PUT", f"/repos/{REPO}/pulls/{proposal.pr_number}/merge", {})
    assert status == 405 and 'Required status check "glassbox/check" is expected.' in body["message"], body


def test_ci_publishes_both_and_the_change_merges(flow: Flow) -> None:
    proposal = propose(request(), flow.propose_context(AGENT))
    assert ci_check(flow, proposal.pr_number).result is VerdictResult.PASSED
    head = flow.forge(AGENT).get_pull_request(proposal.pr_number).head_sha
    [run] = flow.forge("carol").list_check_runs(head, name="glassbox/check")
    assert (run.conclusion, run.app) == ("success", "glassbox-ci")
    outcome = merge(flow, proposal.pr_number)
    assert outcome.merged, outcome.reasons
