"""Records that cross a boundary (files, the forge, the ledger), and the one canonical encoding.

Every record is a frozen pydantic model with ``extra="forbid"`` and a ``schema_version``. Canonical JSON
(sorted keys, UTF-8, no insignificant whitespace, no NaN) and the digest over it are defined here once;
every signature, chain link and evidence digest in glassbox goes through :func:`canonical_json` and
:func:`digest`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from bot.errors import UserError

SCHEMA_VERSION = 1
DIGEST_PREFIX = "sha256:"


# --------------------------------------------------------------------------------------------------
# canonical encoding and digests


def canonical_json(data: Any) -> bytes:
    """The canonical bytes of ``data``: a pydantic model, or plain JSON-able data."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_bytes(data: bytes) -> str:
    """``sha256:<hex>`` of raw bytes."""
    return DIGEST_PREFIX + sha256_hex(data)


def digest(data: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``data``."""
    return digest_bytes(canonical_json(data))


# --------------------------------------------------------------------------------------------------
# shared field types


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone, e.g. 2026-01-31T12:00:00+00:00")
    return value.astimezone(UTC)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


# UTC, RFC 3339 with "+00:00" whenever serialised (Rego's time builtins reject a "Z" suffix).
UtcDateTime = Annotated[datetime, AfterValidator(_utc), PlainSerializer(_rfc3339, return_type=str)]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _sha256_hex_field(value: str) -> str:
    v = value.lower()
    if v.startswith(DIGEST_PREFIX):
        v = v[len(DIGEST_PREFIX) :]
    if not _HEX64.match(v):
        raise ValueError("must be a SHA-256 as 64 hex digits (optionally prefixed 'sha256:')")
    return v


Sha256Hex = Annotated[str, AfterValidator(_sha256_hex_field)]


def _digest_field(value: str) -> str:
    return DIGEST_PREFIX + _sha256_hex_field(value)


Digest = Annotated[str, AfterValidator(_digest_field)]

_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def new_correlation_id() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, then randomness, so ids sort by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def _correlation_id(value: str) -> str:
    if _UUID7.match(value.lower()):
        return value.lower()
    if _ULID.match(value.upper()):
        return value.upper()
    raise ValueError("must be a ULID (26 Crockford base32 characters) or a UUIDv7")


CorrelationId = Annotated[str, AfterValidator(_correlation_id)]

_IDENT = r"^[a-z][a-z0-9-]{0,62}$"
Identifier = Annotated[str, Field(pattern=_IDENT)]


class Record(BaseModel):
    """Base of every boundary record: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


# --------------------------------------------------------------------------------------------------
# enums


class RiskTier(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RISK_ORDER.index(self)

    def raised(self, steps: int = 1) -> RiskTier:
        return _RISK_ORDER[min(self.rank + steps, len(_RISK_ORDER) - 1)]


_RISK_ORDER = [RiskTier.LOW, RiskTier.MEDIUM, RiskTier.HIGH, RiskTier.CRITICAL]


class Autonomy(StrEnum):
    READ_ONLY = "read_only"
    RECOMMEND = "recommend"
    DRAFT = "draft"
    GATED = "gated"
    AUTO = "auto"


class ChangeAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"


class ActorKind(StrEnum):
    AGENT = "agent"
    HUMAN = "human"
    CI = "ci"
    DEPLOYER = "deployer"
    BOT = "bot"


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ESCALATE = "escalate"
    ERROR = "error"


# --------------------------------------------------------------------------------------------------
# ChangeRequest: what an agent asks for


class Requester(Record):
    id: str = Field(min_length=1, description="Who asked the agent (a person or a service).")
    kind: Literal["human", "service"] = "human"
    ticket: str | None = Field(default=None, description="Ticket or incident reference, if any.")


class FileChange(Record):
    path: str = Field(min_length=1, description="Repository-relative POSIX path.")
    content: str | None = Field(default=None, description="New full content of the file (UTF-8 text).")
    delete: bool = Field(default=False, description="True to delete the file; then content is absent.")

    @model_validator(mode="after")
    def _one_of(self) -> FileChange:
        if self.delete and self.content is not None:
            raise ValueError("give either content or delete: true, not both")
        if not self.delete and self.content is None:
            raise ValueError("give the file's new content, or delete: true")
        return self


def tree_conflicts(written: Iterable[str], existing: Iterable[str] = ()) -> list[str]:
    """Why ``written`` paths cannot all be files of one git tree next to the ``existing`` files it keeps.

    Git holds a path either as a file or as a directory, and a case-insensitive checkout (macOS, Windows)
    holds one of two names that differ only in case: writing both silently keeps one, so the tree would no
    longer be what was judged. Empty when the paths agree. The one rule propose and the forge both apply.
    """
    new = sorted(set(written))
    kept = set(existing)
    problems = []
    files = set(new) | kept
    kept_dirs = {"/".join(k.split("/")[:i]) for k in kept for i in range(1, k.count("/") + 1)}
    for path in new:
        if path in kept_dirs:
            problems.append(f"path {path!r} is written as a file but is a directory in the base tree")
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in new:
                problems.append(f"path {parent!r} is written as a file and is also the directory of {path!r}")
            elif parent in kept:
                problems.append(f"path {path!r} lies under {parent!r}, which is a file in the base tree")
    folded: dict[str, set[str]] = {}
    for path in files:
        folded.setdefault(path.casefold(), set()).add(path)
        parts = path.split("/")
        for i in range(1, len(parts)):  # directories collide under case folding too: Infra/x and infra/y
            folded.setdefault("/".join(parts[:i]).casefold() + "/", set()).add("/".join(parts[:i]) + "/")
    new_set = set(new)
    for names in folded.values():
        if len(names) > 1 and any(n in new_set or any(w.startswith(n) for w in new_set) for n in names):
            shown = ", ".join(repr(n.rstrip("/")) for n in sorted(names))
            problems.append(f"paths {shown} differ only in case: a case-insensitive checkout keeps one of them")
    return problems


class ExpectedChange(Record):
    """One line of the agent's intent manifest: a resource it expects to change."""

    project: str = Field(min_length=1)
    stack: str = Field(min_length=1)
    type: str = Field(min_length=1, description="Pulumi type token, e.g. aws:s3/bucket:Bucket")
    name: str = Field(min_length=1, description="Logical resource name.")
    action: ChangeAction


class EvidenceSource(Record):
    kind: str = Field(min_length=1, description="e.g. runbook, ticket, metrics, doc, code")
    uri: str = Field(min_length=1)
    version: str = Field(min_length=1)
    sha256: Sha256Hex
    retrieval_id: str = Field(min_length=1)


class RejectedAlternative(Record):
    option: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class ConfidenceRubric(Record):
    retrieval_quality: float = Field(ge=0.0, le=1.0)
    policy_fit: float = Field(ge=0.0, le=1.0)
    task_complexity: float = Field(ge=0.0, le=1.0)


class Confidence(Record):
    score: float = Field(ge=0.0, le=1.0)
    rubric: ConfidenceRubric


class Rationale(Record):
    objective: str = Field(min_length=1)
    evidence_sources: list[EvidenceSource] = Field(default_factory=list)
    alternatives_rejected: list[RejectedAlternative] = Field(default_factory=list)
    confidence: Confidence
    expected_impact: str = Field(min_length=1)
    rollback_plan: str = ""


class ModelInfo(Record):
    provider: str = Field(min_length=1)
    model_id: str = Field(min_length=1)
    version: str = Field(min_length=1)


class PromptInfo(Record):
    template_id: str = Field(min_length=1)
    template_version: str = Field(min_length=1)
    template_sha256: Sha256Hex
    rendered_sha256: Sha256Hex


class ToolCall(Record):
    tool_id: str = Field(min_length=1)
    args_sha256: Sha256Hex
    result_sha256: Sha256Hex | None = None
    started_at: UtcDateTime
    ended_at: UtcDateTime
    status: Literal["ok", "error", "timeout", "denied"]
    retries: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ToolCall:
        if self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


class ChangeRequest(Record):
    schema_version: Literal[1] = 1
    correlation_id: CorrelationId = Field(default_factory=new_correlation_id)
    agent_id: Identifier
    requested_by: Requester
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/name")
    base_branch: str = Field(default="main", min_length=1)
    base_commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")
    intent: str = Field(min_length=1, description="One line: what the change does.")
    changes: list[FileChange] = Field(min_length=1)
    expected_changes: list[ExpectedChange] = Field(default_factory=list)
    claimed_risk: RiskTier | None = None
    rationale: Rationale
    model: ModelInfo
    prompt: PromptInfo
    tool_calls: list[ToolCall] = Field(default_factory=list)
    requested_at: UtcDateTime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _unique_paths(self) -> ChangeRequest:
        seen: set[str] = set()
        for change in self.changes:
            if change.path in seen:
                raise ValueError(f"path {change.path!r} appears twice in changes")
            seen.add(change.path)
        return self


# --------------------------------------------------------------------------------------------------
# EvidenceRecord: the request as committed beside the change


class FileDigest(Record):
    path: str
    sha256: Sha256Hex | None = Field(description="SHA-256 of the new content; null for a delete.")
    size: int = Field(ge=0)
    delete: bool = False


class Redaction(Record):
    """A secret removed from the evidence; ``salted_sha256`` = sha256(salt || secret) proves it later."""

    field_path: str
    kind: str
    salt: str = Field(pattern=r"^[0-9a-f]{32}$")
    salted_sha256: Sha256Hex


class RequestSummary(Record):
    """The request's fields with file contents replaced by their digests."""

    correlation_id: CorrelationId
    agent_id: Identifier
    requested_by: Requester
    repo: str
    base_branch: str
    base_commit: str | None
    intent: str
    files: list[FileDigest]
    expected_changes: list[ExpectedChange]
    claimed_risk: RiskTier | None
    rationale: Rationale
    model: ModelInfo
    prompt: PromptInfo
    tool_calls: list[ToolCall]
    requested_at: UtcDateTime


class EvidenceRecord(Record):
    schema_version: Literal[1] = 1
    request: RequestSummary
    bot_version: str
    registry_digest: Digest
    policy_pack_digest: Digest
    redactions: list[Redaction] = Field(default_factory=list)
    digest: Digest | None = Field(
        default=None, description="Digest of this record's canonical JSON with this field null."
    )

    def computed_digest(self) -> str:
        return digest(self.model_copy(update={"digest": None}))

    def sealed(self) -> EvidenceRecord:
        """This record with its own digest filled in."""
        return self.model_copy(update={"digest": self.computed_digest()})

    def verify_digest(self) -> bool:
        return self.digest is not None and self.digest == self.computed_digest()


def summarize_request(request: ChangeRequest) -> RequestSummary:
    files = []
    for change in request.changes:
        if change.delete:
            files.append(FileDigest(path=change.path, sha256=None, size=0, delete=True))
        else:
            raw = (change.content or "").encode("utf-8")
            files.append(FileDigest(path=change.path, sha256=sha256_hex(raw), size=len(raw)))
    fields = request.model_dump(exclude={"schema_version", "changes"})
    return RequestSummary.model_validate({**fields, "files": [f.model_dump() for f in files]})


# --------------------------------------------------------------------------------------------------
# AuditEvent: one line of the ledger


class Actor(Record):
    id: str = Field(min_length=1)
    kind: ActorKind


class Subject(Record):
    repo: str | None = None
    pr: int | None = None
    commit: str | None = None
    tree: str | None = None
    stack: str | None = None


class EventSignature(Record):
    keyid: str
    sig: str = Field(description="base64 ed25519 signature over the DSSE PAE of the event digest")


class AuditEvent(Record):
    schema_version: Literal[1] = 1
    seq: int = Field(ge=1)
    time: UtcDateTime
    correlation_id: str | None = None
    actor: Actor
    action: str = Field(pattern=r"^[a-z][a-z0-9_.-]*$", description="e.g. propose, check, deploy")
    outcome: Outcome
    reason: str = ""
    subject: Subject = Field(default_factory=Subject)
    details: dict[str, Any] = Field(default_factory=dict)
    prev: Digest
    digest: Digest
    signature: EventSignature

    def body(self) -> dict[str, Any]:
        """What the digest covers: everything but the digest and the signature."""
        return self.body_of(self.model_dump(mode="json"))

    @staticmethod
    def body_of(dumped: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`body` of an event's ``model_dump(mode="json")``, for a caller that needs both."""
        return {k: v for k, v in dumped.items() if k not in ("digest", "signature")}

    def computed_digest(self) -> str:
        return digest(self.body())


GENESIS = DIGEST_PREFIX + "0" * 64


# --------------------------------------------------------------------------------------------------
# Verdict: what `glassbox check` decides about one head commit


class VerdictResult(StrEnum):
    PASSED = "PASSED"
    FAILED = "FAILED"


class FindingStatus(StrEnum):
    DENY = "deny"  # fails the check
    WARN = "warn"  # annotates only
    WAIVED = "waived"  # a deny covered by an unexpired waiver


class Waiver(Record):
    rule_id: str
    resource: str = Field(description="URN, Terraform address or path the waiver covers; '*' for all.")
    justification: str = Field(min_length=1)
    approver: str
    expires: UtcDateTime


class Finding(Record):
    engine: Literal["rego", "checkov", "glassbox"]
    rule_id: str
    severity: RiskTier
    status: FindingStatus
    message: str
    resource: str | None = None
    controls: list[str] = Field(default_factory=list)
    remediation: str = ""
    waiver: Waiver | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class RequiredApproval(Record):
    team: str
    count: int = Field(ge=1)
    reason: str = Field(description="Why: the risk tier, or the CODEOWNERS rule that owns a path.")


class ChangeBundle(Record):
    """What is approved and deployed, as one unit: every digest the verdict vouches for."""

    repo: str
    pr: int | None = None
    correlation_id: str | None = None
    base_commit: str
    head_commit: str
    head_tree: str
    plan_digest: Digest
    policy_pack_digest: Digest
    registry_digest: Digest
    evidence_digest: Digest | None = None


class PlanSource(Record):
    """Where the plan of one stack at one side came from: run in the sandbox for this check (``miss``: and kept
    in the plan cache; ``off``: no cache), or read from the plan cache after its entry verified (``hit``)."""

    project: str
    stack: str
    side: Literal["base", "head"]
    cache: Literal["hit", "miss", "off"]


class Verdict(Record):
    schema_version: Literal[1] = 1
    result: VerdictResult
    risk: RiskTier
    risk_reasons: list[str]
    required_approvals: list[RequiredApproval] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list, description="Why the check could not complete (I5: a deny).")
    change: ChangeBundle
    verifier: dict[str, str] = Field(default_factory=dict, description="Verifier id and engine versions.")
    plan_sources: list[PlanSource] = Field(
        default_factory=list, description="Per touched stack and side: sandbox run or plan cache (bot.plan.cache)."
    )
    time_verified: UtcDateTime


VERDICT_PREDICATE_TYPE = "https://glassbox.dev/attestation/verdict/v1"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


# --------------------------------------------------------------------------------------------------
# loading records from files


RECORDS: dict[str, type[Record]] = {
    "change-request": ChangeRequest,
    "evidence": EvidenceRecord,
    "audit-event": AuditEvent,
    "verdict": Verdict,
}


def json_schema(name: str) -> dict[str, Any]:
    try:
        model = RECORDS[name]
    except KeyError:
        known = ", ".join(sorted(RECORDS))
        raise UserError(f"unknown record {name!r}; known records: {known}") from None
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://glassbox.dev/schema/{name}.json"
    return schema


def validation_lines(source: str, err: ValidationError) -> list[str]:
    """One line per pydantic error: ``source: field.path: message``."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        elif e["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{source}: {loc}: {msg}")
    return lines
