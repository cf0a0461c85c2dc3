"""The credential broker: short-lived deploy credentials scoped to exactly one stack (invariant I10).

:meth:`CredentialBroker.mint` issues a credential for one ``project/stack``, bound to one commit and one
deploy run, with a unique nonce and a TTL (default 15 minutes, never above the configured maximum: asking
for more is refused, not trimmed). It is a DSSE envelope signed by the deploy identity's ``deploy-signer``
key. :func:`verify_credential` is what an applier calls before it touches anything; it refuses a credential
that is forged or signed by an untrusted key, not yet valid, expired, widened (more than one stack, or not
the stack being applied), for another commit, or already used (its nonce is in the SQLite replay store).

Every mint and every refusal appends a ledger event (``credential.mint`` / ``credential.refuse``, actor kind
deployer) when the caller gives an :class:`~bot.deploy.events.EventSink`.

In GitHub Actions the same role is played by the workflow's OIDC token exchanged at the cloud's STS for
short-lived cloud credentials; ``docs/deploy-oidc.md`` documents that path and its pinned trust policy.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.deploy.events import EventSink
from bot.deploy.model import CREDENTIAL_PAYLOAD_TYPE, Credential, CredentialScope, IssuedCredential, new_nonce
from bot.deploy.state import StackRef, replay_db
from bot.errors import Denied, IntegrityError, UserError
from bot.records import Outcome, canonical_json, new_correlation_id
from bot.registry import KeyRole, Registry
from bot.trust.keys import Signer, sign_json, trusted_keys, verify_json_envelope

DEFAULT_TTL = timedelta(minutes=15)
DEFAULT_MAX_TTL = timedelta(hours=1)


class CredentialRefused(Denied):
    """A credential was not minted, or not accepted. ``code`` names the rule for callers and tests."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, reasons=[f"{code} (I10)"])
        self.code = code


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def deploy_trust(registry: Registry) -> dict[str, bytes]:
    """keyid → public key of every ``deploy-signer`` key of the registry's deploy identity."""
    deployer = registry.service_identity("deployer")
    if deployer is None:  # pragma: no cover - registry validation requires exactly one
        return {}
    return trusted_keys((k.keyid, k.public_key) for k in registry.keys_for(deployer, KeyRole.DEPLOY_SIGNER))


class ReplayStore:
    """Nonces of credentials already presented, in SQLite: a nonce is accepted once, across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def under(cls, state_dir: Path) -> ReplayStore:
        return cls(replay_db(state_dir))

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS used (nonce TEXT PRIMARY KEY, credential_id TEXT NOT NULL, "
            "stack TEXT NOT NULL, commit_sha TEXT NOT NULL, used_at TEXT NOT NULL, expires_at TEXT NOT NULL)"
        )
        return conn

    def claim(self, cred: Credential, now: datetime) -> bool:
        """Record the nonce as used; False when it already was (the INSERT is the atomic test-and-set)."""
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    "INSERT INTO used VALUES (?,?,?,?,?,?)",
                    (
                        cred.nonce,
                        cred.credential_id,
                        ",".join(cred.scope.stacks),
                        cred.commit,
                        now.isoformat(),
                        cred.expires_at.isoformat(),
                    ),
                )
        except sqlite3.IntegrityError:
            return False
        finally:
            conn.close()
        return True

    def seen(self, nonce: str) -> bool:
        conn = self._connect()
        try:
            return conn.execute("SELECT 1 FROM used WHERE nonce = ?", (nonce,)).fetchone() is not None
        finally:
            conn.close()

    def prune(self, before: datetime) -> int:
        """Forget nonces of credentials that expired before ``before``: expiry alone refuses those now."""
        conn = self._connect()
        try:
            with conn:
                return conn.execute("DELETE FROM used WHERE expires_at < ?", (before.isoformat(),)).rowcount
        finally:
            conn.close()


class CredentialBroker:
    """Mints credentials as the deploy identity. ``max_ttl`` is the ceiling no request may exceed."""

    def __init__(
        self,
        signer: Signer,
        *,
        sink: EventSink | None = None,
        default_ttl: timedelta = DEFAULT_TTL,
        max_ttl: timedelta = DEFAULT_MAX_TTL,
    ) -> None:
        if default_ttl > max_ttl:
            raise UserError(f"default credential TTL {default_ttl} is above the maximum {max_ttl}")
        if default_ttl <= timedelta(0):
            raise UserError("credential TTL must be positive")
        self.signer = signer
        self.sink = sink
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl

    @classmethod
    def for_registry(cls, registry: Registry, signer: Signer, **kwargs: Any) -> CredentialBroker:
        """A broker whose signer must be the registry's deploy identity holding a ``deploy-signer`` key."""
        deployer = registry.service_identity("deployer")
        if signer.identity != deployer:
            raise UserError(f"credentials are minted by the deploy identity {deployer!r}, not {signer.identity!r}")
        if signer.keyid not in deploy_trust(registry):
            raise UserError(
                f"key {signer.keyid} of {signer.identity!r} is not a deploy-signer key in {registry.root}/trust.yaml"
            )
        return cls(signer, **kwargs)

    def _refuse(
        self, code: str, message: str, *, stack: str | None, commit: str | None, details: Mapping[str, Any]
    ) -> CredentialRefused:
        if self.sink is not None:
            self.sink.emit(
                "credential.refuse",
                Outcome.DENY,
                message,
                stack=stack,
                commit=commit,
                details={"code": code, "stage": "mint", **details},
            )
        return CredentialRefused(message, code=code)

    def mint(
        self,
        stack: str | Sequence[str],
        *,
        commit: str,
        run_id: str,
        ttl: timedelta | None = None,
        now: datetime | None = None,
    ) -> IssuedCredential:
        """A credential for exactly one stack; refuse (with a ledger event) anything wider or longer."""
        when = _now(now)
        asked = [stack] if isinstance(stack, str) else list(stack)
        label = ",".join(asked) or None
        lifetime = self.default_ttl if ttl is None else ttl
        base = {"scope": asked, "ttl_seconds": int(lifetime.total_seconds()), "run_id": run_id}
        if len(asked) != 1:
            raise self._refuse(
                "widened",
                f"asked for {len(asked)} stacks ({label or 'none'}); a credential covers exactly one stack",
                stack=label,
                commit=commit,
                details=base,
            )
        try:
            ref = StackRef.parse(asked[0])
        except UserError as exc:
            raise self._refuse("scope", exc.message, stack=label, commit=commit, details=base) from None
        if lifetime <= timedelta(0):
            raise self._refuse("ttl", "credential TTL must be positive", stack=str(ref), commit=commit, details=base)
        if lifetime > self.max_ttl:
            raise self._refuse(
                "ttl-over-max",
                f"asked for a TTL of {lifetime}; the maximum is {self.max_ttl}",
                stack=str(ref),
                commit=commit,
                details={**base, "max_ttl_seconds": int(self.max_ttl.total_seconds())},
            )
        try:
            claims = Credential(
                credential_id=new_correlation_id(),
                issuer=self.signer.identity,
                scope=CredentialScope(stacks=[str(ref)]),
                commit=commit,
                run_id=run_id,
                nonce=new_nonce(),
                issued_at=when,
                not_before=when,
                expires_at=when + lifetime,
                ttl_seconds=int(lifetime.total_seconds()),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise self._refuse(
                "malformed", f"{where}: {first['msg']}", stack=str(ref), commit=commit, details=base
            ) from None
        envelope = sign_json(claims.model_dump(mode="json"), CREDENTIAL_PAYLOAD_TYPE, self.signer)
        if self.sink is not None:
            self.sink.emit(
                "credential.mint",
                Outcome.ALLOW,
                f"credential for {ref} at {commit[:12]}, valid {lifetime}",
                stack=str(ref),
                commit=commit,
                details={
                    "credential_id": claims.credential_id,
                    "scope": claims.scope.stacks,
                    "ttl_seconds": claims.ttl_seconds,
                    "expires": claims.expires_at.isoformat(),
                    "run_id": run_id,
                },
            )
        return IssuedCredential(claims=claims, envelope=envelope)


def credential_token(cred: IssuedCredential | Mapping[str, Any]) -> str:
    """The credential as one opaque string (base64url of the envelope's canonical JSON), for an env var."""
    return base64.urlsafe_b64encode(canonical_json(dict(_envelope_of(cred)))).decode("ascii")


def _envelope_of(cred: IssuedCredential | Mapping[str, Any]) -> Mapping[str, Any]:
    # the decoded claims beside an envelope are never trusted: only the signed payload counts
    return cred.envelope if isinstance(cred, IssuedCredential) else cred


def verify_credential(
    cred: IssuedCredential | Mapping[str, Any],
    *,
    stack: str,
    commit: str,
    trusted: Mapping[str, bytes],
    now: datetime | None = None,
    replay_store: ReplayStore,
    sink: EventSink | None = None,
    max_ttl: timedelta = DEFAULT_MAX_TTL,
) -> Credential:
    """The verified claims of ``cred`` for applying ``stack`` at ``commit``; raise CredentialRefused otherwise.

    The nonce is consumed only when every other check passed, so a refused credential cannot burn a
    nonce it does not own, and an accepted one can never be presented twice.
    """
    when = _now(now)
    claims: Credential | None = None

    def refuse(code: str, message: str) -> CredentialRefused:
        if sink is not None:
            details: dict[str, Any] = {"code": code, "stage": "verify", "evaluated_at": when.isoformat()}
            if claims is not None:
                details |= {
                    "credential_id": claims.credential_id,
                    "scope": claims.scope.stacks,
                    "ttl_seconds": claims.ttl_seconds,
                    "expires": claims.expires_at.isoformat(),
                    "run_id": claims.run_id,
                }
            sink.emit("credential.refuse", Outcome.DENY, message, stack=stack, commit=commit, details=details)
        return CredentialRefused(message, code=code)

    try:
        payload, _keyid = verify_json_envelope(_envelope_of(cred), trusted, payload_type=CREDENTIAL_PAYLOAD_TYPE)
    except IntegrityError as exc:
        raise refuse("bad-signature", f"credential signature does not verify: {exc.message}") from None
    try:
        claims = Credential.model_validate(payload)
    except ValidationError as exc:
        raise refuse("malformed", f"signed credential is malformed: {exc.error_count()} problem(s)") from None

    if when < claims.not_before:
        raise refuse("not-yet-valid", f"credential is not valid before {claims.not_before.isoformat()}")
    if when >= claims.expires_at:
        raise refuse("expired", f"credential expired at {claims.expires_at.isoformat()}")
    if claims.issued_at + timedelta(seconds=claims.ttl_seconds) != claims.expires_at:
        raise refuse("malformed", "credential expiry does not match its issue time and TTL")
    if claims.ttl_seconds > max_ttl.total_seconds():
        raise refuse("ttl-over-max", f"credential lives {claims.ttl_seconds}s; the maximum is {max_ttl}")
    if len(claims.scope.stacks) != 1:
        raise refuse(
            "widened",
            f"credential is scoped to {len(claims.scope.stacks)} stacks ({', '.join(claims.scope.stacks)}); "
            "a deploy credential covers exactly one",
        )
    if claims.scope.stacks[0] != stack:
        raise refuse("wrong-stack", f"credential is for stack {claims.scope.stacks[0]}, not {stack}")
    if claims.commit != commit:
        raise refuse("wrong-commit", f"credential is for commit {claims.commit}, not {commit}")
    if not replay_store.claim(claims, when):
        raise refuse("replayed", f"credential {claims.credential_id} was already used (nonce {claims.nonce[:8]}…)")
    return claims
