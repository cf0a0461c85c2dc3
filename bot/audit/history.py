"""`audit verify`: the whole protected history, checked against the ledger and the attestations.

For every first-parent commit on the protected branch (since a ref, else since the root commit — the
initial import is the trust anchor every later check reads its registry from) that touches a governed path
(``infra/``, ``policy-pack/``, ``registry/``, ``.github/``, ``CODEOWNERS``, ``.glassbox/``):

- a ``merge`` ledger event by the bot produced it (else **direct-push**);
- the merged PR head has a verdict attestation that verifies with the base registry's verdict-signer keys
  and names that head and the merged tree (else **missing-attestation**) and says PASSED (else
  **failed-verdict**);
- approvals were satisfied on that head (an ``approvals`` event with ``details.satisfied``), or a
  ``breakglass.use`` names the commit (else **unapproved**);
- a commit whose trailers say an agent made it (``Glassbox-Agent``: the merged PR heads, and any such commit
  on the branch itself) carries an SSH signature by a trusted commit signer, made by that agent (else
  **unsigned-commit**).

Then the ledger: every event's sequence, chain, digest and signature by a ledger-signer key (archive
segments too), else **chain-break**; every ``merge`` event's merge commit and every ``deploy`` event's commit
must still be reachable from the branch, else **history-rewritten** (a force-push); and every allowed
``deploy`` names a commit on the branch's first-parent history that passed the checks above (and, with
``--deploy-state``, whose deploy record lists the deployments the event logged), else **orphan-deploy**. A
deploy under a valid break-glass grant (a ``breakglass.use`` for that grant and commit before the deploy) is
reported as **break-glass-deploy** and does not fail verify, when all its commit lacked was the approvals and
the merge gate a grant stands in for. A governed commit no merge event produced whose tree is the tree of a
head glassbox checked is an **out-of-band-merge** (a PR merged past the gate), not a bare direct push.

With the audit trail (``--repo CLONE``): its history is checked (**trail-tampered** for an unsigned, foreign-signed,
merged or rewriting commit), and so are its break-glass objects (``breakglass/``): every use claim verifies with the
deploy identity's deploy-signer key and names, by digest, the grant next to it; that grant verifies with its
opener's key, who is in a break_glass team at the registry before the claimed commit, else **trail-tampered**;
every ``breakglass.use`` claimed on the trail has its claim for the same commit and stack (an offline use, whose
lock was one host's grant store, has none), no grant is used twice, and none was used outside its validity, else
**orphan-deploy** (the deploy it excused has no valid grant behind it). A review closure on the trail
(``breakglass/<grant id>.closed.dsse.json``) must verify with the key of the reviewer it names, a person in a
``reviews_break_glass`` team who did not open the grant, and close a use the trail holds a claim for, else
**trail-tampered**. Every claimed use whose post-incident review is past its due date at the verify time
(``VerifyRequest.now``) with no valid closure is **breakglass-review-overdue**; without a trail, the same rule reads
the deploy state (``reviews/<grant id>.json`` and the closure beside it).

Signatures (the ledger's, in the chain check) are checked against the registry at the trust anchor: the newest
commit on the branch that came through the governed path (a merge event, and every check above passed), else
the first commit checked from. An ungoverned commit on top never decides what is trusted.

What each finding means and what to do about it: :data:`bot.audit.findings.FINDINGS`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import git
from pydantic import Field, ValidationError

from bot.audit.findings import FINDINGS
from bot.audit.findings import ViolationKind as ViolationKind
from bot.audit.reconstruct import RegistryCache, load_verdict, object_intact, open_repo
from bot.audit.retention import archive_dir, verify_archive
from bot.deploy.breakglass import BreakGlassAudit, GrantUse, state_breakglass_audit, trail_breakglass_audit
from bot.deploy.gate import DeployReport
from bot.deploy.model import ReviewClosure
from bot.errors import GlassboxError, IntegrityError, UserError
from bot.records import Outcome, Record, VerdictResult
from bot.registry import Registry, is_governance_path
from bot.trust.conventions import TRAIL_BRANCH, TRAILER_AGENT, trailers
from bot.trust.gitsign import verify_commit
from bot.trust.ledger import Ledger, LedgerKeys, ledger_keys
from bot.trust.trail import TrailView, breakglass_objects, materialise, review_entry, trail_problems, trail_ref

GOVERNED_PREFIXES = ("infra/",)
# what a break-glass grant stands in for: the approvals, and the merge gate an incident merge goes around
BREAK_GLASS_EXCUSES = frozenset({ViolationKind.UNAPPROVED, ViolationKind.OUT_OF_BAND_MERGE})


class Violation(Record):
    """One finding of `audit verify` (failing or, like a break-glass deploy, only reported)."""

    kind: ViolationKind
    commit: str | None = None
    seq: int | None = None
    touched: str | None = None  # what it touched: governed paths, a stack, a ledger line
    message: str
    grant_id: str | None = None
    ticket: str | None = None

    @property
    def fails(self) -> bool:
        return FINDINGS[self.kind].fails

    @property
    def to_do(self) -> str:
        return FINDINGS[self.kind].to_do

    def line(self) -> str:
        """The finding on one line: kind, short commit, what it touched, what happened, what to do."""
        text = " ".join(f"{self.kind.value} {(self.commit or '-')[:12]} {self.touched or '-'}: {self.message}".split())
        return f"{text} | to do: {self.to_do}"


class CommitVerdict(Record):
    """What was found about one governed commit on the branch."""

    commit: str
    pr: int | None = None
    head_sha: str | None = None
    ok: bool
    violations: list[ViolationKind] = Field(default_factory=list)


class HistoryReport(Record):
    schema_version: Literal[1] = 1
    branch: str
    branch_head: str
    since: str | None
    commits_checked: int
    governed_commits: list[CommitVerdict]
    ledger_events: int
    archive_segments: int
    violations: list[Violation]  # the findings that fail verify
    notices: list[Violation] = Field(default_factory=list)  # findings that are expected, but reported
    trust_anchor: str | None = None  # the commit whose registry/ the ledger signatures were checked against
    trust_anchor_pr: int | None = None  # the PR whose governed merge produced it (None: the first commit)
    trail: str | None = None  # the audit trail commit the ledger, attestations and deploy records came from
    trail_commits: int | None = None
    ok: bool

    def findings(self) -> list[Violation]:
        """Every finding, failing ones first, each group in the order found."""
        return [*self.violations, *self.notices]


def is_governed(path: str) -> bool:
    return path.startswith(GOVERNED_PREFIXES) or is_governance_path(path)


@dataclass
class VerifyRequest:
    ledger: Path
    repo: Path
    attestations: Path
    deploy_state: Path | None = None
    since: str | None = None
    branch: str = "main"
    registry_ref: str | None = None  # default: the branch
    trail: str | None = None  # the audit trail's commit these inputs were materialised from (bot.trust.trail)
    now: datetime | None = None  # the verify time post-incident reviews are due against (default: the clock)


@dataclass(frozen=True)
class LedgerFact:
    """The few fields of one ledger event the history checks read."""

    seq: int
    action: str
    outcome: Outcome
    pr: int | None
    commit: str | None
    details: dict[str, Any]
    stack: str | None = None
    tree: str | None = None


@dataclass
class LedgerFacts:
    """The events the history checks need, gathered in one pass."""

    merges: dict[str, LedgerFact]  # merge sha → the allowed merge event
    merge_events: list[LedgerFact]
    approvals: dict[tuple[int, str], list[LedgerFact]]  # (pr, head) → events
    breakglass: dict[str, list[LedgerFact]]  # commit → the allowed break-glass uses that name it
    deploys: list[LedgerFact]
    count: int


_WANTED = (b'"action":"merge"', b'"action":"approvals"', b'"action":"breakglass.use"', b'"action":"deploy"')


def ledger_facts(ledger: Ledger) -> LedgerFacts:
    """One pass over the file, decoding only the events the checks use.

    Runs after the chain and signatures were verified line by line, so plain JSON is enough here; a
    substring test on the canonical line skips the rest without decoding it.
    """
    facts = LedgerFacts({}, [], {}, {}, [], 0)
    if not ledger.path.exists():
        return facts
    with ledger.path.open("rb") as fh:
        for raw in fh:
            facts.count += 1
            if not any(w in raw for w in _WANTED):
                continue
            try:
                data = json.loads(raw)
                subject = data.get("subject") or {}
                fact = LedgerFact(
                    seq=int(data["seq"]),
                    action=str(data["action"]),
                    outcome=Outcome(data["outcome"]),
                    pr=subject.get("pr"),
                    commit=subject.get("commit"),
                    details=dict(data.get("details") or {}),
                    stack=subject.get("stack"),
                    tree=subject.get("tree"),
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a malformed line is already a chain-break
            if fact.commit is None:
                continue
            if fact.action == "merge" and fact.outcome is Outcome.ALLOW:
                facts.merges[fact.commit] = fact
                facts.merge_events.append(fact)
            elif fact.action == "approvals" and fact.pr is not None:
                facts.approvals.setdefault((fact.pr, fact.commit), []).append(fact)
            elif fact.action == "breakglass.use" and fact.outcome is Outcome.ALLOW:
                facts.breakglass.setdefault(fact.commit, []).append(fact)
            elif fact.action == "deploy":
                facts.deploys.append(fact)
    return facts


def checked_trees(ledger: Ledger) -> dict[str, LedgerFact]:
    """Tree → the last ``check`` event of a head with that tree (read only when a commit lacks a merge event)."""
    trees: dict[str, LedgerFact] = {}
    if not ledger.path.exists():
        return trees
    with ledger.path.open("rb") as fh:
        for raw in fh:
            if b'"action":"check"' not in raw:
                continue
            try:
                data = json.loads(raw)
                subject = data.get("subject") or {}
                fact = LedgerFact(
                    seq=int(data["seq"]),
                    action="check",
                    outcome=Outcome(data["outcome"]),
                    pr=subject.get("pr"),
                    commit=subject.get("commit"),
                    details={},
                    tree=subject.get("tree"),
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if data.get("action") == "check" and fact.tree and fact.commit:
                trees[fact.tree] = fact
    return trees


def _ledger_violations(ledger: Ledger, trusted: LedgerKeys) -> tuple[list[Violation], int]:
    """Chain problems of the archive (if any) and the live ledger; (violations, archive segments)."""
    violations: list[Violation] = []
    if archive_dir(ledger).is_dir() and any(archive_dir(ledger).iterdir()):
        report = verify_archive(ledger, trusted)
        violations += [
            Violation(kind=ViolationKind.CHAIN_BREAK, touched="ledger archive", message=p) for p in report.problems
        ]
        live = report.live
        segments = len(report.segments)
    else:
        live = ledger.verify(trusted)
        segments = 0
    if live is not None:
        violations += [
            Violation(
                kind=ViolationKind.CHAIN_BREAK,
                seq=p.seq,
                touched=f"ledger line {p.line}",
                message=f"{p.kind}: {p.message}",
            )
            for p in live.problems
        ]
    return violations, segments


class _Auditor:
    def __init__(self, req: VerifyRequest) -> None:
        self.req = req
        self.ledger = Ledger.existing(req.ledger)
        self.repo = open_repo(req.repo)
        try:
            self.tip = self.repo.commit(f"refs/heads/{req.branch}")
        except (git.BadName, ValueError):
            raise UserError(f"--branch {req.branch!r} is not a branch of {req.repo}") from None
        self.registries = RegistryCache(self.repo)
        self.violations: list[Violation] = []
        self.notices: list[Violation] = []
        self._trees: dict[str, LedgerFact] | None = None
        self.merged: set[str] = set()
        self.reachable: set[str] = set()
        self.first_parent: set[str] = set()
        self.in_range: set[str] = set()
        self.breakglass_objects: dict[str, bytes] = {}
        self.closures: dict[str, ReviewClosure] = {}
        self.now = (req.now or datetime.now(UTC)).astimezone(UTC)

    def flag(
        self,
        kind: ViolationKind,
        message: str,
        *,
        commit: str | None = None,
        seq: int | None = None,
        touched: str | None = None,
        **extra: str | None,
    ) -> None:
        finding = Violation(kind=kind, commit=commit, seq=seq, touched=touched, message=message, **extra)
        (self.violations if finding.fails else self.notices).append(finding)

    def checked_head(self, tree: str) -> LedgerFact | None:
        if self._trees is None:
            self._trees = checked_trees(self.ledger)
        return self._trees.get(tree)

    def commits(self) -> list[git.Commit]:
        """First-parent history of the branch since ``--since`` (exclusive), oldest first."""
        rev = f"{self.req.since}..{self.tip.hexsha}" if self.req.since else self.tip.hexsha
        try:
            shas = self.repo.git.rev_list("--first-parent", "--reverse", rev).split()
        except git.exc.GitCommandError:
            raise UserError(f"--since {self.req.since!r} is not a commit in {self.req.repo}") from None
        return [self.repo.commit(s) for s in shas]

    def signed_by_agent(self, commit: git.Commit, registry: Registry, *, where: str) -> bool:
        agent = trailers(str(commit.message)).get(TRAILER_AGENT)
        if agent is None:
            return True
        if not object_intact(self.repo, commit.hexsha):
            self.flag(
                ViolationKind.UNSIGNED_COMMIT, f"{where}: git object does not hash to its id", commit=commit.hexsha
            )
            return False
        try:
            signer = verify_commit(Path(self.repo.git_dir), commit.hexsha, registry)
        except IntegrityError as exc:
            self.flag(ViolationKind.UNSIGNED_COMMIT, f"{where}: {exc.message.splitlines()[0]}", commit=commit.hexsha)
            return False
        if signer != agent:
            text = f"{where}: trailer says agent {agent}, signed by {signer}"
            self.flag(ViolationKind.UNSIGNED_COMMIT, text, commit=commit.hexsha)
            return False
        return True

    def check_commit(self, commit: git.Commit, facts: LedgerFacts) -> CommitVerdict | None:
        if not commit.parents:
            return None  # the root commit is the trust anchor
        parent = commit.parents[0]
        paths = {p for d in parent.diff(commit) for p in (d.a_path, d.b_path) if p}
        if not any(is_governed(p) for p in paths):
            return None
        sha = commit.hexsha
        before = len(self.violations)
        registry = self.registries.at(parent)
        self.signed_by_agent(commit, registry, where=f"commit {sha[:12]} on {self.req.branch}")
        merge = facts.merges.get(sha)
        governed = sorted(p for p in paths if is_governed(p))
        shown = ", ".join(governed[:3]) + (f" (+{len(governed) - 3} more)" if len(governed) > 3 else "")
        if merge is None:
            checked = self.checked_head(commit.tree.hexsha)
            if checked is not None:
                text = (
                    f"PR #{checked.pr} (head {str(checked.commit)[:12]}, checked at seq {checked.seq}) was merged "
                    "without a glassbox merge event"
                )
                self.flag(ViolationKind.OUT_OF_BAND_MERGE, text, commit=sha, touched=shown)
                return self._verdict(commit, checked.pr, checked.commit, before, shown)
            self.flag(ViolationKind.DIRECT_PUSH, "no merge event produced it", commit=sha, touched=shown)
            return self._verdict(commit, None, None, before, shown)
        pr, head_sha = merge.pr, str(merge.details.get("head_sha") or "")
        try:
            head = self.repo.commit(head_sha)
        except (git.BadName, ValueError):
            head = None
            text = f"PR #{pr} head {head_sha[:12]} (merge seq {merge.seq}) is not in the repository"
            self.flag(ViolationKind.UNSIGNED_COMMIT, text, commit=sha, seq=merge.seq)
        if head is not None:
            self.signed_by_agent(head, registry, where=f"PR #{pr} head {head_sha[:12]}")
        verdict, _, problem = load_verdict(self.req.attestations, head_sha, registry)
        if verdict is None:
            self.flag(ViolationKind.MISSING_ATTESTATION, f"PR #{pr}: {problem}", commit=sha, seq=merge.seq)
        elif verdict.change.head_commit != head_sha or verdict.change.head_tree != commit.tree.hexsha:
            text = f"PR #{pr}: the attestation names another head or tree than the one merged"
            self.flag(ViolationKind.MISSING_ATTESTATION, text, commit=sha, seq=merge.seq)
        elif verdict.result is not VerdictResult.PASSED:
            text = f"PR #{pr}: verdict {verdict.result.value} at risk {verdict.risk.value}"
            self.flag(ViolationKind.FAILED_VERDICT, text, commit=sha, seq=merge.seq)
        satisfied = [
            e
            for e in facts.approvals.get((pr or 0, head_sha), [])
            if e.seq < merge.seq and e.outcome is Outcome.ALLOW and e.details.get("satisfied") is True
        ]
        if not satisfied and sha not in facts.breakglass:
            text = f"PR #{pr}: no satisfied approvals event for head {head_sha[:12]} and no break-glass use"
            self.flag(ViolationKind.UNAPPROVED, text, commit=sha, seq=merge.seq)
        return self._verdict(commit, pr, head_sha, before, shown)

    def check_unlogged_deploys(self, facts: LedgerFacts) -> None:
        """A deploy record whose commit no ledger ``deploy`` event names: a deploy nobody signed for."""
        assert self.req.deploy_state is not None
        logged = {str(d.commit) for d in facts.deploys}
        for path in sorted((self.req.deploy_state / "deployments").glob("*.json")):
            sha = path.stem
            if len(sha) == 40 and sha not in logged:
                text = f"deploy record {path.name} has no deploy event in the ledger (deployed outside the gate?)"
                self.flag(ViolationKind.ORPHAN_DEPLOY, text, commit=sha, touched=str(path.name))

    def _deploy_record_problem(self, event: LedgerFact, sha: str) -> str | None:
        """With ``--deploy-state``: the deploy record must exist and list the deployments the event logged."""
        assert self.req.deploy_state is not None
        path = self.req.deploy_state / "deployments" / f"{sha}.json"
        try:
            report = DeployReport.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return f"deploy event seq {event.seq}: no deploy record at {path}"
        except ValidationError as exc:
            return f"deploy event seq {event.seq}: deploy record {path.name} is invalid: {exc.errors()[0]['msg']}"
        logged = sorted(str(x.get("deployment_id")) for x in event.details.get("deployments") or [])
        recorded = sorted(x.deployment_id for x in report.deployments)
        if report.refused or logged != recorded:
            return f"deploy event seq {event.seq}: the deploy record {path.name} does not match the ledger"
        return None

    def _verdict(
        self, commit: git.Commit, pr: int | None, head: str | None, before: int, touched: str | None = None
    ) -> CommitVerdict:
        if touched:
            self.violations[before:] = [
                v if v.touched else v.model_copy(update={"touched": touched}) for v in self.violations[before:]
            ]
        kinds = [v.kind for v in self.violations[before:]]
        return CommitVerdict(commit=commit.hexsha, pr=pr, head_sha=head, ok=not kinds, violations=kinds)

    def anchor(self, commits: list[git.Commit], checked: list[CommitVerdict]) -> tuple[git.Commit, int | None]:
        """The newest commit that came through the governed path (its merge event, every check passed); else the
        commit the walk starts from (``--since``, or the root). ``--registry-ref`` overrides it."""
        if self.req.registry_ref is not None:
            try:
                return self.repo.commit(self.req.registry_ref), None
            except (git.BadName, ValueError):
                raise UserError(f"--registry-ref {self.req.registry_ref!r} is not a ref in {self.req.repo}") from None
        for c in reversed(checked):
            if c.ok and c.pr is not None and c.head_sha is not None and c.commit in self.merged:
                return self.repo.commit(c.commit), c.pr
        if self.req.since:
            return self.repo.commit(self.req.since), None
        return (commits[0] if commits else self.tip), None

    def check_deploy(self, d: LedgerFact, facts: LedgerFacts, kinds: dict[str, set[ViolationKind]]) -> None:
        sha = str(d.commit)
        stack = f"stack {d.stack}" if d.stack else None
        if sha not in self.reachable:
            text = f"deploy event seq {d.seq} names {sha[:12]}, no longer on {self.req.branch}"
            self.flag(ViolationKind.HISTORY_REWRITTEN, text, commit=sha, seq=d.seq, touched=stack)
            return
        if d.outcome is not Outcome.ALLOW:
            return
        if sha not in self.first_parent:
            text = f"deploy event seq {d.seq} deployed {sha[:12]}, which {self.req.branch} never pointed at"
            self.flag(ViolationKind.ORPHAN_DEPLOY, text, commit=sha, seq=d.seq, touched=stack)
            return
        problem = None
        failed = kinds.get(sha, set())
        if failed:
            problem = f"deploy event seq {d.seq} deployed {sha[:12]}, which did not pass the checks above"
        elif sha in self.in_range and self.req.deploy_state is not None:
            problem = self._deploy_record_problem(d, sha)
        grant_id = d.details.get("break_glass")
        if not grant_id:
            if problem is not None:
                self.flag(ViolationKind.ORPHAN_DEPLOY, problem, commit=sha, seq=d.seq, touched=stack)
            return
        use = next(
            (u for u in facts.breakglass.get(sha, []) if u.details.get("grant_id") == grant_id and u.seq < d.seq),
            None,
        )
        if use is None:
            text = (
                f"deploy event seq {d.seq} claims break-glass grant {grant_id}, but no break-glass use of it for "
                f"{sha[:12]} precedes it"
            )
            self.flag(ViolationKind.ORPHAN_DEPLOY, text, commit=sha, seq=d.seq, touched=stack, grant_id=str(grant_id))
            return
        ticket = str(use.details.get("ticket") or "?")
        grant = {"grant_id": str(grant_id), "ticket": ticket}
        if problem is not None and (not failed or not failed <= BREAK_GLASS_EXCUSES):
            text = f"{problem}; break-glass grant {grant_id} (ticket {ticket}) stands in for approvals only"
            self.flag(ViolationKind.ORPHAN_DEPLOY, text, commit=sha, seq=d.seq, touched=stack, **grant)
            return
        text = (
            f"deploy event seq {d.seq} deployed {sha[:12]} under break-glass grant {grant_id} (ticket {ticket}, "
            f"opened by {use.details.get('opened_by') or '?'}, used at seq {use.seq})"
        )
        review = self._trail_review(str(grant_id))
        if review:
            text += f"; {review}"
        self.flag(ViolationKind.BREAK_GLASS_DEPLOY, text, commit=sha, seq=d.seq, touched=stack, **grant)

    def _trail_review(self, grant_id: str) -> str | None:
        """The grant's post-incident review, in words: closed (by whom, when, with which outcome) when a valid closure
        closes it, else as the trail holds it (None: neither the trail nor the deploy state has one)."""
        closure = self.closures.get(grant_id)
        if closure is not None:
            follow = f", follow-up {closure.follow_up}" if closure.follow_up else ""
            return (
                f"post-incident review closed by {closure.closed_by} at {closure.closed_at.isoformat()}: "
                f"{closure.outcome}{follow}"
            )
        try:
            path = review_entry(grant_id)
        except IntegrityError:
            return None
        data = self.breakglass_objects.get(path)
        if data is None:
            return None
        try:
            review = json.loads(data)
            return f"post-incident review {path} on {TRAIL_BRANCH}: {review['status']}, due {review['due']}"
        except (ValueError, KeyError, TypeError):
            return f"post-incident review {path} on {TRAIL_BRANCH} is unreadable"

    def _uses(self, facts: LedgerFacts) -> list[GrantUse]:
        return [
            GrantUse(
                seq=u.seq,
                grant_id=str(u.details.get("grant_id") or ""),
                commit=str(u.commit),
                stack=u.stack,
                claimed=bool(u.details.get("claim")),
                review_due=_when(u.details.get("review_due")),
            )
            for found in facts.breakglass.values()
            for u in found
        ]

    def check_trail_breakglass(self, facts: LedgerFacts, fallback: Registry) -> None:
        """The trail's break-glass grants, use claims, reviews and closures against the ledger's uses."""
        assert self.req.trail is not None
        found = trail_breakglass_audit(
            self.breakglass_objects,
            self._uses(facts),
            lambda sha: self.registries.before(sha, fallback),
            now=self.now,
        )
        self._flag_breakglass(found)

    def check_state_reviews(self, facts: LedgerFacts, fallback: Registry) -> None:
        """Without a trail: each use's review in the deploy state, closed by a valid closure or not yet due."""
        assert self.req.deploy_state is not None
        found = state_breakglass_audit(
            self.req.deploy_state,
            self._uses(facts),
            lambda sha: self.registries.before(sha, fallback),
            now=self.now,
        )
        self._flag_breakglass(found)

    def _flag_breakglass(self, found: BreakGlassAudit) -> None:
        self.closures = dict(found.closures)
        for problem in found.problems:
            if problem.tampered:
                kind, touched = ViolationKind.TRAIL_TAMPERED, TRAIL_BRANCH
            elif problem.overdue:
                kind, touched = ViolationKind.BREAKGLASS_REVIEW_OVERDUE, f"grant {problem.grant_id}"
            else:
                kind, touched = ViolationKind.ORPHAN_DEPLOY, f"grant {problem.grant_id}"
            self.flag(
                kind,
                problem.message,
                commit=problem.commit,
                seq=problem.seq,
                touched=touched,
                grant_id=problem.grant_id,
            )

    def run(self) -> HistoryReport:
        facts = ledger_facts(self.ledger)
        self.merged = set(facts.merges)
        commits = self.commits()
        checked: list[CommitVerdict] = []
        for commit in commits:
            try:
                result = self.check_commit(commit, facts)
            except GlassboxError as exc:
                before = len(self.violations)
                self.flag(
                    ViolationKind.MISSING_ATTESTATION, f"could not be checked: {exc.message}", commit=commit.hexsha
                )
                result = self._verdict(commit, None, None, before)
            if result is not None:
                checked.append(result)
        anchor, anchor_pr = self.anchor(commits, checked)
        trusted = ledger_keys(self.registries.at(anchor))
        chain, segments = _ledger_violations(self.ledger, trusted)
        self.violations += chain
        self.reachable = set(self.repo.git.rev_list(self.tip.hexsha).split())
        self.first_parent = set(self.repo.git.rev_list("--first-parent", self.tip.hexsha).split())
        self.in_range = {c.hexsha for c in commits}
        kinds = {c.commit: set(c.violations) for c in checked if not c.ok}
        if self.req.trail is not None:
            self.breakglass_objects = breakglass_objects(self.req.repo, self.req.trail)
            self.check_trail_breakglass(facts, self.registries.at(anchor))
        elif self.req.deploy_state is not None:
            self.check_state_reviews(facts, self.registries.at(anchor))
        for m in facts.merge_events:
            merged = str(m.commit)
            if merged not in self.reachable:
                text = f"merge event seq {m.seq} (PR #{m.pr}) names {merged[:12]}, no longer on {self.req.branch}"
                self.flag(ViolationKind.HISTORY_REWRITTEN, text, commit=merged, seq=m.seq, touched=f"PR #{m.pr}")
        for d in facts.deploys:
            self.check_deploy(d, facts, kinds)
        if self.req.deploy_state is not None:
            self.check_unlogged_deploys(facts)
        trail_commits = None
        if self.req.trail is not None:
            history = trail_problems(self.req.repo, self.req.trail, self.registries.at(anchor))
            trail_commits = history.commits
            for problem in history.problems:
                self.flag(ViolationKind.TRAIL_TAMPERED, problem.message, commit=problem.commit, touched=TRAIL_BRANCH)
        return HistoryReport(
            branch=self.req.branch,
            branch_head=self.tip.hexsha,
            since=self.req.since,
            commits_checked=len(commits),
            governed_commits=checked,
            ledger_events=facts.count,
            archive_segments=segments,
            violations=self.violations,
            notices=self.notices,
            trust_anchor=anchor.hexsha,
            trust_anchor_pr=anchor_pr,
            trail=self.req.trail,
            trail_commits=trail_commits,
            ok=not self.violations,
        )


def _when(value: Any) -> datetime | None:
    """An ISO time from an event's details, or None."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else None


def verify_history(req: VerifyRequest) -> HistoryReport:
    """Check the protected branch's history, the ledger chain and the deploys against each other."""
    return _Auditor(req).run()


@contextmanager
def trail_inputs(repo: Path) -> Iterator[TrailView]:
    """The audit trail in ``repo`` (``glassbox-trail``, or its ``origin/`` tracking branch in a clone), materialised
    for the readers (ledger, attestation store, deploy records) while the context lasts."""
    commit = trail_ref(repo)
    if commit is None:
        raise UserError(
            f"{repo}: no {TRAIL_BRANCH} branch (nor origin/{TRAIL_BRANCH}): fetch it "
            f"(`git fetch origin {TRAIL_BRANCH}`) or give --ledger and --attestations"
        )
    with tempfile.TemporaryDirectory(prefix="glassbox-trail-") as scratch:
        yield materialise(repo, commit, Path(scratch))


def verify_from_trail(
    repo: Path, *, branch: str = "main", since: str | None = None, now: datetime | None = None
) -> HistoryReport:
    """`audit verify` with nothing but a clone: the ledger, attestations and deploy records are the audit trail's,
    and the trail's own history is checked (post-incident reviews are due against ``now``, default the clock)."""
    with trail_inputs(repo) as view:
        return verify_history(
            VerifyRequest(
                ledger=view.ledger,
                repo=repo,
                attestations=view.attestation_store,
                deploy_state=view.deploy_state if view.deployments else None,
                since=since,
                branch=branch,
                trail=view.commit,
                now=now,
            )
        )
