"""The governed flow through the `glassbox` commands a CI job, the bot and the deployer run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from tests.flow_helpers import REPO, ROOT, Flow, flow_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "requests" / "cost-optimizer-dev-retention.yaml"


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    yield from flow_env(tmp_path, required_approvals=0)


def glassbox(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, who: str, flow: Flow, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("GLASSBOX_TOKEN", flow.tokens[who])
    monkeypatch.setenv("GLASSBOX_FORGE_URL", flow.url)
    monkeypatch.setenv("GLASSBOX_REPO", REPO)
    monkeypatch.setenv("GLASSBOX_LEDGER", str(flow.ledger.path))
    monkeypatch.setenv("GLASSBOX_KEYS", str(flow.keys))
    monkeypatch.setenv("GLASSBOX_APPLIER", "local")  # deploys here simulate the cloud, by configuration
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_propose_check_merge_deploy_from_the_command_line(
    flow: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = glassbox(
        capsys,
        monkeypatch,
        "cost-optimizer",
        flow,
        "propose",
        str(EXAMPLE),
        "--base-repo",
        str(flow.bare),
        "-o",
        "json",
    )
    assert code == 0, err
    proposal = json.loads(out)
    pr = proposal["pr_number"]

    pr_record = flow.forge("glassbox-ci").get_pull_request(pr)
    store = tmp_path / "attestations"
    code, out, err = glassbox(
        capsys,
        monkeypatch,
        "glassbox-ci",
        flow,
        "check",
        "--repo",
        str(flow.bare),
        "--base",
        pr_record.base_sha,
        "--head",
        pr_record.head_sha,
        "--out",
        str(tmp_path / "out"),
        "--repo-name",
        REPO,
        "--pr",
        str(pr),
        "--publish",
        "--store",
        str(store),
        "-o",
        "json",
    )
    assert code == 0, err
    assert json.loads(out)["verdict"]["result"] == "PASSED"
    assert (store / f"{pr_record.head_sha}.dsse.json").exists()

    attestation = str(store / f"{pr_record.head_sha}.dsse.json")
    code, out, err = glassbox(
        capsys,
        monkeypatch,
        "glassbox-bot",
        flow,
        "merge",
        "--pr",
        str(pr),
        "--attestation",
        attestation,
        "--registry",
        str(flow.registry.root),
        "--as",
        "glassbox-bot",
        "-o",
        "json",
    )
    assert code == 0, (out, err)
    merged = json.loads(out)
    assert merged["merged"] and merged["auto_merge"]

    code, out, err = glassbox(
        capsys,
        monkeypatch,
        "glassbox-deployer",
        flow,
        "deploy",
        "--commit",
        merged["merge_sha"],
        "--repo-path",
        str(flow.bare),
        "--attestations",
        str(store),
        "--state",
        str(tmp_path / "state"),
        "-o",
        "json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["stacks"] == ["network/dev"] and report["deployments"][0]["simulated"] is True


def test_a_refused_proposal_exits_1_with_every_reason(
    flow: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    request = ROOT / "examples" / "requests" / "network-agent-codeowners.yaml"
    code, _, err = glassbox(
        capsys,
        monkeypatch,
        "network-agent",
        flow,
        "propose",
        str(request),
        "--base-repo",
        str(flow.bare),
        "--no-preflight",
    )
    assert code == 1
    assert "governance path" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent_id: cost-optimizer\nagent_id: patch-agent\n")
    code, _, err = glassbox(
        capsys, monkeypatch, "cost-optimizer", flow, "propose", str(bad), "--base-repo", str(flow.bare)
    )
    assert code == 2 and "duplicate key 'agent_id'" in err
