from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from bot.deploy.broker import CredentialBroker, CredentialRefused, credential_token, verify_credential
from bot.deploy.model import CREDENTIAL_PAYLOAD_TYPE
from bot.errors import UserError
from bot.records import ActorKind, Outcome
from bot.trust.keys import sign_json
from tests.unit.deploy.conftest import COMMIT, NOW, OTHER_COMMIT, STACK, DeployEnv


def _verify(
    env: DeployEnv, cred: object, *, stack: str = STACK, commit: str = COMMIT, at: timedelta = timedelta()
) -> object:
    return verify_credential(
        cred,  # type: ignore[arg-type]
        stack=stack,
        commit=commit,
        trusted=env.trusted,
        now=NOW + at,
        replay_store=env.replay,
        sink=env.sink,
    )


def _refused(env: DeployEnv, cred: object, code: str, **kwargs: object) -> CredentialRefused:
    with pytest.raises(CredentialRefused) as info:
        _verify(env, cred, **kwargs)  # type: ignore[arg-type]
    assert info.value.code == code, info.value.message
    last = env.events()[-1]
    assert last.action == "credential.refuse" and last.outcome is Outcome.DENY
    assert last.actor.kind is ActorKind.DEPLOYER and last.details["code"] == code
    return info.value


def test_mint_is_scoped_signed_and_logged(env: DeployEnv) -> None:
    cred = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW)
    claims = cred.claims
    assert claims.scope.stacks == [STACK] and claims.commit == COMMIT and claims.run_id == "run-1"
    assert claims.expires_at - claims.issued_at == timedelta(minutes=15) and claims.ttl_seconds == 900
    assert cred.envelope["payloadType"] == CREDENTIAL_PAYLOAD_TYPE
    other = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW)
    assert other.claims.nonce != claims.nonce and other.claims.credential_id != claims.credential_id
    (event, _) = env.events("credential.mint")
    assert event.actor.id == "glassbox-deployer" and event.actor.kind is ActorKind.DEPLOYER
    assert event.subject.stack == STACK and event.outcome is Outcome.ALLOW
    assert event.details["scope"] == [STACK] and event.details["ttl_seconds"] == 900
    assert event.details["expires"] == claims.expires_at.isoformat()
    assert env.ledger_ok()


def test_credential_accepted_for_its_stack_within_ttl(env: DeployEnv) -> None:
    cred = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW)
    claims = _verify(env, cred, at=timedelta(minutes=14, seconds=59))
    assert claims == cred.claims
    assert not env.events("credential.refuse")


def test_credential_also_accepted_as_a_plain_envelope(env: DeployEnv) -> None:
    cred = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW)
    decoded = json.loads(base64.urlsafe_b64decode(credential_token(cred)))
    assert _verify(env, decoded) == cred.claims


def test_expired_credential_is_refused_with_its_expiry(env: DeployEnv) -> None:
    cred = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW)
    err = _refused(env, cred, "expired", at=timedelta(minutes=15))
    assert cred.claims.expires_at.isoformat() in err.message
    assert env.events()[-1].details["expires"] == cred.claims.expires_at.isoformat()


def test_not_yet_valid_credential_is_refused(env: DeployEnv) -> None:
    cred = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW)
    _refused(env, cred, "not-yet-valid", at=-timedelta(minutes=1))


def test_credential_for_another_stack_is_refused(env: DeployEnv) -> None:
    cred = env.broker.mint("data/dev", commit=COMMIT, run_id="run-1", now=NOW)
    err = _refused(env, cred, "wrong-stack")
    assert "data/dev" in err.message and STACK in err.message


def test_widened_credential_is_refused(env: DeployEnv) -> None:
    # the broker never signs this; a deploy-signer key that did (a bug, a stolen key) is still refused
    claims = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW).claims
    wide = claims.model_copy(update={"scope": claims.scope.model_copy(update={"stacks": [STACK, "network/prod"]})})
    envelope = sign_json(wide.model_dump(mode="json"), CREDENTIAL_PAYLOAD_TYPE, env.signers["glassbox-deployer"])
    _refused(env, envelope, "widened")


def test_credential_for_another_commit_is_refused(env: DeployEnv) -> None:
    cred = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW)
    _refused(env, cred, "wrong-commit", commit=OTHER_COMMIT)


def test_replayed_credential_is_refused(env: DeployEnv) -> None:
    cred = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW)
    _verify(env, cred)
    _refused(env, cred, "replayed")


def test_refusal_does_not_burn_the_nonce(env: DeployEnv) -> None:
    cred = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW)
    _refused(env, cred, "wrong-commit", commit=OTHER_COMMIT)
    assert _verify(env, cred) == cred.claims


@pytest.mark.parametrize("who", ["mallory", "glassbox-ci"])
def test_forged_credential_is_refused(env: DeployEnv, who: str) -> None:
    claims = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW).claims
    signer = env.mallory if who == "mallory" else env.signers[who]  # untrusted key; trusted key, wrong role
    envelope = sign_json(claims.model_dump(mode="json"), CREDENTIAL_PAYLOAD_TYPE, signer)
    _refused(env, envelope, "bad-signature")


def test_tampered_credential_is_refused(env: DeployEnv) -> None:
    cred = env.broker.mint(STACK, commit=COMMIT, run_id="run-1", now=NOW)
    payload = json.loads(base64.b64decode(cred.envelope["payload"]))
    payload["expires_at"] = (NOW + timedelta(days=1)).isoformat()
    forged = {**cred.envelope, "payload": base64.b64encode(json.dumps(payload).encode()).decode()}
    _refused(env, forged, "bad-signature")


def test_ttl_over_max_is_refused_not_trimmed(env: DeployEnv) -> None:
    broker = CredentialBroker(env.signers["glassbox-deployer"], sink=env.sink, max_ttl=timedelta(minutes=30))
    assert broker.mint(STACK, commit=COMMIT, run_id="r", ttl=timedelta(minutes=30), now=NOW).claims.ttl_seconds == 1800
    with pytest.raises(CredentialRefused) as info:
        broker.mint(STACK, commit=COMMIT, run_id="r", ttl=timedelta(minutes=31), now=NOW)
    assert info.value.code == "ttl-over-max"
    event = env.events()[-1]
    assert event.action == "credential.refuse" and event.details["max_ttl_seconds"] == 1800


@pytest.mark.parametrize("asked", [[STACK, "network/prod"], [], "data/*", "data/prod,network/prod", "data"])
def test_asking_for_more_than_one_stack_is_refused(env: DeployEnv, asked: object) -> None:
    with pytest.raises(CredentialRefused) as info:
        env.broker.mint(asked, commit=COMMIT, run_id="r", now=NOW)  # type: ignore[arg-type]
    assert info.value.code in {"widened", "scope"}
    assert env.events()[-1].action == "credential.refuse"
    assert not env.events("credential.mint")


def test_broker_only_for_the_deploy_identity_with_a_deploy_key(env: DeployEnv) -> None:
    with pytest.raises(UserError, match="deploy identity"):
        CredentialBroker.for_registry(env.registry, env.signers["glassbox-ci"])
    with pytest.raises(UserError, match="above the maximum"):
        CredentialBroker(env.signers["glassbox-deployer"], default_ttl=timedelta(hours=2))
