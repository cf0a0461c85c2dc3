"""Closing a break-glass use's post-incident review: who may (a person in a ``reviews_break_glass`` team who did not
open the grant), what the signed closure holds, what the deploy state keeps, and every refusal, each recorded."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.deploy.breakglass import (
    BreakGlassRefused,
    ClosureRejected,
    GrantStore,
    GrantUse,
    close_review,
    closure_bytes,
    may_review_break_glass,
    open_grant,
    state_breakglass_audit,
    use_grant,
    verify_closure,
)
from bot.deploy.events import EventSink
from bot.deploy.model import CLOSURE_PAYLOAD_TYPE, ClosedReview, OpenedGrant, PostIncidentReview, ReviewClosure
from bot.errors import UserError
from bot.records import ActorKind, Outcome
from bot.registry import Registry, load_registry
from bot.trust.keys import Signer, generate_key, sign_json
from bot.trust.ledger import Ledger, ledger_keys
from tests.factories import registry_with_keys
from tests.unit.deploy.conftest import COMMIT, NOW, STACK

LEDGER_AND_COMMITS = ["commit-signer", "ledger-signer"]


class World:
    """A registry with real keys: carol opens (sre-oncall), alice and bob review (security), grace is in both, dan
    is a person in neither, cost-optimizer an agent, glassbox-bot a service identity."""

    def __init__(self, tmp: Path) -> None:
        root, self.signers = registry_with_keys(
            tmp,
            ("glassbox-deployer", ["deploy-signer", "ledger-signer"]),
            ("glassbox-bot", ["ledger-signer"]),
            ("cost-optimizer", LEDGER_AND_COMMITS),
            *((who, LEDGER_AND_COMMITS) for who in ("carol", "alice", "bob", "grace", "dan")),
        )
        self.tmp = tmp
        self.registry: Registry = load_registry(root)
        self.state = tmp / "deploy-state"
        self.ledger = Ledger(tmp / "ledger" / "ledger.jsonl")

    def open(self, who: str = "carol") -> OpenedGrant:
        return open_grant(
            self.registry,
            self.signers[who],
            ticket="INC-42",
            reason="prod DB out of connections",
            stack=STACK,
            ledger=self.ledger,
            store=GrantStore.under(self.state),
            now=NOW,
        )

    def use(self, opened: OpenedGrant) -> None:
        use_grant(
            opened.grant.grant_id,
            STACK,
            COMMIT,
            registry=self.registry,
            store=GrantStore.under(self.state),
            sink=EventSink(self.ledger, self.signers["glassbox-deployer"]),
            state_dir=self.state,
            run_id="run-9",
            now=NOW + timedelta(minutes=5),
        )

    def close(self, grant_id: str, who: str = "alice", **kwargs: Any) -> ClosedReview:
        args: dict[str, Any] = {
            "outcome": "fixed-forward",
            "summary": "pool exhausted by a runaway job; limits raised in PR #12",
            "follow_up": "https://github.com/acme/estate/pull/12",
            "state_dir": self.state,
            "now": NOW + timedelta(days=1),
        }
        args.update(kwargs)
        signer = args.pop("signer", None) or self.signers[who]
        return close_review(self.registry, signer, grant_id, ledger=self.ledger, **args)

    def refused(self, grant_id: str, code: str, who: str = "alice", **kwargs: Any) -> BreakGlassRefused:
        with pytest.raises(BreakGlassRefused) as info:
            self.close(grant_id, who, **kwargs)
        assert info.value.code == code, info.value.message
        event = self.events()[-1]
        assert event.action == "breakglass.refuse" and event.outcome is Outcome.DENY
        assert event.details["code"] == code and event.details["stage"] == "review"
        assert event.actor.id == (kwargs.get("signer") or self.signers[who]).identity
        return info.value

    def events(self, action: str | None = None) -> list[Any]:
        return [e for e in self.ledger.events() if action is None or e.action == action]

    def review(self, grant_id: str) -> PostIncidentReview:
        return PostIncidentReview.model_validate_json((self.state / "reviews" / f"{grant_id}.json").read_bytes())


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_reviewer_closes_the_review_signed_in_the_state_and_on_the_ledger(world: World) -> None:
    opened = world.open()
    world.use(opened)
    gid = opened.grant.grant_id
    closed = world.close(gid)

    closure = verify_closure(closed.envelope, world.registry, opened.grant)
    assert closure == closed.closure
    assert (closure.grant_id, closure.closed_by, closure.outcome) == (gid, "alice", "fixed-forward")
    assert closure.follow_up == "https://github.com/acme/estate/pull/12"
    assert closed.envelope["payloadType"] == CLOSURE_PAYLOAD_TYPE
    assert closed.envelope["signatures"][0]["keyid"] == world.signers["alice"].keyid
    # the deploy state: the closure beside the review, the review rewritten as closed (its questions kept)
    stored = (world.state / "reviews" / f"{gid}.closed.dsse.json").read_bytes()
    assert stored == closure_bytes(closed.envelope)
    review = world.review(gid)
    assert review.status == "closed" and review.closed_by == "alice" and review.outcome == "fixed-forward"
    assert review.closed_at == NOW + timedelta(days=1) and review.questions and review.due > review.used_at
    assert closed.review == review and closed.review_path == str(world.state / "reviews" / f"{gid}.json")
    (event,) = world.events("breakglass.review")
    assert event.actor.id == "alice" and event.actor.kind is ActorKind.HUMAN and event.outcome is Outcome.ALLOW
    assert event.details["grant_id"] == gid and event.details["review_outcome"] == "fixed-forward"
    assert event.details["opened_by"] == "carol" and event.subject.stack == STACK
    assert world.ledger.verify(ledger_keys(world.registry)).ok, "a human may record breakglass.review"


def test_an_old_open_review_file_still_reads(world: World) -> None:
    opened = world.open()
    world.use(opened)
    path = world.state / "reviews" / f"{opened.grant.grant_id}.json"
    data = json.loads(path.read_bytes())
    for key in ("closed_by", "closed_at", "outcome", "follow_up"):
        data.pop(key)  # what a review written before closing existed looks like
    assert PostIncidentReview.model_validate(data).status == "open"


def test_the_opener_may_not_close_their_own_review(world: World) -> None:
    opened = world.open("grace")  # grace is in sre-oncall and in security: she may break glass and review others'
    world.use(opened)
    gid = opened.grant.grant_id
    refused = world.refused(gid, "self-review", "grace")
    assert "opened grant" in refused.message
    assert world.review(gid).status == "open" and not world.events("breakglass.review")
    assert not may_review_break_glass(world.registry, "grace", opened.grant)
    assert may_review_break_glass(world.registry, "alice", opened.grant)
    world.close(gid, "bob")  # another reviewer may
    assert world.review(gid).closed_by == "bob"


@pytest.mark.parametrize(
    ("who", "why"),
    [
        ("cost-optimizer", "an agent"),
        ("glassbox-bot", "a service identity"),
        ("dan", "a person outside the reviewer teams"),
        ("carol", "the opener, outside the reviewer teams too"),
    ],
)
def test_only_people_in_a_reviewer_team_may_close(world: World, who: str, why: str) -> None:
    opened = world.open()
    world.use(opened)
    refused = world.refused(opened.grant.grant_id, "not-reviewer", who)
    assert "reviews_break_glass" in refused.message and "security" in refused.message, why
    assert not may_review_break_glass(world.registry, who, opened.grant), why
    assert world.review(opened.grant.grant_id).status == "open"


def test_a_key_the_registry_does_not_bind_to_the_reviewer_is_refused(world: World) -> None:
    opened = world.open()
    world.use(opened)
    mallory = generate_key(world.tmp / "mallory-keys", "alice")  # alice's name, a key nobody trusts
    world.refused(opened.grant.grant_id, "untrusted-key", signer=mallory)


def test_a_review_closes_once(world: World) -> None:
    opened = world.open()
    world.use(opened)
    gid = opened.grant.grant_id
    world.close(gid)
    world.refused(gid, "already-closed", "bob")
    assert world.review(gid).closed_by == "alice", "the first closure stands"


def test_an_unused_grant_has_no_review_to_close(world: World) -> None:
    opened = world.open()
    world.refused(opened.grant.grant_id, "not-used")
    assert not (world.state / "reviews").exists()


def test_an_unknown_grant_is_refused_and_a_bad_id_is_bad_input(world: World) -> None:
    world.refused("no-such-grant", "unknown")
    with pytest.raises(UserError, match="GRANT_ID"):
        world.close("../escape")
    with pytest.raises(UserError, match="--summary"):
        world.close("any", summary="  ")


def test_the_summary_is_bounded_and_redacted(world: World) -> None:
    opened = world.open()
    world.use(opened)
    gid = opened.grant.grant_id
    with pytest.raises(UserError, match="summary"):
        world.close(gid, summary="x" * 4001)
    closed = world.close(gid, summary="rotated the key AKIAIOSFODNN7EXAMPLE after the incident")
    assert "AKIAIOSFODNN7EXAMPLE" not in json.dumps(closed.closure.model_dump(mode="json"))


def _closure(signer: Signer, grant_id: str, closed_by: str) -> dict[str, Any]:
    closure = ReviewClosure(
        grant_id=grant_id, closed_by=closed_by, closed_at=NOW, outcome="kept", summary="looked fine to me"
    )
    return sign_json(closure.model_dump(mode="json"), CLOSURE_PAYLOAD_TYPE, signer)


def test_verify_closure_refuses_what_a_permitted_reviewer_did_not_sign(world: World) -> None:
    opened = world.open()
    gid = opened.grant.grant_id
    cases = {
        "self-review": _closure(world.signers["carol"], gid, "carol"),
        "not-reviewer": _closure(world.signers["dan"], gid, "dan"),
        "forged": _closure(generate_key(world.tmp / "mallory-keys", "mallory"), gid, "alice"),
        "wrong-grant": _closure(world.signers["alice"], "another-grant", "alice"),
    }
    for code, envelope in cases.items():
        with pytest.raises(ClosureRejected) as info:
            verify_closure(envelope, world.registry, opened.grant)
        assert info.value.code == code, info.value.message
    other_type = sign_json({"grant_id": gid, "closed_by": "alice"}, "application/x-other", world.signers["alice"])
    with pytest.raises(ClosureRejected, match="does not verify"):
        verify_closure(other_type, world.registry, opened.grant)


def test_the_offline_audit_reports_an_overdue_review_until_it_is_closed(world: World) -> None:
    opened = world.open()
    world.use(opened)
    gid = opened.grant.grant_id
    (use_event,) = world.events("breakglass.use")
    uses = [GrantUse(use_event.seq, gid, COMMIT, STACK, claimed=False)]
    due = world.review(gid).due

    def audit(at: Any) -> Any:
        return state_breakglass_audit(world.state, uses, lambda _: world.registry, now=at)

    assert audit(due - timedelta(hours=1)).problems == [], "not yet due"
    (late,) = audit(due + timedelta(hours=1)).problems
    assert late.overdue and not late.tampered and late.grant_id == gid and "INC-42" in late.message
    # a closure by the opener, written into the state by hand, closes nothing
    forged = world.state / "reviews" / f"{gid}.closed.dsse.json"
    forged.write_bytes(closure_bytes(_closure(world.signers["carol"], gid, "carol")))
    (still,) = audit(due + timedelta(hours=1)).problems
    assert still.overdue and "does not verify" in still.message
    forged.unlink()
    world.close(gid, now=due + timedelta(hours=2))
    found = audit(due + timedelta(days=30))
    assert found.problems == [] and found.closures[gid].closed_by == "alice"
