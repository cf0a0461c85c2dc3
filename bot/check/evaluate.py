"""The check's pure evaluation: what a change is, judged against the trusted anchors of its base commit.

plan → Rego policy pack → checkov → risk → verdict, then ``verdict.json``, ``verdict.sarif``, ``summary.md`` and
a DSSE-signed in-toto attestation. The trust anchors (policy pack, registry, waivers) are read from the BASE
commit, never from the head: a PR cannot judge itself. Any exception anywhere produces a FAILED verdict that
names its cause (I5). Free text (rationale prose, PR body, commit messages) never enters the policy input (I8).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
from pydantic import ValidationError

from bot import __version__, scope
from bot.check.closure import Proportional, ResultCache, proportional_enabled
from bot.check.policy_input import NO_PLAN, build_policy_input, evidence_input
from bot.check.services import CheckServices
from bot.documents import parse_document
from bot.errors import GlassboxError, UserError
from bot.plan import SANDBOX_NAMESPACES, Plan, Sandbox, plan_change
from bot.plan.project import PROJECT_FILES, STACK_FILE, find_projects
from bot.plan.terraform import address_map, to_terraform_plan
from bot.policy.checkov import CheckovPolicy, CheckovReport, CheckovWorker, load_policy
from bot.policy.pack import PolicyPack
from bot.policy.render import sarif, summary_markdown
from bot.records import (
    ChangeAction,
    ChangeBundle,
    EvidenceRecord,
    Finding,
    FindingStatus,
    PlanSource,
    RequiredApproval,
    RiskTier,
    Verdict,
    VerdictResult,
    Waiver,
)
from bot.registry import Registry, is_governance_path, load_registry
from bot.trust.anchors import export_tree, policy_pack_digest, tree_digest
from bot.trust.conventions import (
    DECISIONS_DIR,
    POLICY_PACK_DIR,
    REGISTRY_DIR,
    TRAILER_AGENT,
    TRAILER_EVIDENCE,
    trailers,
)

RAW_IAC = re.compile(r"(\.tf$|\.tf\.json$|(^|/)Dockerfile[^/]*$|(^|/)(k8s|kubernetes|cloudformation)/.*\.ya?ml$)")


@dataclass
class Author:
    id: str
    kind: str  # agent | human | ci | deployer | bot | unknown


@dataclass
class CheckRequest:
    repo_path: Path
    base: str
    head: str
    repo: str = "local/repo"
    pr: int | None = None
    author: str | None = None  # the PR's author account, as the forge reports it
    pushers: tuple[str, ...] = ()  # every account the forge saw push to the PR's branch
    draft: bool | None = None  # the PR's draft state, as the forge reports it (None: not a forge PR)
    readied_by: tuple[str, ...] = ()  # accounts that marked the PR ready for review
    open_pull_requests: dict[str, int] = field(default_factory=dict)  # account → its open PRs, for budgets
    checkov: CheckovWorker | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    plan_timeout: float = 120.0
    sandbox: Sandbox = field(default_factory=Sandbox)
    # warm checkov workers, loaded packs and the plan cache of a long-lived caller (None: all fresh, no cache)
    services: CheckServices | None = None
    # judge the changed closure, the rest from the base (bot.check.closure); None: GLASSBOX_PROPORTIONAL decides
    proportional: bool | None = None


@dataclass
class CheckResult:
    verdict: Verdict
    plan: Plan | None
    evidence: EvidenceRecord | None
    sarif: dict[str, Any]
    summary: str
    attestation: dict[str, Any] | None = None

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {
            "verdict.json": self.verdict.model_dump_json(indent=2) + "\n",
            "verdict.sarif": json.dumps(self.sarif, indent=2) + "\n",
            "summary.md": self.summary,
        }
        if self.plan is not None:
            files["plan.json"] = self.plan.model_dump_json(indent=2) + "\n"
        if self.attestation is not None:
            files["attestation.dsse.json"] = json.dumps(self.attestation, indent=2) + "\n"
        written = []
        for name, text in files.items():
            path = out_dir / name
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            written.append(path)
        return written


# --------------------------------------------------------------------------------------------------
# trust anchors from the base commit


@dataclass
class Anchors:
    registry: Registry
    pack_dir: Path
    pack_digest: str
    checkov_policy: CheckovPolicy
    waivers: list[Waiver]


def load_anchors(base: git.Commit, scratch: Path) -> Anchors:
    registry_dir = export_tree(base, REGISTRY_DIR, scratch)
    pack_dir = export_tree(base, POLICY_PACK_DIR, scratch)
    registry = load_registry(registry_dir)
    waivers: list[Waiver] = []
    waiver_file = registry_dir / "waivers.yaml"
    if waiver_file.exists():
        data = parse_document(waiver_file.read_text(encoding="utf-8"), str(waiver_file)) or {}
        try:
            waivers = [Waiver.model_validate(w) for w in data.get("waivers", [])]
        except (ValidationError, AttributeError) as exc:
            raise UserError(f"{REGISTRY_DIR}/waivers.yaml at base: invalid waiver: {exc}") from None
    checkov_dir = pack_dir / "checkov"
    return Anchors(
        registry=registry,
        pack_dir=pack_dir,
        pack_digest=policy_pack_digest(base),
        checkov_policy=load_policy(checkov_dir) if checkov_dir.exists() else CheckovPolicy(),
        waivers=waivers,
    )


# --------------------------------------------------------------------------------------------------
# what the change is


def changed_paths(base: git.Commit, head: git.Commit) -> list[str]:
    paths: set[str] = set()
    for d in base.diff(head, M=True):
        paths.update(p for p in (d.a_path, d.b_path) if p)
    return sorted(paths)


# git modes that are not plain files: a symlink points a reader elsewhere, a gitlink pulls in another repository
_SPECIAL_MODES = (0o120000, 0o160000)


def special_entries(base: git.Commit, head: git.Commit) -> list[str]:
    """Changed paths that are (or were) a symlink or a submodule: git metadata, governed like governance paths."""
    paths: set[str] = set()
    for d in base.diff(head):
        if d.a_mode in _SPECIAL_MODES and d.a_path:
            paths.add(d.a_path)
        if d.b_mode in _SPECIAL_MODES and d.b_path:
            paths.add(d.b_path)
    return sorted(paths)


def added_decision_records(base: git.Commit, head: git.Commit) -> list[str]:
    return sorted(
        d.b_path
        for d in base.diff(head)
        if d.b_path and d.b_path.startswith(DECISIONS_DIR) and d.change_type == "A" and not d.renamed_file
    )


@dataclass
class EvidenceView:
    record: EvidenceRecord | None
    path: str | None
    digest_verified: bool
    problems: list[str]


def read_evidence(head: git.Commit, base: git.Commit) -> EvidenceView:
    paths = added_decision_records(base, head)
    if not paths:
        return EvidenceView(None, None, False, [])
    if len(paths) > 1:
        return EvidenceView(None, None, False, [f"more than one decision record added: {', '.join(paths)}"])
    path = paths[0]
    raw = (head.tree / path).data_stream.read()
    try:
        record = EvidenceRecord.model_validate_json(raw)
    except ValidationError as exc:
        return EvidenceView(None, path, False, [f"{path} is not a valid evidence record: {exc.errors()[0]['msg']}"])
    problems = []
    verified = record.verify_digest()
    if not verified:
        problems.append(f"{path}: the record's content does not match its digest")
    if not path.endswith(f"/{record.request.correlation_id}.json"):
        verified = False
        problems.append(f"{path}: file name does not match correlation id {record.request.correlation_id}")
    claimed = trailers(str(head.message)).get(TRAILER_EVIDENCE)
    if claimed is not None and claimed != record.digest:
        verified = False
        problems.append(f"commit trailer {TRAILER_EVIDENCE} {claimed} does not match {record.digest}")
    return EvidenceView(record, path, verified, problems)


def writers(request: CheckRequest, evidence: EvidenceView, head: git.Commit) -> list[str]:
    """Everyone who may have written the change, forge-known accounts first: the PR's author, every pusher to its
    branch, and what the head itself claims (the evidence's agent, the agent trailer). Claims can only add an
    agent to judge by, never remove one the forge saw."""
    claimed = [evidence.record.request.agent_id if evidence.record else None]
    claimed.append(trailers(str(head.message)).get(TRAILER_AGENT))
    named = [request.author, *request.pushers, *claimed]
    return list(dict.fromkeys(n for n in named if n))


def resolve_author(request: CheckRequest, registry: Registry, evidence: EvidenceView, head: git.Commit) -> Author:
    """Who the change is judged as: an agent when any writer is one (I13), else the forge's author (a person)."""
    everyone = writers(request, evidence, head)
    agents = [w for w in everyone if registry.identity_kind(w) == "agent"]
    if agents:
        return Author(agents[0], "agent")
    if request.author:
        return Author(request.author, registry.identity_kind(request.author) or "unknown")
    if everyone:
        return Author(everyone[0], registry.identity_kind(everyone[0]) or "unknown")
    return Author(str(head.author.email or "unknown"), "human")


def _scope_finding(rule: str, message: str, resource: str | None = None) -> Finding:
    return Finding(
        engine="glassbox",
        rule_id=rule,
        severity=RiskTier.HIGH,
        status=FindingStatus.DENY,
        message=message,
        resource=resource,
    )


def agent_scope_findings(
    request: CheckRequest,
    registry: Registry,
    author: Author,
    evidence: EvidenceView,
    base: git.Commit,
    head: git.Commit,
    paths: list[str],
) -> list[Finding]:
    """The rules ``propose`` applies, applied to a PR an agent wrote or pushed to by any route (I13): one agent
    per PR, its status, tool and autonomy, draft state, requester, every changed path, project and stack, and
    its open-PR budget. Empty for a PR no agent touched."""
    if author.kind != "agent":
        return []
    out: list[Finding] = []
    everyone = writers(request, evidence, head)
    agents = [w for w in everyone if registry.identity_kind(w) == "agent"]
    if len(agents) > 1:
        out.append(_scope_finding("GB-SCOPE-WRITERS", f"more than one agent wrote this PR: {', '.join(agents)}"))
    agent, reasons = scope.agent_reasons(registry, author.id)
    out += [_scope_finding("GB-SCOPE-AGENT", r, "registry") for r in reasons]
    if agent is None:
        return out
    if request.draft is not None:
        people = any(registry.identity_kind(a) == "human" for a in request.readied_by)
        out += [
            _scope_finding("GB-SCOPE-AUTONOMY", r)
            for r in scope.draft_reasons(agent, draft=request.draft, readied_by_person=people)
        ]
    if evidence.record is not None:
        requester = evidence.record.request.requested_by.id
        if not registry.requester_allowed(agent, requester):
            out.append(
                _scope_finding(
                    "GB-SCOPE-REQUESTER", f"requester {requester!r} may not ask agent {agent.id!r} for changes"
                )
            )
    own = evidence.path if evidence.record is not None else None
    written = [p for p in paths if p != own]  # the one decision record propose adds is the PR's, not the agent's
    for path in written:
        for reason in scope.path_reasons(agent, base, path, delete=not _exists(head, path)):
            out.append(_scope_finding("GB-SCOPE-PATH", reason, path))
    declared = {(e.project, e.stack) for e in evidence.record.request.expected_changes} if evidence.record else set()
    for reason in scope.project_stack_reasons(agent, base, written, declared):
        out.append(_scope_finding("GB-SCOPE-PROJECT", reason))
    opened = request.open_pull_requests.get(agent.id)
    if opened is not None and opened > agent.budgets.open_prs:
        out.append(
            _scope_finding(
                "GB-SCOPE-BUDGET",
                f"open-PR budget exceeded: {opened} open PRs of {agent.id!r}, {agent.budgets.open_prs} allowed",
            )
        )
    return out


def governance_changes(paths: list[str], evidence: EvidenceView) -> list[str]:
    """Governance paths the change touches, except the one decision record an agent PR adds (I2)."""
    own = evidence.path if evidence.record is not None else None
    return [p for p in paths if is_governance_path(p) and p != own]


def estate_changes(head: git.Commit, paths: list[str], registry: Registry) -> list[str]:
    """Changed paths that change the estate the registry records at the base: a project directory or stack the
    estate does not list, a project whose ``name:`` differs from its registered name, a second file for one stack,
    a ``.yml`` spelling Pulumi never reads. Each is a governance change (the judge's inputs, not the program's)."""
    estate = registry.estate
    changed = set(paths)
    found: set[str] = set()
    for directory, project in find_projects(head).items():
        registered = estate.project_at(directory) if estate else None
        project_file = next((f"{directory}/{n}" for n in PROJECT_FILES if f"{directory}/{n}" in changed), None)
        if project_file and (registered is None or registered.name != project.name or project_file.endswith(".yml")):
            found.add(project_file)
        stacks: dict[str, list[str]] = {}
        for child in (head.tree / directory).blobs:
            match = STACK_FILE.match(child.name)
            if match:
                stacks.setdefault(match.group("stack"), []).append(str(child.path))
        known = {s.name for s in registered.stacks} if registered else set()
        for stack, files in stacks.items():
            odd = stack not in known or len(files) > 1
            found.update(f for f in files if f in changed and (odd or f.endswith(".yml")))
    return sorted(found)


def policy_input(
    plan: Plan | None,
    paths: list[str],
    governance: list[str],
    evidence: EvidenceView,
    author: Author,
    request: CheckRequest,
    head: git.Commit,
    registry: Registry,
    now: datetime,
) -> dict[str, Any]:
    """The document the pack judges (bot.check.policy_input): every environment from the registry's estate at the
    base (I12), evidence as structured fields only (I8)."""
    return build_policy_input(
        plan=plan,
        changed_paths=paths,
        governance_paths=governance,
        evidence=evidence_input(evidence.record, evidence.digest_verified),
        author_id=author.id,
        author_is_agent=author.kind == "agent",
        pr_number=request.pr,
        base_ref=request.base,
        head_sha=head.hexsha,
        registry=registry,
        now=now,
    )


# --------------------------------------------------------------------------------------------------
# engines → findings


def rego_findings(pack_dir: Path | PolicyPack, data: dict[str, Any]) -> tuple[list[Finding], RiskTier, list[str], str]:
    """Evaluate the pack read from the base commit (its directory, or the pack already loaded from it);
    (findings, tier, reasons, engine name)."""
    from bot.policy.engines import make_engine
    from bot.policy.pack import load_pack

    engine = make_engine(pack_dir if isinstance(pack_dir, PolicyPack) else load_pack(pack_dir))
    evaluation = engine.evaluate(data)
    return [r.to_finding() for r in evaluation.results], evaluation.tier, list(evaluation.reasons), engine.name


def checkov_findings(
    report: CheckovReport, plan: Plan, addresses: dict[str, str], *, raw: bool = False
) -> list[Finding]:
    """Failed checks on resources this change creates or modifies deny at high/critical, else warn;
    failures on untouched resources are pre-existing and only warn."""
    touched = {c.urn for c in plan.changes if c.action is not ChangeAction.DELETE}
    out = []
    for f in report.failed:
        urn = addresses.get(f.resource_address)
        changed = raw or (urn is not None and urn in touched)
        deny = changed and f.severity in (RiskTier.HIGH, RiskTier.CRITICAL)
        note = "" if changed else " (pre-existing: the resource is not changed by this PR)"
        out.append(
            Finding(
                engine="checkov",
                rule_id=f.check_id,
                severity=f.severity,
                status=FindingStatus.DENY if deny else FindingStatus.WARN,
                message=f"{f.name}{note}",
                resource=urn or (f"{f.file}:{f.resource_address}" if raw else f.resource_address),
                remediation=f.guideline or "",
                details={"address": f.resource_address, "file": f.file},
            )
        )
    return out


def apply_waivers(findings: list[Finding], waivers: list[Waiver], now: datetime) -> tuple[list[Finding], list[str]]:
    notes = []
    out = []
    for f in findings:
        match = next(
            (w for w in waivers if w.rule_id == f.rule_id and w.resource in ("*", f.resource)),
            None,
        )
        if match is None or f.status is not FindingStatus.DENY:
            out.append(f)
        elif match.expires <= now:
            notes.append(f"waiver for {f.rule_id} on {f.resource} expired {match.expires.isoformat()}; ignored")
            out.append(f.model_copy(update={"details": {**f.details, "expired_waiver": match.model_dump(mode="json")}}))
        else:
            out.append(f.model_copy(update={"status": FindingStatus.WAIVED, "waiver": match}))
    return out, notes


# --------------------------------------------------------------------------------------------------
# the check


@contextmanager
def _worker(request: CheckRequest, policy: CheckovPolicy) -> Iterator[CheckovWorker]:
    if request.checkov is not None:
        yield request.checkov
    elif request.services is not None:
        yield request.services.checkov(policy)
    else:
        with CheckovWorker(policy=policy) as worker:
            yield worker


def _checkov_findings(
    request: CheckRequest,
    policy: CheckovPolicy,
    plan: Plan,
    files_root: Path,
    raw_files: list[str],
    versions: dict[str, str],
    judge: Proportional | None = None,
) -> list[Finding]:
    """checkov over the translated plan (by ``judge``, the changed closure: the same failures) and over any raw
    IaC files the change touches."""
    if not plan.resources and not raw_files:
        return []
    out: list[Finding] = []
    with _worker(request, policy) as worker:
        versions["checkov"] = worker.version()
        if plan.resources:
            report = judge.checkov(worker) if judge else worker.scan_plan(to_terraform_plan(plan.resources))
            out += checkov_findings(report, plan, address_map(plan.resources))
        if raw_files:
            out += checkov_findings(worker.scan_files(files_root, raw_files), plan, {}, raw=True)
    return out


def run_check(request: CheckRequest) -> CheckResult:
    """Run the whole check. Never raises for a problem with the change: that is a FAILED verdict."""
    try:
        repo = git.Repo(request.repo_path)
        base = repo.commit(request.base)
        head = repo.commit(request.head)
    except (git.exc.GitError, ValueError, git.BadName) as exc:
        raise UserError(f"cannot read {request.base}..{request.head} in {request.repo_path}: {exc}") from None
    now = request.now()
    errors: list[str] = []
    findings: list[Finding] = []
    reasons: list[str] = []
    tier = RiskTier.CRITICAL  # until the policy says otherwise: fail closed
    plan: Plan | None = None
    evidence = EvidenceView(None, None, False, [])
    registry: Registry | None = None
    required: list[RequiredApproval] = []
    plan_cache = request.services.plan_cache if request.services is not None else None
    if request.sandbox.mode != SANDBOX_NAMESPACES:
        plan_cache = None  # a program outside the sandbox could reach the cache (bot.plan.cache)
    versions = {
        "id": "glassbox",
        "glassbox": __version__,
        "sandbox": request.sandbox.mode,
        "plan_cache": "on" if plan_cache is not None else "off",
    }
    plan_sources: list[PlanSource] = []
    pack_digest = policy_pack_digest(base)
    registry_digest_value = tree_digest(base, REGISTRY_DIR)

    with tempfile.TemporaryDirectory(prefix="glassbox-check-") as scratch:
        try:
            if request.services is not None:
                services = request.services

                def load() -> tuple[Anchors, PolicyPack]:
                    loaded = load_anchors(base, Path(scratch))
                    return loaded, services.policy_pack(loaded.pack_dir, loaded.pack_digest)

                anchors, pack = services.anchors(base.hexsha, load)
            else:
                anchors, pack = load_anchors(base, Path(scratch)), None
            registry = anchors.registry
            registry_digest_value = registry.digest
            versions["id"] = registry.service_identity("ci") or "glassbox-ci"
            paths = changed_paths(base, head)
            evidence = read_evidence(head, base)
            author = resolve_author(request, registry, evidence, head)
            findings += agent_scope_findings(request, registry, author, evidence, base, head, paths)
            governance = sorted(
                {
                    *governance_changes(paths, evidence),
                    *special_entries(base, head),
                    *estate_changes(head, paths, registry),
                }
            )
            for problem in evidence.problems:
                findings.append(
                    Finding(
                        engine="glassbox",
                        rule_id="GB-EVIDENCE-INTEGRITY",
                        severity=RiskTier.HIGH,
                        status=FindingStatus.DENY,
                        message=problem,
                        resource=evidence.path,
                    )
                )
            planned = plan_change(
                request.repo_path,
                base.hexsha,
                head.hexsha,
                timeout=request.plan_timeout,
                sandbox=request.sandbox,
                cache=plan_cache,
                estate=registry.estate,
                pool=request.services.sandbox_pool if request.services is not None else None,
                write_behind=True,  # released once the verdict is made (below)
            )
            plan, plan_sources = planned.plan, planned.sources
            data = policy_input(plan, paths, governance, evidence, author, request, head, registry, now)
            raw_files = [p for p in paths if RAW_IAC.search(p) and _exists(head, p)]
            files_root = Path(scratch) / "head-files"
            for p in raw_files:
                target = files_root / p
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes((head.tree / p).data_stream.read())
            judge = None
            if proportional_enabled(request.proportional):
                judge = Proportional(plan, registry, cache=ResultCache.configured(request.repo_path))
            # checkov scans in its own process while Rego evaluates here: the two overlap on two cores
            with ThreadPoolExecutor(max_workers=1) as pool:
                scanning = pool.submit(
                    _checkov_findings, request, anchors.checkov_policy, plan, files_root, raw_files, versions, judge
                )
                if judge is not None:
                    rego, tier, reasons, engine_name = judge.rego(pack or anchors.pack_dir, data, rego_findings)
                else:
                    rego, tier, reasons, engine_name = rego_findings(pack or anchors.pack_dir, data)
                versions["rego"] = engine_name
                findings += rego
                findings += scanning.result()
            versions["evaluation"] = judge.describe(len(plan.resources)) if judge is not None else "full"
            findings, waiver_notes = apply_waivers(findings, anchors.waivers, now)
            reasons += waiver_notes
            claimed = evidence.record.request.claimed_risk if evidence.record else None
            if claimed is not None and claimed.rank > tier.rank:
                reasons.append(f"the agent claimed {claimed.value}, which raises the tier from {tier.value}")
                tier = claimed  # a claim can only raise the tier (I8)
            rule = registry.approval_matrix.tiers[tier]
            required = [
                RequiredApproval(team=r.team, count=r.count, reason=f"risk {tier.value}") for r in rule.required
            ]
        except GlassboxError as exc:
            errors.append(exc.message)
        except Exception as exc:  # I5: whatever failed, the verdict is a deny that names the cause
            errors.append(f"unexpected {type(exc).__name__}: {exc}")

    if request.sandbox.mode != SANDBOX_NAMESPACES:
        reasons.append(
            f"PR code ran without the sandbox (--sandbox={request.sandbox.mode}): deploy refuses this verdict"
        )
    if errors:
        tier = RiskTier.CRITICAL
        reasons.append("the check could not complete, so it fails closed at critical")
    denied = any(f.status is FindingStatus.DENY for f in findings)
    verdict = Verdict(
        result=VerdictResult.FAILED if errors or denied else VerdictResult.PASSED,
        risk=tier,
        risk_reasons=sorted(set(reasons), key=reasons.index),
        required_approvals=required,
        findings=sorted(findings, key=lambda f: (-f.severity.rank, f.engine, f.rule_id, f.resource or "")),
        errors=errors,
        change=ChangeBundle(
            repo=request.repo,
            pr=request.pr,
            correlation_id=evidence.record.request.correlation_id if evidence.record else None,
            base_commit=base.hexsha,
            head_commit=head.hexsha,
            head_tree=head.tree.hexsha,
            plan_digest=plan.digest if plan and plan.digest else NO_PLAN,
            policy_pack_digest=pack_digest,
            registry_digest=registry_digest_value,
            evidence_digest=evidence.record.digest if evidence.record else None,
        ),
        verifier=versions,
        plan_sources=plan_sources,
        time_verified=now,
    )
    if plan_cache is not None:
        # The entries this plan made are written now, behind the report: the next read of the cache waits for
        # them, and so do closing the services (CheckServices.close) and this process's exit.
        plan_cache.release()
    changes = [c.model_dump(mode="json") for c in plan.changes] if plan else []
    return CheckResult(verdict, plan, evidence.record, sarif(verdict), summary_markdown(verdict, changes))


def _exists(commit: git.Commit, path: str) -> bool:
    try:
        commit.tree / path
    except KeyError:
        return False
    return True


def deny_ids(v: Verdict) -> list[str]:
    return sorted({f.rule_id for f in v.findings if f.status is FindingStatus.DENY})


def deny_reasons(verdict: Verdict) -> list[str]:
    reasons = [f"check could not complete: {e}" for e in verdict.errors]
    reasons += [
        f"{f.rule_id} ({f.severity.value}): {f.message}" + (f" [{f.resource}]" if f.resource else "")
        for f in verdict.findings
        if f.status is FindingStatus.DENY
    ]
    return reasons
