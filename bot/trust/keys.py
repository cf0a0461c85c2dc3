"""Identity keys (ed25519) and the one signing scheme glassbox uses: DSSE over canonical bytes.

A key directory holds ``<identity>.key`` (OpenSSH private key, mode 0600, so ``ssh-keygen -Y sign`` can sign
git commits with it) and ``<identity>.pub`` (the OpenSSH public key line that goes into ``trust.yaml``).
Key ids are ``sha256:<hex>`` of the raw 32-byte public key. Every signature (ledger events, verdict
attestations, deploy records, break-glass grants) is an ed25519 signature over the DSSE pre-authentication
encoding of a payload type and the payload bytes, so the same verifier checks them all.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bot.errors import IntegrityError, UserError
from bot.keyformat import keyid_for, parse_public_key, public_line
from bot.records import canonical_json

_IDENTITY_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True)
class Signer:
    """A private key bound to the identity it speaks for."""

    identity: str
    private_key: Ed25519PrivateKey
    path: Path | None = None

    @property
    def public_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def keyid(self) -> str:
        return keyid_for(self.public_raw)

    @property
    def public_line(self) -> str:
        return public_line(self.private_key.public_key(), self.identity)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def _check_identity(identity: str) -> None:
    if not identity or not set(identity) <= _IDENTITY_CHARS or identity[0] == "-":
        raise UserError(f"identity {identity!r}: use lowercase letters, digits and '-'")


def _inside_tracked_worktree(path: Path) -> Path | None:
    """The git work tree that would track ``path`` (not ignored), if any."""
    probe = path.resolve()
    for parent in [probe, *probe.parents]:
        if (parent / ".git").exists():
            rel = probe.relative_to(parent)
            ignored = subprocess.run(
                ["git", "-C", str(parent), "check-ignore", "-q", "--no-index", str(rel / "x.key")],
                capture_output=True,
                check=False,
            )
            return None if ignored.returncode == 0 else parent
    return None


def key_paths(keys_dir: Path, identity: str) -> tuple[Path, Path]:
    _check_identity(identity)
    return keys_dir / f"{identity}.key", keys_dir / f"{identity}.pub"


def generate_key(keys_dir: Path, identity: str, *, overwrite: bool = False) -> Signer:
    """Make an ed25519 key pair for ``identity`` under ``keys_dir`` (0700 dir, 0600 key)."""
    private_path, public_path = key_paths(keys_dir, identity)
    repo = _inside_tracked_worktree(keys_dir)
    if repo is not None:
        raise UserError(
            f"{keys_dir}: inside the git work tree {repo} and not ignored; keep keys outside any repository "
            "(default: the user data dir) so a private key can never be committed"
        )
    if private_path.exists() and not overwrite:
        raise UserError(f"{private_path}: a key for {identity!r} already exists; pass --force to replace it")
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    tmp = private_path.with_suffix(".key.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, private_path)
    signer = Signer(identity=identity, private_key=key, path=private_path)
    public_path.write_text(signer.public_line + "\n", encoding="ascii")
    return signer


def load_signer(keys_dir: Path, identity: str) -> Signer:
    private_path, _ = key_paths(keys_dir, identity)
    if not private_path.exists():
        raise UserError(
            f"no key for identity {identity!r} in {keys_dir}; create one with "
            f"`glassbox keys init --identity {identity} --keys {keys_dir}`"
        )
    return load_signer_file(private_path, identity)


def load_signer_file(private_path: Path, identity: str) -> Signer:
    """The private key in ``private_path`` (OpenSSH ed25519, mode 0600), bound to ``identity``."""
    _check_identity(identity)
    try:
        data = private_path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{private_path}: no such key file") from None
    if private_path.stat().st_mode & 0o077:
        raise UserError(f"{private_path}: private key is readable by others; run chmod 600 on it")
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{private_path}: not an unencrypted OpenSSH private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"{private_path}: not an ed25519 key")
    return Signer(identity=identity, private_key=key, path=private_path)


# --------------------------------------------------------------------------------------------------
# DSSE


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def sign_bytes(signer: Signer, payload_type: str, payload: bytes) -> str:
    return base64.b64encode(signer.sign(pae(payload_type, payload))).decode("ascii")


@functools.lru_cache(maxsize=256)
def _public_key(public_raw: bytes) -> Ed25519PublicKey:
    """The key object of raw public bytes, made once per key (a ledger check verifies one line after another)."""
    return Ed25519PublicKey.from_public_bytes(public_raw)


def verify_bytes(public_raw: bytes, payload_type: str, payload: bytes, sig_b64: str) -> bool:
    try:
        sig = base64.b64decode(sig_b64, validate=True)
        _public_key(public_raw).verify(sig, pae(payload_type, payload))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def sign_envelope(payload: bytes, payload_type: str, signers: Iterable[Signer]) -> dict[str, Any]:
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": s.keyid, "sig": sign_bytes(s, payload_type, payload)} for s in signers],
    }


def sign_json(data: Any, payload_type: str, signer: Signer) -> dict[str, Any]:
    return sign_envelope(canonical_json(data), payload_type, [signer])


def trusted_keys(lines: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, bytes]:
    """keyid → raw public key, from (keyid, public key line) pairs."""
    items = lines.items() if isinstance(lines, Mapping) else lines
    return {keyid: parse_public_key(line) for keyid, line in items}


def verify_envelope(
    envelope: Mapping[str, Any], trusted: Mapping[str, bytes], *, payload_type: str | None = None
) -> tuple[bytes, str]:
    """Return (payload, keyid of the first trusted signature that verifies); raise IntegrityError otherwise."""
    try:
        ptype = str(envelope["payloadType"])
        payload = base64.b64decode(str(envelope["payload"]), validate=True)
        signatures = list(envelope["signatures"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise IntegrityError(f"malformed DSSE envelope: {exc}") from None
    if payload_type is not None and ptype != payload_type:
        raise IntegrityError(f"envelope payload type is {ptype!r}, expected {payload_type!r}")
    if not signatures:
        raise IntegrityError("envelope carries no signature")
    for sig in signatures:
        if not isinstance(sig, Mapping):
            continue
        keyid = str(sig.get("keyid", ""))
        raw = trusted.get(keyid)
        if raw is not None and verify_bytes(raw, ptype, payload, str(sig.get("sig", ""))):
            return payload, keyid
    keyids = ", ".join(str(s.get("keyid")) for s in signatures if isinstance(s, Mapping))
    raise IntegrityError(f"no signature by a trusted key verifies (signed by: {keyids or 'nobody'})")


def verify_json_envelope(
    envelope: Mapping[str, Any], trusted: Mapping[str, bytes], *, payload_type: str | None = None
) -> tuple[Any, str]:
    payload, keyid = verify_envelope(envelope, trusted, payload_type=payload_type)
    try:
        return json.loads(payload), keyid
    except ValueError as exc:
        raise IntegrityError(f"signed payload is not JSON: {exc}") from None
