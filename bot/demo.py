"""The governed flow end to end, offline, on embedded defaults: what `glassbox demo` runs.

It starts the embedded forge (a GitHub REST subset on 127.0.0.1, real git, real HTTP through PyGithub) on a
copy of this repository's estate, then plays the scenarios a new user should see: agents propose, CI checks,
reviewers approve, the bot merges, the deploy identity deploys to local state (a simulated cloud, and it
says so), break-glass raises its alert, and the audit trail verifies. Every scenario's expected and actual
outcome goes to ``<dir>/summary.json``; the ledger is ``<dir>/ledger.jsonl``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import git
from github import Auth, Github

from bot.approvals import protection
from bot.approvals.service import evaluate_pr, merge_pr
from bot.check.ci import check_pull_request
from bot.deploy.applier import ApplierKind
from bot.deploy.breakglass import GrantStore, open_grant
from bot.deploy.gate import DeployContext, deploy
from bot.errors import Denied
from bot.forge.github import GitHubForge
from bot.forge.server import ADMIN, init_forge, load_tokens, repo_path, start_forge
from bot.forge.settings import ForgeSettings
from bot.forge.trail import PublishReport
from bot.forge.trail import publish as publish_trail
from bot.policy.checkov import CheckovWorker
from bot.proposal_context import proposal_context
from bot.propose import propose
from bot.records import ChangeRequest, Verdict
from bot.registry import load_registry
from bot.trust.anchors import export_tree
from bot.trust.attestations import stored_verdict
from bot.trust.conventions import REGISTRY_DIR, TRAIL_BRANCH
from bot.trust.gitenv import commit_env
from bot.trust.keys import Signer, load_signer
from bot.trust.ledger import Ledger, LedgerKeys, ledger_keys

REPO = "acme/infra"
GOVERNED = ("registry", "infra", "policy-pack", ".github")
EXAMPLES = Path("examples/requests")


@dataclass
class Scenario:
    name: str
    expected: str
    actual: str = "not run"
    correlation_id: str | None = None
    detail: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expected": self.expected,
            "actual": self.actual,
            "correlation_id": self.correlation_id,
            "detail": self.detail,
        }


Say = Callable[[str], None]


class DemoWorld:
    """The embedded forge, the keys forge init made, the ledger and the stores, for one demo run."""

    def __init__(self, root: Path, source: Path, say: Say) -> None:
        self.root, self.say = root, say
        if root.exists():
            shutil.rmtree(root)
        staged = root / "source"
        for name in GOVERNED:
            shutil.copytree(source / name, staged / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (staged / "README.md").write_text("# acme infrastructure (governed by glassbox)\n", encoding="utf-8")
        self.data = root / "forge"
        # The forge's own review count is 0: `glassbox/approvals` (risk matrix + CODEOWNERS) is the gate.
        init_forge(self.data, REPO, staged, required_approvals=0)
        self._log = (root / "forge.log").open("a", encoding="utf-8")
        self.url, self._stop = start_forge(self.data, log=self._log)
        self.tokens = load_tokens(self.data)
        self.ledger = Ledger(root / "ledger.jsonl")
        self.attestations = root / "attestations"
        self.state = root / "deploy-state"
        self.bare = repo_path(self.data, REPO)
        with tempfile.TemporaryDirectory() as scratch:
            self.registry = load_registry(export_tree(self.main(), REGISTRY_DIR, Path(scratch)))
        self.checkov = CheckovWorker()
        self.direct_push: str | None = None  # commits made outside glassbox, for the audit to find
        self.override_merge: str | None = None

    def close(self) -> None:
        self.checkov.close()
        self._stop()
        self._log.close()

    def main(self) -> git.Commit:
        return git.Repo(self.bare).commit("refs/heads/main")

    def forge(self, identity: str) -> GitHubForge:
        return GitHubForge(ForgeSettings(url=self.url, repo=REPO, token=self.tokens[identity]))

    def signer(self, identity: str) -> Signer:
        return load_signer(self.data / "keys", identity)

    def github(self, identity: str) -> Github:
        return Github(base_url=self.url, auth=Auth.Token(self.tokens[identity]), retry=None)

    def publish_trail(self, identity: str) -> PublishReport:
        """What each service identity's job does at its end: append the new events, attestations and deploy
        records to the audit trail branch, in a commit it signs."""
        report = publish_trail(
            self.forge(identity),
            self.ledger,
            self.signer(identity),
            attestations=self.attestations,
            deploy_state=self.state,
        )
        events = f"events {report.events[0]}..{report.events[-1]}" if report.events else "no new events"
        self.say(f"  audit trail: {identity} appended {events} to {TRAIL_BRANCH} at {(report.commit or '-')[:12]}")
        return report

    # -- the stages -------------------------------------------------------------------------------

    def propose(self, request: ChangeRequest) -> Any:
        with proposal_context(
            base_repo=self.bare,
            branch=request.base_branch,
            forge=self.forge(request.agent_id),
            ledger=self.ledger,
            signer=self.signer(request.agent_id),
            checkov=self.checkov,
        ) as ctx:
            return propose(request, ctx)

    def ci(self, pr_number: int) -> Verdict:
        result = check_pull_request(
            self.forge("glassbox-ci"),
            self.bare,
            pr_number,
            signer=lambda: self.signer("glassbox-ci"),
            ledger=self.ledger,
            store=self.attestations,
            checkov=self.checkov,
        )
        out = self.root / "checks" / str(pr_number)  # what the check workflow uploads: SARIF, summary, verdict
        result.write(out)
        self.say(
            f"  CI: {result.verdict.result.value}, risk {result.verdict.risk.value} (PR #{pr_number}; "
            f"{out / 'verdict.sarif'}, {out / 'summary.md'})"
        )
        return result.verdict

    def verdict_for(self, head: str) -> Verdict | None:
        return stored_verdict(self.attestations, head, self.registry)

    def approve(self, pr_number: int, reviewer: str) -> None:
        self.github(reviewer).get_repo(REPO).get_pull(pr_number).create_review(event="APPROVE", body="Approved.")
        self.say(f"  {reviewer} approves PR #{pr_number}")

    def approvals(self, pr_number: int) -> Any:
        return evaluate_pr(
            self.forge("glassbox-bot"),
            self.registry,
            pr_number,
            self.verdict_for,
            self.ledger,
            self.signer("glassbox-bot"),
        )

    def merge(self, pr_number: int) -> Any:
        outcome = merge_pr(
            self.forge("glassbox-bot"),
            self.registry,
            pr_number,
            self.verdict_for,
            self.ledger,
            self.signer("glassbox-bot"),
        )
        self.say(
            f"  merge PR #{pr_number}: {'merged ' + (outcome.merge_sha or '')[:12] if outcome.merged else 'refused'}"
        )
        return outcome

    def deploy(self, commit: str, *, break_glass: str | None = None) -> Any:
        ctx = DeployContext(
            repo_path=self.bare,
            forge=self.forge("glassbox-deployer"),
            ledger=self.ledger,
            signer=self.signer("glassbox-deployer"),
            state_dir=self.state,
            attestations=self.attestations,
            applier_kind=ApplierKind.LOCAL,  # the demo simulates the cloud, and says so in every deploy record
        )
        return deploy(ctx, commit, break_glass=break_glass)

    def push_to_branch(self, branch: str, path: str, content: str, who: str) -> str:
        """A person adds a commit to a PR branch (as they would with `git push`)."""
        repo = git.Repo(self.bare)
        head = repo.commit(f"refs/heads/{branch}")
        with tempfile.TemporaryDirectory() as tmp:
            work = git.Repo.clone_from(str(self.bare), tmp, branch=branch)
            (Path(tmp) / path).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / path).write_text(content, encoding="utf-8")
            work.git.add("-A")
            person = self.registry.teams.people
            email = next(p.email for p in person if p.id == who)
            work.git.commit(
                "--no-gpg-sign",
                "-m",
                f"Add {path}",
                env=commit_env(who, email),
            )
            sha = work.head.commit.hexsha
            subprocess.run(
                ["git", "-C", tmp, "push", "-q", str(self.bare), f"{sha}:refs/heads/{branch}-incoming"],
                check=True,
                capture_output=True,
            )
        self.github(who).get_repo(REPO).get_git_ref(f"heads/{branch}").edit(sha)
        repo.git.update_ref("-d", f"refs/heads/{branch}-incoming")
        self.say(f"  {who} pushes {sha[:12]} to {branch} (was {head.hexsha[:12]})")
        return sha

    def protect(self) -> protection.ProtectionDiff:
        """Apply glassbox's branch protection as `glassbox protect` does; what the forge kept, read back."""
        want = protection.desired(self.registry)
        admin = self.forge(ADMIN)
        protection.apply(admin, want)
        return protection.verify(admin, want)

    def lift_protection(self) -> None:
        base = self.url.removesuffix("/api/v3")
        body = {
            "required_status_checks": None,
            "enforce_admins": False,
            "required_pull_request_reviews": None,
            "restrictions": None,
        }
        req = urllib.request.Request(  # noqa: S310 - the embedded forge on 127.0.0.1
            f"{base}/api/v3/repos/{REPO}/branches/main/protection", data=json.dumps(body).encode(), method="PUT"
        )
        req.add_header("Authorization", f"token {self.tokens[ADMIN]}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            resp.read()
        self.say("  an administrator lifts branch protection (incident override)")

    def ledger_keys(self) -> LedgerKeys:
        return ledger_keys(self.registry)


def load_request(path: Path, **overrides: Any) -> ChangeRequest:
    from bot.documents import load_document

    data = load_document(path)
    data.update(overrides)
    return ChangeRequest.model_validate(data)


def _refusal(scenario: Scenario, exc: Denied, word: str) -> None:
    scenario.actual = word
    scenario.detail = exc.reasons[:6]


def run_demo(source: Path, root: Path, say: Say) -> list[Scenario]:
    world = DemoWorld(root, source, say)
    examples = source / EXAMPLES
    scenarios: list[Scenario] = []
    try:
        scenarios += _protected(world, "branch protection applied from the start", "  glassbox protect: {}")
        scenarios += _auto_merge(world, examples)
        scenarios += _gated_medium(world, examples)
        world.publish_trail("glassbox-ci")
        scenarios += _denials(world, examples)
        scenarios += _break_glass(world, examples)
        world.publish_trail("glassbox-deployer")
        scenarios += _protected(
            world, "branch protection restored after the incident", "  an administrator restores protection: {}"
        )
        scenarios += _direct_push(world)
        scenarios += _audit(world, first_correlation_id(scenarios))
        report = world.ledger.verify(world.ledger_keys())
        scenarios.append(
            Scenario(
                "ledger verifies end to end",
                "verified",
                "verified" if report.ok else "broken",
                detail=[f"{report.events} signed, hash-chained events"],
            )
        )
    finally:
        world.close()
    (root / "summary.json").write_text(
        json.dumps({"scenarios": [s.as_dict() for s in scenarios]}, indent=2) + "\n", encoding="utf-8"
    )
    return scenarios


def _auto_merge(world: DemoWorld, examples: Path) -> list[Scenario]:
    world.say("[1] an auto agent's low-risk dev change: proposed, checked, auto-merged, deployed")
    s = Scenario("auto agent, low-risk dev change", "deployed")
    request = load_request(examples / "cost-optimizer-dev-retention.yaml")
    s.correlation_id = request.correlation_id
    proposal = world.propose(request)
    world.say(f"  propose: PR #{proposal.pr_number} on {proposal.branch}")
    world.ci(proposal.pr_number)
    outcome = world.merge(proposal.pr_number)
    if not outcome.merged:
        s.actual, s.detail = "not merged", outcome.reasons
        return [s]
    report = world.deploy(outcome.merge_sha)
    s.actual = "deployed" if report.deployments else "not deployed"
    s.detail = [f"{d.stack}: {d.message}" for d in report.deployments]
    world.say(f"  deploy: {', '.join(s.detail)}")
    return [s]


def _gated_medium(world: DemoWorld, examples: Path) -> list[Scenario]:
    world.say("[2] a gated agent's medium-risk prod change: a stale approval is discarded, fresh ones count")
    stale = Scenario("approval made stale by a later push", "discarded")
    s = Scenario("gated agent, medium-risk prod change", "deployed")
    request = load_request(examples / "patch-agent-prod-backups.yaml")
    s.correlation_id = stale.correlation_id = request.correlation_id
    proposal = world.propose(request)
    world.say(f"  propose: PR #{proposal.pr_number}")
    world.ci(proposal.pr_number)
    world.approve(proposal.pr_number, "dan")
    world.push_to_branch(
        proposal.branch,
        "infra/data/RUNBOOK.md",
        "# Backup retention\n\nRestores are tested monthly; see the DR runbook.\n",
        "frank",
    )
    world.ci(proposal.pr_number)
    state = world.approvals(proposal.pr_number)
    discarded = [d for d in state.discarded_with_reason if d.user == "dan"]
    stale.actual = "discarded" if discarded else "counted"
    stale.detail = [f"{d.user}: {d.reason.value} — {d.detail}" for d in discarded]
    world.say(f"  approvals: {'; '.join(stale.detail) or 'nothing discarded'}")
    world.approve(proposal.pr_number, "dan")
    world.approve(proposal.pr_number, "erin")
    outcome = world.merge(proposal.pr_number)
    if not outcome.merged:
        s.actual, s.detail = "not merged", outcome.reasons
        return [stale, s]
    report = world.deploy(outcome.merge_sha)
    s.actual = "deployed" if report.deployments else "not deployed"
    s.detail = [f"{d.stack}: {d.message}" for d in report.deployments]
    world.say(f"  deploy: {', '.join(s.detail)}")
    return [stale, s]


def _denials(world: DemoWorld, examples: Path) -> list[Scenario]:
    out = []
    for name, file, word in (
        ("world-open SSH denied by policy at pre-flight", "network-agent-open-ssh.yaml", "denied"),
        ("agent edit of CODEOWNERS refused at proposal", "network-agent-codeowners.yaml", "refused"),
        ("undeclared prod delete denied by policy", "patch-agent-undeclared-delete.yaml", "denied"),
    ):
        world.say(f"[-] {name}")
        s = Scenario(name, word)
        request = load_request(examples / file)
        s.correlation_id = request.correlation_id
        try:
            proposal = world.propose(request)
        except Denied as exc:
            stage = "denied" if "preflight" in exc.message else "refused"
            _refusal(s, exc, stage)
            world.say(f"  {stage}: {exc.reasons[0]}")
        else:
            s.actual = f"opened PR #{proposal.pr_number}"
        out.append(s)
    return out


def _break_glass(world: DemoWorld, examples: Path) -> list[Scenario]:
    world.say("[3] incident: a prod fix merged without approvals; deploy refuses it until break-glass")
    refused = Scenario("deploy without approvals refused", "refused")
    s = Scenario("break-glass deploy with its alert", "deployed")
    request = load_request(examples / "patch-agent-incident-fix.yaml")
    s.correlation_id = refused.correlation_id = request.correlation_id
    proposal = world.propose(request)
    world.ci(proposal.pr_number)
    # an administrator lifts branch protection during the incident (as a GitHub org owner can); glassbox's
    # own merge gate is bypassed, so only deploy stands between this commit and production
    world.lift_protection()
    pr = world.forge("glassbox-bot").get_pull_request(proposal.pr_number)
    merged = world.forge("glassbox-bot").merge(proposal.pr_number, expected_head_sha=pr.head_sha)
    world.say(f"  admin override merge: {merged.sha[:12] if merged.sha else merged.message}")
    world.override_merge = merged.sha
    try:
        world.deploy(merged.sha or "")
        refused.actual = "deployed"
    except Denied as exc:
        _refusal(refused, exc, "refused")
        world.say(f"  deploy refused: {exc.reasons[0]}")
    grant = open_grant(
        world.registry,
        world.signer("grace"),
        ticket="INC-4711",
        reason="prod log shipping stalled",
        stack="data/prod",
        ledger=world.ledger,
        store=GrantStore.under(world.state),
        ttl=timedelta(hours=1),
    )
    world.say(f"  grace opens break-glass grant {grant.grant.grant_id} (ticket INC-4711, 1h, data/prod)")
    report = world.deploy(merged.sha or "", break_glass=grant.grant.grant_id)
    s.actual = "deployed" if report.deployments and report.break_glass else "not deployed"
    s.detail = [f"alert {a.alert_id} severity {a.severity}; review due" for a in report.break_glass]
    world.say(f"  deployed under break-glass; {s.detail[0] if s.detail else ''}")
    return [refused, s]


def _protected(world: DemoWorld, name: str, line: str) -> list[Scenario]:
    """The protection `glassbox protect` applies, in place and read back: required checks, last-push approval for
    everyone but the bot (whose glassbox/approvals gate lets an auto agent's low-risk change through)."""
    s = Scenario(name, "in sync")
    found = world.protect()
    s.actual = "in sync" if found.in_sync else "not in sync"
    s.detail = [f"{c.setting}: live {c.live!r}, desired {c.desired!r}" for c in found.changes] or [
        "checks " + ", ".join(protection.desired(world.registry).required_status_checks) + "; last-push approval on"
    ]
    world.say(line.format(s.actual))
    return [s]


def _direct_push(world: DemoWorld) -> list[Scenario]:
    world.say("[4] a commit pushed straight to main: deploy refuses it")
    s = Scenario("deploy of a direct push refused", "refused")
    repo = git.Repo(world.bare)
    head = repo.commit("refs/heads/main")
    # a person with push rights (frank, of the data team) edits a governed file on main itself, outside any PR
    frank = next(p for p in world.registry.teams.people if p.id == "frank")
    config = (head.tree / "infra/network/Pulumi.dev.yaml").data_stream.read().decode("utf-8")
    blob = (
        subprocess.run(
            ["git", "-C", str(world.bare), "hash-object", "-w", "--stdin"],
            input=config.replace("REJECT", "ALL").encode("utf-8"),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    index = {**commit_env(frank.name, frank.email), "GIT_INDEX_FILE": str(world.root / "direct-push.index")}
    repo.git.read_tree(head.tree.hexsha, env=index)
    repo.git.update_index("--cacheinfo", f"100644,{blob},infra/network/Pulumi.dev.yaml", env=index)
    tree = repo.git.write_tree(env=index)
    sha = repo.git.commit_tree(tree, "-p", head.hexsha, "-m", "hotfix pushed directly", env=index)
    repo.git.update_ref("refs/heads/main", sha)
    world.direct_push = sha
    try:
        world.deploy(sha)
        s.actual = "deployed"
    except Denied as exc:
        _refusal(s, exc, "refused")
        world.say(f"  refused: {exc.reasons[0]}")
    return [s]


def first_correlation_id(scenarios: list[Scenario]) -> str | None:
    """The first decision the demo made (the one its audit scenario shows, and the command's hint names)."""
    return next((s.correlation_id for s in scenarios if s.correlation_id), None)


def _audit(world: DemoWorld, correlation_id: str | None) -> list[Scenario]:
    """What an auditor runs afterwards: one decision end to end, the whole history, the metrics, the report."""
    from bot.audit.history import VerifyRequest, ViolationKind, verify_from_trail, verify_history
    from bot.audit.metrics import compute_metrics
    from bot.audit.reconstruct import ShowRequest, reconstruct
    from bot.audit.report import ReportRequest, write_report

    world.say("[5] audit: show one decision, verify the history, compute the metrics, write the report")
    show = Scenario(
        "audit show: the auto-merged decision, every link verified", "verified", correlation_id=correlation_id
    )
    started = time.monotonic()
    chain = reconstruct(
        ShowRequest(
            query=correlation_id or "",
            ledger=world.ledger.path,
            repo=world.bare,
            attestations=world.attestations,
            deploy_state=world.state,
        )
    )
    took = time.monotonic() - started
    show.actual = "verified" if chain.ok else "broken"
    show.detail = [f"{len(chain.links)} links in {took * 1000:.0f} ms", *chain.problems]
    world.say(f"  audit show {correlation_id}: {show.actual}, {show.detail[0]}")

    verify = Scenario("audit verify: flags the out-of-band merge, the direct push, the break-glass deploy", "flagged")
    history = verify_history(
        VerifyRequest(
            ledger=world.ledger.path, repo=world.bare, attestations=world.attestations, deploy_state=world.state
        )
    )
    found = {(v.kind, v.commit) for v in history.findings()}
    expected = {
        (ViolationKind.DIRECT_PUSH, world.direct_push),
        (ViolationKind.OUT_OF_BAND_MERGE, world.override_merge),
        (ViolationKind.BREAK_GLASS_DEPLOY, world.override_merge),
    }
    verify.actual = "flagged" if found == expected else f"flagged {len(found & expected)} of {len(expected)}"
    verify.detail = [v.line() for v in history.findings()]
    world.say(f"  audit verify: {len(history.governed_commits)} governed commits, {len(verify.detail)} findings:")
    for line in verify.detail:
        world.say(f"    {line}")

    world.publish_trail("glassbox-bot")
    trail = Scenario("audit verify from a fresh clone: the audit trail alone, same findings", "flagged")
    clone = world.root / "audit-clone"
    git.Repo.clone_from(world.bare, clone, no_checkout=True)
    from_trail = verify_from_trail(clone)
    found_in_clone = {(v.kind, v.commit) for v in from_trail.findings()}
    trail.actual = "flagged" if found_in_clone == expected and from_trail.trail else "differs from the local files"
    trail.detail = [
        f"{from_trail.ledger_events} events and {from_trail.trail_commits} trail commits from {clone}",
        *(v.line() for v in from_trail.findings()),
    ]
    world.say(f"  audit verify --repo {clone}: {trail.actual} ({trail.detail[0]})")

    metrics = compute_metrics(world.ledger.events())
    (world.root / "metrics.json").write_text(json.dumps(metrics.as_dict(), indent=2) + "\n", encoding="utf-8")
    overall = metrics.overall.as_dict()
    world.say(
        f"  audit metrics: auto-approved {overall['auto_approved']['display']}, "
        f"escalated {overall['escalated']['display']}, policy denial rate {overall['policy_denial_rate']['display']} "
        f"(all in {world.root / 'metrics.json'})"
    )

    page = Scenario("audit report: HTML page for auditors", "written")
    result = write_report(
        ReportRequest(
            ledger=world.ledger.path, attestations=world.attestations, deploy_state=world.state, repo=world.bare
        ),
        world.root / "report.html",
    )
    page.actual = "written" if result.verified else "written, integrity broken"
    page.detail = [f"{world.root / 'report.html'}: {result.decisions} decisions, {result.events} events"]
    world.say(f"  audit report: {page.detail[0]}")
    return [show, verify, trail, page]
