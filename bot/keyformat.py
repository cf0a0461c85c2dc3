"""The format of a registered public key, below the registry that validates it and the trust layer that uses it:
an OpenSSH ``ssh-ed25519`` line, its raw bytes and its key id."""

from __future__ import annotations

import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot.records import sha256_hex


class KeyFormatError(ValueError):
    """A public key line that is not a well-formed ssh-ed25519 key."""


def keyid_for(raw_public: bytes) -> str:
    return "sha256:" + sha256_hex(raw_public)


def public_line(key: Ed25519PublicKey, comment: str) -> str:
    openssh = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode("ascii")
    return f"{openssh} {comment}"


def parse_public_key(line: str) -> bytes:
    """Raw 32 bytes of an ``ssh-ed25519 AAAA... [comment]`` line."""
    parts = line.strip().split()
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise KeyFormatError("not an OpenSSH ed25519 public key line ('ssh-ed25519 AAAA... comment')")
    try:
        key = serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode("ascii"))
    except (ValueError, UnicodeEncodeError, binascii.Error) as exc:
        raise KeyFormatError(f"malformed ssh-ed25519 key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFormatError("key is not ed25519")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
