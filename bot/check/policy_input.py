"""The policy input: the one document the Rego pack judges, its models and its published JSON Schema.

The check builds the input through these models (the plan's resources and changes are its own validated
records), so the document every rule reads is what ``glassbox schema policy-input`` publishes; a shape the
models do not allow fails the check (and a failed check is a deny, I5). Each rule's METADATA names the schema
(``schemas: [input: schema.policy_input]``), so that OPA's type checker, given the schema
(``opa check --strict --schema policy-pack/schema``, the file a test keeps equal to this module's output), flags a
rule that reads a field the input never has: every object here is closed (``additionalProperties: false``). The
in-process OPA library does not process METADATA annotations, so that check runs with the ``opa`` executable.

Provenance (I12): each stack's, resource's and change's ``environment`` comes from the registry's estate at the
base commit. The stack says so once, for all its rows (``environment_source``), and carries the head's own label
beside it as ``environment_in_head``, for reading only. Free text (rationale prose, PR body, commit messages) never
enters the input (I8): the evidence appears as structured fields and digests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from bot.plan.model import Plan, Resource, ResourceChange
from bot.records import (
    EvidenceRecord,
    EvidenceSource,
    ExpectedChange,
    ModelInfo,
    Record,
    RiskTier,
)
from bot.registry import GOVERNANCE_PATHS, Agent, Registry

SCHEMA_NAME = "policy-input"
NO_PLAN = "sha256:" + "0" * 64
UNREGISTERED = "unregistered stack: treated as prod"


ANCHORED = "From the registry's estate at the base commit; unregistered → prod."


class StackInput(Record):
    """A touched stack: its environment class with the provenance every resource and change of it shares."""

    project: str
    stack: str
    environment: str = Field(description=ANCHORED)
    environment_source: Literal["registry", "unregistered stack: treated as prod"]
    environment_in_head: str | None = Field(
        default=None, description="The label the head's own stack config claims; for reading only, never a control."
    )


class ResourceInput(Resource):
    """A resource of a touched stack at head; its environment's provenance is its stack's."""

    environment: str = Field(description=ANCHORED)


class ChangeInput(ResourceChange):
    """One planned change (create, update, delete, replace) with both sides' inputs; provenance as its stack's."""

    environment: str = Field(description=ANCHORED)


class PlanInput(Record):
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    stacks: list[StackInput]
    resources: list[ResourceInput]


class FilesInput(Record):
    changed_paths: list[str]
    governance_paths: list[str] = Field(description="Changed paths that are governance (one predicate, the check's).")


class PromptInput(Record):
    template_id: str
    template_version: str
    template_sha256: str


class NoEvidence(Record):
    present: Literal[False] = False
    digest_verified: Literal[False] = False


class EvidenceInput(Record):
    """The agent's evidence record as policy sees it: structured fields and digests only, never prose (I8)."""

    present: Literal[True] = True
    digest_verified: bool
    digest: str
    agent_id: str
    requested_by: str
    model: ModelInfo
    prompt: PromptInput
    evidence_sources: list[EvidenceSource]
    confidence_score: float = Field(ge=0.0, le=1.0)
    has_rollback_plan: bool
    has_expected_impact: bool
    expected_changes: list[ExpectedChange]
    claimed_risk: RiskTier | None


class AuthorInput(Record):
    id: str
    kind: Literal["agent", "human"]


class PullRequestInput(Record):
    number: int | None
    author: AuthorInput
    agent_id: str | None
    base_ref: str
    head_sha: str = Field(pattern=r"^[0-9a-f]{40}$")


class RegistryInput(Record):
    agent: Agent | None = Field(description="The registry's entry for the authoring agent, at the base commit.")
    governance_paths: list[str]


class IndexGroup(Record):
    changes: list[int] = Field(description="Positions in `changes`, ascending.")


class IndexInput(Record):
    """Positions grouped by raw field values (bot.policy.engines.input.derive_index); no policy decision."""

    resources_by_type: dict[str, list[int]]
    bucket_companions: dict[str, list[int]]
    change_types: list[IndexGroup]
    change_stacks: list[IndexGroup]
    change_classes: list[IndexGroup]


class PolicyInput(Record):
    """What every rule of the pack reads as ``input``."""

    plan: PlanInput
    changes: list[ChangeInput]
    files: FilesInput
    evidence: EvidenceInput | NoEvidence
    pr: PullRequestInput
    registry: RegistryInput
    now: str = Field(description="The check's clock, RFC 3339 in UTC.")
    index: IndexInput | None = Field(
        default=None, description="Added by the engine after the shape check; a caller's own index is replaced."
    )


def policy_input_schema() -> dict[str, Any]:
    """The JSON Schema of the policy input (draft 2020-12), as `glassbox schema policy-input` prints it."""
    data = PolicyInput.model_json_schema(mode="serialization")
    data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    data["$id"] = f"https://glassbox.dev/schema/{SCHEMA_NAME}.json"
    return data


def anchored_environment(registry: Registry, project: str, stack: str) -> tuple[str, str]:
    """A stack's environment class from the registry's estate at the base; a stack it does not list is prod."""
    known = registry.estate.environment(project, stack) if registry.estate else None
    if known is not None:
        return known, "registry"
    return "prod", UNREGISTERED


def _anchored(registry: Registry, project: str, stack: str, in_head: str | None) -> dict[str, Any]:
    environment, source = anchored_environment(registry, project, stack)
    return {"environment": environment, "environment_source": source, "environment_in_head": in_head}


def _row_environments(registry: Registry, plan: Plan | None) -> dict[tuple[str, str], dict[str, str]]:
    """Each stack's anchored ``environment`` for its resources and changes, looked up once per stack."""
    if plan is None:
        return {}
    stacks = {(r.project, r.stack) for r in plan.resources} | {(c.project, c.stack) for c in plan.changes}
    return {(p, s): {"environment": anchored_environment(registry, p, s)[0]} for p, s in stacks}


def evidence_input(record: EvidenceRecord | None, digest_verified: bool) -> EvidenceInput | NoEvidence:
    if record is None:
        return NoEvidence()
    r = record.request
    return EvidenceInput(
        digest_verified=digest_verified,
        digest=record.digest,
        agent_id=r.agent_id,
        requested_by=r.requested_by.id,
        model=r.model,
        prompt=PromptInput(
            template_id=r.prompt.template_id,
            template_version=r.prompt.template_version,
            template_sha256=r.prompt.template_sha256,
        ),
        evidence_sources=list(r.rationale.evidence_sources),
        confidence_score=r.rationale.confidence.score,
        has_rollback_plan=bool(r.rationale.rollback_plan.strip()),
        has_expected_impact=bool(r.rationale.expected_impact.strip()),
        expected_changes=list(r.expected_changes),
        claimed_risk=r.claimed_risk,
    )


def build_policy_input(
    *,
    plan: Plan | None,
    changed_paths: list[str],
    governance_paths: list[str],
    evidence: EvidenceInput | NoEvidence,
    author_id: str,
    author_is_agent: bool,
    pr_number: int | None,
    base_ref: str,
    head_sha: str,
    registry: Registry,
    now: datetime,
) -> dict[str, Any]:
    """The policy input as the pack receives it (JSON-ready).

    Everything but the two long lists is built and validated through the models. Resources and changes are the
    plan's own (already validated) records with their anchored environment: dumped directly, since validating
    1,000 of them again costs several times the dump; tests hold those rows to the published schema."""
    agent = registry.find_agent(author_id) if author_is_agent else None
    stacks = plan.stacks if plan else []
    doc = PolicyInput(
        plan=PlanInput(
            digest=plan.digest if plan and plan.digest else NO_PLAN,
            stacks=[
                StackInput(project=s.project, stack=s.stack, **_anchored(registry, s.project, s.stack, s.environment))
                for s in stacks
            ],
            resources=[],
        ),
        changes=[],
        files=FilesInput(changed_paths=list(changed_paths), governance_paths=list(governance_paths)),
        evidence=evidence,
        pr=PullRequestInput(
            number=pr_number,
            author=AuthorInput(id=author_id, kind="agent" if author_is_agent else "human"),
            agent_id=author_id if author_is_agent else None,
            base_ref=base_ref,
            head_sha=head_sha,
        ),
        registry=RegistryInput(agent=agent, governance_paths=list(GOVERNANCE_PATHS)),
        now=now.astimezone(UTC).isoformat(),
    ).model_dump(mode="json", exclude={"index"})
    anchored = _row_environments(registry, plan)
    doc["plan"]["resources"] = [
        r.model_dump(mode="json") | anchored[r.project, r.stack] for r in (plan.resources if plan else [])
    ]
    # both sides as the plan holds them (JSON already): no copy of every input of every change
    doc["changes"] = [
        c.model_dump(mode="json", exclude={"before", "after"})
        | {"before": c.before, "after": c.after}
        | anchored[c.project, c.stack]
        for c in (plan.changes if plan else [])
    ]
    return doc
