"""Deploy: the credential broker, the appliers and break-glass (the gate that uses them comes with deploy).

- :mod:`bot.deploy.broker` mints and verifies short-lived credentials scoped to one stack (I10);
- :mod:`bot.deploy.applier` applies a stack's planned resources (simulated locally, or Pulumi Automation
  API where the ``pulumi`` CLI exists), serialised per stack and safe across a crash;
- :mod:`bot.deploy.breakglass` opens and consumes signed, single-use, expiring break-glass grants, and closes the
  post-incident review each use opens;
- :mod:`bot.deploy.model` holds their records and :mod:`bot.deploy.state` the state directory layout.
"""

from __future__ import annotations

from bot.deploy.applier import (
    ApplyRefused,
    LocalApplier,
    PulumiAutomationApplier,
    StackBusy,
    select_applier,
    verify_applied,
)
from bot.deploy.breakglass import (
    BreakGlassRefused,
    GrantStore,
    close_review,
    list_grants,
    open_grant,
    parse_ttl,
    use_grant,
)
from bot.deploy.broker import (
    CredentialBroker,
    CredentialRefused,
    ReplayStore,
    credential_token,
    deploy_trust,
    verify_credential,
)
from bot.deploy.events import EventSink
from bot.deploy.model import (
    BreakGlassAlert,
    BreakGlassGrant,
    Credential,
    Deployment,
    IssuedCredential,
    PostIncidentReview,
    ReviewClosure,
)
from bot.deploy.state import StackRef, default_state_dir

__all__ = [
    "ApplyRefused",
    "BreakGlassAlert",
    "BreakGlassGrant",
    "BreakGlassRefused",
    "Credential",
    "CredentialBroker",
    "CredentialRefused",
    "Deployment",
    "EventSink",
    "GrantStore",
    "IssuedCredential",
    "LocalApplier",
    "PostIncidentReview",
    "PulumiAutomationApplier",
    "ReplayStore",
    "ReviewClosure",
    "StackBusy",
    "StackRef",
    "close_review",
    "credential_token",
    "default_state_dir",
    "deploy_trust",
    "list_grants",
    "open_grant",
    "parse_ttl",
    "select_applier",
    "use_grant",
    "verify_applied",
    "verify_credential",
]
