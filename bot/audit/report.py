"""`audit report --html`: one self-contained HTML page an auditor can read without running anything.

Three parts, each read from records (never a decision recomputed):

- **ledger integrity**: the whole live ledger checked once (sequence, hash chain, digests, signatures by the
  registry's ledger-signer keys, from the archive anchor on): how many events, the head digest, and either
  "verified" or the first broken link.
- **decision chains**: per correlation id, propose → check (result, risk, rule ids) → approvals → merge →
  deploy, each link marked ✔ or ✘. A mark says whether the ledger event behind the link verifies (its digest,
  its signature by a trusted ledger signer that is the event's actor, and no chain problem at its seq) and,
  when ``--attestations`` is given, whether the verdict attestation for the checked head verifies and says
  what the check event says; with ``--deploy-state``, whether the deploy record agrees with the deploy event.
- **metrics**: :func:`bot.audit.metrics.compute_metrics`, with small inline SVG bar charts per agent.

Ledger text is untrusted (agents write reasons, paths, ids), so every value goes through ``html.escape``: the
page is built from :class:`Html` fragments, and anything that is not already an ``Html`` is escaped on the
way in. Inline CSS only, no scripts, no external assets.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import git
from pydantic import ValidationError

from bot.audit.metrics import Metrics, MetricsReport, Ratio, compute_metrics
from bot.audit.retention import archive_anchor
from bot.deploy.gate import DeployReport, attestation_path
from bot.errors import GlassboxError, UserError
from bot.records import AuditEvent, Outcome
from bot.registry import KeyRole, Registry, load_registry
from bot.trust.anchors import export_tree
from bot.trust.attestations import verify_attestation
from bot.trust.conventions import REGISTRY_DIR
from bot.trust.keys import trusted_keys
from bot.trust.ledger import Ledger, LedgerReport

# the chain an auditor follows, in order; other actions of a decision are listed under it
STAGES = ("propose", "check", "approvals", "merge", "deploy")

# --------------------------------------------------------------------------------------------------
# trust


@dataclass(frozen=True)
class Trust:
    """Where signatures are checked against: the ledger-signer keys and the registry they came from."""

    registry: Registry
    source: str
    keys: dict[str, bytes]  # keyid → raw ed25519 public key (ledger signers)
    identities: dict[str, str]  # keyid → identity


def load_trust(*, repo: Path | None, registry: Path | None, ref: str = "main") -> Trust | None:
    """Trust from the registry at ``ref`` in ``repo`` (preferred) or a registry directory; None when neither."""
    if repo is not None:
        try:
            commit = git.Repo(repo).commit(ref)
        except (git.exc.GitError, OSError, ValueError) as exc:
            raise UserError(f"--repo {repo} / --registry-ref {ref}: cannot read the registry there ({exc})") from None
        with tempfile.TemporaryDirectory(prefix="glassbox-report-") as scratch:
            reg = load_registry(export_tree(commit, REGISTRY_DIR, Path(scratch)))
        source = f"registry/ at {ref} ({commit.hexsha[:12]}) of {repo}"
    elif registry is not None:
        reg = load_registry(registry)
        source = f"registry directory {registry}"
    else:
        return None
    keys = reg.keys_for(role=KeyRole.LEDGER_SIGNER)
    return Trust(
        registry=reg,
        source=source,
        keys=trusted_keys((k.keyid, k.public_key) for k in keys),
        identities={k.keyid: k.identity for k in keys},
    )


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
    keys = dict(trust.keys) if trust else {}
    anchor = archive_anchor(ledger, keys if trust else None)
    report = ledger.verify(keys, start_seq=anchor[0], start_prev=anchor[1])
    if trust is None:
        # nothing to check signatures against: say so once, rather than flag every event as untrusted
        report.problems = [p for p in report.problems if p.kind != "unknown-key"]
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
        signer = self.trust.identities.get(e.signature.keyid)
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
        path = attestation_path(self.attestations, head)
        try:
            envelope = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, f"no attestation for head {head[:12]} in {self.attestations}"
        except ValueError as exc:
            return None, f"{path.name} is not JSON: {exc}"
        if self.trust is None:
            return None, "attestation signature not checked (no trust anchor)"
        try:
            verdict, _ = verify_attestation(envelope, self.trust.registry)
        except GlassboxError as exc:
            return None, f"attestation does not verify: {exc.message}"
        return verdict, None

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
# HTML building: every string is escaped unless it is already an Html fragment


class Html(str):
    """A fragment that is already safe HTML."""

    __slots__ = ()


Node: TypeAlias = Html | str | int | float | Sequence["Node"] | None


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def render(node: Node) -> Html:
    if node is None:
        return Html("")
    if isinstance(node, Html):
        return node
    if isinstance(node, str | int | float):
        return Html(esc(node))
    return Html("".join(render(n) for n in node))


def tag(name: str, *children: Node, **attrs: str | None) -> Html:
    """``<name attrs>children</name>``; attribute names use ``_`` for ``-`` and ``cls`` for ``class``."""
    parts = [name]
    for key, value in attrs.items():
        if value is None:
            continue
        attr = "class" if key == "cls" else key.rstrip("_").replace("_", "-")
        parts.append(f'{attr}="{esc(value)}"')
    return Html(f"<{' '.join(parts)}>{render(list(children))}</{name}>")


def _mark(m: Mark) -> Html:
    cls = {True: "ok", False: "bad", None: "na"}[m.ok]
    return tag("span", m.symbol, cls=f"mark {cls}", title=m.detail)


def _short(sha: object, n: int = 12) -> str:
    return str(sha)[:n] if sha else "-"


CSS = """
:root{--ink:#1d2430;--muted:#5b6472;--line:#d9dee6;--ok:#17803d;--bad:#b42318;--na:#8a93a3;--accent:#2f5bd3}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);
 margin:0;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:28px 32px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 12px;border-bottom:2px solid var(--line);
 padding-bottom:6px}h3{font-size:15px;margin:0}
.sub{color:var(--muted)}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin:18px 0}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;min-width:170px}
.card .n{font-size:22px;font-weight:600}.card .l{color:var(--muted);font-size:12px;text-transform:uppercase}
.banner{border-radius:8px;padding:12px 16px;margin:10px 0;font-weight:600}
.banner.ok{background:#e7f6ec;border:1px solid #a8dcb8;color:var(--ok)}
.banner.bad{background:#fdecea;border:1px solid #f3b8b2;color:var(--bad)}
.banner.na{background:#f0f1f4;border:1px solid var(--line);color:var(--muted)}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{text-align:left;padding:6px 9px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eef1f5;font-size:12px;text-transform:uppercase;color:var(--muted)}
.decision{background:#fff;border:1px solid var(--line);border-radius:10px;margin:16px 0;padding:14px 16px}
.dhead{display:flex;justify-content:space-between;gap:12px;flex-wrap:wrap;align-items:baseline}
.pill{display:inline-block;border-radius:999px;padding:1px 10px;font-size:12px;font-weight:600;
 background:#eef1f5;color:var(--muted)}
.pill.ok{background:#e7f6ec;color:var(--ok)}.pill.bad{background:#fdecea;color:var(--bad)}
.chain{display:grid;grid-template-columns:repeat(5,1fr);gap:8px;margin:12px 0 8px}
.step{border:1px solid var(--line);border-radius:8px;padding:8px 10px;background:#fbfcfd;min-height:86px}
.step.absent{background:#f4f5f7;color:var(--na);border-style:dashed}
.step.gap{background:#fff7e6;border-color:#f0c36d;color:#8a5300}
.also{display:inline-block;margin-right:14px}.also .mark{float:none;font-size:13px}
.step .name{font-size:11px;text-transform:uppercase;color:var(--muted);font-weight:600;letter-spacing:.04em}
.step .what{font-weight:600;margin:2px 0}
.step ul{margin:2px 0 0;padding-left:16px}.step li{font-size:12.5px}
.mark{font-weight:700;font-size:15px;float:right}.mark.ok{color:var(--ok)}.mark.bad{color:var(--bad)}
.mark.na{color:var(--na)}
.rule{display:inline-block;font-family:"DejaVu Sans Mono",Menlo,monospace;font-size:12px;background:#fdecea;
 color:var(--bad);border-radius:4px;padding:0 5px;margin:1px 2px 1px 0}
.rule.warn{background:#fff4e0;color:#8a5300}
details{margin-top:6px}summary{cursor:pointer;color:var(--accent)}
.why{color:var(--bad)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px}
.chart{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px}
footer{margin-top:36px;color:var(--muted);font-size:12px}
"""


# --------------------------------------------------------------------------------------------------
# sections


@dataclass
class ReportRequest:
    ledger: Path
    since: datetime | None = None
    attestations: Path | None = None
    deploy_state: Path | None = None
    repo: Path | None = None
    registry: Path | None = None
    registry_ref: str = "main"
    now: datetime | None = None


@dataclass
class ReportResult:
    html: str
    events: int
    decisions: int
    verified: bool
    signatures_checked: bool
    broken_links: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "decisions": self.decisions,
            "ledger_verified": self.verified,
            "signatures_checked": self.signatures_checked,
            "broken_links": self.broken_links,
        }


def _integrity_section(integrity: Integrity, trust: Trust | None, path: Path) -> Html:
    r = integrity.report
    if r.ok and integrity.signatures_checked:
        banner = tag("div", f"✔ verified: {r.events} signed, hash-chained events", cls="banner ok")
    elif r.ok:
        banner = tag(
            "div",
            f"– chain and digests verified for {r.events} events; signatures NOT checked (no trust anchor: "
            "pass --repo or --registry)",
            cls="banner na",
        )
    else:
        p = r.problems[0]
        banner = tag(
            "div",
            f"✘ broken: {len(r.problems)} problem(s); first at line {p.line}, seq {p.seq}: {p.kind}: {p.message}",
            cls="banner bad",
        )
    rows: list[tuple[str, Node]] = [
        ("ledger", tag("code", str(path))),
        ("events", r.events),
        ("head digest", tag("code", r.head)),
        ("anchored at", f"seq {integrity.anchor[0]} (prev {integrity.anchor[1][:23]}…)"),
        ("signatures checked against", trust.source if trust else "nothing: no trust anchor given"),
        ("signed by", ", ".join(f"{k} ({v})" for k, v in sorted(r.signers.items())) or "-"),
    ]
    table = tag("table", [tag("tr", tag("th", k), tag("td", v)) for k, v in rows])
    problems: Html = Html("")
    if r.problems:
        problems = tag(
            "table",
            tag("tr", tag("th", "line"), tag("th", "seq"), tag("th", "kind"), tag("th", "problem")),
            [
                tag("tr", tag("td", p.line), tag("td", p.seq), tag("td", p.kind), tag("td", p.message))
                for p in r.problems
            ],
        )
    return tag("section", tag("h2", "Ledger integrity"), banner, table, problems, id="integrity")


def _rules(findings: object) -> Html:
    if not isinstance(findings, list):
        return Html("")
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
        cls = "rule" if status == "deny" else "rule warn"
        chips.append(tag("span", f"{f.get('rule_id')} {status}", cls=cls, title=f"severity {f.get('severity')}"))
    return tag("div", chips) if chips else Html("")


def _items(values: Iterable[Node]) -> Html:
    items = [tag("li", v) for v in values]
    return tag("ul", items) if items else Html("")


def _step_body(action: str, e: AuditEvent) -> list[Node]:
    d = e.details
    if action == "propose":
        model = d.get("model") if isinstance(d.get("model"), Mapping) else {}
        prompt = d.get("prompt") if isinstance(d.get("prompt"), Mapping) else {}
        assert isinstance(model, Mapping) and isinstance(prompt, Mapping)
        return [
            tag("div", f"{e.outcome.value}: {d.get('result') or '-'}", cls="what"),
            _items(
                [
                    f"agent {d.get('agent_id')}, asked by {d.get('requested_by')}",
                    f"model {model.get('model_id', '?')}, prompt {prompt.get('template_id', '?')}",
                    *(["draft PR"] if d.get("draft") else []),
                    *[str(r) for r in d.get("reasons") or []],
                ]
            ),
        ]
    if action == "check":
        return [
            tag("div", f"{d.get('result', e.outcome.value)}, risk {d.get('risk', '?')}", cls="what"),
            _rules(d.get("findings")),
            _items([str(x) for x in d.get("errors") or []]),
        ]
    if action == "approvals":
        counted = [c.get("user") for c in d.get("counted") or [] if isinstance(c, Mapping)]
        discarded = [f"{c.get('user')}: {c.get('reason')}" for c in d.get("discarded") or [] if isinstance(c, Mapping)]
        return [
            tag("div", "satisfied" if d.get("satisfied") else "not satisfied", cls="what"),
            _items(
                [
                    f"counted: {', '.join(str(c) for c in counted) or 'none'}",
                    *(f"discarded {x}" for x in discarded),
                    *([e.reason] if not d.get("satisfied") and e.reason else []),
                ]
            ),
        ]
    if action == "merge":
        merged = e.outcome is Outcome.ALLOW and d.get("merged", True)
        return [
            tag("div", f"{'merged' if merged else 'not merged'} {_short(e.subject.commit)}", cls="what"),
            _items(
                [
                    f"{d.get('method', '?')} by {e.actor.id}" + (", auto-merge" if d.get("auto_merge") else ""),
                    *[str(r) for r in d.get("reasons") or []],
                ]
            ),
        ]
    # deploy
    deployments = [x for x in d.get("deployments") or [] if isinstance(x, Mapping)]
    lines: list[Node] = [
        f"{x.get('stack')}: {x.get('result')}" + (" (simulated)" if x.get("simulated") else "") for x in deployments
    ]
    if d.get("break_glass"):
        lines.append(f"under break-glass grant {d.get('break_glass')}")
    if e.outcome is not Outcome.ALLOW:
        lines.append(e.reason)
    what = f"{e.outcome.value}: {e.subject.stack + ' ' if e.subject.stack else ''}at {_short(e.subject.commit)}"
    return [tag("div", what, cls="what"), _items(lines)]


def _decision_block(decision: Decision, verifier: Verifier) -> tuple[Html, int]:
    steps = []
    broken = 0
    reached = [i for i, action in enumerate(STAGES) if decision.of(action)]
    for i, action in enumerate(STAGES):
        found = decision.of(action)
        if not found:
            # a missing link before one that happened is a gap an auditor must see, not an unreached step
            skipped = bool(reached) and i < reached[-1]
            text = "no event, yet the change went further" if skipped else "no event"
            cls = "step absent gap" if skipped else "step absent"
            steps.append(tag("div", tag("div", action, cls="name"), tag("div", text), cls=cls))
            continue
        # the step shows the last event of its kind; every event is in the table below
        allowed = [e for e in found if e.outcome is Outcome.ALLOW]
        shown = found[-1] if action in ("check", "approvals") else (allowed or found)[-1]
        mark = _and(verifier.mark(e) for e in found)
        broken += mark.ok is False
        extra = f" ({len(found)} events)" if len(found) > 1 else ""
        steps.append(
            tag(
                "div",
                _mark(mark),
                tag("div", action + extra, cls="name"),
                _step_body(action, shown),
                tag("div", mark.detail, cls="why") if mark.ok is False else None,
                cls="step",
            )
        )
    rows = []
    for e in decision.events:
        m = verifier.mark(e)
        rows.append(
            tag(
                "tr",
                tag("td", e.seq),
                tag("td", e.time.strftime("%Y-%m-%d %H:%M:%S")),
                tag("td", f"{e.actor.id} ({e.actor.kind.value})"),
                tag("td", e.action),
                tag("td", e.outcome.value),
                tag("td", e.reason),
                tag("td", _mark(m), tag("span", m.detail, cls="sub")),
            )
        )
    table = tag(
        "table",
        tag(
            "tr",
            *(tag("th", h) for h in ("seq", "time (UTC)", "actor", "action", "outcome", "reason", "verification")),
        ),
        rows,
    )
    others = [e for e in decision.events if e.action not in STAGES]
    also = (
        tag(
            "div",
            "also: ",
            [tag("span", f"{e.action} {e.outcome.value} ", _mark(verifier.mark(e)), cls="also") for e in others],
            cls="sub",
        )
        if others
        else None
    )
    outcome = decision.outcome
    good = outcome in ("deployed", "merged, not deployed", "approved, not merged")
    stopped = "refused" in outcome or "denied" in outcome
    pill = tag("span", outcome, cls="pill ok" if good else ("pill bad" if stopped else "pill"))
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
    block = tag(
        "div",
        tag("div", tag("h3", tag("code", title)), pill, cls="dhead"),
        tag("div", meta, cls="sub"),
        tag("div", steps, cls="chain"),
        also,
        tag("details", tag("summary", f"every event of this decision ({len(decision.events)})"), table),
        cls="decision",
        id=f"d-{title}",
    )
    return block, broken


def _bar_chart(title: str, rows: Sequence[tuple[str, Ratio]]) -> Html:
    """A horizontal bar per agent: the ratio as a percentage, n/a when there was nothing to count."""
    width, label_w, bar_w, row_h = 400, 104, 150, 24
    height = 28 + row_h * max(1, len(rows))
    parts: list[Html] = [
        Html(f'<text x="0" y="16" font-size="14" font-weight="600" fill="#1d2430">{esc(title)}</text>')
    ]
    for i, (name, ratio) in enumerate(rows):
        y = 28 + i * row_h
        value = ratio.value
        parts.append(
            Html(
                f'<text x="{label_w - 8}" y="{y + 15}" font-size="13" text-anchor="end" fill="#1d2430">'
                f"{esc(name[:15])}</text>"
                f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="16" fill="#eef1f5" rx="3"/>'
            )
        )
        if value is not None:
            parts.append(
                Html(
                    f'<rect x="{label_w}" y="{y + 3}" width="{max(1.0, bar_w * value):.1f}" height="16" '
                    f'fill="#2f5bd3" rx="3"/>'
                )
            )
        parts.append(
            Html(
                f'<text x="{label_w + bar_w + 8}" y="{y + 15}" font-size="13" fill="#5b6472">'
                f"{esc(ratio.display)}</text>"
            )
        )
    svg = Html(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" style="width:100%;height:auto" '
        f'role="img" aria-label="{esc(title)}">{render(parts)}</svg>'
    )
    return tag("div", svg, cls="chart")


def _metrics_section(report: MetricsReport) -> Html:
    agents = sorted(report.per_agent)
    columns: list[tuple[str, Metrics]] = [("overall", report.overall)] + [(a, report.per_agent[a]) for a in agents]
    head = tag("tr", tag("th", "metric"), *(tag("th", name) for name, _ in columns))
    body = []
    first = columns[0][1].rows()
    for i, (name, _) in enumerate(first):
        body.append(tag("tr", tag("td", name), *(tag("td", m.rows()[i][1]) for _, m in columns)))
    charts = tag(
        "div",
        _bar_chart("Auto-approved (per agent)", [(a, report.per_agent[a].auto_approved) for a in agents]),
        _bar_chart("Policy denial rate (per agent)", [(a, report.per_agent[a].policy_denial_rate) for a in agents]),
        _bar_chart("Escalations (per agent)", [(a, report.per_agent[a].escalated) for a in agents]),
        cls="charts",
    )
    since = f"since {report.since.isoformat()}" if report.since else "over the whole ledger"
    return tag(
        "section",
        tag("h2", "Governance metrics"),
        tag("p", f"Computed from the ledger alone, {since} (glassbox audit metrics).", cls="sub"),
        charts,
        tag("h3", "All metrics", style="margin:16px 0 8px"),
        tag("table", head, body),
        id="metrics",
    )


def _other_section(events: Sequence[AuditEvent], verifier: Verifier) -> Html:
    if not events:
        return Html("")
    rows = [
        tag(
            "tr",
            tag("td", e.seq),
            tag("td", e.time.strftime("%Y-%m-%d %H:%M:%S")),
            tag("td", e.actor.id),
            tag("td", e.action),
            tag("td", e.outcome.value),
            tag("td", e.reason),
            tag("td", _mark(verifier.mark(e))),
        )
        for e in events
    ]
    return tag(
        "section",
        tag("h2", "Events outside any decision chain"),
        tag(
            "table",
            tag("tr", *(tag("th", h) for h in ("seq", "time (UTC)", "actor", "action", "outcome", "reason", "✔/✘"))),
            rows,
        ),
        id="other",
    )


def build_report(req: ReportRequest) -> ReportResult:
    ledger = Ledger.existing(req.ledger)
    trust = load_trust(repo=req.repo, registry=req.registry, ref=req.registry_ref)
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
        block, bad = _decision_block(d, verifier)
        blocks.append(block)
        broken += bad
    metrics = compute_metrics(everything, since=req.since)
    now = (req.now or datetime.now(UTC)).astimezone(UTC)
    period = "every event in the live ledger"
    if req.since:
        period = f"decisions with events since {req.since.isoformat()} (each shown whole)"
    verified = integrity.ok and integrity.signatures_checked
    cards = tag(
        "div",
        *(
            tag("div", tag("div", n, cls="n"), tag("div", label, cls="l"), cls="card")
            for n, label in (
                (integrity.report.events, "ledger events"),
                ("verified" if verified else ("broken" if not integrity.ok else "unsigned check"), "ledger"),
                (len(decisions), "decisions"),
                (broken, "links that do not verify"),
            )
        ),
        cls="cards",
    )
    sources = [
        f"attestations: {req.attestations}"
        if req.attestations
        else "attestations: not given (check marks rest on the ledger only)",
        f"deploy state: {req.deploy_state}" if req.deploy_state else "deploy state: not given",
    ]
    chains = tag(
        "section",
        tag("h2", "Decision chains"),
        tag(
            "p",
            "Per change: propose → check → approvals → merge → deploy. ✔ the link's signed ledger event verifies "
            "(and its verdict attestation / deploy record, when given); ✘ it does not (hover for why); – not "
            "checked. " + "; ".join(sources) + ".",
            cls="sub",
        ),
        blocks or tag("p", "No decisions in this period."),
        id="chains",
    )
    page = Html(
        "<!DOCTYPE html>"
        + tag(
            "html",
            tag(
                "head",
                Html('<meta charset="utf-8">'),
                Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
                tag("title", "glassbox audit report"),
                tag("style", Html(CSS)),
            ),
            tag(
                "body",
                tag(
                    "main",
                    tag("h1", "glassbox audit report"),
                    tag("div", f"Generated {now.isoformat(timespec='seconds')} · {period}", cls="sub"),
                    cards,
                    _integrity_section(integrity, trust, req.ledger),
                    chains,
                    _metrics_section(metrics),
                    _other_section(other, verifier),
                    tag(
                        "footer",
                        "Read from the signed ledger, verdict attestations and deploy records; no decision is "
                        "recomputed here. `glassbox audit show <correlation id>` rebuilds one chain link by link "
                        "against git.",
                    ),
                ),
            ),
            lang="en",
        )
    )
    return ReportResult(
        html=page + "\n",
        events=len(in_period),
        decisions=len(decisions),
        verified=verified,
        signatures_checked=integrity.signatures_checked,
        broken_links=broken,
    )


def write_report(req: ReportRequest, out: Path) -> ReportResult:
    result = build_report(req)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(result.html, encoding="utf-8")
    return result
