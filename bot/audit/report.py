"""`audit report --html`: one self-contained HTML page an auditor can read without running anything.

Four parts, each read from records (never a decision recomputed):

- **what `audit verify` reports** (with ``--repo``): its findings, one row each with what to do
  (:data:`bot.audit.findings.FINDINGS`): out-of-band merges, direct pushes, break-glass deploys, ...
- **ledger integrity**: the whole live ledger checked once (sequence, hash chain, digests, signatures by the
  ledger-signer keys, from the archive anchor on): how many events, the head digest, and either "verified" or
  the first broken link. With ``--repo`` the keys come from the registry at the newest commit that reached the
  branch through the governed path (`audit verify`'s trust anchor), never from an ungoverned head.
- **decision chains**: per correlation id, propose → check (result, risk, rule ids) → approvals → merge →
  deploy, each link marked ✔ or ✘. A mark says whether the ledger event behind the link verifies (its digest,
  its signature by a trusted ledger signer that is the event's actor, and no chain problem at its seq) and,
  when ``--attestations`` is given, whether the verdict attestation for the checked head verifies and says
  what the check event says; with ``--deploy-state``, whether the deploy record agrees with the deploy event.
  A deploy under break-glass wears an amber "break-glass" badge; steps never reached collapse into one line.
- **metrics**: :func:`bot.audit.metrics.compute_metrics`, with small inline SVG bar charts per agent.

Ledger text is untrusted (agents write reasons, paths, ids): the page is rendered from
``bot/templates/audit_report.html.j2`` with Jinja2's autoescape on, from plain data, with nothing marked safe.
Inline CSS only, no scripts, no external assets.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import ValidationError

from bot.audit.findings import FINDINGS
from bot.audit.history import HistoryReport, VerifyRequest, verify_history
from bot.audit.metrics import Metrics, MetricsReport, Ratio, compute_metrics
from bot.audit.retention import archive_anchor
from bot.deploy.gate import DeployReport
from bot.errors import UserError
from bot.records import AuditEvent, Outcome
from bot.registry import Registry, load_registry
from bot.trust.anchors import export_tree
from bot.trust.attestations import attestation_path, load_attestation
from bot.trust.conventions import REGISTRY_DIR
from bot.trust.ledger import Ledger, LedgerKeys, LedgerReport, ledger_keys

# the chain an auditor follows, in order; other actions of a decision are listed under it
STAGES = ("propose", "check", "approvals", "merge", "deploy")

# --------------------------------------------------------------------------------------------------
# trust


@dataclass(frozen=True)
class Trust:
    """Where signatures are checked against: the ledger-signer keys and the registry they came from."""

    registry: Registry
    source: str
    keys: LedgerKeys  # keyid → raw ed25519 public key (ledger signers), each bound to its identity


def load_trust(
    *, repo: Path | None, registry: Path | None, ref: str = "main", anchor: tuple[str, int | None] | None = None
) -> Trust | None:
    """Trust from ``repo``'s registry (preferred) or a registry directory; None when neither.

    In ``repo``, the registry is read at ``anchor`` (commit, PR), the newest commit that came through the
    governed path as `audit verify` found it; without one, at ``ref``.
    """
    if repo is not None:
        where = anchor[0] if anchor else ref
        try:
            commit = git.Repo(repo).commit(where)
        except (git.exc.GitError, OSError, ValueError) as exc:
            raise UserError(f"--repo {repo} / --registry-ref {ref}: cannot read the registry there ({exc})") from None
        with tempfile.TemporaryDirectory(prefix="glassbox-report-") as scratch:
            reg = load_registry(export_tree(commit, REGISTRY_DIR, Path(scratch)))
        if anchor is None:
            source = f"registry/ at {ref} ({commit.hexsha[:12]}) of {repo}"
        else:
            via = f"PR #{anchor[1]}" if anchor[1] is not None else f"the first commit of {ref}: no governed merge"
            source = f"registry/ at {commit.hexsha[:12]} ({via}), the newest governed commit on {ref} of {repo}"
    elif registry is not None:
        reg = load_registry(registry)
        source = f"registry directory {registry}"
    else:
        return None
    return Trust(registry=reg, source=source, keys=ledger_keys(reg))


# --------------------------------------------------------------------------------------------------
# integrity


@dataclass
class Integrity:
    report: LedgerReport
    signatures_checked: bool
    anchor: tuple[int, str]
    problems_by_seq: dict[int, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.report.ok

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.report.as_dict(),
            "signatures_checked": self.signatures_checked,
            "anchor": {"seq": self.anchor[0], "prev": self.anchor[1]},
        }


def check_integrity(ledger: Ledger, trust: Trust | None) -> Integrity:
    """Verify the whole live ledger once. Without trust, only sequence, chain and digests are checked."""
    keys = trust.keys if trust else LedgerKeys({}, {})
    anchor = archive_anchor(ledger, keys if trust else None)
    report = ledger.verify(keys, start_seq=anchor[0], start_prev=anchor[1])
    if trust is None:
        # nothing to check signatures against: say so once, rather than flag every event as untrusted
        report.problems = [p for p in report.problems if p.kind not in ("unknown-key", "high-water-key")]
    by_seq: dict[int, list[str]] = {}
    for p in report.problems:
        if p.seq is not None:
            by_seq.setdefault(p.seq, []).append(f"{p.kind}: {p.message}")
    return Integrity(report=report, signatures_checked=trust is not None, anchor=anchor, problems_by_seq=by_seq)


@dataclass(frozen=True)
class Mark:
    """One link's verification: ok True (✔), False (✘) or None (not checked / not reached)."""

    ok: bool | None
    detail: str

    @property
    def symbol(self) -> str:
        return {True: "✔", False: "✘", None: "–"}[self.ok]


def _and(marks: Iterable[Mark]) -> Mark:
    marks = list(marks)
    bad = [m for m in marks if m.ok is False]
    if bad:
        return Mark(False, "; ".join(m.detail for m in bad))
    if any(m.ok is None for m in marks):
        return Mark(None, "; ".join(m.detail for m in marks if m.ok is None))
    return Mark(True, "; ".join(m.detail for m in marks))


class Verifier:
    """Marks for events, attestations and deploy records, from the integrity pass and the trust anchor."""

    def __init__(
        self,
        integrity: Integrity,
        trust: Trust | None,
        attestations: Path | None,
        deploy_state: Path | None,
    ) -> None:
        self.integrity = integrity
        self.trust = trust
        self.attestations = attestations
        self.deploy_state = deploy_state
        self._verdicts: dict[str, tuple[Any, str | None]] = {}

    def event(self, e: AuditEvent) -> Mark:
        problems = list(self.integrity.problems_by_seq.get(e.seq, []))
        if self.trust is None:
            if problems:
                return Mark(False, f"seq {e.seq}: " + "; ".join(problems))
            return Mark(None, f"seq {e.seq}: chain and digest verify; signature not checked (no trust anchor)")
        signer = self.trust.keys.identity(e.signature.keyid)
        if signer is not None and signer != e.actor.id:
            problems.append(f"signed with {signer}'s key but claims actor {e.actor.id}")
        if problems:
            return Mark(False, f"seq {e.seq}: " + "; ".join(problems))
        return Mark(True, f"seq {e.seq}: digest, chain and {e.actor.id}'s signature verify")

    def verdict(self, head: str) -> tuple[Any, str | None]:
        """(Verdict or None, problem or None) for the attestation of ``head``; cached."""
        if head not in self._verdicts:
            self._verdicts[head] = self._load_verdict(head)
        return self._verdicts[head]

    def _load_verdict(self, head: str) -> tuple[Any, str | None]:
        assert self.attestations is not None
        if self.trust is None:
            if not attestation_path(self.attestations, head).exists():
                return None, f"no attestation for head {head[:12]} in {self.attestations}"
            return None, "attestation signature not checked (no trust anchor)"
        filed = load_attestation(self.attestations, head, self.trust.registry)
        return filed.verdict, filed.problem

    def check(self, e: AuditEvent) -> Mark:
        marks = [self.event(e)]
        head = e.subject.commit
        if self.attestations is not None and head:
            verdict, problem = self.verdict(head)
            if verdict is None:
                marks.append(Mark(None if self.trust is None else False, problem or "no verdict"))
            else:
                diffs = []
                if verdict.result.value != e.details.get("result"):
                    diffs.append(f"attested {verdict.result.value}, ledger says {e.details.get('result')}")
                if verdict.risk.value != e.details.get("risk"):
                    diffs.append(f"attested risk {verdict.risk.value}, ledger says {e.details.get('risk')}")
                if verdict.change.head_commit != head:
                    diffs.append(f"attests head {verdict.change.head_commit[:12]}")
                if diffs:
                    marks.append(Mark(False, "attestation disagrees: " + "; ".join(diffs)))
                else:
                    marks.append(Mark(True, f"attestation for {head[:12]} verifies and agrees"))
        return _and(marks)

    def deploy(self, e: AuditEvent) -> Mark:
        marks = [self.event(e)]
        logged = {d.get("deployment_id"): d for d in e.details.get("deployments") or [] if isinstance(d, Mapping)}
        if self.deploy_state is not None and e.subject.commit and logged:
            path = self.deploy_state / "deployments" / f"{e.subject.commit}.json"
            try:
                record = DeployReport.model_validate_json(path.read_bytes())
            except FileNotFoundError:
                marks.append(Mark(False, f"no deploy record at {path.name}"))
            except ValidationError as exc:
                marks.append(Mark(False, f"deploy record {path.name} is not valid: {exc.errors()[0]['msg']}"))
            else:
                wrong = [
                    d.deployment_id
                    for d in record.deployments
                    if d.deployment_id in logged
                    and (
                        logged[d.deployment_id].get("state_digest"),
                        logged[d.deployment_id].get("credential_id"),
                        logged[d.deployment_id].get("result"),
                    )
                    != (d.state_digest, d.credential_id, d.result)
                ]
                missing = set(logged) - {d.deployment_id for d in record.deployments}
                if wrong or missing:
                    marks.append(Mark(False, f"deploy record disagrees with the ledger ({len(wrong) + len(missing)})"))
                else:
                    marks.append(Mark(True, "deploy record agrees with the ledger"))
        return _and(marks)

    def mark(self, e: AuditEvent) -> Mark:
        if e.action == "check":
            return self.check(e)
        if e.action == "deploy":
            return self.deploy(e)
        return self.event(e)


# --------------------------------------------------------------------------------------------------
# decisions: the ledger's events grouped by the change they belong to


@dataclass
class Decision:
    key: str  # the correlation id, or "commit <sha>" for a deploy no proposal explains
    correlation_id: str | None
    events: list[AuditEvent] = field(default_factory=list)

    @property
    def repo(self) -> str | None:
        return next((e.subject.repo for e in self.events if e.subject.repo), None)

    @property
    def pr(self) -> int | None:
        return next((e.subject.pr for e in self.events if e.subject.pr is not None), None)

    @property
    def agent_id(self) -> str | None:
        for e in self.events:
            agent = e.details.get("agent_id")
            if isinstance(agent, str) and agent:
                return agent
        return None

    def of(self, action: str) -> list[AuditEvent]:
        return [e for e in self.events if e.action == action]

    def actions(self) -> set[str]:
        return {e.action for e in self.events}

    @property
    def outcome(self) -> str:
        """What happened last to this change, in words, read from its events."""
        for action, allow, deny in (
            ("deploy", "deployed", "deploy refused"),
            ("merge", "merged, not deployed", "merge refused"),
            ("approvals", "approved, not merged", "waiting for approvals"),
            ("check", "checked", "denied by the check"),
            ("propose", "proposed", "refused at proposal"),
        ):
            found = self.of(action)
            if found:
                allowed = [e for e in found if e.outcome is Outcome.ALLOW]
                if action == "check" and found[-1].outcome is not Outcome.ALLOW:
                    return deny
                return allow if allowed else deny
        return self.events[-1].action if self.events else "empty"


def group_decisions(events: Sequence[AuditEvent]) -> tuple[list[Decision], list[AuditEvent]]:
    """(decisions in order of first appearance, events that belong to none).

    An event joins a decision by its correlation id; one without (a merge, a credential, a break-glass use)
    joins through its PR, its commit (a merge's commit carries the decision on to deploy), or a break-glass
    grant id. A deploy that no proposal explains (a direct push) becomes its own decision, keyed by commit.
    """
    decisions: dict[str, Decision] = {}
    by_pr: dict[tuple[str, int], str] = {}
    by_commit: dict[str, str] = {}
    by_grant: dict[str, str] = {}

    def learn(key: str, e: AuditEvent) -> None:
        if e.subject.pr is not None:
            by_pr.setdefault((e.subject.repo or "", e.subject.pr), key)
        for sha in (e.subject.commit, e.details.get("head_sha")):
            if isinstance(sha, str) and sha:
                by_commit.setdefault(sha, key)
        grant = e.details.get("grant_id") or e.details.get("break_glass")
        if isinstance(grant, str) and grant:
            by_grant.setdefault(grant, key)

    for e in events:  # first pass: what the correlation ids say
        if e.correlation_id:
            decisions.setdefault(e.correlation_id, Decision(e.correlation_id, e.correlation_id))
            learn(e.correlation_id, e)
    placed: dict[int, str] = {}
    for e in events:  # second pass, in ledger order, so a merge's commit is known before its deploy
        key: str | None = e.correlation_id
        if key is None and e.subject.pr is not None:
            key = by_pr.get((e.subject.repo or "", e.subject.pr))
        if key is None and e.subject.commit:
            key = by_commit.get(e.subject.commit)
        if key is None and e.action == "deploy" and e.subject.commit:
            key = f"commit {e.subject.commit}"
            decisions.setdefault(key, Decision(key, None))
        if key is not None:
            placed[e.seq] = key
            learn(key, e)
    leftover: list[AuditEvent] = []
    for e in events:  # break-glass grants opened before the use that names them
        grant = e.details.get("grant_id")
        key = placed.get(e.seq) or (by_grant.get(grant) if isinstance(grant, str) else None)
        if key is None:
            leftover.append(e)
        else:
            decisions[key].events.append(e)
    return [d for d in decisions.values() if d.events], leftover


# --------------------------------------------------------------------------------------------------
# the page: plain data for bot/templates/audit_report.html.j2, rendered with autoescape on

_ENV = Environment(
    loader=PackageLoader("bot", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def _mark(m: Mark) -> dict[str, str]:
    return {"symbol": m.symbol, "cls": {True: "ok", False: "bad", None: "na"}[m.ok], "detail": m.detail}


def _short(sha: object, n: int = 12) -> str:
    return str(sha)[:n] if sha else "-"


@dataclass
class ReportRequest:
    ledger: Path
    since: datetime | None = None
    attestations: Path | None = None
    deploy_state: Path | None = None
    repo: Path | None = None
    registry: Path | None = None
    registry_ref: str = "main"  # with --repo: the protected branch whose governed history sets the trust anchor
    now: datetime | None = None


@dataclass
class ReportResult:
    html: str
    events: int
    decisions: int
    verified: bool
    signatures_checked: bool
    broken_links: int
    findings: int = 0  # `audit verify` findings shown at the top (failing and reported)
    trust_source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "decisions": self.decisions,
            "ledger_verified": self.verified,
            "signatures_checked": self.signatures_checked,
            "broken_links": self.broken_links,
            "findings": self.findings,
            "trust": self.trust_source,
        }


def _integrity(integrity: Integrity, trust: Trust | None, path: Path) -> dict[str, Any]:
    r = integrity.report
    if r.ok and integrity.signatures_checked:
        banner, cls = f"✔ verified: {r.events} signed, hash-chained events", "ok"
    elif r.ok:
        banner = (
            f"– chain and digests verified for {r.events} events; signatures NOT checked (no trust anchor: "
            "pass --repo or --registry)"
        )
        cls = "na"
    else:
        p = r.problems[0]
        banner = f"✘ broken: {len(r.problems)} problem(s); first at line {p.line}, seq {p.seq}: {p.kind}: {p.message}"
        cls = "bad"
    rows = [
        ("ledger", str(path), True),
        ("events", r.events, False),
        ("head digest", r.head, True),
        ("anchored at", f"seq {integrity.anchor[0]} (prev {integrity.anchor[1][:23]}…)", False),
        ("signatures checked against", trust.source if trust else "nothing: no trust anchor given", False),
        ("signed by", ", ".join(f"{k} ({v})" for k, v in sorted(r.signers.items())) or "-", False),
    ]
    return {"banner": banner, "banner_cls": cls, "rows": rows, "problems": r.problems}


def _rules(findings: object) -> list[dict[str, str]]:
    if not isinstance(findings, list):
        return []
    chips = []
    seen: set[tuple[str, str]] = set()
    for f in sorted(
        (f for f in findings if isinstance(f, Mapping)),
        key=lambda f: (str(f.get("status")) != "deny", f.get("rule_id")),
    ):
        key = (str(f.get("rule_id")), str(f.get("status")))
        if key in seen:
            continue
        seen.add(key)
        status = str(f.get("status"))
        chips.append(
            {
                "text": f"{f.get('rule_id')} {status}",
                "cls": "rule" if status == "deny" else "rule warn",
                "title": f"severity {f.get('severity')}",
            }
        )
    return chips


def _step_body(action: str, e: AuditEvent) -> tuple[str, list[str], list[dict[str, str]]]:
    """(what happened, the lines under it, rule chips) for the step a decision's event stands for."""
    d = e.details
    if action == "propose":
        model = d.get("model") if isinstance(d.get("model"), Mapping) else {}
        prompt = d.get("prompt") if isinstance(d.get("prompt"), Mapping) else {}
        assert isinstance(model, Mapping) and isinstance(prompt, Mapping)
        items = [
            f"agent {d.get('agent_id')}, asked by {d.get('requested_by')}",
            f"model {model.get('model_id', '?')}, prompt {prompt.get('template_id', '?')}",
            *(["draft PR"] if d.get("draft") else []),
            *[str(r) for r in d.get("reasons") or []],
        ]
        return f"{e.outcome.value}: {d.get('result') or '-'}", items, []
    if action == "check":
        what = f"{d.get('result', e.outcome.value)}, risk {d.get('risk', '?')}"
        return what, [str(x) for x in d.get("errors") or []], _rules(d.get("findings"))
    if action == "approvals":
        counted = [c.get("user") for c in d.get("counted") or [] if isinstance(c, Mapping)]
        discarded = [f"{c.get('user')}: {c.get('reason')}" for c in d.get("discarded") or [] if isinstance(c, Mapping)]
        items = [
            f"counted: {', '.join(str(c) for c in counted) or 'none'}",
            *(f"discarded {x}" for x in discarded),
            *([e.reason] if not d.get("satisfied") and e.reason else []),
        ]
        return ("satisfied" if d.get("satisfied") else "not satisfied"), items, []
    if action == "merge":
        merged = e.outcome is Outcome.ALLOW and d.get("merged", True)
        items = [
            f"{d.get('method', '?')} by {e.actor.id}" + (", auto-merge" if d.get("auto_merge") else ""),
            *[str(r) for r in d.get("reasons") or []],
        ]
        return f"{'merged' if merged else 'not merged'} {_short(e.subject.commit)}", items, []
    # deploy
    deployments = [x for x in d.get("deployments") or [] if isinstance(x, Mapping)]
    lines = [
        f"{x.get('stack')}: {x.get('result')}" + (" (simulated)" if x.get("simulated") else "") for x in deployments
    ]
    if d.get("break_glass"):
        lines.append(f"under break-glass grant {d.get('break_glass')}")
    if e.outcome is not Outcome.ALLOW:
        lines.append(e.reason)
    what = f"{e.outcome.value}: {e.subject.stack + ' ' if e.subject.stack else ''}at {_short(e.subject.commit)}"
    return what, lines, []


def _event_row(e: AuditEvent, verifier: Verifier) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "time": e.time.strftime("%Y-%m-%d %H:%M:%S"),
        "actor": f"{e.actor.id} ({e.actor.kind.value})",
        "action": e.action,
        "outcome": e.outcome.value,
        "reason": e.reason,
        "mark": _mark(verifier.mark(e)),
    }


def break_glass_deploy(decision: Decision) -> AuditEvent | None:
    """The decision's allowed deploy made under a break-glass grant, if its last allowed deploy was one."""
    allowed = [e for e in decision.of("deploy") if e.outcome is Outcome.ALLOW]
    return allowed[-1] if allowed and allowed[-1].details.get("break_glass") else None


def _badge(decision: Decision) -> tuple[str, str, str]:
    """(label, css class, hover text) of the decision's outcome pill; a break-glass deploy is amber."""
    outcome = decision.outcome
    bg = break_glass_deploy(decision) if outcome == "deployed" else None
    if bg is not None:
        grant = str(bg.details.get("break_glass"))
        uses = [e for e in decision.of("breakglass.use") if e.details.get("grant_id") == grant]
        ticket = uses[-1].details.get("ticket") if uses else None
        return "break-glass", "pill bg", f"deployed without approvals under grant {grant} (ticket {ticket or '?'})"
    good = outcome in ("deployed", "merged, not deployed", "approved, not merged")
    stopped = "refused" in outcome or "denied" in outcome
    return outcome, "pill ok" if good else ("pill bad" if stopped else "pill"), outcome


def _decision(decision: Decision, verifier: Verifier) -> tuple[dict[str, Any], int]:
    steps: list[dict[str, Any]] = []
    not_reached: list[str] = []
    broken = 0
    reached = [i for i, action in enumerate(STAGES) if decision.of(action)]
    for i, action in enumerate(STAGES):
        found = decision.of(action)
        if not found:
            # a missing link before one that happened is a gap an auditor must see; an unreached step collapses
            if reached and i < reached[-1]:
                steps.append({"gap": True, "name": action})
            else:
                not_reached.append(action)
            continue
        # the step shows the last event of its kind; every event is in the table below
        allowed = [e for e in found if e.outcome is Outcome.ALLOW]
        shown = found[-1] if action in ("check", "approvals") else (allowed or found)[-1]
        m = _and(verifier.mark(e) for e in found)
        broken += m.ok is False
        what, items, rules = _step_body(action, shown)
        steps.append(
            {
                "gap": False,
                "name": action + (f" ({len(found)} events)" if len(found) > 1 else ""),
                "mark": _mark(m),
                "what": what,
                "lines": items,
                "rules": rules,
                "why": m.detail if m.ok is False else None,
            }
        )
    pill, pill_cls, pill_title = _badge(decision)
    title = decision.correlation_id or decision.key
    meta = " · ".join(
        x
        for x in (
            f"PR #{decision.pr}" if decision.pr is not None else "no PR",
            f"agent {decision.agent_id}" if decision.agent_id else "no agent",
            decision.repo or "",
            f"{len(decision.events)} event{'' if len(decision.events) == 1 else 's'}",
        )
        if x
    )
    also = [
        {"text": f"{e.action} {e.outcome.value}", "mark": _mark(verifier.mark(e))}
        for e in decision.events
        if e.action not in STAGES
    ]
    return {
        "title": title,
        "pill": pill,
        "pill_cls": pill_cls,
        "pill_title": pill_title,
        "meta": meta,
        "steps": steps,
        "not_reached": not_reached,
        "also": also,
        "events": [_event_row(e, verifier) for e in decision.events],
    }, broken


def _chart(title: str, rows: Sequence[tuple[str, Ratio]]) -> dict[str, Any]:
    """A horizontal bar per agent: the ratio as a percentage, n/a when there was nothing to count."""
    bar_w, row_h = 150, 24
    return {
        "title": title,
        "height": 28 + row_h * max(1, len(rows)),
        "rows": [
            {
                "y": 28 + i * row_h,
                "name": name[:15],
                "width": None if ratio.value is None else max(1.0, bar_w * ratio.value),
                "display": ratio.display,
            }
            for i, (name, ratio) in enumerate(rows)
        ],
    }


def _metrics(report: MetricsReport) -> dict[str, Any]:
    agents = sorted(report.per_agent)
    columns: list[tuple[str, Metrics]] = [("overall", report.overall)] + [(a, report.per_agent[a]) for a in agents]
    table = [m.rows() for _, m in columns]
    return {
        "since": f"since {report.since.isoformat()}" if report.since else "over the whole ledger",
        "charts": [
            _chart("Auto-approved (per agent)", [(a, report.per_agent[a].auto_approved) for a in agents]),
            _chart("Policy denial rate (per agent)", [(a, report.per_agent[a].policy_denial_rate) for a in agents]),
            _chart("Escalations (per agent)", [(a, report.per_agent[a].escalated) for a in agents]),
        ],
        "head": ["metric", *(name for name, _ in columns)],
        "rows": [[name, *(col[i][1] for col in table)] for i, (name, _) in enumerate(table[0])],
    }


def governed_trust(
    *,
    ledger: Path,
    repo: Path | None,
    registry: Path | None,
    branch: str,
    attestations: Path | None,
    deploy_state: Path | None,
) -> tuple[Trust | None, HistoryReport | None]:
    """Trust for a page or a pack, and `audit verify`'s report when there is a repository.

    With ``repo``, the keys come from the registry at verify's trust anchor: the newest commit on ``branch``
    that came through a governed merge (without attestations no merge counts, so the branch's first commit).
    """
    if repo is None:
        return load_trust(repo=None, registry=registry), None
    with tempfile.TemporaryDirectory(prefix="glassbox-report-") as empty:
        history = verify_history(
            VerifyRequest(
                ledger=ledger,
                repo=repo,
                attestations=attestations or Path(empty),
                deploy_state=deploy_state,
                branch=branch,
            )
        )
    anchor = (history.trust_anchor or "", history.trust_anchor_pr)
    return load_trust(repo=repo, registry=registry, ref=branch, anchor=anchor), history


def _findings(history: HistoryReport | None, req: ReportRequest) -> dict[str, Any]:
    if history is None:
        return {"ran": False, "summary": "audit verify not run: pass --repo (and --attestations) to list its findings"}
    if req.attestations is None:
        return {
            "ran": False,
            "summary": "audit verify not run: pass --attestations with --repo to list its findings; without "
            "attestations no merge counts as governed, so trust is read from the first commit",
        }
    items = [
        {
            "kind": f.kind.value,
            "fails": f.fails,
            "meaning": FINDINGS[f.kind].meaning,
            "commit": _short(f.commit),
            "touched": f.touched or "-",
            "message": f.message,
            "to_do": f.to_do,
        }
        for f in history.findings()
    ]
    failing = sum(f.fails for f in history.findings())
    summary = (
        f"{history.branch} at {_short(history.branch_head)}: {len(history.governed_commits)} governed commit(s) "
        f"checked; {failing} finding(s) that fail verify, {len(history.notices)} reported "
        f"(glassbox audit verify)."
    )
    return {"ran": True, "summary": summary, "list": items}


def build_report(req: ReportRequest) -> ReportResult:
    ledger = Ledger.existing(req.ledger)
    trust, history = governed_trust(
        ledger=req.ledger,
        repo=req.repo,
        registry=req.registry,
        branch=req.registry_ref,
        attestations=req.attestations,
        deploy_state=req.deploy_state,
    )
    integrity = check_integrity(ledger, trust)
    everything = list(ledger.events())
    in_period = [e for e in everything if req.since is None or e.time >= req.since]
    # a decision with any event in the period is shown whole, so a chain begun earlier is not cut in two
    all_decisions, all_other = group_decisions(everything)
    decisions = [d for d in all_decisions if req.since is None or any(e.time >= req.since for e in d.events)]
    other = [e for e in all_other if req.since is None or e.time >= req.since]
    verifier = Verifier(integrity, trust, req.attestations, req.deploy_state)
    blocks, broken = [], 0
    for d in decisions:
        block, bad = _decision(d, verifier)
        blocks.append(block)
        broken += bad
    now = (req.now or datetime.now(UTC)).astimezone(UTC)
    period = "every event in the live ledger"
    if req.since:
        period = f"decisions with events since {req.since.isoformat()} (each shown whole)"
    verified = integrity.ok and integrity.signatures_checked
    findings = _findings(history, req)
    cards = [
        (integrity.report.events, "ledger events"),
        ("verified" if verified else ("broken" if not integrity.ok else "unsigned check"), "ledger"),
        (len(decisions), "decisions"),
        (broken, "links that do not verify"),
    ]
    if findings["ran"]:
        cards.append((len(findings["list"]), "audit verify findings"))
    sources = "; ".join(
        (
            f"attestations: {req.attestations}"
            if req.attestations
            else "attestations: not given (check marks rest on the ledger only)",
            f"deploy state: {req.deploy_state}" if req.deploy_state else "deploy state: not given",
        )
    )
    page = _ENV.get_template("audit_report.html.j2").render(
        now=now.isoformat(timespec="seconds"),
        period=period,
        cards=cards,
        findings=findings,
        integrity=_integrity(integrity, trust, req.ledger),
        sources=sources,
        decisions=blocks,
        metrics=_metrics(compute_metrics(everything, since=req.since)),
        other=[_event_row(e, verifier) for e in other],
    )
    return ReportResult(
        html=page,
        events=len(in_period),
        decisions=len(decisions),
        verified=verified,
        signatures_checked=integrity.signatures_checked,
        broken_links=broken,
        findings=len(findings.get("list", [])),
        trust_source=trust.source if trust else None,
    )


def write_report(req: ReportRequest, out: Path) -> ReportResult:
    result = build_report(req)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(result.html, encoding="utf-8")
    return result
