"""Governance look-alikes: case, Unicode compatibility forms, invisible characters, nesting, trailing dots, `./`,
`//` and trailing slashes. One list of tricky paths goes through every entry point (the predicate, propose, the
check with its Rego pack, audit history) and gets one answer from all of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from bot.audit.history import is_governed
from bot.check.evaluate import CheckRequest, run_check
from bot.errors import Denied
from bot.propose import propose
from bot.registry import is_governance_path
from tests.flow_helpers import Flow, flow_env, governed_source, request

# (path, is governance, can a git tree hold it as given)
PATHS: list[tuple[str, bool, bool]] = [
    ("registry/agents.yaml", True, True),
    ("Registry/agents.yaml", True, True),
    ("REGISTRY/AGENTS.YAML", True, True),
    (".GitHub/workflows/deploy.yml", True, True),
    ("infra/network/.github/workflows/x.yml", True, True),  # nested
    ("infra/data/registry/agents.yaml", True, True),  # nested
    ("infra/x/policy-pack/lib/util.rego", True, True),
    ("docs/CODEOWNERS", True, True),
    ("infra/network/codeowners", True, True),
    ("\uff52egistry/agents.yaml", True, True),  # fullwidth r: NFKC folds it to "registry"
    ("regis\u200btry/agents.yaml", True, True),  # a zero-width space inside the name
    ("registry./agents.yaml", True, True),  # Windows drops the trailing dot
    ("registry /agents.yaml", True, True),  # ... and a trailing space
    (".glassbox/waivers.yaml", True, True),
    ("infra/network/.gitattributes", True, True),
    (".lfsconfig", True, True),
    ("./registry/agents.yaml", True, False),
    ("registry//agents.yaml", True, False),
    ("registry/", True, False),
    ("infra/network/Pulumi.dev.yaml", False, True),
    ("infra/data/registry.yaml", False, True),
    ("infra/network/github/notes.md", False, True),
    ("infra/network/codeowners.md", False, True),
    ("infra/network/policy-pack.md", False, True),
]
IDS = [repr(p) for p, _, _ in PATHS]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    yield from flow_env(tmp_path_factory.mktemp("gov"), required_approvals=0)


@pytest.mark.parametrize(("path", "governance", "_in_git"), PATHS, ids=IDS)
def test_predicate_and_audit_history_agree(path: str, governance: bool, _in_git: bool) -> None:
    assert is_governance_path(path) is governance
    assert is_governed(path) or not governance  # audit history watches every governance path


@pytest.mark.e2e
@pytest.mark.parametrize(("path", "governance", "_in_git"), PATHS, ids=IDS)
def test_propose_refuses_every_governance_lookalike(flow: Flow, path: str, governance: bool, _in_git: bool) -> None:
    """An agent whose globs cover all of infra/ tries each path: every governance look-alike is refused before any
    PR; no other path is called governance."""
    req = request(agent_id="patch-agent", changes=[{"path": path, "content": "x: 1\n"}])
    try:
        propose(req, flow.propose_context("patch-agent"))
    except Denied as exc:
        reasons = exc.reasons
    else:
        reasons = []
    said_governance = any("governance path" in r for r in reasons)
    assert said_governance is governance, reasons


@pytest.mark.slow
def test_check_and_its_pack_call_the_same_paths_governance(tmp_path: Path) -> None:
    """A human commit adding every path a git tree can hold: the check reports exactly the governance ones to the
    pack, the pack raises each of them (GB-GOV-002) and nothing else, and the tier is critical."""
    src = governed_source(tmp_path)
    repo = git.Repo.init(src, initial_branch="main")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    repo.git.add("-A")
    repo.git.commit("--no-gpg-sign", "-m", "base", env=env)
    held = [(p, g) for p, g, in_git in PATHS if in_git]
    for path, _ in held:
        target = src / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(target.read_text() + "# more\n" if target.is_file() else "x: 1\n")
    repo.git.add("-A")
    repo.git.commit("--no-gpg-sign", "-m", "everything at once", env=env)
    verdict = run_check(CheckRequest(repo_path=src, base="HEAD~1", head="HEAD", author="carol")).verdict
    flagged = {f.resource for f in verdict.findings if f.rule_id == "GB-GOV-002"}
    # a case-insensitive filesystem may have merged some names into one file; compare what git recorded
    recorded = set(repo.git.diff("--name-only", "-z", "HEAD~1", "HEAD").strip("\0").split("\0"))
    expected = {p for p in recorded if is_governance_path(p)}
    assert expected == {p for p, g in held if g and p in recorded}
    assert flagged == expected, (flagged ^ expected, verdict.errors)
    assert verdict.risk.value == "critical"
