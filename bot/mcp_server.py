"""The MCP server: an agent's glassbox tools over stdio, as ONE agent identity fixed at start.

``glassbox mcp --agent ID`` loads that agent's key once and answers four tools:

- ``propose_change``: a ChangeRequest (JSON; its JSON Schema is the published input schema) → the Proposal,
  or the refusal with every reason;
- ``preflight_change``: the same input → the would-be verdict's deny reasons and risk; no PR, no commit;
- ``get_change_status``: by correlation id or PR number → check, risk, approvals, merge and deploy state,
  each with an explanation, read from the ledger and from the forge;
- ``list_my_scope``: the agent's resolved scope from the registry on the base branch.

The server never widens what the agent may do: tools call the same service functions as the CLI
(:func:`bot.propose.propose`, :func:`bot.propose.scope_reasons`, :func:`bot.check.evaluate.run_check`,
:func:`bot.registry.resolved_scope`), the registry is read from the base commit for every call, and a request
naming another agent is refused (a proposal through ``propose`` itself, so the refusal is a ledger event like
any other, I6). Refusals are results (``accepted: false`` with ``reasons``), not protocol errors: the agent
is meant to read them and adjust.

The server keeps one :class:`~bot.check.services.CheckServices` for its lifetime (closed when it exits): the
checkov worker, the loaded policy pack (its engine compiled once per pack digest) and the plan cache stay warm
across ``preflight_change`` and ``propose_change`` calls, so a later call pays only for what its change changes.
Each call still clones the base afresh and runs every program it must run in a fresh sandbox.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from mcp.server import MCPServer
from pydantic import GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from bot import __version__
from bot.check.evaluate import deny_reasons
from bot.check.preflight import preflight_verdict
from bot.check.services import CheckServices
from bot.errors import Denied, GlassboxError
from bot.forge.github import GitHubForge
from bot.forge.model import CommitStatus
from bot.forge.port import Forge
from bot.forge.settings import ForgeSettings
from bot.plan.cache import configured_cache
from bot.proposal_context import proposal_context
from bot.propose import ProposeContext, build_evidence, propose, scope_reasons
from bot.records import AuditEvent, ChangeRequest, FindingStatus, validation_lines
from bot.registry import resolved_scope
from bot.trust.conventions import APPROVALS_CONTEXT, CHECK_CONTEXT
from bot.trust.keys import load_signer
from bot.trust.ledger import Ledger

PREFLIGHT_TOOL = "preflight_change"

INSTRUCTIONS = (
    "glassbox governs infrastructure changes. Your only write path is propose_change, which opens a pull "
    "request with your evidence; humans and policy decide whether it merges and a separate identity deploys it. "
    "Call list_my_scope first, preflight_change before proposing, and get_change_status to follow a change. "
    "A refusal lists every reason: fix them all before retrying."
)


@dataclass(frozen=True)
class ServerConfig:
    agent_id: str
    keys: Path
    ledger: Path
    base_repo: Path
    forge: ForgeSettings
    base_branch: str = "main"
    preflight: bool = True
    plan_cache: bool = True  # off also with GLASSBOX_PLAN_CACHE=off; its directory: GLASSBOX_PLAN_CACHE_DIR


class _ChangeRequestSchema:
    """Publishes ChangeRequest's JSON Schema for a ``request`` argument that stays a plain dict.

    An agent framework builds its request from the tool's input schema; validation stays in
    :meth:`AgentTools._parse`, so a malformed request is answered with every field it gets wrong rather than
    a protocol error. The model's sub-schemas land in the input schema's top-level ``$defs``.
    """

    @staticmethod
    def __get_pydantic_json_schema__(_schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(ChangeRequest.__pydantic_core_schema__)


RequestArg = Annotated[dict[str, Any], _ChangeRequestSchema()]


class AgentTools:
    """The four tools, bound to one agent. Plain methods returning JSON-able dicts, testable without MCP."""

    def __init__(self, config: ServerConfig, *, forge: Forge | None = None) -> None:
        self.config = config
        self.agent_id = config.agent_id
        # fail at start, not at the first call, when the agent's key is missing or unsafe
        self.signer = load_signer(config.keys, config.agent_id)
        self.forge: Forge = forge if forge is not None else GitHubForge(config.forge)
        self.ledger = Ledger(config.ledger)
        # Two warm sandboxes (one per side): a pre-flight's plan pays for the program, not for the imports.
        self.services = CheckServices(plan_cache=configured_cache(enabled=config.plan_cache), warm_sandboxes=2)

    def close(self) -> None:
        """Stop what the tools keep warm (the checkov worker); the end of the tools' lifetime."""
        self.services.close()

    # ---------------------------------------------------------------------------------------------- plumbing

    def _context(self, branch: str, *, preflight: bool) -> AbstractContextManager[ProposeContext]:
        """The proposal context on ``branch``: registry and pack from its commit (a change never judges itself)."""
        return proposal_context(
            base_repo=self.config.base_repo,
            branch=branch,
            forge=self.forge,
            ledger=self.ledger,
            signer=self.signer,
            preflight=preflight,
            services=self.services,
        )

    @staticmethod
    def _parse(request: dict[str, Any]) -> ChangeRequest | dict[str, Any]:
        try:
            return ChangeRequest.model_validate(request)
        except ValidationError as exc:
            return {
                "accepted": False,
                "outcome": "invalid",
                "message": "the request is not a valid ChangeRequest (see `glassbox schema change-request`)",
                "reasons": validation_lines("request", exc),
            }

    @staticmethod
    def _error(exc: GlassboxError) -> dict[str, Any]:
        return {"accepted": False, "outcome": "error", "message": exc.message, "reasons": exc.lines()[1:]}

    # ---------------------------------------------------------------------------------------------- tools

    def propose_change(self, request: RequestArg) -> dict[str, Any]:
        """Open a pull request for a ChangeRequest, or refuse with every reason (also recorded in the ledger)."""
        parsed = self._parse(request)
        if isinstance(parsed, dict):
            return parsed
        try:
            with self._context(parsed.base_branch, preflight=self.config.preflight) as ctx:
                # a request naming another agent goes through propose too: it refuses it and records why
                proposal = propose(parsed, ctx)
        except Denied as exc:
            return {
                "accepted": False,
                "outcome": "refused",
                "correlation_id": parsed.correlation_id,
                "message": exc.message,
                "reasons": exc.reasons,
            }
        except GlassboxError as exc:
            return self._error(exc) | {"correlation_id": parsed.correlation_id}
        return {"accepted": True, "outcome": proposal.outcome.value, "proposal": proposal.model_dump(mode="json")}

    def preflight_change(self, request: RequestArg) -> dict[str, Any]:
        """Judge a ChangeRequest as CI would, without opening anything: deny reasons, risk, approvals needed."""
        parsed = self._parse(request)
        if isinstance(parsed, dict):
            return parsed
        if parsed.agent_id != self.agent_id:
            return self._refused(parsed, "identity", [self._not_me(parsed.agent_id)])
        try:
            with self._context(parsed.base_branch, preflight=False) as ctx:
                registry = ctx.registry
                agent = registry.agent(self.agent_id)
                if PREFLIGHT_TOOL not in agent.tools:
                    return self._refused(
                        parsed, "scope", [f"agent {self.agent_id!r} is not granted the {PREFLIGHT_TOOL!r} tool"]
                    )
                reasons = scope_reasons(parsed, ctx)
                if reasons:
                    return self._refused(parsed, "scope", reasons)
                record = build_evidence(parsed, registry, ctx.policy_pack_digest, self.signer)
                verdict = preflight_verdict(
                    self.config.base_repo, self.forge.repo, parsed, record, services=self.services
                )
        except GlassboxError as exc:
            return self._error(exc) | {"correlation_id": parsed.correlation_id}
        reasons = deny_reasons(verdict)
        return {
            "accepted": not reasons,
            "outcome": "would_pass" if not reasons else "would_fail",
            "stage": "preflight",
            "correlation_id": parsed.correlation_id,
            "result": verdict.result.value,
            "risk": verdict.risk.value,
            "risk_reasons": verdict.risk_reasons,
            "reasons": reasons,
            "required_approvals": [r.model_dump(mode="json") for r in verdict.required_approvals],
            "warnings": [
                f"{f.rule_id} ({f.severity.value}): {f.message}"
                for f in verdict.findings
                if f.status is FindingStatus.WARN
            ],
            # per stack and side: planned in a sandbox now (miss, off) or taken from the plan cache (hit)
            "plan_sources": [s.model_dump(mode="json") for s in verdict.plan_sources],
        }

    def get_change_status(self, correlation_id: str | None = None, pr: int | None = None) -> dict[str, Any]:
        """Where a change stands: proposal, check and risk, approvals, merge, deploy; each with why."""
        if correlation_id is None and pr is None:
            return {"found": False, "reasons": ["give a correlation_id or a pr number"]}
        events = self._events(correlation_id, pr)
        proposals = [e for e in events if e.action == "propose"]
        owners = {e.details.get("agent_id") for e in proposals}
        if not proposals:
            return {
                "found": False,
                "reasons": [f"no proposal by agent {self.agent_id!r} matches {self._key(correlation_id, pr)}"],
            }
        if owners != {self.agent_id}:
            return {
                "found": False,
                "reasons": [f"{self._key(correlation_id, pr)} is not a change of agent {self.agent_id!r}"],
            }
        opened = [e for e in proposals if e.subject.pr is not None]
        number = pr if pr is not None else (opened[-1].subject.pr if opened else None)
        cid = correlation_id or next((e.correlation_id for e in proposals if e.correlation_id), None)
        status: dict[str, Any] = {
            "found": True,
            "agent_id": self.agent_id,
            "correlation_id": cid,
            "pr": number,
            "proposal": _proposal_state(proposals),
        }
        if number is None:
            status.update(
                check=_unknown("no PR was opened"),
                approvals=_unknown("no PR was opened"),
                merge=_unknown("no PR was opened"),
                deploy=_unknown("no PR was opened"),
            )
            status["events"] = [_event_line(e) for e in events]
            return status
        # a PR number reaches events recorded without the correlation id too (merge, approvals errors)
        events = _merge_events(events, self.ledger.find(pr=number))
        try:
            pull = self.forge.get_pull_request(number)
            latest = _latest_statuses(self.forge.list_statuses(pull.head_sha))
        except GlassboxError as exc:
            # the ledger side is still worth returning when the forge cannot answer
            status["forge_error"] = exc.message
            status["events"] = [_event_line(e) for e in events]
            return status
        status["pull_request"] = {
            "number": pull.number,
            "url": pull.url,
            "state": pull.state.value,
            "draft": pull.draft,
            "merged": pull.merged,
            "head_sha": pull.head_sha,
            "merge_commit_sha": pull.merge_commit_sha,
        }
        status["check"] = _check_state(events, pull.head_sha, latest.get(CHECK_CONTEXT))
        status["risk"] = status["check"].get("risk")
        status["approvals"] = _approvals_state(events, pull.head_sha, latest.get(APPROVALS_CONTEXT))
        status["merge"] = _merge_state(events, pull.merged, pull.merge_commit_sha)
        deploys = self.ledger.find(commit=pull.merge_commit_sha) if pull.merge_commit_sha else []
        events = _merge_events(events, deploys)
        status["deploy"] = _deploy_state(events, pull.merged)
        status["events"] = [_event_line(e) for e in events]
        return status

    def list_my_scope(self) -> dict[str, Any]:
        """This agent's registry entry as resolved on the base branch: paths, stacks, tools, budgets, requesters."""
        try:
            with self._context(self.config.base_branch, preflight=False) as ctx:
                scope = resolved_scope(ctx.registry, self.agent_id)
        except GlassboxError as exc:
            return self._error(exc)
        return {"agent_id": self.agent_id, "repo": self.forge.repo, "base_branch": self.config.base_branch} | scope

    # ---------------------------------------------------------------------------------------------- helpers

    def _not_me(self, other: str) -> str:
        return f"this server acts as agent {self.agent_id!r} only; it cannot act for {other!r}"

    @staticmethod
    def _refused(request: ChangeRequest, stage: str, reasons: list[str]) -> dict[str, Any]:
        return {
            "accepted": False,
            "outcome": "refused",
            "stage": stage,
            "correlation_id": request.correlation_id,
            "reasons": reasons,
        }

    @staticmethod
    def _key(correlation_id: str | None, pr: int | None) -> str:
        return f"correlation id {correlation_id}" if correlation_id else f"PR #{pr}"

    def _events(self, correlation_id: str | None, pr: int | None) -> list[AuditEvent]:
        if correlation_id is not None:
            return self.ledger.find(correlation_id=correlation_id)
        assert pr is not None
        by_pr = self.ledger.find(pr=pr)
        ids = {e.correlation_id for e in by_pr if e.action == "propose" and e.correlation_id}
        return _merge_events(by_pr, *(self.ledger.find(correlation_id=i) for i in sorted(ids)))


# --------------------------------------------------------------------------------------------------
# the would-be verdict (pre-flight that keeps the whole verdict, not only its deny reasons)


def _merge_events(*groups: list[AuditEvent]) -> list[AuditEvent]:
    seen: dict[int, AuditEvent] = {}
    for group in groups:
        for event in group:
            seen[event.seq] = event
    return [seen[k] for k in sorted(seen)]


def _event_line(e: AuditEvent) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "time": e.time.isoformat(),
        "action": e.action,
        "outcome": e.outcome.value,
        "actor": e.actor.id,
        "reason": e.reason,
        "pr": e.subject.pr,
        "commit": e.subject.commit,
    }


def _latest_statuses(statuses: list[CommitStatus]) -> dict[str, CommitStatus]:
    latest: dict[str, CommitStatus] = {}
    for s in statuses:
        # GitHub lists the newest first; keep the first seen per context
        latest.setdefault(s.context, s)
    return latest


def _unknown(why: str) -> dict[str, Any]:
    return {"state": "unknown", "explanation": why}


def _proposal_state(proposals: list[AuditEvent]) -> dict[str, Any]:
    last = proposals[-1]
    return {
        "state": str(last.details.get("result") or last.outcome.value),
        "outcome": last.outcome.value,
        "reasons": list(last.details.get("reasons") or []),
        "explanation": last.reason,
    }


def _check_state(events: list[AuditEvent], head: str, status: CommitStatus | None) -> dict[str, Any]:
    checks = [e for e in events if e.action == "check" and e.subject.commit == head]
    if checks:
        e = checks[-1]
        denied = [f"{f['rule_id']} ({f['severity']})" for f in e.details.get("findings", []) if f["status"] == "deny"]
        return {
            "state": str(e.details.get("result", e.outcome.value)).lower(),
            "risk": e.details.get("risk"),
            "risk_reasons": e.details.get("risk_reasons", []),
            "denied_by": denied,
            "errors": e.details.get("errors", []),
            "explanation": f"CI ({e.actor.id}) judged {head[:12]}: {e.reason}",
        }
    if status is not None:
        return {
            "state": status.state.value,
            "risk": None,
            "explanation": f"{CHECK_CONTEXT} is {status.state.value} on {head[:12]}: {status.description}",
        }
    return {"state": "pending", "risk": None, "explanation": f"CI has not reported a verdict for {head[:12]} yet"}


def _approvals_state(events: list[AuditEvent], head: str, status: CommitStatus | None) -> dict[str, Any]:
    gates = [e for e in events if e.action == "approvals" and e.subject.commit == head]
    if gates:
        e = gates[-1]
        d = e.details
        return {
            "state": "satisfied" if d.get("satisfied") else "not_satisfied",
            "required": [
                {k: r.get(k) for k in ("id", "owners", "count", "satisfied", "approvers", "reason")}
                for r in d.get("required", [])
            ],
            "auto_merge_eligible": d.get("auto_merge_eligible"),
            "explanation": e.reason,
        }
    if status is not None:
        return {
            "state": status.state.value,
            "explanation": f"{APPROVALS_CONTEXT} is {status.state.value} on {head[:12]}: {status.description}",
        }
    return {"state": "pending", "explanation": f"the approvals gate has not evaluated {head[:12]} yet"}


def _merge_state(events: list[AuditEvent], merged: bool, sha: str | None) -> dict[str, Any]:
    merges = [e for e in events if e.action == "merge"]
    if merged:
        how = f" ({merges[-1].reason or 'merged by ' + merges[-1].actor.id})" if merges else ""
        return {"state": "merged", "commit": sha, "explanation": f"merged as {sha}{how}"}
    if merges:
        e = merges[-1]
        return {"state": "refused", "reasons": e.details.get("reasons", []), "explanation": e.reason}
    return {"state": "open", "explanation": "not merged: it needs a PASS verdict and satisfied approvals first"}


def _deploy_state(events: list[AuditEvent], merged: bool) -> dict[str, Any]:
    deploys = [e for e in events if e.action == "deploy"]
    if deploys:
        e = deploys[-1]
        return {
            "state": str(e.details.get("result") or e.outcome.value),
            "outcome": e.outcome.value,
            "simulated": e.details.get("simulated"),
            "stack": e.subject.stack,
            "explanation": e.reason,
        }
    if merged:
        return {"state": "pending", "explanation": "merged; the deploy identity has not applied it yet"}
    return {"state": "not_started", "explanation": "only a merged change is deployed"}


# --------------------------------------------------------------------------------------------------
# the MCP server


def build_server(tools: AgentTools) -> MCPServer[Any]:
    """An MCP server exposing the four tools of ``tools``."""
    server: MCPServer[Any] = MCPServer(
        name="glassbox",
        version=__version__,
        instructions=INSTRUCTIONS + f" This server acts as agent {tools.agent_id!r}.",
    )
    server.add_tool(tools.propose_change, name="propose_change")
    server.add_tool(tools.preflight_change, name="preflight_change")
    server.add_tool(tools.get_change_status, name="get_change_status")
    server.add_tool(tools.list_my_scope, name="list_my_scope")
    return server


def serve(config: ServerConfig) -> None:
    """Serve over stdio until the client closes the stream; then stop what the tools kept warm."""
    tools = AgentTools(config)
    try:
        build_server(tools).run("stdio")
    finally:
        tools.close()
