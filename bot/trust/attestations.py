"""The verdict attestation: an in-toto Statement v1 about one head commit, DSSE-signed by the CI identity.

Subjects are the head commit, its tree and the plan digest; the predicate (modelled on SLSA's verification
summary) names the verifier, the policy pack digest, the result and the whole verdict. Deploy and audit
verify it with the ``verdict-signer`` keys of ``registry/trust.yaml`` and compare every digest it names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import GlassboxError, IntegrityError
from bot.records import (
    DIGEST_PREFIX,
    IN_TOTO_PAYLOAD_TYPE,
    IN_TOTO_STATEMENT_TYPE,
    VERDICT_PREDICATE_TYPE,
    Verdict,
)
from bot.registry import KeyRole, Registry
from bot.trust.keys import Signer, sign_json, trusted_keys, verify_json_envelope


def _hex(d: str) -> str:
    return d.removeprefix(DIGEST_PREFIX)


def statement(verdict: Verdict) -> dict[str, Any]:
    change = verdict.change
    return {
        "_type": IN_TOTO_STATEMENT_TYPE,
        "subject": [
            {"name": f"git+commit:{change.repo}", "digest": {"gitCommit": change.head_commit}},
            {"name": f"git+tree:{change.repo}", "digest": {"gitTree": change.head_tree}},
            {"name": "plan", "digest": {"sha256": _hex(change.plan_digest)}},
        ],
        "predicateType": VERDICT_PREDICATE_TYPE,
        "predicate": {
            "verifier": {"id": verdict.verifier.get("id", "glassbox"), "version": dict(verdict.verifier)},
            "timeVerified": verdict.model_dump(mode="json")["time_verified"],
            "policies": [{"uri": "policy-pack/", "digest": {"sha256": _hex(change.policy_pack_digest)}}],
            "verificationResult": verdict.result.value,
            "verdict": verdict.model_dump(mode="json"),
        },
    }


def sign_verdict(verdict: Verdict, signer: Signer) -> dict[str, Any]:
    return sign_json(statement(verdict), IN_TOTO_PAYLOAD_TYPE, signer)


def verdict_signers(registry: Registry) -> dict[str, bytes]:
    return trusted_keys((k.keyid, k.public_key) for k in registry.keys_for(role=KeyRole.VERDICT_SIGNER))


def verify_attestation(envelope: Mapping[str, Any], registry: Registry) -> tuple[Verdict, str]:
    """Verify the signature with the registry's verdict-signer keys; return the verdict and the signing key id.

    The statement's subjects must agree with the verdict it carries; callers still compare the verdict's
    change bundle with what they are about to trust (tree, plan, policy pack).
    """
    payload, keyid = verify_json_envelope(envelope, verdict_signers(registry), payload_type=IN_TOTO_PAYLOAD_TYPE)
    if not isinstance(payload, dict) or payload.get("predicateType") != VERDICT_PREDICATE_TYPE:
        raise IntegrityError("attestation is not a glassbox verdict statement")
    try:
        verdict = Verdict.model_validate(payload["predicate"]["verdict"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"attestation carries no valid verdict: {exc}") from None
    if payload != statement(verdict):
        raise IntegrityError("attestation subjects or predicate disagree with the verdict they carry")
    return verdict, keyid


# --------------------------------------------------------------------------------------------------
# the attestation store: one signed verdict per PR head commit, ``<store>/<head sha>.dsse.json``


def attestation_path(store: Path, head_sha: str) -> Path:
    return store / f"{head_sha}.dsse.json"


def store_attestation(store: Path, head_sha: str, envelope: dict[str, Any]) -> Path:
    store.mkdir(parents=True, exist_ok=True)
    path = attestation_path(store, head_sha)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class FiledVerdict:
    """What the store holds for one head: the verified verdict and its key, or why there is none."""

    path: Path
    found: bool
    verdict: Verdict | None = None
    keyid: str | None = None
    problem: str | None = None  # None exactly when the verdict verifies


def read_attestation(path: Path, registry: Registry) -> FiledVerdict:
    """The one loader of a verdict attestation: read, parse, verify against the registry's verdict signers."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return FiledVerdict(path, found=False, problem=f"no attestation at {path}")
    try:
        envelope = json.loads(text)
    except ValueError as exc:
        return FiledVerdict(path, found=True, problem=f"{path.name} is not JSON: {exc}")
    try:
        verdict, keyid = verify_attestation(envelope, registry)
    except GlassboxError as exc:
        return FiledVerdict(path, found=True, problem=f"attestation does not verify: {exc.message}")
    return FiledVerdict(path, found=True, verdict=verdict, keyid=keyid)


def load_attestation(store: Path, head_sha: str, registry: Registry) -> FiledVerdict:
    filed = read_attestation(attestation_path(store, head_sha), registry)
    if not filed.found:
        return FiledVerdict(filed.path, found=False, problem=f"no attestation for head {head_sha[:12]} in {store}")
    return filed


def stored_verdict(store: Path, head_sha: str, registry: Registry) -> Verdict | None:
    """The verified verdict filed for ``head_sha``; None when there is none (IntegrityError if it does not verify)."""
    filed = load_attestation(store, head_sha, registry)
    if filed.found and filed.problem is not None:
        raise IntegrityError(f"{filed.path}: {filed.problem}")
    return filed.verdict
