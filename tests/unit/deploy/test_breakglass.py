from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from bot.deploy.breakglass import (
    BreakGlassRefused,
    GrantStore,
    list_grants,
    open_grant,
    parse_ttl,
    use_grant,
)
from bot.deploy.model import GRANT_PAYLOAD_TYPE, BreakGlassAlert, GrantStatus, OpenedGrant
from bot.errors import UserError
from bot.records import ActorKind, Outcome
from bot.trust.keys import Signer, sign_json
from tests.unit.deploy.conftest import COMMIT, NOW, STACK, DeployEnv


def _open(env: DeployEnv, who: str = "carol", **kwargs: Any) -> OpenedGrant:
    args: dict[str, Any] = {"ticket": "INC-42", "reason": "prod DB out of connections", "stack": STACK, "now": NOW}
    args.update(kwargs)
    return open_grant(env.registry, env.signers[who], ledger=env.ledger, store=GrantStore.under(env.state), **args)


def _use(env: DeployEnv, grant_id: str, *, stack: str = STACK, at: timedelta = timedelta(minutes=5)) -> BreakGlassAlert:
    return use_grant(
        grant_id,
        stack,
        COMMIT,
        registry=env.registry,
        store=GrantStore.under(env.state),
        sink=env.sink,
        state_dir=env.state,
        run_id="run-9",
        now=NOW + at,
    )


def _refused_use(env: DeployEnv, grant_id: str, code: str, **kwargs: Any) -> BreakGlassRefused:
    with pytest.raises(BreakGlassRefused) as info:
        _use(env, grant_id, **kwargs)
    assert info.value.code == code, info.value.message
    event = env.events()[-1]
    assert event.action == "breakglass.refuse" and event.outcome is Outcome.DENY
    assert event.actor.kind is ActorKind.DEPLOYER and event.details["code"] == code
    assert event.details["grant_id"] == grant_id and event.subject.stack == kwargs.get("stack", STACK)
    return info.value


@pytest.mark.parametrize(("text", "minutes"), [("30m", 30), ("1h", 60), ("2h30m", 150), (" 4H ", 240), ("90s", 1.5)])
def test_ttl_parser(text: str, minutes: float) -> None:
    assert parse_ttl(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["", "0m", "1d", "30", "h", "1h-5m", "m30"])
def test_ttl_parser_rejects_nonsense(text: str) -> None:
    with pytest.raises(UserError, match="--ttl"):
        parse_ttl(text)


def test_open_is_signed_stored_and_logged(env: DeployEnv) -> None:
    opened = _open(env, ttl=timedelta(hours=1))
    grant = opened.grant
    assert grant.opened_by == "carol" and grant.stack == STACK and grant.expires_at == NOW + timedelta(hours=1)
    assert opened.envelope["signatures"][0]["keyid"] == env.signers["carol"].keyid
    (event,) = env.events("breakglass.open")
    assert event.actor.id == "carol" and event.actor.kind is ActorKind.HUMAN and event.outcome is Outcome.ALLOW
    assert event.subject.stack == STACK
    assert event.details["ticket"] == "INC-42" and event.details["grant_id"] == grant.grant_id
    assert event.details["expires"] == grant.expires_at.isoformat()
    assert env.ledger_ok()


def test_non_break_glass_person_is_refused(env: DeployEnv) -> None:
    with pytest.raises(BreakGlassRefused) as info:
        _open(env, "alice")
    assert info.value.code == "not-break-glass" and "sre-oncall" in info.value.message
    (event,) = env.events("breakglass.refuse")
    assert event.actor.id == "alice" and event.outcome is Outcome.DENY and event.subject.stack == STACK
    assert list_grants(GrantStore.under(env.state)) == []


def test_service_identity_cannot_open(env: DeployEnv) -> None:
    with pytest.raises(BreakGlassRefused):
        _open(env, "glassbox-deployer")


def test_grant_over_max_ttl_is_refused(env: DeployEnv) -> None:
    with pytest.raises(BreakGlassRefused) as info:
        _open(env, ttl=parse_ttl("4h1m"))
    assert info.value.code == "ttl-over-max"
    assert _open(env, ttl=parse_ttl("2h"), max_ttl=parse_ttl("2h")).grant.ttl_seconds == 7200


def test_secrets_in_the_reason_are_redacted(env: DeployEnv) -> None:
    opened = _open(env, reason="rotating AKIAABCDEFGHIJKLMNOP after leak")
    assert "AKIA" not in opened.grant.reason and "[REDACTED:aws-access-key-id]" in opened.grant.reason
    assert "AKIA" not in env.ledger.path.read_text()


def test_grant_accepted_within_ttl_raises_alert_and_review(env: DeployEnv) -> None:
    grant = _open(env).grant
    alert = _use(env, grant.grant_id)
    assert alert.severity == "high" and alert.category == "breakglass.use"
    assert alert.grant_id == grant.grant_id and alert.stack == STACK and alert.commit == COMMIT
    assert alert.opened_by == "carol" and alert.used_by == "glassbox-deployer" and alert.ticket == "INC-42"
    review = json.loads((env.state / "reviews" / f"{grant.grant_id}.json").read_text())
    assert review["commit"] == COMMIT and review["stack"] == STACK and review["status"] == "open"
    assert review["due"] == alert.review_due.isoformat() and alert.review_path.endswith(f"{grant.grant_id}.json")
    queued = [json.loads(line) for line in (env.state / "alerts.jsonl").read_text().splitlines()]
    assert [a["alert_id"] for a in queued] == [alert.alert_id]
    (event,) = env.events("breakglass.use")
    assert event.actor.kind is ActorKind.DEPLOYER and event.subject.commit == COMMIT
    assert event.details["severity"] == "high" and event.details["grant_id"] == grant.grant_id
    assert env.ledger_ok()
    (row,) = list_grants(GrantStore.under(env.state))
    assert row.status is GrantStatus.USED and row.used_commit == COMMIT


def test_grant_refused_after_expiry(env: DeployEnv) -> None:
    grant = _open(env, ttl=parse_ttl("30m")).grant
    err = _refused_use(env, grant.grant_id, "expired", at=timedelta(minutes=30))
    assert grant.expires_at.isoformat() in err.message
    (row,) = list_grants(GrantStore.under(env.state), now=NOW + timedelta(hours=1))
    assert row.status is GrantStatus.EXPIRED


def test_grant_works_only_once(env: DeployEnv) -> None:
    grant = _open(env).grant
    _use(env, grant.grant_id)
    _refused_use(env, grant.grant_id, "reused", at=timedelta(minutes=6))
    assert len(env.events("breakglass.use")) == 1


def test_grant_refused_for_another_stack_and_not_consumed(env: DeployEnv) -> None:
    grant = _open(env).grant
    _refused_use(env, grant.grant_id, "wrong-stack", stack="network/prod")
    assert _use(env, grant.grant_id).stack == STACK  # the refusal did not burn it


def _forge(env: DeployEnv, signer: Signer, **changes: Any) -> str:
    claims = _open(env, ticket="INC-7").grant.model_copy(update={"grant_id": "forged-1", **changes})
    envelope = sign_json(claims.model_dump(mode="json"), GRANT_PAYLOAD_TYPE, signer)
    GrantStore.under(env.state).insert(claims, envelope)
    return claims.grant_id


def test_grant_signed_by_someone_else_is_forged(env: DeployEnv) -> None:
    _refused_use(env, _forge(env, env.mallory), "forged")


def test_grant_signed_by_a_trusted_non_opener_is_forged(env: DeployEnv) -> None:
    # alice's key is trusted, but the grant says carol opened it
    _refused_use(env, _forge(env, env.signers["alice"]), "forged")


def test_grant_claiming_a_non_break_glass_opener_is_refused(env: DeployEnv) -> None:
    _refused_use(env, _forge(env, env.signers["alice"], opened_by="alice"), "not-break-glass")


def test_grant_longer_than_max_is_refused_at_use(env: DeployEnv) -> None:
    long = _forge(env, env.signers["carol"], expires_at=NOW + timedelta(hours=9), ttl_seconds=9 * 3600)
    _refused_use(env, long, "ttl-over-max")


def test_unknown_grant_is_refused(env: DeployEnv) -> None:
    _refused_use(env, "no-such-grant", "unknown")
