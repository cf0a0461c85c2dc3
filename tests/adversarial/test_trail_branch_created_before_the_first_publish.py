"""Attack: create the audit trail branch before glassbox's first publish, with commits of one's own.

Until the first publishing job creates ``glassbox-trail``, GitHub's classic branch protection cannot hold it, so
an agent (or anyone with write access) that creates it first would own the first link of every later append. The
embedded forge protects the name from ``forge init`` on: an agent's, a person's and even the forge admin's attempt
to create it is refused, and nothing is left behind; the service identities that do publish may create it. On
GitHub the same guard is the ruleset ``glassbox protect --trail-ruleset`` prints: the ref's creation is a rule that
only the service identities' apps bypass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.approvals import protection
from bot.forge.server import ADMIN
from bot.registry import load_registry
from bot.trust.conventions import TRAIL_BRANCH
from tests.forge_helpers import REPO, ForgeEnv, forge_env

REGISTRY = Path(__file__).resolve().parents[2] / "registry"


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeEnv]:
    yield from forge_env(tmp_path)


@pytest.mark.parametrize("who", ["cost-optimizer", "dan", ADMIN])
def test_nobody_but_a_service_identity_creates_the_trail(forge: ForgeEnv, who: str) -> None:
    main = forge.ok("glassbox-ci", "GET", f"/repos/{REPO}/git/ref/heads/main")["object"]["sha"]
    ref = {"ref": f"refs/heads/{TRAIL_BRANCH}", "sha": main}
    status, answer = forge.request(who, "POST", f"/repos/{REPO}/git/refs", ref)
    assert status in (403, 422), (status, answer)
    assert answer["message"], answer  # a GitHub-shaped refusal that says why
    status, _ = forge.request("glassbox-ci", "GET", f"/repos/{REPO}/git/ref/heads/{TRAIL_BRANCH}")
    assert status == 404, "the refused creation left no branch behind"


def test_on_github_the_ruleset_forbids_creating_the_ref_to_all_but_the_apps() -> None:
    ruleset = protection.trail_ruleset(load_registry(REGISTRY))
    assert ruleset["conditions"]["ref_name"]["include"] == [f"refs/heads/{TRAIL_BRANCH}"]
    assert {"type": "creation"} in ruleset["rules"]
    # the sample registry names no apps: nobody may bypass, so nobody creates the trail by hand either
    assert all(a["actor_type"] == "Integration" for a in ruleset["bypass_actors"])
