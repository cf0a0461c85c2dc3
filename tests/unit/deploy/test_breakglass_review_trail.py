"""Closing a post-incident review on the audit trail, with real git and the embedded forge: the reviewer signs the
closure on their own machine from a clone's trail, the bot appends it beside the grant's claim after verifying it,
and the trail's audit sees the review closed (or overdue while it is not)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from bot.deploy.breakglass import (
    BreakGlassRefused,
    GrantUse,
    RecordedClosure,
    append_closure,
    close_review,
    closure_bytes,
    trail_breakglass_audit,
)
from bot.deploy.events import EventSink
from bot.deploy.model import ClosedReview, OpenedGrant, PostIncidentReview
from bot.records import ActorKind, Outcome
from bot.trust.keys import Signer
from bot.trust.ledger import Ledger
from bot.trust.trail import breakglass_objects, closure_entry, review_entry, trail_problems, trail_ref
from tests.unit.deploy.test_breakglass_review import _closure
from tests.unit.deploy.test_breakglass_trail import COMMIT, STACK, World, _open, _runner, _use, world

__all__ = ["world"]  # the module's fixture

pytestmark = pytest.mark.slow


def _objects(world: World) -> dict[str, bytes]:
    head = trail_ref(world.bare)
    return breakglass_objects(world.bare, head) if head else {}


def _close(world: World, gid: str, who: str = "alice", **kwargs: Any) -> ClosedReview:
    """``glassbox breakglass close`` on the reviewer's machine: the grant and its review from a clone's trail."""
    laptop = world.tmp / f"{who}-laptop"
    return close_review(
        world.registry,
        kwargs.pop("signer", None) or world.signer(who),
        gid,
        outcome="reverted",
        summary="the hotfix leaked a port; reverted in PR #31",
        follow_up="https://github.com/acme/estate/pull/31",
        ledger=Ledger(laptop / "ledger.jsonl"),
        state_dir=laptop / "state",
        trail=_objects(world),
        **kwargs,
    )


class Bot:
    def __init__(self, world: World) -> None:
        self.signer: Signer = world.signer("glassbox-bot")
        self.ledger = Ledger(world.tmp / "bot" / "ledger.jsonl")
        self.sink = EventSink(self.ledger, self.signer, kind=ActorKind.BOT)
        self.forge = world.forge.client("glassbox-bot")
        self.registry = world.registry

    def record(self, envelope: dict[str, Any]) -> RecordedClosure:
        return append_closure(self.forge, self.signer, envelope, lambda _: self.registry, sink=self.sink)

    def refused(self, envelope: dict[str, Any], code: str) -> BreakGlassRefused:
        with pytest.raises(BreakGlassRefused) as info:
            self.record(envelope)
        assert info.value.code == code, info.value.message
        event = list(self.ledger.events())[-1]
        assert event.action == "breakglass.refuse" and event.outcome is Outcome.DENY
        assert event.details["code"] == code and event.details["stage"] == "record-review"
        return info.value


def _used(world: World) -> tuple[OpenedGrant, GrantUse]:
    opened = _open(world)
    runner = _runner(world, "deploy")
    _use(world, runner, opened)
    (event,) = [e for e in runner.ledger.events() if e.action == "breakglass.use"]
    return opened, GrantUse(event.seq, opened.grant.grant_id, COMMIT, STACK)


def test_a_closure_signed_from_a_clone_is_appended_by_the_bot_and_closes_the_review(world: World) -> None:
    opened, use = _used(world)
    gid = opened.grant.grant_id
    closed = _close(world, gid)
    assert closed.review is None, "the reviewer's state does not hold the review: the trail will"
    bot = Bot(world)
    before = trail_ref(world.bare)
    recorded = bot.record(closed.envelope)

    assert recorded.entry == closure_entry(gid) and recorded.trail == trail_ref(world.bare) != before
    objects = _objects(world)
    assert objects[closure_entry(gid)] == closure_bytes(closed.envelope)
    history = trail_problems(world.bare, recorded.trail, world.registry)
    assert history.problems == [] and history.appenders == {"glassbox-deployer": 1, "glassbox-bot": 1}
    (event,) = [e for e in bot.ledger.events() if e.action == "breakglass.review"]
    assert event.actor.id == "glassbox-bot" and event.outcome is Outcome.ALLOW and event.subject.commit == COMMIT
    assert event.details["closed_by"] == "alice" and event.details["review_outcome"] == "reverted"

    due = PostIncidentReview.model_validate_json(objects[review_entry(gid)]).due
    found = trail_breakglass_audit(objects, [use], lambda _: world.registry, now=due + timedelta(days=30))
    assert found.problems == [] and found.closures[gid].closed_by == "alice"
    # the same envelope again (a re-run of the dispatch) lands nowhere new; another closure is refused
    assert bot.record(closed.envelope).trail == recorded.trail
    bob = _close_ignoring_trail(world, gid, "bob")
    bot.refused(bob, "already-closed")
    assert trail_ref(world.bare) == recorded.trail


def _close_ignoring_trail(world: World, gid: str, who: str) -> dict[str, Any]:
    """A second reviewer's closure signed from a clone fetched before the first one landed."""
    laptop = world.tmp / f"{who}-laptop"
    objects = {k: v for k, v in _objects(world).items() if not k.endswith(".closed.dsse.json")}
    return close_review(
        world.registry,
        world.signer(who),
        gid,
        outcome="kept",
        summary="fine as deployed",
        ledger=Ledger(laptop / "ledger.jsonl"),
        state_dir=laptop / "state",
        trail=objects,
    ).envelope


def test_the_reviewer_sees_a_review_already_closed_on_the_trail(world: World) -> None:
    opened, _ = _used(world)
    gid = opened.grant.grant_id
    Bot(world).record(_close(world, gid).envelope)
    with pytest.raises(BreakGlassRefused) as info:
        _close(world, gid, "bob")
    assert info.value.code == "already-closed"


def test_an_unclosed_review_is_overdue_once_past_due(world: World) -> None:
    opened, use = _used(world)
    objects = _objects(world)
    due = PostIncidentReview.model_validate_json(objects[review_entry(opened.grant.grant_id)]).due
    on_time = trail_breakglass_audit(objects, [use], lambda _: world.registry, now=due - timedelta(minutes=1))
    assert on_time.problems == []
    (late,) = trail_breakglass_audit(objects, [use], lambda _: world.registry, now=due + timedelta(minutes=1)).problems
    assert late.overdue and not late.tampered and late.commit == COMMIT and due.isoformat() in late.message


def test_a_closure_of_a_grant_the_trail_never_claimed_is_refused(world: World) -> None:
    opened = _open(world)  # opened, never used: no claim, no review
    laptop = world.tmp / "alice-laptop"
    with pytest.raises(BreakGlassRefused) as info:
        close_review(
            world.registry,
            world.signer("alice"),
            opened.grant.grant_id,
            outcome="kept",
            summary="nothing to see",
            ledger=Ledger(laptop / "ledger.jsonl"),
            state_dir=world.tmp / "carol-laptop" / "state",  # the opener's store holds the grant, no review
        )
    assert info.value.code == "not-used"
    # a closure made by hand for it anyway: the bot finds no claim on the trail and appends nothing
    envelope = _closure(world.signer("alice"), opened.grant.grant_id, "alice")
    Bot(world).refused(envelope, "no-claim")
    assert trail_ref(world.bare) is None or closure_entry(opened.grant.grant_id) not in _objects(world)


def test_the_bot_refuses_a_closure_by_the_opener(world: World) -> None:
    opened, _ = _used(world)
    head = trail_ref(world.bare)
    refused = Bot(world).refused(_closure(world.signer("carol"), opened.grant.grant_id, "carol"), "self-review")
    assert "carol" in refused.message and trail_ref(world.bare) == head
    assert json.loads(_objects(world)[review_entry(opened.grant.grant_id)])["status"] == "open"
