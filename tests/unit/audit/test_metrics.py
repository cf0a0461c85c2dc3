from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bot.audit.metrics import compute_metrics
from bot.commands import audit as audit_cmd
from bot.records import Actor, ActorKind, Outcome, Subject
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KINDS = {
    "cost-optimizer": ActorKind.AGENT,
    "network-agent": ActorKind.AGENT,
    "glassbox-ci": ActorKind.CI,
    "glassbox-bot": ActorKind.BOT,
    "deployer": ActorKind.DEPLOYER,
}


def cid(n: int) -> str:
    return f"019378a2-7f3c-7c4e-9b1a-2d3e4f5a6b{n:02x}"


@pytest.fixture(scope="module")
def signers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Signer]:
    d = tmp_path_factory.mktemp("keys")
    return {k: generate_key(d, k) for k in KINDS}


class Book:
    def __init__(self, path: Path, signers: dict[str, Signer]) -> None:
        self.ledger = Ledger(path)
        self.signers = signers

    def add(
        self,
        who: str,
        action: str,
        minutes: float,
        outcome: Outcome = Outcome.ALLOW,
        *,
        corr: str | None = None,
        pr: int | None = None,
        **details: Any,
    ) -> None:
        self.ledger.append(
            self.signers[who],
            actor=Actor(id=who, kind=KINDS[who]),
            action=action,
            outcome=outcome,
            correlation_id=corr,
            subject=Subject(repo="acme/infra", pr=pr),
            details=details,
            time=T0 + timedelta(minutes=minutes),
        )

    def propose(
        self, agent: str, minutes: float, corr: str, pr: int | None, outcome: Outcome = Outcome.ALLOW, **kw: Any
    ) -> None:
        self.add(agent, "propose", minutes, outcome, corr=corr, pr=pr, agent_id=agent, **kw)


def calls(*statuses: str) -> list[dict[str, str]]:
    return [{"tool_id": f"t{i}", "status": s} for i, s in enumerate(statuses)]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory, signers: dict[str, Signer]) -> Ledger:
    """Read-only: two agents' PRs through check, approvals and merge, and a break-glass use."""
    b = Book(tmp_path_factory.mktemp("metrics") / "ledger.jsonl", signers)
    # cost-optimizer, PR 1: passes, approved 30 minutes after the check, merged by a human-gated merge
    b.propose("cost-optimizer", 0, cid(1), 1, tool_calls=calls("ok", "ok", "error"))
    b.add("glassbox-ci", "check", 10, corr=cid(1), pr=1, result="PASSED")
    b.add("glassbox-bot", "approvals", 20, Outcome.DENY, corr=cid(1), pr=1, satisfied=False)
    b.add("glassbox-bot", "approvals", 40, corr=cid(1), pr=1, satisfied=True)
    b.add("glassbox-bot", "merge", 41, corr=cid(1), pr=1, auto_merge=False)
    # cost-optimizer, PR 2: passes, approved 10 minutes after the check, auto-merged
    b.propose("cost-optimizer", 50, cid(2), 2, tool_calls=calls("ok"))
    b.add("glassbox-ci", "check", 60, corr=cid(2), pr=2, result="PASSED")
    b.add("glassbox-bot", "approvals", 70, corr=cid(2), pr=2, satisfied=True)
    b.add("glassbox-bot", "merge", 71, corr=cid(2), pr=2, auto_merge=True)
    # cost-optimizer: a refused proposal (no PR)
    b.propose("cost-optimizer", 80, cid(3), None, Outcome.DENY, result="refused")
    # network-agent, PR 3: denied by policy
    b.propose("network-agent", 90, cid(4), 3)
    b.add("glassbox-ci", "check", 95, Outcome.DENY, corr=cid(4), pr=3, result="FAILED")
    # network-agent, PR 4: passes, then a reviewer requests changes; approvals escalate
    b.propose("network-agent", 100, cid(5), 4)
    b.add("glassbox-ci", "check", 105, corr=cid(5), pr=4, result="PASSED")
    b.add(
        "glassbox-bot",
        "approvals",
        110,
        Outcome.ESCALATE,
        corr=cid(5),
        pr=4,
        satisfied=False,
        changes_requested=["dan"],
    )
    # a break-glass use: a human override, attributed to no agent
    b.ledger.append(
        signers["deployer"],
        actor=Actor(id="deployer", kind=ActorKind.DEPLOYER),
        action="breakglass.use",
        outcome=Outcome.ALLOW,
        subject=Subject(stack="data/prod"),
        time=T0 + timedelta(minutes=120),
    )
    return b.ledger


def values(m: dict[str, Any]) -> dict[str, Any]:
    return {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in m.items()}


def test_metrics_overall(ledger: Ledger) -> None:
    report = compute_metrics(ledger.events())
    overall = report.overall
    assert overall.events == 16
    assert (overall.auto_approved.numerator, overall.auto_approved.denominator) == (1, 2)
    # agent PRs at the approvals gate: 1, 2 and 4; PR 4's evaluation escalated
    assert (overall.escalated.numerator, overall.escalated.denominator) == (1, 3)
    assert overall.policy_denial_rate.value == 0.25
    # passed PRs 1, 2, 4; PR 4 blocked by changes requested; plus one break-glass use
    assert (overall.human_override_rate.numerator, overall.human_override_rate.denominator) == (2, 4)
    assert overall.time_to_approval.seconds == (1800.0, 600.0)
    assert overall.time_to_approval.mean == 1200.0 and overall.time_to_approval.p90 == 1800.0
    assert (overall.tool_failure_rate.numerator, overall.tool_failure_rate.denominator) == (1, 4)


def test_metrics_per_agent(ledger: Ledger) -> None:
    report = compute_metrics(ledger.events())
    assert sorted(report.per_agent) == ["cost-optimizer", "network-agent"]
    cost = report.per_agent["cost-optimizer"].as_dict()
    assert values(cost) == {
        "events": 10,
        "auto_approved": 0.5,
        "escalated": 0.0,
        "policy_denial_rate": 0.0,
        "human_override_rate": 0.0,
        "time_to_approval": cost["time_to_approval"],
        "tool_failure_rate": 0.25,
    }
    assert cost["time_to_approval"]["mean_seconds"] == 1200.0
    net = report.per_agent["network-agent"]
    assert net.auto_approved.value is None and net.auto_approved.display == "n/a"
    assert net.escalated.display == "100.0% (1/1)"
    assert net.policy_denial_rate.value == 0.5
    assert net.human_override_rate.value == 1.0
    assert net.time_to_approval.display == "n/a" and net.tool_failure_rate.display == "n/a"


def test_metrics_since_counts_only_later_events(ledger: Ledger) -> None:
    report = compute_metrics(ledger.events(), since=T0 + timedelta(minutes=85))
    assert report.overall.events == 6
    assert report.overall.auto_approved.value is None
    # attribution still comes from proposals before the cut-off... and from those after it
    assert sorted(report.per_agent) == ["network-agent"]


def test_metrics_degrade_to_na_when_kinds_are_absent(tmp_path: Path, signers: dict[str, Signer]) -> None:
    assert compute_metrics([]).as_dict()["overall"]["auto_approved"]["display"] == "n/a"
    b = Book(tmp_path / "l.jsonl", signers)
    b.add("glassbox-bot", "ledger.recover", 0, Outcome.ERROR, torn_bytes=3)
    b.add("glassbox-bot", "approvals", 1, satisfied="yes")  # odd shapes do not crash either
    b.add("glassbox-bot", "merge", 2, auto_merge="true")
    b.propose("cost-optimizer", 3, cid(9), None, tool_calls="not a list")
    data = compute_metrics(b.ledger.events()).as_dict()["overall"]
    assert data["events"] == 4
    rate = data["policy_denial_rate"]
    assert (rate["value"], rate["numerator"], rate["denominator"], rate["display"]) == (None, 0, 0, "n/a")
    assert data["time_to_approval"]["mean_seconds"] is None and data["time_to_approval"]["display"] == "n/a"
    assert data["auto_approved"]["value"] == 0.0  # a merge with a non-boolean flag is not an auto-merge
    assert data["tool_failure_rate"]["display"] == "n/a"


def test_cli_metrics_json_and_text(ledger: Ledger) -> None:
    app = typer.Typer()
    audit_cmd.register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "metrics", "--ledger", str(ledger.path), "--output", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["overall"]["events"] == 16 and data["per_agent"]["network-agent"]["policy_denial_rate"]["value"] == 0.5
    result = runner.invoke(
        app, ["audit", "metrics", "--ledger", str(ledger.path), "--since", "2026-11-02T10:25:00+00:00"]
    )
    assert result.exit_code == 0, result.output
    assert "n/a" in result.output and "network-agent" in result.output


def test_overrides_count_closed_prs_and_blocking_reviews(tmp_path: Path, signers: dict[str, Signer]) -> None:
    b = Book(tmp_path / "l.jsonl", signers)
    for pr in (1, 2, 3):
        b.propose("cost-optimizer", pr, cid(pr), pr)
        b.add("glassbox-ci", "check", pr + 0.5, corr=cid(pr), pr=pr, result="PASSED")
    b.add("glassbox-bot", "pr.close", 10, corr=cid(1), pr=1, merged=False)
    b.add(
        "glassbox-bot", "approvals", 11, corr=cid(2), pr=2, satisfied=False, discarded=[{"state": "CHANGES_REQUESTED"}]
    )
    b.add("glassbox-bot", "merge", 12, corr=cid(3), pr=3, auto_merge=True)
    m = compute_metrics(b.ledger.events()).per_agent["cost-optimizer"]
    assert (m.human_override_rate.numerator, m.human_override_rate.denominator) == (2, 3)
    assert m.auto_approved.value == 1.0


def test_audit_show_is_timed_per_agent_on_a_bounded_sample(ledger: Ledger) -> None:
    from bot.audit.metrics import time_audit_show

    shown: list[str] = []
    timings = time_audit_show(ledger.events(), shown.append, per_agent_limit=1)
    agents = {k for k in timings if k != "overall"}
    assert agents and len(shown) == len(agents)  # one decision per agent, each rebuilt once
    assert len(timings["overall"].seconds) == len(shown)
    assert all(t >= 0 for t in timings["overall"].seconds)
    report = compute_metrics(ledger.events())
    report.audit_show = timings
    assert set(report.as_dict()["audit_show_seconds"]) == agents | {"overall"}


def test_preflight_denials_count_as_policy_denials(tmp_path: Path, signers: dict[str, Signer]) -> None:
    """Two proposals refused at pre-flight and one that passed it and was checked: 2 denials in 3 pre-flights and
    1 check, not "0 of 1 checks". A refusal at scope never reached policy and is not an evaluation."""
    b = Book(tmp_path / "l.jsonl", signers)
    b.propose("network-agent", 0, cid(1), None, Outcome.DENY, stage="preflight", preflight="denied")
    b.propose("network-agent", 1, cid(2), None, Outcome.DENY, stage="preflight")  # a ledger from before the field
    b.propose("network-agent", 2, cid(3), None, Outcome.DENY, stage="scope", preflight="not run")
    b.propose("network-agent", 3, cid(4), 7, stage="opened", preflight="passed")
    b.propose("network-agent", 4, cid(5), 8, stage="opened", preflight="not run")
    b.add("glassbox-ci", "check", 5, corr=cid(4), pr=7, result="PASSED")
    rate = compute_metrics(b.ledger.events()).overall.policy_denial_rate
    assert (rate.numerator, rate.denominator) == (2, 4), rate


def test_escalation_is_needing_humans_beyond_the_autonomy(tmp_path: Path, signers: dict[str, Signer]) -> None:
    """An agent PR escalates when its approvals ask for a code owner or a risk-tier approver; one that only needs
    the single reviewer its autonomy implies does not, nor does an auto-merged one, nor a human's PR."""
    b = Book(tmp_path / "l.jsonl", signers)
    owner = {"id": "codeowners:6", "source": "codeowners", "owners": ["@acme/data"]}
    anyone = {"id": "autonomy:human", "source": "autonomy", "owners": ["any person"]}
    b.propose("cost-optimizer", 0, cid(1), 1)
    b.add("glassbox-bot", "approvals", 1, corr=cid(1), pr=1, satisfied=True, required=[])
    b.propose("network-agent", 2, cid(2), 2)
    b.add("glassbox-bot", "approvals", 3, Outcome.DENY, corr=cid(2), pr=2, satisfied=False, required=[anyone])
    b.propose("network-agent", 4, cid(3), 3)
    b.add("glassbox-bot", "approvals", 5, Outcome.DENY, corr=cid(3), pr=3, satisfied=False, required=[owner])
    b.add("glassbox-bot", "approvals", 6, corr=cid(3), pr=3, satisfied=True, required=[owner])  # one PR, once
    b.add("glassbox-bot", "approvals", 7, Outcome.DENY, pr=9, satisfied=False, required=[owner])  # a human's PR
    report = compute_metrics(b.ledger.events())
    assert report.overall.escalated.display == "33.3% (1/3)"
    assert report.per_agent["network-agent"].escalated.display == "50.0% (1/2)"
    assert report.per_agent["cost-optimizer"].escalated.display == "0.0% (0/1)"


def test_every_metric_states_what_it_counts(ledger: Ledger) -> None:
    data = compute_metrics(ledger.events()).as_dict()
    for scope in [data["overall"], *data["per_agent"].values()]:
        for name, metric in scope.items():
            if name == "events":
                continue
            assert metric["numerator_counts"] and metric["denominator_counts"], name
            assert metric["actions"] and all(isinstance(a, str) for a in metric["actions"]), name
    assert "pre-flight" in data["overall"]["policy_denial_rate"]["numerator_counts"]
