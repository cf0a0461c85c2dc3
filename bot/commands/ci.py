"""`glassbox ci pull-request|review|push|schedule`: one GitHub Actions job each, from the runner's own environment.

Each subcommand reads what the runner provides (``GITHUB_EVENT_NAME``, the event payload at ``GITHUB_EVENT_PATH``,
``GITHUB_REPOSITORY``, ``GITHUB_SHA``, ``GITHUB_REF``, ``GITHUB_RUN_ID``, ``GITHUB_API_URL`` as the forge URL, and for
``push`` the OIDC request variables), checks that the payload is the event it claims to be and names this
repository, then does that event's whole job through the library functions the other commands call:

- ``ci pull-request`` — ``pull_request`` (opened, synchronize, reopened, ready_for_review): the check (verdict,
  signed attestation, SARIF, the ``glassbox/check`` status and the summary comment);
- ``ci review`` — ``pull_request_review`` (submitted, edited, dismissed) and ``pull_request`` (the above, and closed,
  edited base, converted_to_draft): the approvals gate, and with ``--merge`` the bot's merge;
- ``ci push`` — ``push`` to the protected branch: deploy, with the job's OIDC token for the cloud; and
  ``workflow_dispatch`` of the deploy workflow: the break-glass deploy of the ``commit`` input under the grant
  envelope in the ``grant`` input (read from the event payload, never from a script), claimed on the audit trail
  before anything is applied so a grant works once across runners (``bot.deploy.breakglass``);
- ``ci schedule`` — ``schedule`` and ``workflow_dispatch``: audit verify and the OCSF export; with
  ``--record-review``, ``workflow_dispatch`` of the audit workflow: the post-incident review closure in the ``review``
  input (read from the event payload, never from a script) verified and appended to the audit trail.

**Why one subcommand per job, not one ``ci run`` that dispatches on the event.** The same event starts jobs that
hold different keys: a ``pull_request`` runs the check (the CI identity's key) and then the approvals gate (the
bot's key), in two jobs. A dispatcher would pick the job from the event, that is from data; here the workflow file,
which is reviewed and read from the protected branch, names the job, and the event can only be refused when it is
not one that job handles. A workflow wired to the wrong trigger fails loudly instead of running another job with
the key it happens to hold.

Every job writes its outputs (``GITHUB_OUTPUT``) and its job summary (``GITHUB_STEP_SUMMARY``) once, at its end;
bad input (an unknown event or action, a payload that is not the event, another repository, a missing variable)
stops it before anything is written, with exit 2. The runner protocol itself lives in
:mod:`bot.commands._github_actions`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import git
import typer
from pydantic import Field
from rich.console import Console

from bot.approvals.service import evaluate_pr, merge_pr
from bot.audit.history import HistoryReport, VerifyRequest, trail_inputs, verify_history
from bot.audit.ocsf import OcsfMapper, render
from bot.audit.reconstruct import RegistryCache, open_repo
from bot.audit.siem import load_siem_config
from bot.check.ci import check_pull_request
from bot.check.evaluate import deny_reasons
from bot.check.services import CheckServices
from bot.commands import _github_actions as gha
from bot.commands._common import console, keys_dir, ledger_path, styled
from bot.commands.approvals import render_state
from bot.commands.deploy import ApplierOption, AttestationsOption, attestation_store
from bot.deploy.applier import ApplierKind, StackEnv, resolve_applier_kind
from bot.deploy.breakglass import (
    BreakGlassRefused,
    RecordedClosure,
    append_closure,
    read_presented_closure,
    read_presented_grant,
)
from bot.deploy.events import EventSink
from bot.deploy.gate import DeployContext, DeployReport, deploy
from bot.deploy.state import STATE_ENV, default_state_dir
from bot.errors import Denied, EngineError, ForgeError, GlassboxError, UserError
from bot.forge.github import GitHubForge
from bot.forge.port import Forge
from bot.forge.settings import resolve_settings
from bot.forge.trail import publish as publish_trail
from bot.forge.trail import seed as seed_trail
from bot.markdown import cell, text
from bot.plan.cache import DIR_ENV as PLAN_CACHE_DIR_ENV
from bot.plan.cache import KEY_ENV as PLAN_CACHE_KEY_ENV
from bot.plan.cache import PlanCache, cache_enabled, external_key
from bot.plan.cache import max_bytes as plan_cache_max_bytes
from bot.records import ActorKind, VerdictResult
from bot.registry import Registry, load_registry
from bot.trust.anchors import export_tree
from bot.trust.attestations import statement, stored_verdict
from bot.trust.conventions import REGISTRY_DIR, TRAIL_BRANCH
from bot.trust.keys import Signer, load_signer
from bot.trust.ledger import Ledger
from bot.trust.trail import trail_ref

group = typer.Typer(
    help="GitHub Actions jobs: each reads the runner's environment and event payload and does one job.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="ci")


CHECK_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})
LIFECYCLE_ACTIONS = frozenset({"closed", "edited", "converted_to_draft"})
REVIEW_ACTIONS = frozenset({"submitted", "edited", "dismissed"})

EVENTS: Mapping[str, Mapping[str, frozenset[str] | None]] = {
    "pull-request": {"pull_request": CHECK_ACTIONS},
    "review": {"pull_request": CHECK_ACTIONS | LIFECYCLE_ACTIONS, "pull_request_review": REVIEW_ACTIONS},
    "push": {"push": None, "workflow_dispatch": None},
    "schedule": {"schedule": None, "workflow_dispatch": None},
}
"""subcommand → the events it handles → their actions (None: the event has no actions)."""

OIDC_AUDIENCE = "sts.amazonaws.com"
ROLE_ARN_ENV = "GLASSBOX_DEPLOY_ROLE_ARN"
"""The cloud role per stack, a template naming both parts: ``arn:aws:iam::ACCOUNT:role/glassbox-{project}-{stack}``."""
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")


@dataclass
class Job:
    """What one job leaves behind: outputs, a job summary, a log view; ``failure`` is raised after they are written."""

    outputs: dict[str, str]
    summary: str
    render: Callable[[Console], None]
    failure: GlassboxError | None = None


def _finish(runner: gha.Runner, job: Job) -> None:
    with gha.commands_paused():
        job.render(console)
    gha.write_outputs(runner.output, job.outputs)
    gha.append_summary(runner.step_summary, job.summary)
    if job.failure is not None:
        raise job.failure


def _start(command: str, *, oidc: bool = False) -> tuple[gha.Runner, dict[str, Any]]:
    """The runner's environment and the event payload, for a subcommand that handles the event."""
    runner = gha.Runner.from_environ(oidc=oidc)
    handled = EVENTS[command]
    if runner.event_name not in handled:
        right = next((c for c, events in EVENTS.items() if runner.event_name in events), None)
        hint = f": that is `glassbox ci {right}`'s job" if right else ""
        raise UserError(
            f"{gha.EVENT_NAME} is {gha.quoted(runner.event_name)}; glassbox ci {command} handles "
            f"{', '.join(sorted(handled))}{hint}"
        )
    return runner, gha.read_event(runner.event_path)


def _action(runner: gha.Runner, command: str, action: str) -> None:
    allowed = EVENTS[command][runner.event_name]
    if allowed is not None and action not in allowed:
        raise UserError(
            f"{runner.event_name} action {gha.quoted(action)} is not handled by glassbox ci {command} "
            f"(handled: {', '.join(sorted(allowed))}); limit the workflow's `types:` to them"
        )


def _this_repository(runner: gha.Runner, named: str | None, where: str) -> None:
    if named is not None and not gha.same_repository(named, runner.repository):
        raise UserError(
            f"the event payload's {where} is {gha.quoted(named)}, but this job runs in {runner.repository} "
            f"({gha.REPOSITORY}): refusing an event about another repository"
        )


def _forge(runner: gha.Runner) -> GitHubForge:
    return GitHubForge(resolve_settings(runner.api_url, runner.repository, None))


def _ledger(forge: GitHubForge) -> Ledger:
    """This job's ledger: a cache of the audit trail, started at the trail's newest event when it is empty."""
    path = ledger_path(None)
    assert path is not None
    ledger = Ledger(path)
    seed_trail(forge, ledger)
    return ledger


def _verdict_store(stack: contextlib.ExitStack, attestations: Path | None, repo_path: Path) -> Path:
    """The attestation store named by --attestations or $GLASSBOX_ATTESTATIONS, else the audit trail's in the
    checkout at ``repo_path`` (the check job appended the verdict there), materialised while ``stack`` lasts.
    Every attestation is verified against the registry all the same: the store only says where to look. A checkout
    without the trail branch gives an empty store, so the gate refuses for want of a verdict and records it."""
    if attestations is not None or os.environ.get("GLASSBOX_ATTESTATIONS"):
        return attestation_store(attestations)
    if trail_ref(repo_path) is None:
        empty = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="glassbox-no-trail-")))
        console.print(f"no {TRAIL_BRANCH} branch in {repo_path}: no verdict can be found", style="yellow")
        return empty
    return stack.enter_context(trail_inputs(repo_path)).attestation_store


def _to_trail(
    forge: GitHubForge,
    ledger: Ledger,
    signer: Signer,
    job: Job,
    *,
    attestations: Path | None = None,
    deploy_state: Path | None = None,
) -> Job:
    """Append this job's events (and its attestations or deploy records) to the audit trail. A trail that could
    not be appended fails the job, after its outputs and summary are written: the decision stands, its record
    must not be lost silently."""
    try:
        report = publish_trail(forge, ledger, signer, attestations=attestations, deploy_state=deploy_state)
    except GlassboxError as exc:
        note = f"the audit trail ({TRAIL_BRANCH}) was not appended: {exc.message}"
        job.summary += f"\n\n**{text(note)}**\n"
        job.failure = job.failure or EngineError(note, engine="trail")
        return job
    job.outputs["trail"] = report.commit or ""
    if report.events:
        job.summary += f"\n\nAudit trail: events {report.events[0]}..{report.events[-1]} in {TRAIL_BRANCH}.\n"
    return job


@dataclass(frozen=True)
class _PullEvent:
    action: str
    number: int
    head_sha: str
    merged: bool
    base_changed: bool


def _pull_event(runner: gha.Runner, command: str, data: Mapping[str, Any]) -> _PullEvent:
    """A ``pull_request`` or ``pull_request_review`` payload, checked against the runner and this repository."""
    event: gha.PullRequestEvent | gha.PullRequestReviewEvent
    if runner.event_name == "pull_request":
        event = gha.parse_payload(gha.PullRequestEvent, data, runner.event_name)
        if event.number != event.pull_request.number:
            raise UserError(f"the event payload names PR #{event.number} and pull_request #{event.pull_request.number}")
        base_changed = isinstance(event.changes, dict) and "base" in event.changes
    else:
        event = gha.parse_payload(gha.PullRequestReviewEvent, data, runner.event_name)
        base_changed = False
    _action(runner, command, event.action)
    pr = event.pull_request
    _this_repository(runner, event.repository.full_name, "repository")
    _this_repository(runner, pr.base.repo.full_name if pr.base.repo else None, "pull_request.base.repo")
    merge_ref = f"refs/pull/{pr.number}/merge"
    if pr.state == "open" and runner.ref != merge_ref:
        raise UserError(
            f"{gha.REF} is {gha.quoted(runner.ref)}, but a {runner.event_name} event for PR #{pr.number} runs on "
            f"{merge_ref}: the payload is not this job's event"
        )
    return _PullEvent(event.action, pr.number, pr.head.sha, bool(pr.merged), base_changed)


def _bool(value: bool) -> str:
    return "true" if value else "false"


# --------------------------------------------------------------------------------------------------
# pull_request: the check


RepoPathOption = Annotated[
    Path, typer.Option("--repo-path", help="The checkout holding the commits (the PR's, with full history).")
]


@group.command("pull-request")
def pull_request(
    repo_path: RepoPathOption = Path("."),
    out: Annotated[
        Path, typer.Option("--out", help="Directory for verdict.json, verdict.sarif, summary.md and the attestation.")
    ] = Path("glassbox-check"),
) -> None:
    """Judge the PR's head: signed verdict and attestation, SARIF, the glassbox/check status and the summary comment.

    Outputs: result (PASSED, FAILED or superseded), risk, pr, head_sha, title, verdict, sarif, summary, attestation,
    attestations (the store, by head commit), predicate and predicate_type (the signed statement's, for a GitHub
    attestation of the same verdict), trail (the audit trail's head after this job appended to it). Exit 1 when the
    verdict is FAILED or the audit trail could not be appended."""
    runner, data = _start("pull-request")
    event = _pull_event(runner, "pull-request", data)
    forge = _forge(runner)
    ledger = _ledger(forge)
    with CheckServices(plan_cache=_ci_plan_cache(runner)) as services:
        job, ci = _check_job(forge, ledger, event, repo_path, out, services)
    if ci is not None:  # the key is loaded only now, after the check's sandboxes have exited
        job = _to_trail(forge, ledger, load_signer(keys_dir(None), ci), job, attestations=out / "attestations")
    _finish(runner, job)


def _ci_identity(repo_path: Path, base_sha: str) -> str:
    """The CI identity of the registry at the base commit: the key that signs this verdict is named there."""
    try:
        base = git.Repo(repo_path).commit(base_sha)
    except (git.exc.GitError, ValueError, git.BadName) as exc:
        raise UserError(
            f"--repo-path {repo_path} lacks the base commit {base_sha[:12]} ({exc}); check out with fetch-depth: 0"
        ) from None
    with tempfile.TemporaryDirectory(prefix="glassbox-ci-") as scratch:
        registry = load_registry(export_tree(base, REGISTRY_DIR, Path(scratch)))
    ci = registry.service_identity("ci")
    if ci is None:
        raise UserError("the base registry declares no CI identity (teams.yaml service_identities, kind ci)")
    return ci


def _ci_plan_cache(runner: gha.Runner) -> PlanCache | None:
    """The plan cache of a check on a runner: only under a MAC key held apart from the directory.

    A hosted runner starts empty and restores the directory from ``actions/cache``, which other runs of the
    repository can write: a key inside it would verify whatever they wrote. With ``GLASSBOX_PLAN_CACHE_KEY`` (a
    CI secret) entries verify only when written by a run that held the secret; without it the check plans every
    side. The directory is ``GLASSBOX_PLAN_CACHE_DIR``, else ``glassbox-plan-cache`` under ``RUNNER_TEMP``."""
    key = external_key()
    if key is None or not cache_enabled():
        return None
    directory = os.environ.get(PLAN_CACHE_DIR_ENV) or (
        str(Path(runner.temp) / "glassbox-plan-cache") if runner.temp else None
    )
    if directory is None:
        raise UserError(f"{PLAN_CACHE_KEY_ENV} is set but neither {PLAN_CACHE_DIR_ENV} nor RUNNER_TEMP is")
    return PlanCache(Path(directory), mac_key=key, max_bytes=plan_cache_max_bytes())


def _check_job(
    forge: Forge, ledger: Ledger, event: _PullEvent, repo_path: Path, out: Path, services: CheckServices | None = None
) -> tuple[Job, str | None]:
    """The check's job, and the CI identity that signed (None: nothing was judged)."""
    pull = forge.get_pull_request(event.number)
    base = {"pr": str(event.number), "head_sha": event.head_sha, "title": pull.title}
    if pull.head_sha != event.head_sha:
        # a later push is the PR's head now; its own run judges it (and this one's is cancelled or moot)
        note = f"PR #{event.number} moved on to {pull.head_sha[:12]}; the run for that head judges it"
        return Job(
            {**base, "result": "superseded"},
            f"### glassbox check: superseded\n\n{text(note)}\n",
            lambda c: c.print(f"PR #{event.number}: {pull.title}\nsuperseded: {note}"),
        ), None
    ci = _ci_identity(repo_path, pull.base_sha)
    store = out / "attestations"
    result = check_pull_request(
        forge,
        repo_path,
        event.number,
        signer=lambda: load_signer(keys_dir(None), ci),
        ledger=ledger,
        store=store,
        services=services,
    )
    written = {p.name: p for p in result.write(out)}
    verdict = result.verdict
    # the signed statement's predicate, for a second, keyless attestation of the same verdict (actions/attest)
    signed = statement(verdict)
    predicate = out / "predicate.json"
    predicate.write_text(json.dumps(signed["predicate"], indent=2, sort_keys=True) + "\n", encoding="utf-8")
    written[predicate.name] = predicate
    outputs = {
        **base,
        "head_sha": verdict.change.head_commit,
        "result": verdict.result.value,
        "risk": verdict.risk.value,
        "verdict": str(written["verdict.json"]),
        "sarif": str(written["verdict.sarif"]),
        "summary": str(written["summary.md"]),
        "attestation": str(written.get("attestation.dsse.json", "")),
        "attestations": str(store),
        "predicate": str(predicate),
        "predicate_type": str(signed["predicateType"]),
    }
    failed = verdict.result is VerdictResult.FAILED
    failure = Denied(f"check FAILED at risk {verdict.risk.value}", deny_reasons(verdict)) if failed else None

    def show(c: Console) -> None:
        c.print(f"PR #{event.number}: {pull.title}")
        c.print(result.summary)
        c.print(f"wrote {', '.join(str(p) for p in written.values())}")

    return Job(outputs, result.summary, show, failure), ci


# --------------------------------------------------------------------------------------------------
# pull_request_review and the PR's lifecycle: the approvals gate


@group.command("review")
def review(
    attestations: AttestationsOption = None,
    registry: Annotated[
        Path, typer.Option("--registry", help="The registry at the base commit (the trusted checkout's).")
    ] = Path("registry"),
    identity: Annotated[str, typer.Option("--as", help="Identity that signs ledger events (the bot).")] = (
        "glassbox-bot"
    ),
    merge: Annotated[
        bool, typer.Option("--merge/--no-merge", help="Merge as the bot when the gate and both statuses say yes.")
    ] = False,
    repo_path: Annotated[
        Path, typer.Option("--repo-path", help="The checkout whose glassbox-trail branch holds the verdicts.")
    ] = Path("."),
) -> None:
    """Evaluate the approvals gate at the PR's current head, publish glassbox/approvals, record it; with --merge,
    merge as the bot once approvals are satisfied and glassbox/check is green.

    Outputs: decision (satisfied, not-satisfied or skipped), satisfied, merged, merge_sha, pr, head_sha, title,
    trail (the audit trail's head after this job appended to it). Without --attestations (or
    $GLASSBOX_ATTESTATIONS) the head's verdict comes from the audit trail in the checkout at --repo-path.
    Exit 1 when approvals are not satisfied (with --merge: when the PR was not merged)."""
    runner, data = _start("review")
    event = _pull_event(runner, "review", data)
    if event.action == "closed" and event.merged:
        _finish(runner, _skipped(event, "the PR is merged: its merge event recorded the approvals it merged with"))
        return
    if runner.event_name == "pull_request" and event.action == "edited" and not event.base_changed:
        _finish(runner, _skipped(event, "the edit did not change the base branch (free text never moves the gate)"))
        return
    reg = load_registry(registry)
    forge = _forge(runner)
    ledger = _ledger(forge)
    signer = load_signer(keys_dir(None), identity)
    with contextlib.ExitStack() as stack:
        store = _verdict_store(stack, attestations, repo_path)
        job = _review_job(forge, ledger, signer, reg, event, store, merge)
    _finish(runner, _to_trail(forge, ledger, signer, job))


def _review_job(
    forge: GitHubForge,
    ledger: Ledger,
    signer: Signer,
    reg: Registry,
    event: _PullEvent,
    store: Path,
    merge: bool,
) -> Job:
    def verdict_for(head: str) -> Any:
        return stored_verdict(store, head, reg)

    merged, merge_sha = False, ""
    if merge and event.action != "closed":
        outcome = merge_pr(forge, reg, event.number, verdict_for, ledger, signer, members=reg.members)
        state, merged, merge_sha = outcome.approvals, outcome.merged, outcome.merge_sha or ""
        reasons = outcome.reasons
    else:
        state = evaluate_pr(forge, reg, event.number, verdict_for, ledger, signer, members=reg.members)
        reasons = [] if state.satisfied else [state.status_description()]
    try:
        title = forge.get_pull_request(event.number).title
    except ForgeError:  # the gate above could not read the PR either, and recorded why
        title = ""
    outputs = {
        "decision": "satisfied" if state.satisfied else "not-satisfied",
        "satisfied": _bool(state.satisfied),
        "merged": _bool(merged),
        "merge_sha": merge_sha,
        "pr": str(event.number),
        "head_sha": state.head_sha or "",
        "title": title,
    }
    lines = [f"### glassbox approvals: {'satisfied' if state.satisfied else 'NOT satisfied'}", ""]
    lines.append(
        f"PR #{event.number} {cell(title)} at `{(state.head_sha or '?')[:12]}`: {cell(state.status_description())}"
    )
    if merge:
        lines.append("")
        lines.append(f"merged as `{merge_sha[:12]}`" if merged else "not merged: " + cell("; ".join(reasons) or "-"))
    ok = merged if merge and event.action != "closed" else state.satisfied
    failure = None if ok else Denied("not merged" if merge and state.satisfied else "approvals not satisfied", reasons)

    def show(c: Console) -> None:
        c.print(f"PR #{event.number}: {title}")
        render_state(state, c)
        if merge:
            c.print(styled("merged PR #{} as {}", event.number, merge_sha) if merged else "not merged")

    return Job(outputs, "\n".join(lines) + "\n", show, failure)


def _skipped(event: _PullEvent, why: str) -> Job:
    outputs = {
        "decision": "skipped",
        "satisfied": "false",
        "merged": "false",
        "merge_sha": "",
        "pr": str(event.number),
        "head_sha": event.head_sha,
        "title": "",
    }
    return Job(outputs, f"### glassbox approvals: nothing to do\n\n{text(why)}\n", lambda c: c.print(f"skipped: {why}"))


# --------------------------------------------------------------------------------------------------
# push: deploy


def role_arn(template: str, stack: str) -> str:
    """The cloud role of one stack, from the ``{project}``/``{stack}`` template."""
    project, _, name = stack.partition("/")
    arn = template.replace("{project}", project).replace("{stack}", name)
    if not _ROLE_ARN.match(arn):
        raise UserError(f"{ROLE_ARN_ENV} gives {gha.quoted(arn)} for {stack}: not an IAM role ARN")
    return arn


def _role_template(kind: ApplierKind) -> str | None:
    template = os.environ.get(ROLE_ARN_ENV, "").strip()
    if kind is ApplierKind.LOCAL:
        return template or None
    if "{project}" not in template or "{stack}" not in template:
        raise UserError(
            f"set {ROLE_ARN_ENV} to the cloud role per stack, naming both parts, e.g. "
            "arn:aws:iam::123456789012:role/glassbox-deploy-{project}-{stack} (one role per stack, docs/deploy-oidc.md)"
        )
    role_arn(template, "project/stack")  # its shape, before anything is verified
    return template


def web_identity(runner: gha.Runner, template: str, scratch: Path) -> StackEnv:
    """Per stack: a fresh OIDC token of this job in a 0600 file, and that stack's role, for the cloud SDK's STS
    exchange (``AssumeRoleWithWebIdentity``) inside the Pulumi program's providers."""

    def env(stack: str) -> dict[str, str]:
        assert runner.id_token_url is not None and runner.id_token_request_token is not None
        token = gha.request_id_token(
            runner.id_token_url, runner.id_token_request_token, audience=OIDC_AUDIENCE, repository=runner.repository
        )
        try:
            path = gha.private_file(scratch, stack.replace("/", "-") + ".jwt", token.value)
        except OSError as exc:
            raise EngineError(f"cannot write the OIDC token file for {stack}: {exc.strerror}", engine="oidc") from None
        return {
            "AWS_ROLE_ARN": role_arn(template, stack),
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(path),
            "AWS_ROLE_SESSION_NAME": f"glassbox-{runner.run_id}",
        }

    return env


class BreakGlassInputs(gha.Payload):
    """The deploy workflow's ``workflow_dispatch`` inputs: the commit to deploy and the grant envelope (JSON text).
    The grant is only length-capped here; :func:`~bot.deploy.breakglass.read_presented_grant` bounds and checks
    it, and records a refusal."""

    commit: gha.CommitSha
    grant: str = Field(max_length=gha.MAX_EVENT_BYTES)


class BreakGlassDispatch(gha.Payload):
    ref: gha.RefName
    inputs: BreakGlassInputs
    repository: gha.RepositoryRef


@dataclass(frozen=True)
class _DeployTarget:
    commit: str
    grant: str | None = None  # the envelope as given (workflow_dispatch), not yet read


def _protected_dispatch(runner: gha.Runner, ref: str, repository: str, branch: str, what: str) -> None:
    """A ``workflow_dispatch`` that may act: for this repository, on the ref the runner ran, and that ref the
    protected branch (a dispatch on another branch runs that branch's workflow file, which a PR can write)."""
    _this_repository(runner, repository, "repository")
    if ref != runner.ref:
        raise UserError(f"the event payload dispatches {gha.quoted(ref)}, but {gha.REF} is {gha.quoted(runner.ref)}")
    if ref != f"refs/heads/{branch}":
        raise UserError(f"a dispatch on {gha.quoted(ref)}: {what} refs/heads/{branch}")


def _deploy_target(runner: gha.Runner, data: Mapping[str, Any], branch: str) -> _DeployTarget:
    """What this deploy job deploys: the pushed commit, or (workflow_dispatch) the commit and grant it was given."""
    if runner.event_name == "workflow_dispatch":
        dispatch = gha.parse_payload(BreakGlassDispatch, data, runner.event_name)
        _protected_dispatch(
            runner,
            dispatch.ref,
            dispatch.repository.full_name,
            branch,
            "the break-glass deploy runs only the workflow of",
        )
        return _DeployTarget(dispatch.inputs.commit, dispatch.inputs.grant)
    event = gha.parse_payload(gha.PushEvent, data, runner.event_name)
    _this_repository(runner, event.repository.full_name, "repository")
    if event.ref != runner.ref:
        raise UserError(f"the event payload pushes {gha.quoted(event.ref)}, but {gha.REF} is {gha.quoted(runner.ref)}")
    if event.ref != f"refs/heads/{branch}":
        raise UserError(f"a push to {gha.quoted(event.ref)}: glassbox ci push deploys only refs/heads/{branch}")
    if event.deleted:
        raise UserError(f"the push deleted {branch}: there is nothing to deploy")
    if event.after != runner.sha:
        raise UserError(f"the event payload pushes {event.after[:12]}, but {gha.SHA} is {runner.sha[:12]}")
    return _DeployTarget(runner.sha)


@group.command("push")
def push(
    repo_path: Annotated[Path, typer.Option("--repo-path", help="The checkout of the branch, full history.")] = Path(
        "."
    ),
    branch: Annotated[str, typer.Option("--branch", help="The protected branch: pushes elsewhere are refused.")] = (
        "main"
    ),
    attestations: AttestationsOption = None,
    state: Annotated[Path | None, typer.Option("--state", help="Deploy state directory.")] = None,
    applier: ApplierOption = None,
    identity: Annotated[str, typer.Option("--as", help="Deploy identity (its key signs credentials).")] = (
        "glassbox-deployer"
    ),
) -> None:
    """Deploy the pushed commit as the deploy identity: the gate re-verifies it (branch, PR, attestation, approvals,
    plan), then each stack is applied with its own short-lived credential and cloud role, from the job's OIDC token.

    On ``workflow_dispatch`` (break-glass): the ``commit`` input is deployed under the grant envelope in the
    ``grant`` input, which stands in for approvals only. It is read from the event payload (bounded, strict JSON,
    schema), verified against the registry before that commit (signature, opener in a break_glass team, expiry,
    stack) once the integrity checks passed, and claimed on the audit trail (grant, claim and post-incident review
    in one fast-forward append) before anything is applied: a grant another runner claimed is refused as reused.

    Outputs: result (deployed or refused), commit, pr, head_sha, stacks, simulated, oidc_subject, break_glass (the
    grant id, or empty), trail. Without --attestations (or $GLASSBOX_ATTESTATIONS) the merged head's verdict comes
    from the audit trail in the checkout. Exit 1 when the deploy is refused or fails (a malformed grant included),
    or the audit trail could not be appended."""
    runner, data = _start("push", oidc=True)
    target = _deploy_target(runner, data, branch)
    kind = resolve_applier_kind(applier)
    template = _role_template(kind)
    forge = _forge(runner)
    ledger = _ledger(forge)
    signer = load_signer(keys_dir(None), identity)
    assert runner.id_token_url is not None and runner.id_token_request_token is not None
    # the token is asked for first: a job that cannot get one stops before anything is verified or minted
    token = gha.request_id_token(
        runner.id_token_url, runner.id_token_request_token, audience=OIDC_AUDIENCE, repository=runner.repository
    )
    state_dir = state or default_state_dir()
    grant_id: str | None = None
    envelope: dict[str, Any] | None = None
    if target.grant is not None:
        try:
            grant_id, envelope = read_presented_grant(
                target.grant, sink=EventSink(ledger, signer), commit=target.commit
            )
        except BreakGlassRefused as exc:
            # recorded (breakglass.refuse) and nothing else: no grant, no claim, no deploy reaches the trail
            job = _deploy_job(runner, None, exc, token.subject, commit=target.commit)
            _finish(runner, _to_trail(forge, ledger, signer, job))
            return
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="glassbox-oidc-"))
        store = _verdict_store(stack, attestations, repo_path)
        ctx = DeployContext(
            repo_path=repo_path,
            forge=forge,
            ledger=ledger,
            signer=signer,
            state_dir=state_dir,
            attestations=store,
            branch=branch,
            applier_kind=kind,
            applier_env=web_identity(runner, template, Path(scratch)) if template else None,
            grant_envelope=envelope,
            trail=forge,
        )
        try:
            report: DeployReport | None = deploy(ctx, target.commit, break_glass=grant_id)
            failure: GlassboxError | None = None
        except Denied as exc:
            report, failure = None, exc
    job = _deploy_job(runner, report, failure, token.subject, commit=target.commit, grant_id=grant_id)
    _finish(runner, _to_trail(forge, ledger, signer, job, deploy_state=ctx.state_dir))


def _deploy_job(
    runner: gha.Runner,
    report: DeployReport | None,
    failure: GlassboxError | None,
    sub: str | None,
    *,
    commit: str | None = None,
    grant_id: str | None = None,
) -> Job:
    commit = report.commit if report else (commit or runner.sha)
    simulated = bool(report and any(d.simulated for d in report.deployments))
    outputs = {
        "result": "deployed" if failure is None else "refused",
        "commit": commit,
        "pr": str(report.pr) if report and report.pr is not None else "",
        "head_sha": (report.head_sha or "") if report else "",
        "stacks": " ".join(report.stacks) if report else "",
        "simulated": _bool(simulated),
        "oidc_subject": sub or "",
        "break_glass": grant_id or "",
    }
    lines = [f"### glassbox deploy: {'deployed' if failure is None else 'refused'} `{commit[:12]}`", ""]
    lines.append(f"OIDC token for audience `{OIDC_AUDIENCE}`, subject `{cell(sub or '?')}`")
    if grant_id is not None:
        lines.append(f"Break-glass grant `{cell(grant_id)}`: approvals skipped, integrity checks kept")
    for alert in report.break_glass if report else []:
        lines += ["", f"**{cell(alert.message)}**"]
    if report is not None:
        lines += ["", "| check | ok | detail |", "|---|---|---|"]
        lines += [f"| {cell(c.name)} | {'✔' if c.ok else '✘'} | {cell(c.detail)} |" for c in report.checks]
        lines += [""] + [
            f"- {cell(d.stack)}: {d.result} via {d.applier} — {cell(d.message)}" for d in report.deployments
        ]
    if failure is not None:
        lines += ["", *(f"- {cell(line.strip())}" for line in failure.lines())]

    def show(c: Console) -> None:
        for line in lines:
            c.print(line)

    return Job(outputs, "\n".join(lines) + "\n", show, failure)


# --------------------------------------------------------------------------------------------------
# schedule: audit verify and export


@group.command("schedule")
def schedule(
    repo_path: Annotated[
        Path, typer.Option("--repo-path", help="The checkout of the branch, full history (verify walks it).")
    ] = Path("."),
    attestations: AttestationsOption = None,
    deploy_state: Annotated[
        Path | None, typer.Option("--deploy-state", help="Deploy state directory. Default: $GLASSBOX_DEPLOY_STATE.")
    ] = None,
    branch: Annotated[str, typer.Option("--branch", help="The protected branch.")] = "main",
    out: Annotated[Path, typer.Option("--out", help="The OCSF export (one event per line).")] = Path(
        "glassbox-audit/ocsf.jsonl"
    ),
    siem_config: Annotated[Path, typer.Option("--siem-config", help="SIEM detection settings.")] = Path(
        "registry/siem.yaml"
    ),
    record_review: Annotated[
        bool,
        typer.Option(
            "--record-review",
            help="Instead of verifying: append the review closure in the dispatch's `review` input to the audit trail.",
        ),
    ] = False,
    identity: Annotated[
        str, typer.Option("--as", help="With --record-review: the service identity that appends it (its key signs).")
    ] = "glassbox-bot",
) -> None:
    """Verify the whole history against the ledger (audit verify), then export the ledger as OCSF.

    Outputs: result (verified or violations), findings, violations, events (ledger), exported (OCSF records), ocsf.
    Exit 1 on a failing finding; the export is written either way.

    With --record-review (a ``workflow_dispatch`` of the audit workflow on the protected branch): the closure envelope
    ``glassbox breakglass close --envelope-out`` wrote, in the ``review`` input, is read from the event payload
    (bounded, strict JSON, the DSSE shape, the closure's schema), verified (the reviewer's own key, a person in a
    reviews_break_glass team at the registry of the branch or of the deploy, not the grant's opener; the trail holds
    a verified use claim of that grant) and appended to the trail as ``breakglass/<grant id>.closed.dsse.json`` in
    one commit signed by --as. Nothing is verified or exported then: the audit job runs after it. Outputs: result
    (recorded or refused), grant_id, closed_by, outcome, trail. Exit 1 on a refusal (each recorded as
    ``breakglass.refuse``) or when the trail could not be appended."""
    runner, data = _start("schedule")
    if record_review:
        _record_review(runner, data, repo_path, branch, identity)
        return
    event = gha.parse_payload(gha.ScheduledEvent, data, runner.event_name)
    _this_repository(runner, event.repository.full_name if event.repository else None, "repository")
    path = ledger_path(None, required=False)
    if path is None and attestations is None and deploy_state is None:
        # nothing but the checkout: the audit trail in it (a full-history checkout has origin/glassbox-trail)
        with trail_inputs(repo_path) as view:
            request = VerifyRequest(
                ledger=view.ledger,
                repo=repo_path,
                attestations=view.attestation_store,
                deploy_state=view.deploy_state if view.deployments else None,
                branch=branch,
                trail=view.commit,
            )
            report, events, mapped = _verified_and_mapped(request, siem_config)
    else:
        if path is None:
            raise UserError("--attestations or --deploy-state given without a ledger: set GLASSBOX_LEDGER")
        Ledger.existing(path)
        store = attestation_store(attestations)
        if not store.is_dir():
            raise UserError(f"no attestation store at {store}: pass --attestations or set GLASSBOX_ATTESTATIONS")
        state = deploy_state or (default_state_dir() if os.environ.get(STATE_ENV) else None)
        request = VerifyRequest(ledger=path, repo=repo_path, attestations=store, deploy_state=state, branch=branch)
        report, events, mapped = _verified_and_mapped(request, siem_config)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(render(o, "ocsf") + "\n" for o in mapped), encoding="utf-8")
    _finish(runner, _audit_job(report, len(events), len(mapped), out))


class ReviewInputs(gha.Payload):
    """The audit workflow's ``workflow_dispatch`` input: the review closure envelope (JSON text). Only length-capped
    here; :func:`~bot.deploy.breakglass.read_presented_closure` bounds and checks it, and records a refusal."""

    review: str = Field(max_length=gha.MAX_EVENT_BYTES)


class ReviewDispatch(gha.Payload):
    ref: gha.RefName
    inputs: ReviewInputs
    repository: gha.RepositoryRef


def _record_review(runner: gha.Runner, data: Mapping[str, Any], repo_path: Path, branch: str, identity: str) -> None:
    """``ci schedule --record-review``: the closure in the dispatch's ``review`` input, verified, onto the trail."""
    if runner.event_name != "workflow_dispatch":
        raise UserError(
            f"{gha.EVENT_NAME} is {gha.quoted(runner.event_name)}: --record-review records the closure a "
            "workflow_dispatch of the audit workflow carries in its `review` input"
        )
    dispatch = gha.parse_payload(ReviewDispatch, data, runner.event_name)
    _protected_dispatch(
        runner,
        dispatch.ref,
        dispatch.repository.full_name,
        branch,
        "a review closure is recorded only by the workflow of",
    )
    repo = open_repo(repo_path)
    try:
        tip = repo.commit(f"refs/heads/{branch}")
    except (git.BadName, ValueError):
        raise UserError(f"--branch {branch!r} is not a branch of {repo_path}") from None
    registries = RegistryCache(repo)

    def registry_for(sha: str | None) -> Registry:
        """The branch's registry (None), or the one a deploy of ``sha`` trusted (its first parent's)."""
        return registries.before(sha, registries.at(tip))

    kind = registry_for(None).identity_kind(identity)
    if kind is None or kind in ("human", "agent"):
        raise UserError(f"--as {identity!r} is not a service identity of the registry (teams.yaml service_identities)")
    forge = _forge(runner)
    ledger = _ledger(forge)
    signer = load_signer(keys_dir(None), identity)
    sink = EventSink(ledger, signer, kind=ActorKind(kind))
    recorded: RecordedClosure | None = None
    failure: GlassboxError | None = None
    try:
        _, envelope = read_presented_closure(dispatch.inputs.review, sink=sink)
        recorded = append_closure(forge, signer, envelope, registry_for, sink=sink)
    except BreakGlassRefused as exc:
        failure = exc
    _finish(runner, _to_trail(forge, ledger, signer, _closure_job(recorded, failure)))


def _closure_job(recorded: RecordedClosure | None, failure: GlassboxError | None) -> Job:
    closure = recorded.closure if recorded else None
    outputs = {
        "result": "recorded" if failure is None else "refused",
        "grant_id": closure.grant_id if closure else "",
        "closed_by": closure.closed_by if closure else "",
        "outcome": closure.outcome if closure else "",
        "trail": recorded.trail if recorded else "",
    }
    if recorded is not None and closure is not None:
        lines = [f"### glassbox break-glass review: closed `{cell(closure.grant_id)}`", ""]
        lines.append(
            f"Ticket `{cell(recorded.ticket)}`, stack `{cell(recorded.stack)}`: closed by `{cell(closure.closed_by)}` "
            f"at {closure.closed_at.isoformat()}, outcome **{closure.outcome}**"
        )
        if closure.follow_up:
            lines.append(f"Follow-up: {cell(closure.follow_up)}")
        lines.append(f"Recorded on {TRAIL_BRANCH} as `{cell(recorded.entry)}`")
    else:
        lines = ["### glassbox break-glass review: refused", ""]
    if failure is not None:
        lines += ["", *(f"- {cell(line.strip())}" for line in failure.lines())]

    def show(c: Console) -> None:
        for line in lines:
            c.print(line)

    return Job(outputs, "\n".join(lines) + "\n", show, failure)


def _verified_and_mapped(request: VerifyRequest, siem_config: Path) -> tuple[HistoryReport, list[Any], list[Any]]:
    """audit verify of ``request``, and its ledger's events with their OCSF records."""
    ledger = Ledger.existing(request.ledger)
    report = verify_history(request)
    events = list(ledger.events())
    mapped = OcsfMapper(load_siem_config(siem_config).detections).map_all(events, high_water=ledger.high_water())
    return report, events, list(mapped)


def _audit_job(report: HistoryReport, events: int, exported: int, out: Path) -> Job:
    findings = report.findings()
    outputs = {
        "result": "verified" if report.ok else "violations",
        "findings": str(len(findings)),
        "violations": str(len(report.violations)),
        "events": str(events),
        "exported": str(exported),
        "ocsf": str(out),
    }
    head = (
        f"{report.branch} at `{report.branch_head[:12]}`: {report.commits_checked} commit(s), "
        f"{len(report.governed_commits)} governed; ledger {events} event(s), {exported} OCSF record(s) exported"
    )
    lines = [f"### glassbox audit: {'no violations' if report.ok else f'{len(report.violations)} violation(s)'}", ""]
    lines += [head, ""] + [f"- {'✘' if f.fails else '!'} {cell(f.line())}" for f in findings]
    failure = None if report.ok else Denied("audit verify found violations", [v.line() for v in report.violations])

    def show(c: Console) -> None:
        c.print(head)
        for f in findings:
            c.print(f"{'✘' if f.fails else '!'} {f.line()}")

    return Job(outputs, "\n".join(lines) + "\n", show, failure)
