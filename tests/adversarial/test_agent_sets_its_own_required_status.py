"""An agent sets the required `glassbox/check` status on its own head. A required status check counts a status of
that name from whoever may set one, unless it is pinned to an app: an agent's token marking its own commit green
would satisfy the forge's protection. Three locks, each tested: the embedded forge refuses statuses from agents
(as an agent's GitHub App without *Commit statuses: write* is refused); the merge gate counts glassbox/check only
from the CI identity, so a green status from anyone else (a person, the bot) merges nothing; and `glassbox protect`
pins the required statuses to the apps the registry names, so on GitHub the forge's own rule holds too. Real forge
over HTTP, PyGithub as an attacker would use it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from github import Auth, Github, GithubException
from github.Repository import Repository

from bot.approvals import protection
from bot.propose import propose
from bot.registry import load_registry
from bot.trust.conventions import APPROVALS_CONTEXT, CHECK_CONTEXT
from tests.adversarial.test_agent_forges_check_run import _judged_but_not_published
from tests.flow_helpers import REPO, Flow, flow_env, merge, request

pytestmark = pytest.mark.e2e

AGENT = "cost-optimizer"  # an `auto` agent: a green glassbox/check would be all its change needs


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    for f in flow_env(tmp_path, required_approvals=0):
        protection.apply(f.forge("forge-admin"), protection.desired(f.registry))
        yield f


def _repo(flow: Flow, identity: str) -> Repository:
    return Github(base_url=flow.url, auth=Auth.Token(flow.tokens[identity]), retry=None).get_repo(REPO)


def test_an_agents_token_cannot_set_the_required_status(flow: Flow) -> None:
    proposal = propose(request(), flow.propose_context(AGENT))
    head = flow.forge(AGENT).get_pull_request(proposal.pr_number).head_sha
    commit = _repo(flow, AGENT).get_commit(head)
    for context in (CHECK_CONTEXT, APPROVALS_CONTEXT):
        with pytest.raises(GithubException) as err:
            commit.create_status(state="success", context=context, description="PASSED")
        assert err.value.status == 403
    assert flow.forge("carol").list_statuses(head) == []


def test_a_green_status_from_anyone_but_ci_merges_nothing(flow: Flow) -> None:
    proposal = propose(request(), flow.propose_context(AGENT))
    _judged_but_not_published(flow, proposal.pr_number)  # a real PASS verdict exists; CI never published it
    head = flow.forge(AGENT).get_pull_request(proposal.pr_number).head_sha
    for identity in ("carol", "glassbox-bot"):  # both may set statuses
        _repo(flow, identity).get_commit(head).create_status(state="success", context=CHECK_CONTEXT)
    outcome = merge(flow, proposal.pr_number)
    assert not outcome.merged
    assert any("glassbox/check" in r for r in outcome.reasons), outcome.reasons


def test_protect_pins_the_required_statuses_to_the_registrys_apps(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "registry"
    unpinned = protection.request_body(protection.desired(load_registry(sample)))
    # the sample registry names no apps: nothing is pinned, and the doc says to name them
    assert all("app_id" not in c for c in unpinned["required_status_checks"]["checks"])
    shutil.copytree(sample, tmp_path / "registry")
    teams = yaml.safe_load((tmp_path / "registry" / "teams.yaml").read_text())
    for identity in teams["service_identities"]:
        identity["github_app_id"] = {"ci": 11, "bot": 22, "deployer": 33}[identity["kind"]]
    (tmp_path / "registry" / "teams.yaml").write_text(yaml.safe_dump(teams, sort_keys=False))
    registry = load_registry(tmp_path / "registry")
    body = protection.request_body(protection.desired(registry))
    assert body["required_status_checks"]["checks"] == [
        {"context": CHECK_CONTEXT, "app_id": 11},
        {"context": APPROVALS_CONTEXT, "app_id": 22},
    ]
    # GitHub's answer with the pin dropped ("any app", -1 or null) is drift, not protection
    live = {**body, "required_status_checks": {"strict": True, "checks": [{"context": CHECK_CONTEXT, "app_id": -1}]}}
    found = protection.diff(protection.from_github("main", live), protection.desired(registry))
    assert "check_apps" in {c.setting for c in found.changes}
