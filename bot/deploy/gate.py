"""The deploy gate: a distinct identity re-verifies everything about a merged commit, then applies it.

Before any credential is asked for, every link is checked and recorded: the deploy identity is the
registry's deployer; the commit is on the protected branch; it is the merge of a PR; the PR's verdict
attestation verifies against the verdict-signer keys, says PASSED, names this exact tree and the policy
pack on the branch; approvals were satisfied on the PR's head (or a valid break-glass grant stands in for
them, never for the integrity checks, and consumed only once those passed, on the audit trail when the context
names one: ``bot.deploy.breakglass``); the requested stacks are ones the plan touched; and the plan
recomputed here has the digest the attestation names. Then, per stack, the broker mints a short-lived
credential for that stack alone and the applier applies exactly the reviewed resources. Any failure is a
refusal (I4, I5) with a ledger event carrying the same fields as a success (I6).
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
from pydantic import Field

from bot.approvals.service import approvals_at_head
from bot.deploy.applier import Applier, ApplierKind, StackEnv, select_applier
from bot.deploy.breakglass import GrantStore, TrailGrantLock, use_grant
from bot.deploy.broker import CredentialBroker, deploy_trust
from bot.deploy.events import EventSink
from bot.deploy.model import BreakGlassAlert, Deployment
from bot.errors import Denied, GlassboxError
from bot.forge.model import PullState
from bot.forge.port import Forge
from bot.forge.trail import TrailForge
from bot.plan import SANDBOX_NAMESPACES, build_plan
from bot.records import Outcome, Record, Verdict, VerdictResult
from bot.registry import Registry, load_registry
from bot.trust.anchors import export_tree, policy_pack_digest
from bot.trust.attestations import load_attestation
from bot.trust.conventions import REGISTRY_DIR
from bot.trust.keys import Signer
from bot.trust.ledger import Ledger


class GateCheck(Record):
    name: str
    ok: bool
    detail: str
    source: str = Field(description="Where the fact came from: git, forge, attestation, ledger, plan.")


class DeployReport(Record):
    commit: str
    tree: str | None = None
    pr: int | None = None
    head_sha: str | None = None
    correlation_id: str | None = None
    stacks: list[str] = Field(default_factory=list)
    checks: list[GateCheck] = Field(default_factory=list)
    deployments: list[Deployment] = Field(default_factory=list)
    break_glass: list[BreakGlassAlert] = Field(default_factory=list)
    refused: bool = False
    reasons: list[str] = Field(default_factory=list)


@dataclass
class _Draft:
    """The report while it is being built; frozen into a DeployReport once every check has run."""

    commit: str
    tree: str | None = None
    pr: int | None = None
    head_sha: str | None = None
    correlation_id: str | None = None
    stacks: list[str] = field(default_factory=list)
    checks: list[GateCheck] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    break_glass: list[BreakGlassAlert] = field(default_factory=list)
    refused: bool = False
    reasons: list[str] = field(default_factory=list)

    def freeze(self) -> DeployReport:
        return DeployReport(**self.__dict__)


@dataclass
class DeployContext:
    repo_path: Path
    forge: Forge
    ledger: Ledger
    signer: Signer
    state_dir: Path
    attestations: Path
    branch: str = "main"
    applier: Applier | None = None
    applier_kind: ApplierKind = ApplierKind.PULUMI  # the simulation (local) only when a caller asks for it
    applier_env: StackEnv | None = None  # per-stack environment for the real applier (the stack's cloud role)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # break-glass: the envelope presented to this deploy (else the state's grant store holds it), and the audit
    # trail whose fast-forward append is the single-use lock (else the state's SQLite store is, for one host only)
    grant_envelope: Mapping[str, Any] | None = None
    trail: TrailForge | None = None


__all__ = ["DeployContext", "DeployReport", "GateCheck", "deploy"]


class _Gate:
    def __init__(self, report: _Draft) -> None:
        self.report = report

    def check(self, name: str, ok: bool, detail: str, source: str) -> bool:
        self.report.checks.append(GateCheck(name=name, ok=ok, detail=detail, source=source))
        if not ok:
            self.report.reasons.append(f"{name}: {detail}")
        return ok


def _pr_for(ctx: DeployContext, commit: git.Commit) -> int | None:
    """The PR whose merge produced ``commit``: from the bot's signed merge event, else the merge message."""
    for event in ctx.ledger.find(commit=commit.hexsha):
        if event.action == "merge" and event.outcome is Outcome.ALLOW and event.subject.pr is not None:
            return event.subject.pr
    m = re.search(r"#(\d+)", str(commit.message).split("\n", 1)[0])
    return int(m.group(1)) if m else None


def verify_commit_for_deploy(
    ctx: DeployContext, commit_sha: str, stacks: Sequence[str], *, break_glass: str | None = None
) -> tuple[_Draft, Registry | None, Verdict | None, list[dict[str, Any]]]:
    """Every check before a credential is minted. Returns the report (``refused`` set on any failure)."""
    report = _Draft(commit=commit_sha)
    gate = _Gate(report)
    repo = git.Repo(ctx.repo_path)
    try:
        commit = repo.commit(commit_sha)
    except (git.BadName, ValueError):
        gate.check("commit", False, f"{commit_sha} is not in {ctx.repo_path}", "git")
        report.refused = True
        return report, None, None, []
    report.commit = commit.hexsha
    report.tree = commit.tree.hexsha

    # trust anchors: the branch as it stood before this commit landed
    anchor = commit.parents[0] if commit.parents else commit
    with tempfile.TemporaryDirectory(prefix="glassbox-deploy-") as scratch:
        registry = load_registry(export_tree(anchor, REGISTRY_DIR, Path(scratch)))
    deployer = registry.service_identity("deployer")
    gate.check(
        "deploy identity",
        ctx.signer.identity == deployer,
        f"acting as {ctx.signer.identity}; the registry's deploy identity is {deployer}",
        "registry",
    )
    branch_head = repo.commit(f"refs/heads/{ctx.branch}")
    on_branch = repo.is_ancestor(commit, branch_head)
    gate.check(
        "on protected branch",
        on_branch,
        f"{commit.hexsha[:12]} {'is' if on_branch else 'is not'} on {ctx.branch}",
        "git",
    )

    number = _pr_for(ctx, commit)
    pr = ctx.forge.get_pull_request(number) if number is not None else None
    from_pr = pr is not None and pr.merged and pr.merge_commit_sha == commit.hexsha
    gate.check(
        "merged from a PR",
        from_pr,
        f"PR #{number} merged as {commit.hexsha[:12]}"
        if from_pr
        else "no merged PR produced this commit (direct push?)",
        "forge",
    )
    if pr is None or not from_pr:
        report.refused = True
        return report, registry, None, []
    report.pr, report.head_sha = pr.number, pr.head_sha

    filed = load_attestation(ctx.attestations, pr.head_sha, registry)
    verdict = filed.verdict
    gate.check(
        "attestation signature",
        verdict is not None,
        filed.problem or f"verified with verdict-signer key {filed.keyid}",
        "attestation",
    )
    if verdict is None:
        report.refused = True
        return report, registry, None, []
    report.correlation_id = verdict.change.correlation_id
    gate.check(
        "verdict PASSED", verdict.result is VerdictResult.PASSED, f"verdict is {verdict.result.value}", "attestation"
    )
    sandbox = verdict.verifier.get("sandbox")
    gate.check(
        "PR code ran in the sandbox",
        sandbox == SANDBOX_NAMESPACES,
        f"the check ran PR code with sandbox {sandbox or 'unrecorded'}"
        + ("" if sandbox == SANDBOX_NAMESPACES else f"; only a check with sandbox {SANDBOX_NAMESPACES} may deploy"),
        "attestation",
    )
    gate.check(
        "verdict is for this PR head",
        verdict.change.head_commit == pr.head_sha,
        f"attested head {verdict.change.head_commit[:12]}, PR head {pr.head_sha[:12]}",
        "attestation",
    )
    gate.check(
        "tree is the verified tree",
        verdict.change.head_tree == commit.tree.hexsha,
        f"attested tree {verdict.change.head_tree[:12]}, deployed tree {commit.tree.hexsha[:12]}",
        "git",
    )
    branch_pack = policy_pack_digest(commit)
    gate.check(
        "policy pack is the branch's",
        verdict.change.policy_pack_digest == branch_pack,
        f"attested {verdict.change.policy_pack_digest[:19]}…, branch {branch_pack[:19]}…",
        "git",
    )

    if break_glass is None:
        try:
            # judged as it stood at merge: the same head, reviews, files and commits, the PR still open
            at_merge = pr.model_copy(update={"state": PullState.OPEN, "merged": False})
            state, _evidence = approvals_at_head(ctx.forge, registry, at_merge, verdict)
            gate.check("approvals satisfied on the head", state.satisfied, state.status_description(), "forge")
        except Exception as exc:  # I5
            gate.check("approvals satisfied on the head", False, f"could not evaluate: {exc}", "forge")

    resources: list[dict[str, Any]] = []
    try:
        plan = build_plan(ctx.repo_path, verdict.change.base_commit, verdict.change.head_commit)
        gate.check(
            "plan recomputed",
            plan.digest == verdict.change.plan_digest,
            f"recomputed {plan.digest}, attested {verdict.change.plan_digest}",
            "plan",
        )
        touched = sorted({f"{s.project}/{s.stack}" for s in plan.stacks})
        wanted = list(stacks) or touched
        outside = [s for s in wanted if s not in touched]
        gate.check(
            "stacks are the planned ones",
            not outside,
            f"deploying {', '.join(wanted) or '(none)'}; the plan touched {', '.join(touched) or '(none)'}",
            "plan",
        )
        report.stacks = wanted
        resources = [r.model_dump(mode="json") for r in plan.resources]
    except GlassboxError as exc:
        gate.check("plan recomputed", False, exc.message, "plan")
    report.refused = bool(report.reasons)
    return report, registry, verdict, resources


def deploy(
    ctx: DeployContext, commit_sha: str, stacks: Sequence[str] = (), *, break_glass: str | None = None
) -> DeployReport:
    """Verify, then apply each stack with its own short-lived credential. Raises ``Denied`` on refusal."""
    sink = EventSink(ledger=ctx.ledger, signer=ctx.signer)
    try:
        report, registry, verdict, resources = verify_commit_for_deploy(
            ctx, commit_sha, stacks, break_glass=break_glass
        )
    except GlassboxError as exc:
        report, registry, verdict, resources = (
            _Draft(commit_sha, refused=True, reasons=[exc.message]),
            None,
            None,
            [],
        )
    except Exception as exc:  # I5
        reason = f"unexpected {type(exc).__name__}: {exc}"
        report, registry, verdict, resources = (
            _Draft(commit_sha, refused=True, reasons=[reason]),
            None,
            None,
            [],
        )

    run_id = str(uuid.uuid4())
    if not report.refused and break_glass is not None and len(report.stacks) != 1:
        # a grant covers one stack: refused before it is consumed, so a plan of two stacks never burns it
        detail = f"a grant covers one stack; this deploy is of {', '.join(report.stacks) or 'no stack'}"
        report.checks.append(GateCheck(name="break-glass grant", ok=False, detail=detail, source="plan"))
        report.reasons.append(f"break-glass grant: {detail}")
        report.refused = True
    if not report.refused and break_glass is not None and registry is not None:
        store = GrantStore.under(ctx.state_dir)
        lock = TrailGrantLock(ctx.trail, ctx.signer) if ctx.trail is not None else None
        for stack in report.stacks:
            try:
                alert = use_grant(
                    break_glass,
                    stack,
                    report.commit,
                    registry=registry,
                    store=store,
                    sink=sink,
                    state_dir=ctx.state_dir,
                    run_id=run_id,
                    now=ctx.now(),
                    envelope=ctx.grant_envelope,
                    trail=lock,
                )
                report.break_glass.append(alert)
                report.checks.append(
                    GateCheck(
                        name="break-glass grant",
                        ok=True,
                        detail=f"grant {break_glass} stands in for approvals on {stack}"
                        + (" (claimed on the audit trail)" if lock is not None else ""),
                        source="trail" if lock is not None else "ledger",
                    )
                )
            except GlassboxError as exc:
                report.checks.append(GateCheck(name="break-glass grant", ok=False, detail=exc.message, source="ledger"))
                report.reasons.append(f"break-glass grant: {exc.message}")
                report.refused = True
                break

    if not report.refused and registry is not None:
        trusted = deploy_trust(registry)
        applier = ctx.applier or select_applier(
            ctx.state_dir, trusted=trusted, kind=ctx.applier_kind, sink=sink, stack_env=ctx.applier_env
        )
        broker = CredentialBroker(ctx.signer, sink=sink)
        for stack in report.stacks:
            project, _, name = stack.partition("/")
            try:
                issued = broker.mint(stack, commit=report.commit, run_id=run_id, now=ctx.now())
                planned = [r for r in resources if r["project"] == project and r["stack"] == name]
                deployment = applier.apply(planned, stack=stack, commit=report.commit, credential=issued, now=ctx.now())
            except GlassboxError as exc:
                report.reasons.append(f"apply {stack}: {exc.message}")
                report.refused = True
                break
            report.deployments.append(deployment)
            if deployment.result != "succeeded":
                report.reasons.append(f"apply {stack}: {deployment.message}")

    failed = report.refused or any(d.result != "succeeded" for d in report.deployments)
    final = report.freeze()
    _record(ctx, sink, final, verdict, failed, break_glass)
    _save(ctx, final)
    if failed:
        raise Denied(f"deploy of {final.commit[:12]} refused" if final.refused else "deploy failed", final.reasons)
    return final


def _record(
    ctx: DeployContext, sink: EventSink, report: DeployReport, verdict: Verdict | None, failed: bool, bg: str | None
) -> None:
    outcome = Outcome.DENY if report.refused else (Outcome.ERROR if failed else Outcome.ALLOW)
    reason = (
        "; ".join(report.reasons)
        if failed
        else (f"deployed {', '.join(report.stacks)}" + (" under break-glass" if bg else ""))
    )
    sink.emit(
        "deploy",
        outcome,
        reason or "refused",
        stack=",".join(report.stacks) or None,
        commit=report.commit,
        correlation_id=report.correlation_id,
        details={
            "pr": report.pr,
            "head_sha": report.head_sha,
            "tree": report.tree,
            "checks": [c.model_dump(mode="json") for c in report.checks],
            "deployments": [
                {
                    "stack": d.stack,
                    "result": d.result,
                    "credential_id": d.credential_id,
                    "applier": d.applier,
                    "simulated": d.simulated,
                    "state_digest": d.state_digest,
                    "deployment_id": d.deployment_id,
                }
                for d in report.deployments
            ],
            "break_glass": bg,
            "plan_digest": verdict.change.plan_digest if verdict else None,
            "reasons": report.reasons,
        },
    )


def _save(ctx: DeployContext, report: DeployReport) -> Path:
    directory = ctx.state_dir / "deployments"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.commit}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
