"""Approvals: CODEOWNERS + the risk-tier approval matrix + separation of duties, computed at the head commit.

``codeowners`` parses and matches CODEOWNERS (GitHub's semantics); ``gate`` is the pure decision;
``service`` reads a PR through the forge port, publishes ``glassbox/approvals`` and records ledger events;
``protection`` is branch protection as code. Results are records in ``model``.
"""

from __future__ import annotations

from bot.approvals.codeowners import CodeOwners, Ownership, Problem, Rule, parse
from bot.approvals.gate import evaluate
from bot.approvals.model import (
    ApprovalState,
    Blocker,
    BlockerKind,
    CountedApproval,
    DiscardedReview,
    DiscardReason,
    MergeOutcome,
    Requirement,
    RequirementSource,
)
from bot.approvals.service import VerdictLoader, evaluate_pr, merge_pr

__all__ = [
    "ApprovalState",
    "Blocker",
    "BlockerKind",
    "CodeOwners",
    "CountedApproval",
    "DiscardReason",
    "DiscardedReview",
    "MergeOutcome",
    "Ownership",
    "Problem",
    "Requirement",
    "RequirementSource",
    "Rule",
    "VerdictLoader",
    "evaluate",
    "evaluate_pr",
    "merge_pr",
    "parse",
]
