"""Break-glass grants on the audit trail, with real git and the embedded forge: the grant, its use claim and its
review are appended in one guarded commit before anything is applied, so a grant works once across runners."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.deploy.breakglass import (
    MAX_GRANT_BYTES,
    BreakGlassRefused,
    GrantStore,
    GrantUse,
    TrailGrantLock,
    grant_bytes,
    open_grant,
    read_presented_grant,
    trail_grant_problems,
    use_grant,
)
from bot.deploy.broker import deploy_trust
from bot.deploy.events import EventSink
from bot.deploy.model import CLAIM_PAYLOAD_TYPE, GrantClaim, OpenedGrant
from bot.forge.server import repo_path
from bot.records import Outcome
from bot.registry import Registry, load_registry
from bot.trust.conventions import TRAIL_BRANCH
from bot.trust.keys import Signer, load_signer, sign_json, verify_json_envelope
from bot.trust.ledger import Ledger
from bot.trust.trail import (
    breakglass_objects,
    claim_entry,
    grant_entry,
    materialise,
    review_entry,
    trail_problems,
    trail_ref,
)
from tests.forge_helpers import REPO, ForgeEnv, forge_env

pytestmark = pytest.mark.slow

STACK = "network/dev"
COMMIT = "a" * 40


@dataclass
class World:
    forge: ForgeEnv
    registry: Registry
    tmp: Path

    @property
    def bare(self) -> Path:
        return repo_path(self.forge.data, REPO)

    def signer(self, identity: str) -> Signer:
        return load_signer(self.forge.data / "keys", identity)

    def lock(self) -> TrailGrantLock:
        return TrailGrantLock(self.forge.client("glassbox-deployer"), self.signer("glassbox-deployer"))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    for forge in forge_env(tmp_path):
        out = tmp_path / "registry-at-main"
        subprocess.run(
            ["git", "-C", str(repo_path(forge.data, REPO)), "archive", "-o", str(tmp_path / "main.tar"), "main"],
            check=True,
        )
        out.mkdir()
        subprocess.run(["tar", "-xf", str(tmp_path / "main.tar"), "-C", str(out), "registry"], check=True)
        yield World(forge, load_registry(out / "registry"), tmp_path)


def _open(world: World, *, now: datetime | None = None, ttl: timedelta = timedelta(hours=1)) -> OpenedGrant:
    """carol (sre-oncall, break_glass) opens a grant on her own machine: her own ledger and state."""
    laptop = world.tmp / "carol-laptop"
    return open_grant(
        world.registry,
        world.signer("carol"),
        ticket="INC-77",
        reason="flow logs fill the disk",
        stack=STACK,
        ledger=Ledger(laptop / "ledger.jsonl"),
        store=GrantStore.under(laptop / "state"),
        ttl=ttl,
        now=now,
    )


@dataclass
class Runner:
    """One deploy job's ephemeral runner: an empty state directory and its own ledger."""

    state: Path
    ledger: Ledger
    sink: EventSink


def _runner(world: World, name: str) -> Runner:
    root = world.tmp / "runners" / name
    ledger = Ledger(root / "ledger.jsonl")
    return Runner(root / "state", ledger, EventSink(ledger, world.signer("glassbox-deployer")))


def _use(world: World, runner: Runner, opened: OpenedGrant, *, stack: str = STACK, **kwargs: Any) -> Any:
    return use_grant(
        opened.grant.grant_id,
        stack,
        COMMIT,
        registry=world.registry,
        store=GrantStore.under(runner.state),
        sink=runner.sink,
        state_dir=runner.state,
        run_id=f"run-{runner.state.parent.name}",
        envelope=json.loads(grant_bytes(opened.envelope)),  # as the dispatch input carries it
        trail=world.lock(),
        **kwargs,
    )


def test_a_use_appends_the_grant_its_signed_claim_and_its_review_in_one_trail_commit(world: World) -> None:
    opened = _open(world)
    gid = opened.grant.grant_id
    runner = _runner(world, "one")
    alert = _use(world, runner, opened)
    assert alert.grant_id == gid and alert.severity == "high"

    head = trail_ref(world.bare)
    assert head is not None
    objects = breakglass_objects(world.bare, head)
    assert set(objects) == {grant_entry(gid), claim_entry(gid), review_entry(gid)}
    assert objects[grant_entry(gid)] == grant_bytes(opened.envelope), "the person's envelope, exactly"
    payload, _ = verify_json_envelope(
        json.loads(objects[claim_entry(gid)]), deploy_trust(world.registry), payload_type=CLAIM_PAYLOAD_TYPE
    )
    claim = GrantClaim.model_validate(payload)
    assert (claim.grant_id, claim.stack, claim.commit, claim.used_by) == (gid, STACK, COMMIT, "glassbox-deployer")
    assert claim.grant_digest == "sha256:" + hashlib.sha256(objects[grant_entry(gid)]).hexdigest()
    review = json.loads(objects[review_entry(gid)])
    assert review["status"] == "open" and review["commit"] == COMMIT and review["ticket"] == "INC-77"
    # one signed commit by the deploy identity, adding only
    history = trail_problems(world.bare, head, world.registry)
    assert history.problems == [] and history.appenders == {"glassbox-deployer": 1}
    (event,) = [e for e in runner.ledger.events() if e.action == "breakglass.use"]
    assert event.details["claim"] == claim_entry(gid) and event.details["trail"] == head
    # the readers see them
    view = materialise(world.bare, head, world.tmp / "view")
    assert view.breakglass == 3 and (view.breakglass_dir / f"{gid}.used.json").is_file()
    assert trail_grant_problems(objects, [GrantUse(event.seq, gid, COMMIT, STACK)], lambda _: world.registry) == []


def test_a_second_runner_with_an_empty_state_is_refused_as_reused(world: World) -> None:
    opened = _open(world)
    _use(world, _runner(world, "first"), opened)
    head = trail_ref(world.bare)
    second = _runner(world, "second")
    with pytest.raises(BreakGlassRefused) as info:
        _use(world, second, opened)
    assert info.value.code == "reused" and TRAIL_BRANCH in info.value.message
    (event,) = list(second.ledger.events())
    assert event.action == "breakglass.refuse" and event.outcome is Outcome.DENY and event.details["code"] == "reused"
    assert trail_ref(world.bare) == head, "a refused use appends nothing"
    assert not (second.state / "reviews").exists() and not (second.state / "alerts.jsonl").exists()


def test_two_deploy_jobs_racing_with_the_same_grant_exactly_one_claims_it(world: World) -> None:
    opened = _open(world)
    runners = [_runner(world, f"racer-{i}") for i in range(4)]
    won: list[str] = []
    refused: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(runners))

    def run(runner: Runner) -> None:
        start.wait()
        try:
            _use(world, runner, opened)
            won.append(runner.state.parent.name)
        except BreakGlassRefused as exc:
            refused.append(exc.code)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(won) == 1 and refused == ["reused"] * 3
    head = trail_ref(world.bare)
    assert head is not None
    claims = [p for p in breakglass_objects(world.bare, head) if p.endswith(".used.json")]
    assert claims == [claim_entry(opened.grant.grant_id)]
    assert trail_problems(world.bare, head, world.registry).problems == []
    uses = [e for r in runners for e in r.ledger.events() if e.action == "breakglass.use"]
    assert len(uses) == 1


@pytest.mark.parametrize(
    ("case", "code"),
    [("wrong-stack", "wrong-stack"), ("expired", "expired"), ("signed-by-another", "forged")],
)
def test_a_refused_grant_leaves_nothing_on_the_trail(world: World, case: str, code: str) -> None:
    opened = _open(world, now=datetime.now(UTC) - timedelta(hours=2) if case == "expired" else None)
    if case == "signed-by-another":  # alice's key (not break_glass), carol's name: it does not verify
        claims = opened.grant.model_dump(mode="json")
        opened = OpenedGrant(
            grant=opened.grant, envelope=sign_json(claims, opened.envelope["payloadType"], world.signer("alice"))
        )
    runner = _runner(world, "refused")
    with pytest.raises(BreakGlassRefused) as info:
        _use(world, runner, opened, stack="network/prod" if case == "wrong-stack" else STACK)
    assert info.value.code == code
    assert trail_ref(world.bare) is None, "no claim, no grant, no review"
    assert [e.action for e in runner.ledger.events()] == ["breakglass.refuse"]


# --------------------------------------------------------------------------------------------------
# reading what the dispatch input carries


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"payloadType": "x", "payload": "", "signatures": []}',
        '{"payloadType": "application/vnd.glassbox.breakglass-grant.v1+json", "payload": "!!", "signatures": '
        '[{"keyid": "k", "sig": "s"}]}',
        '{"a": 1, "a": 2}',
        "[" * 5_000,
        "x" * (MAX_GRANT_BYTES + 1),
    ],
    ids=["empty", "text", "list", "shape", "payload", "duplicate-key", "deep", "oversized"],
)
def test_a_malformed_presented_grant_is_refused_and_recorded_without_echoing_it(tmp_path: Path, text: str) -> None:
    from tests.factories import registry_with_keys

    _, signers = registry_with_keys(tmp_path, ("glassbox-deployer", ["deploy-signer", "ledger-signer"]))
    ledger = Ledger(tmp_path / "ledger.jsonl")
    with pytest.raises(BreakGlassRefused) as info:
        read_presented_grant(text, sink=EventSink(ledger, signers["glassbox-deployer"]), commit=COMMIT)
    assert info.value.code == "malformed" and "malformed" in info.value.message
    assert len(info.value.message) < 300 and (not text or text[:40] not in info.value.message)
    (event,) = list(ledger.events())
    assert event.action == "breakglass.refuse" and event.details["code"] == "malformed"
    assert event.details["stage"] == "present" and event.subject.commit == COMMIT


def test_a_well_formed_grant_reads_back_as_presented(world: World) -> None:
    opened = _open(world)
    ledger = Ledger(world.tmp / "reader.jsonl")
    gid, envelope = read_presented_grant(
        grant_bytes(opened.envelope).decode(), sink=EventSink(ledger, world.signer("glassbox-deployer")), commit=None
    )
    assert gid == opened.grant.grant_id and grant_bytes(envelope) == grant_bytes(opened.envelope)
    assert list(ledger.events()) == []


# --------------------------------------------------------------------------------------------------
# what audit verify checks on the trail's break-glass objects


def _objects(world: World, opened: OpenedGrant, **claim: Any) -> dict[str, bytes]:
    gid = opened.grant.grant_id
    data = grant_bytes(opened.envelope)
    fields: dict[str, Any] = {
        "grant_id": gid,
        "grant_digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "stack": STACK,
        "commit": COMMIT,
        "used_by": "glassbox-deployer",
        "used_at": opened.grant.opened_at + timedelta(minutes=5),
    }
    signer = claim.pop("signer", None) or world.signer("glassbox-deployer")
    fields.update(claim)
    signed = sign_json(GrantClaim(**fields).model_dump(mode="json"), CLAIM_PAYLOAD_TYPE, signer)
    return {grant_entry(gid): data, claim_entry(gid): json.dumps(signed).encode()}


def _problems(world: World, objects: dict[str, bytes], uses: list[GrantUse]) -> list[tuple[bool, str]]:
    return [(p.tampered, p.message) for p in trail_grant_problems(objects, uses, lambda _: world.registry)]


def test_audit_flags_a_use_without_claim_a_second_use_and_a_use_after_expiry(world: World) -> None:
    opened = _open(world)
    gid = opened.grant.grant_id
    good = _objects(world, opened)
    use = GrantUse(seq=5, grant_id=gid, commit=COMMIT, stack=STACK)
    assert _problems(world, good, [use]) == []
    (only,) = _problems(world, {}, [use])
    assert not only[0] and "has no claim" in only[1]
    offline = GrantUse(seq=5, grant_id=gid, commit=COMMIT, stack=STACK, claimed=False)
    assert _problems(world, {}, [offline]) == [], "an offline use had one host's store as its lock"
    (again,) = _problems(world, {}, [offline, GrantUse(seq=7, grant_id=gid, commit=COMMIT, stack=STACK)])
    assert "used again at seq 7" in again[1], "a second use shows in the ledger, offline or not"
    (twice,) = _problems(world, good, [use, GrantUse(seq=9, grant_id=gid, commit="b" * 40, stack=STACK)])
    assert not twice[0] and "used again at seq 9" in twice[1]
    late = _objects(world, opened, used_at=opened.grant.expires_at + timedelta(seconds=1))
    (expired,) = _problems(world, late, [use])
    assert not expired[0] and "expired or not valid at use" in expired[1]
    (elsewhere,) = _problems(world, good, [GrantUse(seq=5, grant_id=gid, commit="c" * 40, stack=STACK)])
    assert "is not what its claim names" in elsewhere[1]


def test_audit_flags_an_edited_grant_and_a_claim_not_signed_by_the_deployer(world: World) -> None:
    opened = _open(world)
    gid = opened.grant.grant_id
    use = [GrantUse(seq=5, grant_id=gid, commit=COMMIT, stack=STACK)]
    edited = _objects(world, opened)
    envelope = json.loads(edited[grant_entry(gid)])
    claims = json.loads(base64.b64decode(envelope["payload"]))
    claims["stack"] = "data/prod"
    envelope["payload"] = base64.b64encode(json.dumps(claims).encode()).decode()
    edited[grant_entry(gid)] = json.dumps(envelope).encode()
    (problem,) = _problems(world, edited, use)
    assert problem[0] and "digest differs" in problem[1]
    forged = _objects(world, opened, signer=world.signer("glassbox-ci"))
    tampered, unbacked = _problems(world, forged, use)
    assert tampered[0] and "not a claim the deploy identity signed" in tampered[1]
    assert not unbacked[0] and "has no claim" in unbacked[1], "a claim that does not verify backs no use"
