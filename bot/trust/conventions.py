"""The names every stage agrees on, each defined once: where a decision record lives, what an agent's branch is
called, the commit trailers that bind a commit to its request, the status contexts CI and the bot publish, and
the directories the trusted anchors are read from at the base commit."""

from __future__ import annotations

import re
from datetime import datetime

from bot.records import EvidenceRecord

# trusted anchors, read from the base commit's tree
REGISTRY_DIR = "registry"
POLICY_PACK_DIR = "policy-pack"

# the decision record (evidence) an agent's PR adds: .glassbox/decisions/<yyyy>/<mm>/<correlation id>.json
DECISIONS_DIR = ".glassbox/decisions/"

# an agent writes only under its own branch namespace: glassbox/<agent id>/<correlation id>
AGENT_BRANCH_PREFIX = "glassbox/"

# the statuses CI and the bot publish on a PR's head (and that branch protection requires)
# The audit trail: a branch of the governed repository, outside the agent namespace, that only glassbox's service
# identities may advance (fast-forward only). bot/trust/trail.py says what it holds.
TRAIL_BRANCH = "glassbox-trail"

CHECK_CONTEXT = "glassbox/check"
APPROVALS_CONTEXT = "glassbox/approvals"

# commit trailers binding a commit to its request, its agent and its evidence record
TRAILER_CORRELATION = "Glassbox-Correlation-Id"
TRAILER_AGENT = "Glassbox-Agent"
TRAILER_EVIDENCE = "Glassbox-Evidence"

_TRAILER = re.compile(r"^(Glassbox-[A-Za-z-]+):\s*(\S+)\s*$", re.MULTILINE)


def decision_record_path(correlation_id: str, requested_at: datetime) -> str:
    return f"{DECISIONS_DIR}{requested_at:%Y}/{requested_at:%m}/{correlation_id}.json"


def agent_branch(agent_id: str, correlation_id: str) -> str:
    return f"{AGENT_BRANCH_PREFIX}{agent_id}/{correlation_id}"


def trailers(message: str) -> dict[str, str]:
    """``Glassbox-*`` trailers of a commit message (the last value of each wins)."""
    return {m.group(1): m.group(2) for m in _TRAILER.finditer(message)}


def trailer_lines(correlation_id: str, agent_id: str, evidence_digest: str | None) -> str:
    return (
        f"{TRAILER_CORRELATION}: {correlation_id}\n{TRAILER_AGENT}: {agent_id}\n{TRAILER_EVIDENCE}: {evidence_digest}\n"
    )


def commit_message(record: EvidenceRecord) -> str:
    """The message of an agent's commit: its intent, who asked, and the trailers that bind it to the record."""
    r = record.request
    return f"{r.intent}\n\nProposed by agent {r.agent_id} for {r.requested_by.id}.\n\n" + trailer_lines(
        r.correlation_id, r.agent_id, record.digest
    )
