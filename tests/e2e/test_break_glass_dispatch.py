"""The break-glass deploy on GitHub, replayed through `glassbox ci push`: a responder opens a grant on their own
machine, dispatches glassbox-deploy.yml with it and the commit, the deploy job verifies it, claims it on the audit
trail before it applies, and a fresh clone's `audit verify` sees the use, its claim and the open review."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from bot.cli import main
from bot.deploy.gate import deploy
from bot.errors import Denied
from bot.forge.trail import seed
from bot.records import Outcome
from bot.trust.ledger import Ledger
from bot.trust.trail import claim_entry, grant_entry, review_entry, trail_problems, trail_ref
from tests.e2e.break_glass_helpers import (
    STACK,
    dispatch_payload,
    grant_id_of,
    merged_change,
    open_on_laptop,
    run_dispatch,
    trail_breakglass,
)
from tests.flow_helpers import REPO, Flow, deploy_context, flow_env
from tests.runner_helpers import FakeTokenService, token_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    yield from flow_env(tmp_path, required_approvals=0)


@pytest.fixture
def oidc() -> Iterator[FakeTokenService]:
    yield from token_service(REPO)


def test_a_dispatched_break_glass_deploy_is_verified_claimed_on_the_trail_applied_and_audited(
    flow: Flow,
    oidc: FakeTokenService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    merged = merged_change(flow)
    envelope = open_on_laptop(flow, tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    gid = grant_id_of(envelope)

    result, ledger = run_dispatch(
        flow, tmp_path, "dispatch-1", oidc, dispatch_payload(merged.merge_sha, envelope), monkeypatch, capsys
    )
    assert result.code == 0, result.out + result.err
    assert result.outputs["result"] == "deployed" and result.outputs["commit"] == merged.merge_sha
    assert result.outputs["break_glass"] == gid and result.outputs["stacks"] == STACK
    assert "BREAK-GLASS" in result.summary and "approvals skipped" in result.summary
    # approvals were not evaluated: the grant stood in for them, every integrity check ran
    (deployed,) = [e for e in ledger.events() if e.action == "deploy"]
    checks = {c["name"]: c["ok"] for c in deployed.details["checks"]}
    assert deployed.outcome is Outcome.ALLOW and deployed.details["break_glass"] == gid
    assert "approvals satisfied on the head" not in checks and checks["break-glass grant"]
    assert checks["attestation signature"] and checks["plan recomputed"] and checks["tree is the verified tree"]
    (use,) = [e for e in ledger.events() if e.action == "breakglass.use"]
    assert use.seq < deployed.seq and use.details["claim"] == claim_entry(gid)

    # the trail holds the grant exactly as given, the deployer's claim and the open review
    objects = trail_breakglass(flow)
    assert set(objects) == {grant_entry(gid), claim_entry(gid), review_entry(gid)}
    assert objects[grant_entry(gid)].decode() == envelope
    assert json.loads(objects[review_entry(gid)])["status"] == "open"
    head = trail_ref(flow.bare)
    assert head is not None and result.outputs["trail"] == head
    assert trail_problems(flow.bare, head, flow.registry).problems == []

    # a fresh clone verifies it all: the break-glass deploy is reported, with its open review, and nothing fails
    clone = tmp_path / "auditor-clone"
    git.Repo.clone_from(flow.bare, clone, no_checkout=True)
    monkeypatch.delenv("GLASSBOX_LEDGER", raising=False)
    capsys.readouterr()
    code = main(["audit", "verify", "--repo", str(clone), "--output", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"], report["violations"]
    (notice,) = [n for n in report["notices"] if n["kind"] == "break-glass-deploy"]
    assert notice["grant_id"] == gid and f"post-incident review {review_entry(gid)}" in notice["message"]
    assert "open, due" in notice["message"]


def test_two_deploy_jobs_racing_with_one_grant_exactly_one_applies(flow: Flow, tmp_path: Path) -> None:
    merged = merged_change(flow)
    envelope = json.loads(open_on_laptop(flow, tmp_path))
    gid = grant_id_of(json.dumps(envelope))
    outcomes: dict[str, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def job(name: str) -> None:
        ctx = deploy_context(flow)
        ctx.state_dir = tmp_path / name / "state"  # each runner's own, empty
        ctx.ledger = Ledger(tmp_path / name / "ledger.jsonl")
        seed(flow.forge("glassbox-deployer"), ctx.ledger)
        ctx.grant_envelope, ctx.trail = envelope, flow.forge("glassbox-deployer")
        start.wait()
        try:
            report = deploy(ctx, merged.merge_sha, break_glass=gid)
            outcomes[name] = "applied" if report.deployments else "nothing"
        except Denied as exc:
            outcomes[name] = "; ".join(exc.reasons)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(n,)) for n in ("runner-a", "runner-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(outcomes) == ["runner-a", "runner-b"], outcomes
    (loser,) = [v for v in outcomes.values() if v != "applied"]
    assert "already used" in loser and "glassbox-trail" in loser
    applied = [n for n, v in outcomes.items() if v == "applied"]
    assert len(applied) == 1
    assert list((tmp_path / applied[0] / "state").glob("stacks/*/*/state.json"))
    assert [p for p in trail_breakglass(flow) if p.endswith(".used.json")] == [claim_entry(gid)]
