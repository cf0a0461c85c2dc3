"""Where deploy writes its ledger events: one small sink bound to the ledger and the emitting identity.

Credential mints and refusals, break-glass opens, uses and refusals all go through :class:`EventSink`, so a
refusal carries the same fields as an allow (invariant I6) and is signed by the identity that decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.records import Actor, ActorKind, AuditEvent, Outcome, Subject
from bot.trust.keys import Signer
from bot.trust.ledger import Ledger


@dataclass(frozen=True)
class EventSink:
    ledger: Ledger
    signer: Signer
    kind: ActorKind = ActorKind.DEPLOYER

    @property
    def actor(self) -> Actor:
        return Actor(id=self.signer.identity, kind=self.kind)

    def emit(
        self,
        action: str,
        outcome: Outcome,
        reason: str,
        *,
        stack: str | None,
        commit: str | None = None,
        details: Mapping[str, Any] | None = None,
        time: datetime | None = None,
        correlation_id: str | None = None,
    ) -> AuditEvent:
        return self.ledger.append(
            self.signer,
            actor=self.actor,
            action=action,
            outcome=outcome,
            reason=reason,
            correlation_id=correlation_id,
            subject=Subject(stack=stack, commit=commit),
            details=details,
            time=time,
        )
