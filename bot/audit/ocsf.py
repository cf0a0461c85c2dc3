"""Ledger events as SIEM events: OCSF 1.9.0 (pinned), and ECS and CEF renderings of the same events.

OCSF 1.9.0 is pinned because it is the first release whose ``ai_operation`` profile carries both
``ai_agent`` (the agent's stable id) and ``ai_model`` (provider, name, version): glassbox's whole point is
attributing changes to agents and models. ``metadata.uid`` is the OCSF event's own id (1.7+ semantics); the
ledger event's digest is ``metadata.original_event_uid`` and, for the primary event of a ledger line, also
``metadata.uid``. Derived findings (a denial, an out-of-hours change, ...) get ``<digest>#<kind>``.

Classes used:

- API Activity (6003) for every ledger action (propose, approvals, merge, deploy, credential.*,
  breakglass.*, ledger/audit housekeeping); ``status_id`` says whether the action was allowed.
- Compliance Finding (2003) for each policy finding of a ``check`` event (or one Pass for a clean check).
- Detection Finding (2004) for denials, escalations, break-glass open/use, changes outside business hours
  and retry bursts (N ``error`` outcomes for one correlation id within a window).

Only security-relevant structured fields leave: the event's own short ``reason`` (truncated) and chosen
``details`` keys, never transcripts, rationale prose or error text. Every outgoing event goes through
:func:`bot.redaction.redact_tree` last, so no secret leaves in clear (invariant I9). ECS and CEF are rendered
from the (already redacted) OCSF event, never recomputed from the ledger, and redacted once more.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
from pydantic import Field, model_validator

from bot import __version__
from bot.records import AuditEvent, Outcome, Record
from bot.redaction import redact_text, redact_tree

OCSF_VERSION = "1.9.0"
ECS_VERSION = "8.11.0"
PRODUCT_NAME = "glassbox"
VENDOR_NAME = "glassbox"
MAX_REASON = 256  # a SIEM message is a pointer into the ledger, not a narrative

API_ACTIVITY = 6003
COMPLIANCE_FINDING = 2003
DETECTION_FINDING = 2004
CLASS_NAMES = {
    API_ACTIVITY: "API Activity",
    COMPLIANCE_FINDING: "Compliance Finding",
    DETECTION_FINDING: "Detection Finding",
}
CATEGORY = {
    API_ACTIVITY: (6, "Application Activity"),
    COMPLIANCE_FINDING: (2, "Findings"),
    DETECTION_FINDING: (2, "Findings"),
}

SEVERITY_NAMES = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal"}
_RISK_SEVERITY = {"low": 2, "medium": 3, "high": 4, "critical": 5}

# action → API Activity activity_id (1 Create, 2 Read, 3 Update, 4 Delete, 99 Other)
_API_ACTIVITY_IDS = {
    "propose": 1,  # opens a pull request
    "approvals": 3,  # publishes the approvals commit status
    "merge": 3,
    "deploy": 3,
    "credential.mint": 1,
    "credential.refuse": 1,
    "breakglass.open": 1,
    "breakglass.use": 3,
    "breakglass.review": 3,  # closes the post-incident review a use opened
    "breakglass.refuse": 1,
}
_ACTIVITY_NAMES = {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"}

# details keys that may leave, per action; anything else stays in the ledger
_DETAIL_KEYS: dict[str, tuple[str, ...]] = {
    "propose": ("agent_id", "requested_by", "ticket", "stage", "result", "evidence_digest", "redactions", "draft"),
    "check": ("result", "risk", "plan_digest", "policy_pack_digest", "evidence_digest"),
    "approvals": ("satisfied",),
    "merge": ("method", "head_sha", "auto_merge"),
    "deploy": ("applier", "result", "simulated"),
    "credential": ("scope", "ttl_seconds", "expires", "code", "stage", "run_id"),
    "breakglass": (
        "ticket",
        "expires",
        "grant_id",
        "code",
        "stage",
        "ttl_seconds",
        "opened_by",
        "alert_id",
        "review_due",
        "run_id",
        "closed_by",
        "review_outcome",
    ),
    "ledger": ("torn_bytes",),
    "audit": ("first_seq", "last_seq", "count", "segment", "segment_sha256", "last_digest"),
}

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _workdays() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class BusinessHours(Record):
    """When changes are expected (UTC). A change outside these hours raises a Detection Finding.

    Times are quoted "HH:MM" strings: YAML 1.1 would read an unquoted 18:00 as the base-60 integer 1080.
    """

    start: str = Field(default="08:00", pattern=_HHMM, description="Start of the working day, UTC (HH:MM).")
    end: str = Field(default="18:00", pattern=_HHMM, description="End of the working day, UTC (HH:MM), exclusive.")
    days: list[Weekday] = Field(default_factory=_workdays)

    @model_validator(mode="after")
    def _ordered(self) -> BusinessHours:
        if self.end <= self.start:  # zero-padded HH:MM compares like times
            raise ValueError("end must be after start (business hours do not wrap midnight)")
        return self

    def contains(self, when: datetime) -> bool:
        utc = when.astimezone(UTC)
        now = time(utc.hour, utc.minute, utc.second, utc.microsecond)
        return _WEEKDAYS[utc.weekday()] in self.days and time.fromisoformat(self.start) <= now < time.fromisoformat(
            self.end
        )


class RetryBurst(Record):
    count: int = Field(default=3, ge=2, description="This many `error` outcomes for one correlation id ...")
    window_seconds: int = Field(default=600, ge=1, description="... within this many seconds is a burst.")


class Detections(Record):
    """Settings of the derived Detection Findings."""

    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    change_actions: list[str] = Field(
        default_factory=lambda: ["propose", "merge", "deploy", "breakglass.use"],
        description="Actions that count as a change for the out-of-hours detection.",
    )
    retry_burst: RetryBurst = Field(default_factory=RetryBurst)


# --------------------------------------------------------------------------------------------------
# OCSF


def _epoch_ms(when: datetime) -> int:
    return int(when.astimezone(UTC).timestamp() * 1000)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _family(action: str) -> str:
    return action.split(".", 1)[0]


def _selected_details(event: AuditEvent) -> dict[str, Any]:
    keys = _DETAIL_KEYS.get(event.action) or _DETAIL_KEYS.get(_family(event.action), ())
    out = {k: event.details[k] for k in keys if k in event.details}
    # structured summaries instead of lists that may carry prose
    if isinstance(event.details.get("reasons"), list):
        out["reason_count"] = len(event.details["reasons"])
    if isinstance(event.details.get("errors"), list):
        out["error_count"] = len(event.details["errors"])
    if event.action == "approvals":
        for key in ("required", "counted", "discarded"):
            if isinstance(event.details.get(key), list):
                out[f"{key}_count"] = len(event.details[key])
    if event.action == "check" and isinstance(event.details.get("risk_reasons"), list):
        out["risk_reasons"] = [str(r)[:80] for r in event.details["risk_reasons"]][:20]
    return out


def _user(event: AuditEvent) -> dict[str, Any]:
    kind = event.actor.kind.value
    type_id, type_name = {"human": (1, "User"), "agent": (99, "AI Agent")}.get(kind, (4, "Service"))
    return {"uid": event.actor.id, "name": event.actor.id, "type_id": type_id, "type": type_name}


def _resources(event: AuditEvent) -> list[dict[str, Any]]:
    s = event.subject
    out: list[dict[str, Any]] = []
    if s.repo:
        out.append({"type": "git_repository", "name": s.repo, "uid": s.repo})
    if s.pr is not None:
        out.append({"type": "pull_request", "uid": f"{s.repo or ''}#{s.pr}", "name": f"PR #{s.pr}"})
    if s.commit:
        out.append({"type": "git_commit", "uid": s.commit})
    if s.tree:
        out.append({"type": "git_tree", "uid": s.tree})
    if s.stack:
        out.append({"type": "pulumi_stack", "name": s.stack, "uid": s.stack})
    cred = event.details.get("credential_id")
    if isinstance(cred, str):
        out.append({"type": "credential", "uid": cred})
    return out


def _ai(event: AuditEvent) -> dict[str, Any]:
    """The ai_operation profile's attributes, when the event names an agent or a model."""
    d = event.details
    agent_id = d.get("agent_id") if isinstance(d.get("agent_id"), str) else None
    if agent_id is None and event.actor.kind.value == "agent":
        agent_id = event.actor.id
    model = d.get("model") if isinstance(d.get("model"), Mapping) else None
    out: dict[str, Any] = {}
    ai_model: dict[str, Any] | None = None
    if model and model.get("model_id") and model.get("provider"):
        ai_model = {"name": str(model["model_id"]), "ai_provider": str(model["provider"])}
        if model.get("version"):
            ai_model["version"] = str(model["version"])
        ai_model["uid"] = f"{model['provider']}/{model['model_id']}@{model.get('version', '')}"
    if agent_id:
        agent: dict[str, Any] = {"uid": agent_id, "name": agent_id}
        if ai_model:
            agent["ai_model"] = ai_model
        out["ai_agent"] = agent
    elif ai_model:  # OCSF 1.9: an agent-mediated operation carries its model inside ai_agent only
        out["ai_model"] = ai_model
    return out


def _prompt(event: AuditEvent) -> dict[str, Any] | None:
    p = event.details.get("prompt")
    if not isinstance(p, Mapping):
        return None
    return {k: p[k] for k in ("template_id", "template_version", "template_sha256") if k in p}


def _subject_dict(event: AuditEvent) -> dict[str, Any]:
    return {k: v for k, v in event.subject.model_dump(mode="json").items() if v is not None}


def _status(outcome: Outcome) -> tuple[int, str]:
    return (1, "Success") if outcome is Outcome.ALLOW else (2, "Failure")


class OcsfMapper:
    """Map ledger events to OCSF events, in ledger order (retry bursts are detected across events)."""

    def __init__(self, detections: Detections | None = None, *, product_version: str = __version__) -> None:
        self.detections = detections or Detections()
        self.product_version = product_version
        self._errors: dict[str, deque[datetime]] = {}

    # ---------------------------------------------------------------------------------------------- common

    def _base(
        self, event: AuditEvent, class_uid: int, activity_id: int, severity_id: int, suffix: str = ""
    ) -> dict[str, Any]:
        category_uid, category_name = CATEGORY[class_uid]
        metadata: dict[str, Any] = {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME, "version": self.product_version},
            "uid": event.digest + (f"#{suffix}" if suffix else ""),
            "original_event_uid": event.digest,
            "original_time": event.time.isoformat(),
            "sequence": event.seq,
            "event_code": event.action,
            "log_name": "glassbox-ledger",
            "log_provider": PRODUCT_NAME,
        }
        if event.correlation_id:
            metadata["correlation_uid"] = event.correlation_id
        activity_name = _ACTIVITY_NAMES.get(activity_id, "Other")
        out: dict[str, Any] = {
            "class_uid": class_uid,
            "class_name": CLASS_NAMES[class_uid],
            "category_uid": category_uid,
            "category_name": category_name,
            "activity_id": activity_id,
            "activity_name": activity_name if activity_id != 99 else event.action,
            "type_uid": class_uid * 100 + activity_id,
            "type_name": f"{CLASS_NAMES[class_uid]}: {activity_name if activity_id != 99 else event.action}",
            "time": _epoch_ms(event.time),
            "timezone_offset": 0,
            "severity_id": severity_id,
            "severity": SEVERITY_NAMES.get(severity_id, "Other"),
            "metadata": metadata,
            "message": _short(event.reason) if event.reason else f"{event.action} {event.outcome.value}",
        }
        unmapped: dict[str, Any] = {
            "action": event.action,
            "outcome": event.outcome.value,
            "prev": event.prev,
            "signer_keyid": event.signature.keyid,
            "subject": _subject_dict(event),
            "details": _selected_details(event),
        }
        prompt = _prompt(event)
        if prompt:
            unmapped["prompt"] = prompt
        out["unmapped"] = unmapped
        return out

    # ---------------------------------------------------------------------------------------------- classes

    def api_activity(self, event: AuditEvent) -> dict[str, Any]:
        activity_id = _API_ACTIVITY_IDS.get(event.action, 99)
        severity = 1 if event.outcome is Outcome.ALLOW else 3
        out = self._base(event, API_ACTIVITY, activity_id, severity)
        status_id, status = _status(event.outcome)
        out.update(
            {
                "status_id": status_id,
                "status": status,
                "status_code": event.outcome.value,
                "actor": {"user": _user(event), "app_name": PRODUCT_NAME},
                "api": {"operation": event.action, "service": {"name": PRODUCT_NAME}},
                "src_endpoint": {"svc_name": PRODUCT_NAME},
            }
        )
        if event.reason:
            out["status_detail"] = _short(event.reason)
        resources = _resources(event)
        if resources:
            out["resources"] = resources
        ai = _ai(event)
        if ai:
            out.update(ai)
            out["metadata"]["profiles"] = ["ai_operation"]
        return out

    def compliance_findings(self, event: AuditEvent) -> list[dict[str, Any]]:
        findings = [f for f in event.details.get("findings") or [] if isinstance(f, Mapping)]
        out = []
        if not findings:
            passed = event.outcome is Outcome.ALLOW
            verdict = str(event.details.get("result", "PASSED" if passed else "FAILED"))
            findings = [
                {
                    "rule_id": "glassbox/verdict",
                    "severity": "low" if passed else "high",
                    "status": "pass" if passed else "deny",
                    "title": f"glassbox verdict {verdict}",
                }
            ]
        for i, f in enumerate(findings):
            rule_id = str(f.get("rule_id", "unknown"))
            status = str(f.get("status", "deny"))
            status_id, status_name = {"deny": (3, "Fail"), "warn": (2, "Warning")}.get(status, (1, "Pass"))
            severity = _RISK_SEVERITY.get(str(f.get("severity", "")), 1) if status_id != 1 else 1
            row = self._base(event, COMPLIANCE_FINDING, 1, severity, suffix=f"compliance-{i}")
            controls = [str(c) for c in f.get("controls") or []]
            standards = sorted({c.split("-", 1)[0] for c in controls}) or ["glassbox-policy-pack"]
            row.update(
                {
                    "status_id": 1,
                    "status": "New",
                    "finding_info": {
                        "uid": f"{event.digest}#{rule_id}#{i}",
                        "title": str(f.get("title") or f"{rule_id} {status}"),
                        "types": ["policy", str(f.get("engine", "glassbox"))],
                        "analytic": {"uid": rule_id, "name": rule_id, "type_id": 1, "type": "Rule"},
                        "created_time": _epoch_ms(event.time),
                    },
                    "compliance": {
                        "standards": standards,
                        "control": rule_id,
                        "status_id": status_id,
                        "status": status_name,
                        "status_code": status,
                        **({"requirements": controls} if controls else {}),
                    },
                }
            )
            resources = _resources(event)
            if resources:
                row["resources"] = resources
            out.append(row)
        return out

    def detection(self, event: AuditEvent, kind: str, title: str, severity_id: int, types: list[str]) -> dict[str, Any]:
        row = self._base(event, DETECTION_FINDING, 1, severity_id, suffix=kind)
        evidence: dict[str, Any] = {"actor": {"user": _user(event), "app_name": PRODUCT_NAME}}
        ai = _ai(event)
        if "ai_agent" in ai:
            evidence["ai_agent"] = ai["ai_agent"]
        row.update(
            {
                "status_id": 1,
                "status": "New",
                "is_alert": True,
                "finding_info": {
                    "uid": f"{event.digest}#{kind}",
                    "title": title,
                    "types": types,
                    "analytic": {"uid": f"glassbox.{kind}", "name": kind, "type_id": 1, "type": "Rule"},
                    "created_time": _epoch_ms(event.time),
                },
                "evidences": [evidence],
            }
        )
        resources = _resources(event)
        if resources:
            row["resources"] = resources
        return row

    def detections_for(self, event: AuditEvent) -> list[dict[str, Any]]:
        out = []
        who = f"{event.actor.id} ({event.actor.kind.value})"
        if event.outcome is Outcome.DENY:
            out.append(self.detection(event, "denial", f"{event.action} denied for {who}", 3, ["denial", event.action]))
        if event.outcome is Outcome.ESCALATE:
            out.append(
                self.detection(
                    event, "escalation", f"{event.action} escalated for {who}", 3, ["escalation", event.action]
                )
            )
        if event.action in ("breakglass.open", "breakglass.use") and event.outcome is Outcome.ALLOW:
            verb = "opened" if event.action.endswith("open") else "used"
            stack = event.subject.stack or "?"
            out.append(
                self.detection(event, "breakglass", f"break-glass {verb} on {stack} by {who}", 4, ["break-glass"])
            )
        d = self.detections
        if (
            event.action in d.change_actions
            and event.outcome is Outcome.ALLOW
            and not d.business_hours.contains(event.time)
        ):
            out.append(
                self.detection(
                    event, "out-of-hours", f"{event.action} outside business hours by {who}", 3, ["out-of-hours"]
                )
            )
        if event.outcome is Outcome.ERROR and event.correlation_id:
            burst = self._errors.setdefault(event.correlation_id, deque())
            burst.append(event.time)
            window = timedelta(seconds=d.retry_burst.window_seconds)
            while burst and event.time - burst[0] > window:
                burst.popleft()
            if len(burst) >= d.retry_burst.count:
                n = len(burst)
                burst.clear()  # one finding per burst
                out.append(
                    self.detection(
                        event,
                        "retry-burst",
                        f"{n} errors for {event.correlation_id} within {d.retry_burst.window_seconds}s",
                        3,
                        ["retry-burst"],
                    )
                )
        return out

    # ---------------------------------------------------------------------------------------------- entry points

    def map(self, event: AuditEvent) -> list[dict[str, Any]]:
        """The OCSF events for one ledger event, redacted."""
        raw = self.compliance_findings(event) if event.action == "check" else [self.api_activity(event)]
        raw += self.detections_for(event)
        return [guard(r) for r in raw]

    def map_all(
        self, events: Iterable[AuditEvent], *, high_water: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every event's OCSF events; the last one carries the ledger's signed high-water mark, when given, so
        the SIEM holds a copy of it apart from the ledger (``glassbox ledger verify --high-water``)."""
        out = [o for e in events for o in self.map(e)]
        if out and high_water is not None:
            out[-1].setdefault("unmapped", {})[HIGH_WATER_FIELD] = dict(high_water)
        return out


HIGH_WATER_FIELD = "ledger_high_water"
"""Where an export's last OCSF event carries the signed high-water mark (a DSSE envelope, already public)."""


def guard(data: dict[str, Any]) -> dict[str, Any]:
    """The last guard before anything leaves: redact secrets and say how many were removed (I9)."""
    clean, redactions = redact_tree(data)
    if redactions:
        clean.setdefault("unmapped", {})["redactions"] = len(redactions)
    return dict(clean)


# --------------------------------------------------------------------------------------------------
# validation against the required attributes


@cache
def required_schemas() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).parent / "ocsf_required.json").read_text(encoding="utf-8"))
    return data


def validate_ocsf(event: Mapping[str, Any]) -> list[str]:
    """Problems of ``event`` against the required attributes of its class (empty when valid)."""
    schemas = required_schemas()
    schema = schemas["classes"].get(str(event.get("class_uid")))
    if schema is None:
        return [f"class_uid {event.get('class_uid')!r} is not one glassbox emits"]
    full = {"$defs": schemas["$defs"], **schema}
    validator = jsonschema.Draft202012Validator(full)
    problems = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
        for e in validator.iter_errors(event)
    ]
    if event.get("type_uid") != int(event.get("class_uid", 0)) * 100 + int(event.get("activity_id", 0)):
        problems.append("type_uid: must equal class_uid * 100 + activity_id")
    return problems


# --------------------------------------------------------------------------------------------------
# ECS and CEF, rendered from the OCSF event


def _ecs_outcome(ocsf: Mapping[str, Any]) -> str:
    outcome = ocsf.get("unmapped", {}).get("outcome")
    return {"allow": "success", "deny": "failure", "error": "failure"}.get(str(outcome), "unknown")


def to_ecs(ocsf: Mapping[str, Any]) -> dict[str, Any]:
    """Elastic Common Schema document for one OCSF event."""
    meta = ocsf["metadata"]
    un = ocsf.get("unmapped", {})
    class_uid = ocsf["class_uid"]
    outcome = str(un.get("outcome", ""))
    if class_uid == DETECTION_FINDING:
        kind, category, types = "alert", ["intrusion_detection"], ["info"]
    elif class_uid == COMPLIANCE_FINDING:
        kind, category, types = "event", ["configuration"], ["info"]
    else:
        kind, category = "event", ["configuration"]
        types = ["change", "denied" if outcome == "deny" else "allowed" if outcome == "allow" else "info"]
    when = datetime.fromtimestamp(ocsf["time"] / 1000, tz=UTC)
    doc: dict[str, Any] = {
        "@timestamp": when.isoformat().replace("+00:00", "Z"),
        "ecs": {"version": ECS_VERSION},
        "message": ocsf.get("message", ""),
        "event": {
            "kind": kind,
            "category": category,
            "type": types,
            "action": un.get("action", meta.get("event_code")),
            "outcome": _ecs_outcome(ocsf),
            "id": meta["uid"],
            "code": str(class_uid),
            "severity": ocsf["severity_id"],
            "sequence": meta.get("sequence"),
            "dataset": "glassbox.audit",
            "module": PRODUCT_NAME,
            "provider": PRODUCT_NAME,
            "original": None,
        },
        "observer": {
            "vendor": meta["product"]["vendor_name"],
            "product": meta["product"]["name"],
            "version": meta["product"]["version"],
        },
        "labels": {"ocsf_class_uid": str(class_uid), "ocsf_type_uid": str(ocsf["type_uid"])},
        "glassbox": {"digest": meta.get("original_event_uid"), **un},
    }
    del doc["event"]["original"]  # never ship the raw ledger line
    if meta.get("correlation_uid"):
        doc["labels"]["correlation_id"] = meta["correlation_uid"]
        doc["trace"] = {"id": meta["correlation_uid"]}
    user = (ocsf.get("actor") or {}).get("user") or (ocsf.get("evidences") or [{}])[0].get("actor", {}).get("user")
    if user:
        doc["user"] = {"id": user.get("uid"), "name": user.get("name")}
    info = ocsf.get("finding_info")
    if info:
        doc["rule"] = {"id": info.get("analytic", {}).get("uid"), "name": info.get("title"), "uuid": info.get("uid")}
    if ocsf.get("compliance"):
        doc["glassbox"]["compliance"] = ocsf["compliance"]
    agent = ocsf.get("ai_agent")
    if agent:
        doc["glassbox"]["ai_agent"] = agent
    clean, _ = redact_tree(doc)
    return dict(clean)


_CEF_SEVERITY = {0: 0, 1: 1, 2: 3, 3: 5, 4: 7, 5: 9, 6: 10}


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return (
        text.replace("\\", "\\\\").replace("=", "\\=").replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")
    )


def to_cef(ocsf: Mapping[str, Any]) -> str:
    """One CEF line (ArcSight Common Event Format, version 0) for one OCSF event."""
    meta = ocsf["metadata"]
    un = ocsf.get("unmapped", {})
    signature = f"{ocsf['class_uid']}:{un.get('action', meta.get('event_code', ''))}"
    info = ocsf.get("finding_info") or {}
    name = info.get("title") or f"{un.get('action', '')} {un.get('outcome', '')}".strip()
    header = [
        "CEF:0",
        _cef_header(meta["product"]["vendor_name"]),
        _cef_header(meta["product"]["name"]),
        _cef_header(meta["product"]["version"]),
        _cef_header(signature),
        _cef_header(str(name)),
        str(_CEF_SEVERITY.get(int(ocsf["severity_id"]), 5)),
    ]
    user = (
        (ocsf.get("actor") or {}).get("user") or (ocsf.get("evidences") or [{}])[0].get("actor", {}).get("user") or {}
    )
    ext: list[tuple[str, Any]] = [
        ("rt", ocsf["time"]),
        ("act", un.get("action", "")),
        ("outcome", un.get("outcome", "")),
        ("cat", ocsf["class_name"]),
        ("externalId", meta["uid"]),
        ("cn1Label", "seq"),
        ("cn1", meta.get("sequence", "")),
        ("cs1Label", "correlationId"),
        ("cs1", meta.get("correlation_uid", "")),
        ("cs2Label", "eventDigest"),
        ("cs2", meta.get("original_event_uid", "")),
        ("msg", ocsf.get("message", "")),
    ]
    if user:
        ext.append(("suser", user.get("name", "")))
        ext.append(("suid", user.get("uid", "")))
    compliance = ocsf.get("compliance")
    if compliance:
        ext.append(("cs3Label", "control"))
        ext.append(("cs3", compliance.get("control", "")))
    line = "|".join(header) + "|" + " ".join(f"{k}={_cef_value(v)}" for k, v in ext)
    clean, _ = redact_text(line, "cef")
    return clean


def render(ocsf: Mapping[str, Any], fmt: str) -> str:
    """One line in ``fmt`` (ocsf | ecs | cef)."""
    if fmt == "ocsf":
        return json.dumps(ocsf, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if fmt == "ecs":
        return json.dumps(to_ecs(ocsf), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if fmt == "cef":
        return to_cef(ocsf)
    raise ValueError(f"unknown format {fmt!r}; use ocsf, ecs or cef")
