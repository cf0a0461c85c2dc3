"""Governance metrics computed from the ledger alone, per agent and overall.

What each metric counts is defined once, in :data:`DEFINITIONS` (its numerator, its denominator and the
ledger actions they come from); ``metrics.json``, ``audit metrics`` and the HTML report all print from it.
An event is attributed to an agent by ``details.agent_id``, an agent actor, or the correlation id / PR of
the agent's ``propose`` event. A metric with nothing to count is ``n/a`` (``null`` in JSON), never an error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.records import ActorKind, AuditEvent, Outcome

NA = "n/a"


@dataclass(frozen=True)
class Definition:
    """What one metric is computed from: the words a reader needs to recompute it from the ledger."""

    title: str
    numerator: str
    denominator: str
    actions: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "numerator_counts": self.numerator,
            "denominator_counts": self.denominator,
            "actions": list(self.actions),
        }


# the escalation line: requirements that ask for humans beyond the one reviewer an agent's autonomy implies
ESCALATING_SOURCES = frozenset({"codeowners", "matrix"})
PREFLIGHT_RAN = frozenset({"passed", "denied"})

DEFINITIONS: dict[str, Definition] = {
    "auto_approved": Definition(
        "auto-approved",
        numerator="allowed merges with details.auto_merge true (merged with no human approval)",
        denominator="allowed merges",
        actions=("merge",),
    ),
    "escalated": Definition(
        "escalated",
        numerator=(
            "agent PRs that needed humans beyond the agent's autonomy: an approvals evaluation required a code "
            "owner or an approval-matrix approver (details.required[].source codeowners or matrix), or a check or "
            "approvals event had outcome escalate"
        ),
        denominator="agent PRs that reached the approvals gate (or escalated at check)",
        actions=("approvals", "check"),
    ),
    "policy_denial_rate": Definition(
        "policy denial rate",
        numerator=(
            "policy evaluations that denied: check events with outcome deny, and propose events refused at "
            "pre-flight (details.stage preflight)"
        ),
        denominator=(
            "policy evaluations: check events, and propose events that ran pre-flight (details.preflight passed "
            "or denied, or details.stage preflight)"
        ),
        actions=("check", "propose"),
    ),
    "human_override_rate": Definition(
        "human override rate",
        numerator=(
            "PRs with a PASSED check that a human then stopped (closed unmerged, or blocked by a change request "
            "in an approvals event: details.changes_requested / blocked_by non-empty or a discarded "
            "CHANGES_REQUESTED review), plus allowed break-glass uses"
        ),
        denominator="PRs with a PASSED check, plus allowed break-glass uses",
        actions=("check", "approvals", "pr.close", "close", "breakglass.use"),
    ),
    "time_to_approval": Definition(
        "time to approval",
        numerator="per PR, seconds from its first allowed check to the first later satisfied approvals evaluation",
        denominator="PRs approved after an allowed check (mean and p90 by nearest rank over them)",
        actions=("check", "approvals"),
    ),
    "tool_failure_rate": Definition(
        "tool failure rate",
        numerator="tool calls whose status is not ok (the latest propose event per correlation id counts)",
        denominator="tool calls in propose events' details.tool_calls (the evidence record's calls)",
        actions=("propose",),
    ),
}


@dataclass(frozen=True)
class Ratio:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    @property
    def display(self) -> str:
        v = self.value
        return NA if v is None else f"{v * 100:.1f}% ({self.numerator}/{self.denominator})"

    def as_dict(self) -> dict[str, Any]:
        v = self.value
        return {
            "value": None if v is None else round(v, 6),
            "numerator": self.numerator,
            "denominator": self.denominator,
            "display": self.display,
        }


@dataclass(frozen=True)
class Durations:
    seconds: tuple[float, ...]

    @property
    def mean(self) -> float | None:
        return sum(self.seconds) / len(self.seconds) if self.seconds else None

    @property
    def p90(self) -> float | None:
        if not self.seconds:
            return None
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]

    @property
    def display(self) -> str:
        if not self.seconds:
            return NA
        return f"mean {_human(self.mean)}, p90 {_human(self.p90)} ({len(self.seconds)} PRs)"

    def as_dict(self) -> dict[str, Any]:
        return {"count": len(self.seconds), "mean_seconds": self.mean, "p90_seconds": self.p90, "display": self.display}


def _human(seconds: float | None) -> str:
    if seconds is None:
        return NA
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


@dataclass(frozen=True)
class Metrics:
    events: int
    auto_approved: Ratio
    escalated: Ratio
    policy_denial_rate: Ratio
    human_override_rate: Ratio
    time_to_approval: Durations
    tool_failure_rate: Ratio

    def measured(self) -> dict[str, Ratio | Durations]:
        return {
            "auto_approved": self.auto_approved,
            "escalated": self.escalated,
            "policy_denial_rate": self.policy_denial_rate,
            "human_override_rate": self.human_override_rate,
            "time_to_approval": self.time_to_approval,
            "tool_failure_rate": self.tool_failure_rate,
        }

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"events": self.events}
        for name, value in self.measured().items():
            data[name] = {**value.as_dict(), **DEFINITIONS[name].as_dict()}
        return data

    def rows(self) -> list[tuple[str, str]]:
        return [("events", str(self.events))] + [
            (DEFINITIONS[name].title, value.display) for name, value in self.measured().items()
        ]


@dataclass
class MetricsReport:
    since: datetime | None
    overall: Metrics
    per_agent: dict[str, Metrics]
    # how long `audit show` took to rebuild each decision (measured, not read from the trail); None if not asked
    audit_show: dict[str, Durations] | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "since": self.since.isoformat() if self.since else None,
            "overall": self.overall.as_dict(),
            "per_agent": {k: v.as_dict() for k, v in sorted(self.per_agent.items())},
        }
        if self.audit_show is not None:
            data["audit_show_seconds"] = {k: v.as_dict() for k, v in sorted(self.audit_show.items())}
        return data


def time_audit_show(
    events: Iterable[AuditEvent], show: Callable[[str], object], *, per_agent_limit: int = 20
) -> dict[str, Durations]:
    """Time ``show`` (an `audit show` by correlation id) on up to ``per_agent_limit`` decisions per agent.

    The result has one entry per agent and one named ``overall``; it measures the reconstruction itself,
    which is the seed's "reconstruct a decision" bar, here in seconds rather than minutes.
    """
    chosen: dict[str, list[str]] = {}
    for event in events:
        agent = event.details.get("agent_id")
        if event.action != "propose" or not event.correlation_id or not isinstance(agent, str):
            continue
        ids = chosen.setdefault(agent, [])
        if event.correlation_id not in ids and len(ids) < per_agent_limit:
            ids.append(event.correlation_id)
    timings: dict[str, list[float]] = {}
    for agent, ids in chosen.items():
        for cid in ids:
            started = time.perf_counter()
            show(cid)
            took = time.perf_counter() - started
            timings.setdefault(agent, []).append(took)
            timings.setdefault("overall", []).append(took)
    return {k: Durations(tuple(v)) for k, v in timings.items()}


PrKey = tuple[str, ...]


@dataclass
class _Acc:
    events: int = 0
    merged: int = 0
    auto_merged: int = 0
    gated: set[PrKey] = field(default_factory=set)  # agent PRs that reached the approvals gate
    escalated: set[PrKey] = field(default_factory=set)
    evaluations: int = 0  # policy evaluations: checks and pre-flights
    denied: int = 0
    breakglass_uses: int = 0
    passed: set[PrKey] = field(default_factory=set)
    stopped: set[PrKey] = field(default_factory=set)
    first_allow: dict[PrKey, datetime] = field(default_factory=dict)
    satisfied_at: dict[PrKey, list[datetime]] = field(default_factory=dict)
    tool_calls: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, event: AuditEvent, key: PrKey | None, agent: str | None) -> None:
        self.events += 1
        d = event.details
        action = event.action
        if action == "merge" and event.outcome is Outcome.ALLOW:
            self.merged += 1
            self.auto_merged += d.get("auto_merge") is True
        if action in ("check", "approvals") and agent is not None and key is not None:
            if action == "approvals" or event.outcome is Outcome.ESCALATE:
                self.gated.add(key)
            if event.outcome is Outcome.ESCALATE or (action == "approvals" and _beyond_autonomy(d)):
                self.escalated.add(key)
        if action == "propose" and (d.get("stage") == "preflight" or d.get("preflight") in PREFLIGHT_RAN):
            self.evaluations += 1
            self.denied += event.outcome is Outcome.DENY
        if action == "check":
            self.evaluations += 1
            self.denied += event.outcome is Outcome.DENY
            if key is not None and (event.outcome is Outcome.ALLOW or d.get("result") == "PASSED"):
                self.passed.add(key)
                if event.outcome is Outcome.ALLOW and key not in self.first_allow:
                    self.first_allow[key] = event.time
        if action == "approvals" and key is not None:
            if d.get("satisfied") is True:
                self.satisfied_at.setdefault(key, []).append(event.time)
            if _changes_requested(d):
                self.stopped.add(key)
        if action in ("pr.close", "close") and key is not None and d.get("merged") is False:
            self.stopped.add(key)
        if action == "breakglass.use" and event.outcome is Outcome.ALLOW:
            self.breakglass_uses += 1
        if action == "propose" and isinstance(d.get("tool_calls"), list) and event.correlation_id:
            self.tool_calls[event.correlation_id] = d["tool_calls"]  # the latest record of the request wins

    def metrics(self) -> Metrics:
        durations = []
        for key, start in self.first_allow.items():
            later = [t for t in self.satisfied_at.get(key, []) if t >= start]
            if later:
                durations.append((min(later) - start).total_seconds())
        calls = [c for cs in self.tool_calls.values() for c in cs]
        failed = sum(1 for c in calls if _status(c) != "ok")
        overrides = len(self.passed & self.stopped) + self.breakglass_uses
        return Metrics(
            events=self.events,
            auto_approved=Ratio(self.auto_merged, self.merged),
            escalated=Ratio(len(self.escalated), len(self.gated)),
            policy_denial_rate=Ratio(self.denied, self.evaluations),
            human_override_rate=Ratio(overrides, len(self.passed) + self.breakglass_uses),
            time_to_approval=Durations(tuple(durations)),
            tool_failure_rate=Ratio(failed, len(calls)),
        )


def _non_empty(value: Any) -> bool:
    if isinstance(value, list | tuple | dict | str):
        return len(value) > 0
    return isinstance(value, int) and value > 0


def _changes_requested(details: Mapping[str, Any]) -> bool:
    """A blocking review: ``changes_requested`` / ``blocked_by`` non-empty, or a discarded CHANGES_REQUESTED."""
    if _non_empty(details.get("changes_requested")) or _non_empty(details.get("blocked_by")):
        return True
    discarded = details.get("discarded")
    return isinstance(discarded, list) and any(
        isinstance(d, Mapping) and str(d.get("state", "")).upper() == "CHANGES_REQUESTED" for d in discarded
    )


def _beyond_autonomy(details: Mapping[str, Any]) -> bool:
    """An approvals evaluation that asked for a code owner or an approval-matrix approver."""
    required = details.get("required")
    return isinstance(required, list) and any(
        isinstance(r, Mapping) and r.get("source") in ESCALATING_SOURCES for r in required
    )


def _status(call: Any) -> str:
    if isinstance(call, Mapping):
        return str(call.get("status", "unknown"))
    return str(call)


def _pr_key(event: AuditEvent) -> PrKey | None:
    if event.subject.pr is not None:
        return ("pr", event.subject.repo or "", str(event.subject.pr))
    if event.correlation_id:
        return ("cid", event.correlation_id)
    return None


class _Attribution:
    """Which agent an event belongs to, learned from the agents' own ``propose`` events."""

    def __init__(self, events: list[AuditEvent]) -> None:
        self.by_cid: dict[str, str] = {}
        self.by_pr: dict[tuple[str, int], str] = {}
        for e in events:
            agent = self.direct(e)
            if agent is None or e.action != "propose":
                continue
            if e.correlation_id:
                self.by_cid.setdefault(e.correlation_id, agent)
            if e.subject.pr is not None:
                self.by_pr.setdefault((e.subject.repo or "", e.subject.pr), agent)

    @staticmethod
    def direct(event: AuditEvent) -> str | None:
        agent = event.details.get("agent_id")
        if isinstance(agent, str) and agent:
            return agent
        return event.actor.id if event.actor.kind is ActorKind.AGENT else None

    def agent(self, event: AuditEvent) -> str | None:
        agent = self.direct(event)
        if agent is None and event.correlation_id:
            agent = self.by_cid.get(event.correlation_id)
        if agent is None and event.subject.pr is not None:
            agent = self.by_pr.get((event.subject.repo or "", event.subject.pr))
        return agent


def compute_metrics(events: Iterable[AuditEvent], *, since: datetime | None = None) -> MetricsReport:
    """The metrics over ``events`` at or after ``since`` (attribution looks at every event)."""
    everything = list(events)
    who = _Attribution(everything)
    overall = _Acc()
    agents: dict[str, _Acc] = {}
    keys: dict[str, PrKey] = {}  # correlation id → PR key, so a check and its approvals meet
    for e in everything:
        if e.correlation_id and e.subject.pr is not None:
            keys.setdefault(e.correlation_id, ("pr", e.subject.repo or "", str(e.subject.pr)))
    for e in everything:
        if since is not None and e.time < since:
            continue
        key = keys.get(e.correlation_id or "") if e.subject.pr is None else None
        key = key or _pr_key(e)
        agent = who.agent(e)
        overall.add(e, key, agent)
        if agent is not None:
            agents.setdefault(agent, _Acc()).add(e, key, agent)
    return MetricsReport(
        since=since, overall=overall.metrics(), per_agent={a: acc.metrics() for a, acc in agents.items()}
    )
