"""Plain glassbox records for the approvals tests: PRs, reviews, verdicts, evidence. No mocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from bot.approvals import codeowners as co
from bot.approvals.gate import evaluate
from bot.approvals.model import ApprovalState
from bot.forge.model import PullRequest, PullState, Review, ReviewState
from bot.records import ChangeRequest, EvidenceRecord, Verdict, summarize_request
from bot.registry import Registry, load_registry
from tests.factories import REPO_ROOT, SAMPLE_REGISTRY, change_request_data, verdict_data

HEAD = "1" * 40
BASE = "2" * 40
OLD = "3" * 40
REPO = "acme/infra"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@cache
def registry() -> Registry:
    return load_registry(SAMPLE_REGISTRY)


@cache
def repo_codeowners() -> co.CodeOwners:
    return co.parse((REPO_ROOT / ".github" / "CODEOWNERS").read_text(encoding="utf-8"), source=".github/CODEOWNERS")


def pull(author: str = "patch-agent", *, draft: bool = False, head: str = HEAD, number: int = 7) -> PullRequest:
    return PullRequest(
        number=number,
        title="change",
        state=PullState.OPEN,
        draft=draft,
        head_ref=f"glassbox/{author}/x",
        head_sha=head,
        base_ref="main",
        base_sha=BASE,
        author=author,
    )


def review(review_id: int, user: str, state: ReviewState = ReviewState.APPROVED, commit: str | None = HEAD) -> Review:
    return Review(
        id=review_id, user=user, state=state, commit_id=commit, submitted_at=T0 + timedelta(minutes=review_id)
    )


def evidence(
    agent: str = "patch-agent", requester: str = "dan", confidence: float = 0.92, **overrides: Any
) -> EvidenceRecord:
    data = change_request_data(agent_id=agent, requested_by={"id": requester, "kind": "human"}, **overrides)
    data["rationale"]["confidence"]["score"] = confidence
    request = ChangeRequest.model_validate(data)
    return EvidenceRecord(
        request=summarize_request(request),
        bot_version="0.1.0",
        registry_digest="sha256:" + "a" * 64,
        policy_pack_digest="sha256:" + "b" * 64,
    ).sealed()


def verdict(
    risk: str = "medium", result: str = "PASSED", head: str = HEAD, evidence_digest: str | None = None, **extra: Any
) -> Verdict:
    data = verdict_data(risk=risk, result=result, **extra)
    data["change"] = {**data["change"], "head_commit": head, "base_commit": BASE, "evidence_digest": evidence_digest}
    if result == "FAILED":
        data["findings"] = [{**data["findings"][0], "status": "deny", "rule_id": "GB-NET-001"}]
    return Verdict.model_validate(data)


def gate(
    *,
    pr: PullRequest | None = None,
    reviews: list[Review] | None = None,
    paths: list[str] | None = None,
    v: Verdict | str | None = "default",
    ev: list[EvidenceRecord] | None = None,
    reg: Registry | None = None,
    owners: co.CodeOwners | str | None = "repo",
    **kwargs: Any,
) -> ApprovalState:
    return evaluate(
        pr=pr or pull(),
        reviews=reviews or [],
        changed_paths=paths if paths is not None else ["infra/network/__main__.py"],
        codeowners=repo_codeowners() if owners == "repo" else owners,  # type: ignore[arg-type]
        verdict=verdict() if v == "default" else v,  # type: ignore[arg-type]
        registry=reg or registry(),
        evidence=ev if ev is not None else [evidence()],
        repo=REPO,
        commits=kwargs.pop("commits", ()),
        **kwargs,
    )


EV_TIME = [evidence(requester="erin")]
"""Evidence whose requester (erin) is no platform owner: carol and dan may both approve a network change."""


def reasons(state: ApprovalState) -> dict[int, str]:
    return {d.review_id: d.reason.value for d in state.discarded_with_reason}
