"""Deploy records: credentials, deployments, in-flight markers, stack state and break-glass grants.

Frozen pydantic records (``bot.records.Record``: ``extra="forbid"``, a ``schema_version`` where they are
stored or signed). Signed records travel as DSSE envelopes (plain dicts, like verdict attestations); the
decoded claims next to an envelope are a convenience for display and are never trusted by a verifier.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from bot.records import Record, UtcDateTime

CREDENTIAL_PAYLOAD_TYPE = "application/vnd.glassbox.deploy-credential.v1+json"
GRANT_PAYLOAD_TYPE = "application/vnd.glassbox.breakglass-grant.v1+json"
CLAIM_PAYLOAD_TYPE = "application/vnd.glassbox.breakglass-claim.v1+json"
CLOSURE_PAYLOAD_TYPE = "application/vnd.glassbox.breakglass-review-closure.v1+json"

_SHA40 = r"^[0-9a-f]{40}$"


def new_nonce() -> str:
    """128 random bits as hex: the replay key of one credential."""
    return os.urandom(16).hex()


# --------------------------------------------------------------------------------------------------
# credentials


def _apply_only() -> list[Literal["apply"]]:
    return ["apply"]


class CredentialScope(Record):
    stacks: list[str] = Field(description="project/stack names; a valid credential lists exactly one (I10).")
    actions: list[Literal["apply"]] = Field(default_factory=_apply_only)


class Credential(Record):
    """The signed claims of one short-lived deploy credential."""

    schema_version: Literal[1] = 1
    credential_id: str = Field(min_length=1)
    issuer: str = Field(min_length=1, description="The deploy identity whose deploy-signer key signed it.")
    scope: CredentialScope
    commit: str = Field(pattern=_SHA40)
    run_id: str = Field(min_length=1, description="The deploy run this credential was minted for.")
    nonce: str = Field(pattern=r"^[0-9a-f]{32}$")
    issued_at: UtcDateTime
    not_before: UtcDateTime
    expires_at: UtcDateTime
    ttl_seconds: int = Field(ge=1)


class IssuedCredential(Record):
    """A minted credential: the DSSE envelope (authoritative) and its decoded claims (display only)."""

    claims: Credential
    envelope: dict[str, Any]


# --------------------------------------------------------------------------------------------------
# stack state and deployments


class ResourceAction(Record):
    urn: str
    type: str
    name: str
    action: Literal["create", "update", "delete"]
    changed: list[str] = Field(default_factory=list, description="Top-level fields or input keys that differ.")


class StackState(Record):
    """What ``state.json`` holds: a stack's resources (by URN) as last applied."""

    schema_version: Literal[1] = 1
    project: str
    stack: str
    commit: str | None = None
    deployment_id: str | None = None
    resources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    updated_at: UtcDateTime | None = None


class InflightRecord(Record):
    """Written before the state is touched; its presence on a later run means that apply never finished."""

    schema_version: Literal[1] = 1
    deployment_id: str
    stack: str
    commit: str
    run_id: str
    credential_id: str
    started_at: UtcDateTime
    pid: int
    previous_state_digest: str | None = Field(description="Resources digest before the apply; null: no state.")
    target_state_digest: str


class Recovery(Record):
    """What a run found left over from a crashed apply, and what it did about it."""

    found_deployment_id: str
    found_commit: str
    found_started_at: UtcDateTime
    action: Literal["rolled-back"]
    restored_state_digest: str | None
    message: str


class Verification(Record):
    ok: bool
    checked: int = Field(ge=0, description="Planned resources compared against the applied state.")
    mismatches: list[str] = Field(default_factory=list)


class Deployment(Record):
    """The result of one apply of one stack."""

    schema_version: Literal[1] = 1
    deployment_id: str
    stack: str
    commit: str
    run_id: str
    credential_id: str
    applier: Literal["local", "pulumi"]
    simulated: bool
    message: str
    result: Literal["succeeded", "failed"]
    actions: list[ResourceAction] = Field(default_factory=list)
    state_digest: str
    outputs_digest: str
    verification: Verification
    recovery: Recovery | None = None
    started_at: UtcDateTime
    finished_at: UtcDateTime


# --------------------------------------------------------------------------------------------------
# break-glass


class BreakGlassGrant(Record):
    """The signed claims of one break-glass grant: one stack, one ticket, one use, until it expires."""

    schema_version: Literal[1] = 1
    grant_id: str = Field(min_length=1)
    opened_by: str = Field(min_length=1, description="The person who opened it (a break_glass team member).")
    ticket: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    stack: str
    opened_at: UtcDateTime
    expires_at: UtcDateTime
    ttl_seconds: int = Field(ge=1)


class GrantClaim(Record):
    """The signed claims of one break-glass use, as the audit trail holds it (``breakglass/<grant id>.used.json``).

    Signed by the deploy identity's deploy-signer key and appended to the trail *before* anything is applied; the
    grant it consumes is named by id and by the sha256 of the envelope the trail holds next to it."""

    schema_version: Literal[1] = 1
    grant_id: str = Field(min_length=1)
    grant_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    stack: str
    commit: str = Field(pattern=_SHA40)
    run_id: str | None = None
    used_by: str = Field(min_length=1)
    used_at: UtcDateTime


class OpenedGrant(Record):
    grant: BreakGlassGrant
    envelope: dict[str, Any]


class GrantStatus(StrEnum):
    OPEN = "open"
    USED = "used"
    EXPIRED = "expired"


class GrantRow(Record):
    """One line of ``breakglass list``: the grant and what became of it."""

    grant: BreakGlassGrant
    status: GrantStatus
    used_at: UtcDateTime | None = None
    used_by: str | None = None
    used_commit: str | None = None


ReviewOutcome = Literal["kept", "reverted", "fixed-forward"]
"""What became of a change deployed under break-glass: kept as deployed, reverted, or fixed by a governed change."""


class PostIncidentReview(Record):
    """The review task a break-glass use opens; written to ``reviews/<grant_id>.json``.

    Closing it (``glassbox breakglass close``) rewrites the file with ``status: closed`` and who closed it, when, and
    with which outcome; the reviewer's signed :class:`ReviewClosure` beside it (``reviews/<grant_id>.closed.dsse.json``)
    is what a verifier trusts, never these fields."""

    schema_version: Literal[1] = 1
    grant_id: str
    ticket: str
    reason: str
    stack: str
    commit: str
    run_id: str | None = None
    opened_by: str
    used_by: str
    used_at: UtcDateTime
    due: UtcDateTime
    status: Literal["open", "closed"] = "open"
    questions: list[str] = Field(
        default_factory=lambda: [
            "Why could the change not wait for the governed path (PR, verdict, approvals)?",
            "What exactly was deployed, and does the state now match a reviewed commit?",
            "Which follow-up PR brings the change back under the governed path?",
        ]
    )
    closed_by: str | None = None
    closed_at: UtcDateTime | None = None
    outcome: ReviewOutcome | None = None
    follow_up: str | None = None


class ReviewClosure(Record):
    """The signed claims that close one break-glass use's post-incident review.

    Signed with the reviewer's own key: a person in a ``reviews_break_glass`` team who did not open the grant. On the
    audit trail it is ``breakglass/<grant id>.closed.dsse.json``; in the deploy state
    ``reviews/<grant id>.closed.dsse.json``."""

    schema_version: Literal[1] = 1
    grant_id: str = Field(min_length=1)
    closed_by: str = Field(
        min_length=1, description="The reviewer (a reviews_break_glass team member, not the opener)."
    )
    closed_at: UtcDateTime
    outcome: ReviewOutcome
    summary: str = Field(min_length=1, max_length=4000, description="What the review found and decided.")
    follow_up: str | None = Field(
        default=None, min_length=1, max_length=500, description="The follow-up: a PR URL, a commit, a ticket."
    )


class ClosedReview(Record):
    """A closed review: the signed closure envelope (authoritative), its decoded claims and the grant (display only),
    and the deploy state's review as rewritten (None: the deploy state did not hold it, the envelope goes to the trail).
    """

    grant: BreakGlassGrant
    closure: ReviewClosure
    envelope: dict[str, Any]
    review: PostIncidentReview | None = None
    review_path: str | None = None


class BreakGlassAlert(Record):
    """A high-severity alert for the SIEM: every break-glass use raises one."""

    schema_version: Literal[1] = 1
    alert_id: str
    severity: Literal["high"] = "high"
    category: Literal["breakglass.use"] = "breakglass.use"
    time: UtcDateTime
    grant_id: str
    ticket: str
    reason: str
    stack: str
    commit: str
    opened_by: str
    used_by: str
    expires_at: UtcDateTime
    review_path: str
    review_due: UtcDateTime
    message: str
