"""`audit verify` findings as an auditor reads them: one line each with what to do, break-glass deploys reported
(with their grant and ticket) but not failing, out-of-band merges told apart from direct pushes, and the trust
anchor taken from the newest governed merge, never from an ungoverned head. Real git, real signatures."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.audit.findings import FINDINGS, ViolationKind, markdown_table
from bot.audit.history import HistoryReport, VerifyRequest, verify_history
from bot.audit.report import ReportRequest, build_report
from bot.cli import main
from bot.records import Actor, ActorKind, Outcome
from bot.trust.keys import generate_key
from tests.audit_world import World, build_world
from tests.factories import REPO_ROOT, edit_yaml

GRANT = "01a24b64-adbe-7668-a149-fdba1181b4b8"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def _verify(world: World) -> HistoryReport:
    return verify_history(VerifyRequest(ledger=world.ledger.path, repo=world.repo_dir, attestations=world.attestations))


def _kinds(report: HistoryReport) -> list[tuple[ViolationKind, str | None]]:
    return [(f.kind, f.commit) for f in report.findings()]


def _cli(world: World, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    args = ["--ledger", str(world.ledger.path), "--repo", str(world.repo_dir)]
    args += ["--attestations", str(world.attestations)]
    code = main(["audit", "verify", *args])
    return code, capsys.readouterr().out.splitlines()


def test_the_governed_merge_is_clean_and_is_the_trust_anchor(world: World) -> None:
    report = _verify(world)
    assert report.ok and report.findings() == []
    assert (report.trust_anchor, report.trust_anchor_pr) == (world.governed, 1)


def test_each_finding_is_one_line_with_kind_commit_touched_and_to_do(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    merged = world.out_of_band_merge({"infra/data/Pulumi.prod.yaml": "size: 250\n"})
    world.deploy(merged, grant=GRANT)
    pushed = world.direct_push({"infra/network/Pulumi.dev.yaml": "ingress: ALL\n"})
    code, lines = _cli(world, capsys)
    assert code == 1
    findings = [line for line in lines if line.startswith(("✘ ", "! "))]
    assert len(findings) == 3, lines  # one line per finding, nothing wrapped or run together
    expected = [
        ("✘", ViolationKind.OUT_OF_BAND_MERGE, merged, "infra/data/Pulumi.prod.yaml"),
        ("✘", ViolationKind.DIRECT_PUSH, pushed, "infra/network/Pulumi.dev.yaml"),
        ("!", ViolationKind.BREAK_GLASS_DEPLOY, merged, "stack data/prod"),
    ]
    for line, (mark, kind, sha, touched) in zip(findings, expected, strict=True):
        assert line.startswith(f"{mark} {kind.value} {sha[:12]} {touched}: "), line
        assert line.endswith(f"| to do: {FINDINGS[kind].to_do}"), line
    assert "under break-glass grant " + GRANT + " (ticket INC-9" in findings[2]
    assert "signatures checked against registry/ at " + world.governed[:12] + " (PR #1)" in lines[0]


def test_a_break_glass_deploy_is_reported_with_its_grant_and_ticket_and_does_not_fail(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # a PR merged by the bot without approvals, deployed under a grant that stands in for them
    number, head, squash = world.pr({"infra/data/Pulumi.prod.yaml": "size: 250\n"})
    world.advance(squash)
    world.event("glassbox-bot", "merge", pr=number, commit=squash, head_sha=head, method="squash")
    world.deploy(squash, grant=GRANT, ticket="INC-4711")
    report = _verify(world)
    assert report.ok and report.violations == []
    (notice,) = report.notices
    assert (notice.kind, notice.commit, notice.grant_id, notice.ticket) == (
        ViolationKind.BREAK_GLASS_DEPLOY,
        squash,
        GRANT,
        "INC-4711",
    )
    assert not notice.fails
    code, lines = _cli(world, capsys)
    assert code == 0
    assert any(line.startswith("! break-glass-deploy " + squash[:12]) for line in lines)
    assert lines[-1] == "no violations, 1 finding(s) reported"


def test_a_deploy_without_a_grant_stays_an_orphan_deploy(world: World) -> None:
    merged = world.out_of_band_merge({"infra/data/Pulumi.prod.yaml": "size: 250\n"})
    world.deploy(merged)
    report = _verify(world)
    assert _kinds(report) == [(ViolationKind.OUT_OF_BAND_MERGE, merged), (ViolationKind.ORPHAN_DEPLOY, merged)]
    assert not report.ok


def test_a_deploy_naming_a_grant_nobody_used_is_an_orphan_deploy(world: World) -> None:
    merged = world.out_of_band_merge({"infra/data/Pulumi.prod.yaml": "size: 250\n"})
    world.deploy(merged, grant=GRANT, use=False)
    report = _verify(world)
    orphan = [f for f in report.violations if f.kind is ViolationKind.ORPHAN_DEPLOY]
    assert len(orphan) == 1 and "no break-glass use of it" in orphan[0].message
    assert report.notices == []


def test_a_grant_does_not_excuse_deploying_a_direct_push(world: World) -> None:
    # break-glass stands in for approvals and the merge gate, never for a commit no PR or check ever saw
    pushed = world.direct_push({"infra/data/Pulumi.prod.yaml": "size: 999\n"})
    world.deploy(pushed, grant=GRANT)
    report = _verify(world)
    assert _kinds(report) == [(ViolationKind.DIRECT_PUSH, pushed), (ViolationKind.ORPHAN_DEPLOY, pushed)]
    assert "stands in for approvals only" in report.violations[1].message


def test_trust_comes_from_the_governed_merge_not_a_direct_push_that_adds_a_key(world: World, tmp_path: Path) -> None:
    # main's head is a direct push that adds a ledger-signer key; events signed with that key must not verify
    mallory = generate_key(tmp_path / "mallory-keys", "glassbox-bot")
    trust = world.repo_dir / "registry" / "trust.yaml"
    world.repo.git.checkout("-q", "-f", "main")
    entry = {"identity": "glassbox-bot", "keyid": mallory.keyid, "public_key": mallory.public_line}
    edit_yaml(trust, lambda d: d["keys"].append({**entry, "roles": ["ledger-signer"]}))
    pushed = world.direct_push({"registry/trust.yaml": trust.read_text(encoding="utf-8")})
    world.ledger.append(
        mallory, actor=Actor(id="glassbox-bot", kind=ActorKind.BOT), action="merge", outcome=Outcome.ALLOW
    )
    report = _verify(world)
    assert report.trust_anchor == world.governed and report.trust_anchor_pr == 1
    assert (ViolationKind.DIRECT_PUSH, pushed) in _kinds(report)
    assert any(f.kind is ViolationKind.CHAIN_BREAK for f in report.violations)  # mallory's key is not trusted

    page = build_report(
        ReportRequest(ledger=world.ledger.path, repo=world.repo_dir, attestations=world.attestations)
    ).html
    assert f"registry/ at {world.governed[:12]} (PR #1)" in page
    assert pushed[:12] + " (" not in page  # the flagged head never named as the anchor
    assert "✘ broken: " in page and "unknown-key" in page


def test_the_readme_lists_every_finding_with_what_to_do() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README: paste `python -m bot.audit.findings` under its verify section"
    for kind in ViolationKind:
        assert f"| `{kind.value}` |" in readme
