"""The plan's records: what a pull request changes in the infrastructure, as docs/contracts.md shapes it.

A :class:`Plan` is built from two runs of each touched Pulumi program (base and head) under the SDK's mock
runtime; it carries the head resources, the base resources, the changes between them and its own digest
(``bot.records.digest`` of the plan without the ``digest`` field), which the verdict and deploy compare.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from bot.records import ChangeAction, Digest, Record, digest


class StackRef(Record):
    """One Pulumi stack of one project, as the plan saw it."""

    project: str = Field(min_length=1, description="Project name from Pulumi.yaml.")
    stack: str = Field(min_length=1)
    environment: str = Field(min_length=1, description="Stack config `glassbox:environment`, else the stack name.")
    path: str = Field(description="Repository-relative directory of the project, e.g. infra/data.")


class Resource(Record):
    """One resource a program registered under the mock runtime."""

    urn: str = Field(min_length=1)
    project: str
    stack: str
    environment: str
    type: str = Field(description="Pulumi type token, e.g. aws:s3/bucket:Bucket.")
    name: str = Field(description="Logical name.")
    parent: str | None = Field(default=None, description="Parent URN; null for a child of the stack.")
    provider: str | None = Field(default=None, description="Explicit provider URN; null for the default.")
    protect: bool = False
    dependencies: list[str] = Field(default_factory=list, description="URNs this resource depends on, sorted.")
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="camelCase inputs; whole floats as ints; secrets as '[secret sha256:<hex>]'.",
    )


class PropertyChange(Record):
    path: str = Field(description="Dotted input path, list items as [i], e.g. tags.Owner or ingress[0].fromPort.")
    before: Any = None
    after: Any = None


class ResourceChange(Record):
    project: str
    stack: str
    environment: str
    urn: str
    type: str
    name: str
    action: ChangeAction
    replace_predicted: bool = Field(
        default=False, description="True when a changed property is known to force replacement for the type."
    )
    changed: list[PropertyChange] = Field(default_factory=list)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class Plan(Record):
    schema_version: Literal[1] = 1
    base_commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    head_commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    stacks: list[StackRef] = Field(default_factory=list, description="Touched stacks (either side).")
    resources: list[Resource] = Field(default_factory=list, description="Resources of touched stacks at head.")
    base_resources: list[Resource] = Field(default_factory=list, description="The same stacks at base.")
    changes: list[ResourceChange] = Field(default_factory=list)
    digest: Digest | None = Field(default=None, description="digest of this plan without its digest field.")

    def computed_digest(self) -> str:
        return digest(self.model_dump(mode="json", exclude={"digest"}))

    def sealed(self) -> Plan:
        """This plan with its own digest filled in."""
        return self.model_copy(update={"digest": self.computed_digest()})

    def verify_digest(self) -> bool:
        return self.digest is not None and self.digest == self.computed_digest()
