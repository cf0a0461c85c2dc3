"""Hostile paths in a ChangeRequest: each one is refused at proposal with a clear reason and a ledger event."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest

from bot.propose import MAX_FILE_BYTES, propose
from tests.adversarial._support import context, refused
from tests.flow_helpers import Flow, flow_env, request

pytestmark = pytest.mark.e2e

PATCH = {"agent_id": "patch-agent", "requested_by": {"id": "carol", "kind": "human"}, "expected_changes": []}


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    # refusals never open a PR: one forge serves every case of this module
    yield from flow_env(tmp_path_factory.mktemp("paths"))


def _reasons(flow: Flow, tmp_path: Path, changes: list[dict[str, Any]], agent: str = "patch-agent") -> list[str]:
    extra = PATCH if agent == "patch-agent" else {}
    req = request(changes=changes, **extra)
    reasons, event = refused(req, context(flow, agent, tmp_path))
    assert event.reason.startswith("refused at ")
    return reasons


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("infra/network/../../registry/agents.yaml", "contains '..'", id="dot-dot"),
        pytest.param("infra/network/..", "contains '..'", id="trailing-dot-dot"),
        pytest.param("/etc/passwd", "is absolute", id="absolute"),
        pytest.param("C:/Windows/system32/drivers/etc/hosts", "is absolute", id="drive-letter"),
        pytest.param("infra\\network\\..\\..\\registry\\agents.yaml", "contains a backslash", id="backslash"),
        pytest.param("infra/network/%2e%2e/%2e%2e/registry/agents.yaml", "is URL-encoded", id="url-encoded"),
        pytest.param("infra/network/%252e%252e/%252e%252e/registry/agents.yaml", "is URL-encoded", id="double-encoded"),
        pytest.param("infra/network/%2F..%2F..%2Fregistry/agents.yaml", "is URL-encoded", id="encoded-slash"),
        pytest.param("infra/network\uff0f..\uff0f..\uff0fregistry/agents.yaml", "look-alike", id="fullwidth-solidus"),
        pytest.param("infra/network/\u2024\u2024/\u2024\u2024/registry/agents.yaml", "look-alike", id="one-dot-leader"),
        pytest.param("infra/network/Pulumi.dev.yaml\u200b", "look-alike", id="zero-width-space"),
        pytest.param("infra/network/Pulumi.dev.yaml\x00.txt", "control characters", id="nul"),
        pytest.param("infra/network/Pulumi.dev.yaml\n.github/x", "control characters", id="newline"),
        pytest.param("infra/network/./Pulumi.dev.yaml", "not normalised", id="dot-segment"),
        pytest.param("infra//network/Pulumi.dev.yaml", "not normalised", id="double-slash"),
        pytest.param("infra/network/.git/hooks/post-checkout", "names git metadata", id="nested-dot-git"),
        pytest.param("infra/network/.GiT/config", "names git metadata", id="dot-git-case"),
        pytest.param("infra/network/git~1/config", "names git metadata", id="dot-git-ntfs-short-name"),
        pytest.param("infra/network/.gitmodules", "names git metadata", id="gitmodules"),
        pytest.param("infra/network./Pulumi.dev.yaml", "ending in a dot or a space", id="windows-trailing-dot"),
        pytest.param("infra/network/Pulumi.dev.yaml ", "ending in a dot or a space", id="windows-trailing-space"),
        pytest.param("infra/network/AKIAIOSFODNN7EXAMPLE.yaml", "contains a secret", id="secret-file-name"),
    ],
)
def test_agent_tries_to_escape_the_repository_with_a_crafted_path(
    flow: Flow, tmp_path: Path, path: str, expected: str
) -> None:
    reasons = _reasons(flow, tmp_path, [{"path": path, "content": "x: 1\n"}])
    assert any(expected in r for r in reasons), reasons


@pytest.mark.parametrize(
    "path",
    [
        "Policy-Pack/network/gb_net_001.rego",
        "POLICY-PACK/lib/util.rego",
        ".GitHub/workflows/deploy.yml",
        ".github/CODEOWNERS",
        "codeowners",
        "docs/CODEOWNERS",
        "Registry/agents.yaml",
        "infra/network/.GitHub/workflows/x.yml",
        "infra/network/.Glassbox/decisions/2026/11/x.json",
    ],
)
def test_agent_tries_to_reach_governance_with_case_tricks(flow: Flow, tmp_path: Path, path: str) -> None:
    reasons = _reasons(flow, tmp_path, [{"path": path, "content": "x: 1\n"}])
    assert any("is a governance path; agents never change governance (I2)" in r for r in reasons), reasons


def test_agent_writes_through_a_symlink_planted_in_the_base_tree(flow: Flow, tmp_path: Path) -> None:
    # infra/network/shared -> ../../registry in the base tree
    reasons = _reasons(flow, tmp_path, [{"path": "infra/network/shared", "content": "../../.github\n"}])
    assert any("is (or lies under) a symlink in the base tree" in r for r in reasons), reasons


def test_agent_writes_under_a_symlinked_parent_directory(flow: Flow, tmp_path: Path) -> None:
    reasons = _reasons(flow, tmp_path, [{"path": "infra/network/shared/agents.yaml", "content": "agents: []\n"}])
    assert any("is (or lies under) a symlink in the base tree" in r for r in reasons), reasons


def test_agent_hides_a_governance_edit_in_a_rename_into_registry(flow: Flow, tmp_path: Path) -> None:
    base = git.Repo(flow.bare).commit("refs/heads/main")
    moved = (base.tree / "infra/network/Pulumi.dev.yaml").data_stream.read().decode()
    reasons = _reasons(
        flow,
        tmp_path,
        [
            {"path": "infra/network/Pulumi.dev.yaml", "delete": True},
            {"path": "registry/Pulumi.dev.yaml", "content": moved},
        ],
    )
    assert any("'registry/Pulumi.dev.yaml' is a governance path" in r for r in reasons), reasons


def test_agent_renames_a_governance_file_out_of_registry(flow: Flow, tmp_path: Path) -> None:
    base = git.Repo(flow.bare).commit("refs/heads/main")
    teams = (base.tree / "registry/teams.yaml").data_stream.read().decode()
    reasons = _reasons(
        flow,
        tmp_path,
        [{"path": "registry/teams.yaml", "delete": True}, {"path": "infra/network/teams.yaml", "content": teams}],
    )
    assert any("'registry/teams.yaml' is a governance path" in r for r in reasons), reasons


def test_agent_writes_its_own_decision_record_by_hand(flow: Flow, tmp_path: Path) -> None:
    req = request(**PATCH)
    forged = f".glassbox/decisions/2026/11/{req.correlation_id}.json"
    reasons = _reasons(flow, tmp_path, [{"path": forged, "content": "{}\n"}])
    assert any("is a governance path" in r for r in reasons), reasons


def test_agent_sends_an_oversized_file(flow: Flow, tmp_path: Path) -> None:
    big = "a: b\n" * (MAX_FILE_BYTES // 5 + 1)
    reasons = _reasons(flow, tmp_path, [{"path": "infra/network/Pulumi.dev.yaml", "content": big}])
    assert any(f"over the {MAX_FILE_BYTES}-byte limit" in r for r in reasons), reasons


def test_agent_sends_a_binary_file(flow: Flow, tmp_path: Path) -> None:
    blob = "\x7fELF\x02\x01\x01\x00\x00\x00" + "\x00" * 32
    reasons = _reasons(flow, tmp_path, [{"path": "infra/network/tool.bin", "content": blob}])
    assert any("is binary (contains NUL bytes)" in r for r in reasons), reasons


def test_agent_sends_text_that_is_not_utf8(flow: Flow, tmp_path: Path) -> None:
    # a lone surrogate survives JSON decoding but is no UTF-8 text: a clear refusal, never a crash
    reasons = _reasons(flow, tmp_path, [{"path": "infra/network/Pulumi.dev.yaml", "content": "a: \udcff\n"}])
    assert any("not valid UTF-8" in r for r in reasons), reasons


def test_agent_replaces_a_directory_with_a_file(flow: Flow, tmp_path: Path) -> None:
    reasons = _reasons(flow, tmp_path, [{"path": "infra/network", "content": "x\n"}])
    assert any("is a directory in the base tree" in r for r in reasons), reasons


def test_agent_names_another_repository_than_the_one_it_writes_to(flow: Flow, tmp_path: Path) -> None:
    # the evidence and the ledger would attribute the PR to evil/infra while it lands in acme/infra
    req = request(repo="evil/infra")
    reasons, event = refused(req, context(flow, "cost-optimizer", tmp_path))
    assert "the request names repository 'evil/infra' but the forge in use is 'acme/infra'" in reasons
    assert event.subject.repo == "evil/infra" and event.details["stage"] == "scope"


def test_agent_reuses_a_correlation_id_for_a_different_change(flow: Flow, tmp_path: Path) -> None:
    ctx = context(flow, "cost-optimizer", tmp_path)
    first = propose(request(), ctx)
    sneaky = request(correlation_id=first.correlation_id, intent="Something else entirely")
    reasons, event = refused(sneaky, ctx)
    assert reasons == [
        f"correlation id {first.correlation_id} already names PR #{first.pr_number} for a different request"
    ]
    assert event.details["stage"] == "idempotency" and event.subject.pr == first.pr_number
    assert flow.forge("glassbox-bot").get_pull_request(first.pr_number).head_sha == first.head_sha
