"""Hostile artifacts and reviews: forged or replayed attestations, reviews by excluded identities, break-glass
grants and deploy credentials used where they do not belong. Each is refused with its reason, and logged."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.approvals.model import BlockerKind
from bot.approvals.service import evaluate_pr
from bot.deploy.breakglass import BreakGlassRefused, GrantStore, open_grant, use_grant
from bot.deploy.broker import CredentialBroker, CredentialRefused, ReplayStore, deploy_trust, verify_credential
from bot.deploy.events import EventSink
from bot.errors import IntegrityError
from bot.forge.model import ChangedFile, FileStatus, Review, ReviewState
from bot.records import IN_TOTO_PAYLOAD_TYPE, AuditEvent, Outcome, Verdict
from bot.registry import Registry, load_registry
from bot.trust.attestations import sign_verdict, statement, verify_attestation
from bot.trust.keys import Signer, generate_key, sign_json
from bot.trust.ledger import Ledger
from tests.factories import registry_with_keys
from tests.unit.approvals._builders import BASE, HEAD, OLD, evidence, pull, review, verdict
from tests.unit.approvals._forge import MemoryForge

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
COMMIT = "1" * 40
DECISION = ".glassbox/decisions/2026/11/0192f0c8-0000-7000-8000-000000000001.json"


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, dict[str, Signer]]:
    tmp = tmp_path_factory.mktemp("trust")
    root, signers = registry_with_keys(
        tmp,
        ("glassbox-ci", ["verdict-signer", "ledger-signer"]),
        ("glassbox-bot", ["ledger-signer"]),
        ("glassbox-deployer", ["deploy-signer", "ledger-signer"]),
        ("patch-agent", ["commit-signer", "ledger-signer"]),
        ("carol", ["commit-signer", "ledger-signer"]),  # sre-oncall: may break glass
        ("alice", ["commit-signer", "ledger-signer"]),  # security: may not
    )
    signers["mallory"] = generate_key(tmp / "mallory", "mallory")
    return load_registry(root), signers


def _events(ledger: Ledger, action: str) -> list[AuditEvent]:
    return [e for e in ledger.events() if e.action == action]


# --------------------------------------------------------------------------------------------------
# attestations


def _relabel(envelope: dict[str, Any], keyid: str) -> dict[str, Any]:
    return {**envelope, "signatures": [{**s, "keyid": keyid} for s in envelope["signatures"]]}


def test_attacker_signs_a_verdict_with_a_non_ci_key(trust: tuple[Registry, dict[str, Signer]]) -> None:
    registry, keys = trust
    for who in ("glassbox-bot", "glassbox-deployer", "patch-agent", "mallory"):
        envelope = sign_verdict(verdict("low"), keys[who])
        with pytest.raises(IntegrityError, match="no signature by a trusted key verifies"):
            verify_attestation(envelope, registry)


def test_attacker_relabels_his_signature_with_the_ci_keyid(trust: tuple[Registry, dict[str, Signer]]) -> None:
    registry, keys = trust
    forged = _relabel(sign_verdict(verdict("low"), keys["mallory"]), keys["glassbox-ci"].keyid)
    with pytest.raises(IntegrityError, match=f"signed by: {keys['glassbox-ci'].keyid}"):
        verify_attestation(forged, registry)


def test_attacker_swaps_the_payload_of_a_genuine_attestation(trust: tuple[Registry, dict[str, Signer]]) -> None:
    registry, keys = trust
    genuine = sign_verdict(verdict("low", result="FAILED"), keys["glassbox-ci"])
    passed = json.dumps(statement(verdict("low"))).encode()
    with pytest.raises(IntegrityError, match="no signature by a trusted key verifies"):
        verify_attestation({**genuine, "payload": base64.b64encode(passed).decode()}, registry)


def test_ci_signed_statement_whose_subject_names_another_commit(trust: tuple[Registry, dict[str, Signer]]) -> None:
    registry, keys = trust
    body = statement(verdict("low"))
    body["subject"][0]["digest"]["gitCommit"] = "9" * 40  # the subject and the carried verdict disagree
    envelope = sign_json(body, IN_TOTO_PAYLOAD_TYPE, keys["glassbox-ci"])
    with pytest.raises(IntegrityError, match="subjects or predicate disagree"):
        verify_attestation(envelope, registry)


# --------------------------------------------------------------------------------------------------
# approvals, through the service so the decision is logged


def _evaluate(
    tmp_path: Path, trust: tuple[Registry, dict[str, Signer]], reviews: list[Review], v: Verdict | None
) -> tuple[Any, AuditEvent]:
    registry, keys = trust
    ev = evidence(requester="carol")
    forge = MemoryForge(pr=pull("patch-agent"), reviews=reviews)
    forge.files = [
        ChangedFile(path="infra/network/__main__.py", status=FileStatus.MODIFIED),
        ChangedFile(path=DECISION, status=FileStatus.ADDED),
    ]
    forge.contents[(".github/CODEOWNERS", BASE)] = b"/infra/network/ @acme/platform\n"
    forge.contents[(DECISION, HEAD)] = ev.model_dump_json().encode()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    state = evaluate_pr(forge, registry, 7, lambda head: v, ledger, keys["glassbox-bot"])
    [event] = _events(ledger, "approvals")
    assert event.outcome is (Outcome.ALLOW if state.satisfied else Outcome.DENY)
    return state, event


def _discarded(event: AuditEvent) -> dict[str, tuple[str, str]]:
    return {d["user"]: (d["reason"], d["detail"]) for d in event.details["discarded"]}


def test_author_approves_its_own_pr_under_another_login_case(
    tmp_path: Path, trust: tuple[Registry, dict[str, Signer]]
) -> None:
    state, event = _evaluate(tmp_path, trust, [review(1, "Patch-Agent")], verdict("low"))
    assert not state.satisfied and event.outcome is Outcome.DENY
    assert _discarded(event)["Patch-Agent"] == ("author", "self-approval: patch-agent authored this PR")


def test_another_agent_approves_under_a_case_variant(tmp_path: Path, trust: tuple[Registry, dict[str, Signer]]) -> None:
    _state, event = _evaluate(tmp_path, trust, [review(1, "COST-OPTIMIZER")], verdict("low"))
    assert _discarded(event)["COST-OPTIMIZER"] == ("agent", "cost-optimizer is an agent; agents never approve (I1)")


def test_requester_and_deployer_approve_under_case_variants(
    tmp_path: Path, trust: tuple[Registry, dict[str, Signer]]
) -> None:
    _state, event = _evaluate(tmp_path, trust, [review(1, "Carol"), review(2, "Glassbox-Deployer")], verdict("low"))
    discarded = _discarded(event)
    assert discarded["Carol"][0] == "requester"
    assert discarded["Glassbox-Deployer"][0] == "deployer"


def test_owner_approval_left_on_an_older_commit_is_stale(
    tmp_path: Path, trust: tuple[Registry, dict[str, Signer]]
) -> None:
    state, event = _evaluate(tmp_path, trust, [review(1, "dan", commit=OLD)], verdict("low"))
    assert not state.satisfied
    reason, detail = _discarded(event)["dan"]
    assert reason == "stale" and f"approved commit {OLD[:12]}, not the head {HEAD[:12]}" in detail


def test_a_comment_after_a_change_request_does_not_lift_the_block(
    tmp_path: Path, trust: tuple[Registry, dict[str, Signer]]
) -> None:
    reviews = [
        review(1, "dan", ReviewState.CHANGES_REQUESTED),
        review(2, "dan", ReviewState.COMMENTED),
        review(3, "erin"),
    ]
    state, event = _evaluate(tmp_path, trust, reviews, verdict("low"))
    assert not state.satisfied
    assert any(b["kind"] == BlockerKind.CHANGES_REQUESTED.value for b in event.details["blocking"])


def test_attestation_of_another_head_is_replayed_for_this_pr(
    tmp_path: Path, trust: tuple[Registry, dict[str, Signer]]
) -> None:
    registry, keys = trust
    # a genuine, CI-signed PASS — for an older head of the PR
    replayed, _ = verify_attestation(sign_verdict(verdict("low", head=OLD), keys["glassbox-ci"]), registry)
    state, event = _evaluate(tmp_path, trust, [review(1, "dan")], replayed)
    assert not state.satisfied
    [blocker] = [b for b in event.details["blocking"] if b["kind"] == BlockerKind.STALE_VERDICT.value]
    assert blocker["detail"] == f"verdict is for {OLD[:12]}, not head {HEAD[:12]}"


def test_attestation_of_another_repository_is_replayed(
    tmp_path: Path, trust: tuple[Registry, dict[str, Signer]]
) -> None:
    data = verdict("low").model_dump(mode="json")
    data["change"]["repo"] = "evil/infra"
    state, event = _evaluate(tmp_path, trust, [review(1, "dan")], Verdict.model_validate(data))
    assert not state.satisfied
    assert "verdict is for repository evil/infra, not acme/infra" in event.reason + json.dumps(event.details)


# --------------------------------------------------------------------------------------------------
# break-glass grants


@pytest.fixture
def deploy_env(tmp_path: Path, trust: tuple[Registry, dict[str, Signer]]) -> dict[str, Any]:
    registry, keys = trust
    ledger = Ledger(tmp_path / "ledger.jsonl")
    state = tmp_path / "state"
    sink = EventSink(ledger, keys["glassbox-deployer"])
    return {"registry": registry, "keys": keys, "ledger": ledger, "state": state, "sink": sink}


def _open(
    env: dict[str, Any], who: str = "carol", stack: str = "network/dev", ttl: timedelta = timedelta(hours=1)
) -> str:
    opened = open_grant(
        env["registry"],
        env["keys"][who],
        ticket="INC-7",
        reason="flow logs flood the disk",
        stack=stack,
        ledger=env["ledger"],
        store=GrantStore.under(env["state"]),
        ttl=ttl,
        now=NOW,
    )
    return opened.grant.grant_id


def _use(env: dict[str, Any], grant_id: str, *, stack: str = "network/dev", at: timedelta) -> Any:
    return use_grant(
        grant_id,
        stack,
        COMMIT,
        registry=env["registry"],
        store=GrantStore.under(env["state"]),
        sink=env["sink"],
        state_dir=env["state"],
        now=NOW + at,
    )


def _refused_use(env: dict[str, Any], grant_id: str, code: str, message: str, **kwargs: Any) -> None:
    with pytest.raises(BreakGlassRefused) as info:
        _use(env, grant_id, **kwargs)
    assert info.value.code == code and message in info.value.message
    event = _events(env["ledger"], "breakglass.refuse")[-1]
    assert event.outcome is Outcome.DENY and event.details["code"] == code and event.details["grant_id"] == grant_id


def test_deployer_uses_an_expired_grant(deploy_env: dict[str, Any]) -> None:
    grant = _open(deploy_env)
    _refused_use(deploy_env, grant, "expired", "expired at 2026-11-25T13:00:00+00:00", at=timedelta(hours=1))


def test_deployer_uses_one_grant_twice(deploy_env: dict[str, Any]) -> None:
    grant = _open(deploy_env)
    alert = _use(deploy_env, grant, at=timedelta(minutes=5))
    assert alert.grant_id == grant and _events(deploy_env["ledger"], "breakglass.use")
    _refused_use(deploy_env, grant, "reused", "was already used; a grant works once", at=timedelta(minutes=6))


def test_deployer_uses_a_grant_on_another_stack(deploy_env: dict[str, Any]) -> None:
    grant = _open(deploy_env, stack="network/dev")
    _refused_use(
        deploy_env,
        grant,
        "wrong-stack",
        "is for stack network/dev, not data/prod",
        stack="data/prod",
        at=timedelta(minutes=1),
    )


def test_attacker_plants_a_grant_signed_by_his_own_key(deploy_env: dict[str, Any]) -> None:
    grant = _open(deploy_env)
    store = GrantStore.under(deploy_env["state"])
    genuine = store.envelope(grant)
    assert genuine is not None
    payload = json.loads(base64.b64decode(genuine["payload"]))
    forged = _relabel(
        sign_json(payload, genuine["payloadType"], deploy_env["keys"]["mallory"]), genuine["signatures"][0]["keyid"]
    )

    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE grants SET envelope = ? WHERE grant_id = ?", (json.dumps(forged), grant))
    conn.close()
    _refused_use(deploy_env, grant, "forged", "does not verify", at=timedelta(minutes=1))


@pytest.mark.parametrize("who", ["alice", "patch-agent"])
def test_someone_outside_break_glass_teams_opens_a_grant(deploy_env: dict[str, Any], who: str) -> None:
    with pytest.raises(BreakGlassRefused) as info:
        _open(deploy_env, who=who)
    assert info.value.code == "not-break-glass" and "may not open break-glass grants" in info.value.message
    [event] = _events(deploy_env["ledger"], "breakglass.refuse")
    assert event.outcome is Outcome.DENY and event.actor.id == who


# --------------------------------------------------------------------------------------------------
# deploy credentials


def _verify(env: dict[str, Any], cred: Any, *, stack: str, commit: str = COMMIT, at: timedelta = timedelta(0)) -> Any:
    return verify_credential(
        cred,
        stack=stack,
        commit=commit,
        trusted=deploy_trust(env["registry"]),
        now=NOW + at,
        replay_store=ReplayStore.under(env["state"]),
        sink=env["sink"],
    )


def _refused_credential(env: dict[str, Any], cred: Any, code: str, message: str, **kwargs: Any) -> None:
    with pytest.raises(CredentialRefused) as info:
        _verify(env, cred, **kwargs)
    assert info.value.code == code and message in info.value.message
    event = _events(env["ledger"], "credential.refuse")[-1]
    assert event.outcome is Outcome.DENY and event.details["code"] == code


def _mint(env: dict[str, Any], stack: str = "network/dev") -> Any:
    broker = CredentialBroker.for_registry(env["registry"], env["keys"]["glassbox-deployer"], sink=env["sink"])
    return broker.mint(stack, commit=COMMIT, run_id="run-1", now=NOW)


def test_credential_for_one_stack_is_replayed_on_another(deploy_env: dict[str, Any]) -> None:
    cred = _mint(deploy_env)
    _refused_credential(
        deploy_env, cred, "wrong-stack", "is for stack network/dev, not network/prod", stack="network/prod"
    )


def test_credential_is_presented_twice(deploy_env: dict[str, Any]) -> None:
    cred = _mint(deploy_env)
    _verify(deploy_env, cred, stack="network/dev")
    _refused_credential(deploy_env, cred, "replayed", "was already used", stack="network/dev")


def test_credential_is_replayed_for_another_commit(deploy_env: dict[str, Any]) -> None:
    cred = _mint(deploy_env)
    _refused_credential(deploy_env, cred, "wrong-commit", "not " + "2" * 40, stack="network/dev", commit="2" * 40)


def test_expired_credential_is_presented(deploy_env: dict[str, Any]) -> None:
    cred = _mint(deploy_env)
    _refused_credential(
        deploy_env, cred, "expired", "credential expired", stack="network/dev", at=timedelta(minutes=15)
    )


def test_attacker_widens_a_credential_and_signs_it_himself(deploy_env: dict[str, Any]) -> None:
    cred = _mint(deploy_env)
    claims = cred.claims.model_dump(mode="json")
    claims["scope"]["stacks"] = ["network/dev", "network/prod"]
    keyid = deploy_env["keys"]["glassbox-deployer"].keyid
    forged = _relabel(sign_json(claims, cred.envelope["payloadType"], deploy_env["keys"]["mallory"]), keyid)
    _refused_credential(deploy_env, forged, "bad-signature", "does not verify", stack="network/dev")


def test_agent_asks_the_broker_for_a_two_stack_credential(deploy_env: dict[str, Any]) -> None:
    broker = CredentialBroker.for_registry(
        deploy_env["registry"], deploy_env["keys"]["glassbox-deployer"], sink=deploy_env["sink"]
    )
    with pytest.raises(CredentialRefused) as info:
        broker.mint(["network/dev", "network/prod"], commit=COMMIT, run_id="r", now=NOW)
    assert info.value.code == "widened" and "a credential covers exactly one stack" in info.value.message
    [event] = _events(deploy_env["ledger"], "credential.refuse")
    assert event.details["code"] == "widened"
