"""One governed forge per module with a merged change, for the hostile break-glass dispatches (refusals consume
nothing, so the cases of a module share it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.deploy.breakglass import closure_bytes, grant_bytes
from bot.deploy.model import CLOSURE_PAYLOAD_TYPE, GRANT_PAYLOAD_TYPE, BreakGlassGrant, ReviewClosure
from bot.forge.trail import append_once
from bot.records import new_correlation_id
from bot.trust.keys import Signer, sign_json
from bot.trust.trail import closure_entry
from tests.e2e.break_glass_helpers import STACK, Merged, merged_change
from tests.flow_helpers import REPO, Flow, flow_env
from tests.runner_helpers import FakeTokenService, token_service


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    yield from flow_env(tmp_path_factory.mktemp("break-glass"), required_approvals=0)


@pytest.fixture(scope="module")
def merged(flow: Flow) -> Merged:
    return merged_change(flow)


@pytest.fixture
def oidc() -> Iterator[FakeTokenService]:
    yield from token_service(REPO)


def signed_grant(signer: Signer, *, opened_by: str, stack: str = STACK, **changes: Any) -> str:
    """A grant envelope made by hand (what `breakglass open` would refuse to make), signed by ``signer``."""
    now = datetime.now(UTC)
    grant = BreakGlassGrant(
        grant_id=new_correlation_id(),
        opened_by=opened_by,
        ticket="INC-666",
        reason="trust me",
        stack=stack,
        opened_at=now,
        expires_at=now + timedelta(hours=1),
        ttl_seconds=3600,
    ).model_copy(update=changes)
    return grant_bytes(sign_json(grant.model_dump(mode="json"), GRANT_PAYLOAD_TYPE, signer)).decode("utf-8")


def signed_closure(signer: Signer, grant_id: str, *, closed_by: str) -> str:
    """A review closure made by hand (what `breakglass close` would refuse to make), signed by ``signer``."""
    closure = ReviewClosure(
        grant_id=grant_id,
        closed_by=closed_by,
        closed_at=datetime.now(UTC),
        outcome="kept",
        summary="reviewed, all fine",
    )
    return closure_bytes(sign_json(closure.model_dump(mode="json"), CLOSURE_PAYLOAD_TYPE, signer)).decode("utf-8")


def append_unchecked(flow: Flow, grant_id: str, closure: str) -> str | None:
    """Put ``closure`` on the trail as the bot's commit would, without the verification `ci schedule --record-review`
    makes first: what a job that skipped it, or anyone else able to append, leaves there."""
    return append_once(
        flow.forge("glassbox-bot"),
        flow.signer("glassbox-bot"),
        guard=closure_entry(grant_id),
        files={closure_entry(grant_id): closure},
        message=f"glassbox trail: post-incident review of break-glass grant {grant_id} closed\n",
    )
