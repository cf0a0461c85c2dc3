"""Commit signatures on the embedded forge: its own key, and GitHub's ``verification`` of every commit.

The forge signs the commits it makes itself (the initial import, every merge and squash) with its own SSH key,
as the committer :data:`WEB_FLOW`, the way GitHub signs web-flow merges with its key. It reports a commit's
``verification`` as GitHub does: an SSH signature is ``valid`` when it is good and was made by a signing key
registered for the account whose email is the commit's committer email (``no_user`` when no account has it,
``unknown_key`` when the key is not one of that account's, ``invalid`` when the signature does not match the
commit, ``unknown_signature_type`` for a GPG or X.509 signature). Each identity's key from ``forge init`` is
registered as its signing key; more are added through ``POST /user/ssh_signing_keys``.

Signing and verifying run ``ssh-keygen -Y``; its answer per commit is kept until a signing key is added. On a
host without ``ssh-keygen`` the forge's commits are unsigned and every signature's reason is GitHub's
``gpgverify_unavailable``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import UserError
from bot.forge.model import GitIdentity
from bot.forge.server.gitrepo import CommitInfo
from bot.forge.server.store import now_iso
from bot.trust.gitsign import ssh_sign
from bot.trust.keys import Signer, generate_key, key_paths, load_signer

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp

WEB_FLOW_KEY = "web-flow"
"""The forge's own key, in ``DIR/keys`` beside the identities' (no identity may take this name)."""
WEB_FLOW = GitIdentity(name="glassbox forge", email="web-flow@forge.glassbox.local")
"""Who commits what the forge writes itself; its key is the forge's."""
SSH_ARMOR = "-----BEGIN SSH SIGNATURE-----"
_lock = threading.Lock()


def keys_dir(data_dir: Path) -> Path:
    return data_dir / "keys"


def forge_signer(data_dir: Path) -> Signer:
    """The forge's own signing key, made on first use (a forge made before it signed has none yet)."""
    with _lock:
        private, _public = key_paths(keys_dir(data_dir), WEB_FLOW_KEY)
        if private.exists():
            return load_signer(keys_dir(data_dir), WEB_FLOW_KEY)
        return generate_key(keys_dir(data_dir), WEB_FLOW_KEY)


def available() -> bool:
    return shutil.which("ssh-keygen") is not None


def sign(data_dir: Path, payload: bytes) -> str | None:
    """The forge's armored SSH signature over the bytes of an unsigned commit object; None without ssh-keygen."""
    return ssh_sign(forge_signer(data_dir), payload) if available() else None


def normalised_key(line: str) -> str | None:
    """``type base64`` of an OpenSSH public key line ssh-keygen accepts; None when it is not one."""
    parts = line.strip().split()
    if len(parts) < 2:
        return None
    key = f"{parts[0]} {parts[1]}"
    if not available():
        return None
    proc = subprocess.run(
        ["ssh-keygen", "-l", "-f", "-"], input=key.encode("ascii", "replace"), capture_output=True, check=False
    )
    return key if proc.returncode == 0 else None


def result(info: CommitInfo, reason: str, verified_at: str | None = None) -> dict[str, Any]:
    """GitHub's ``verification`` object of a commit whose signature has ``reason``."""
    signed = info.signature is not None
    return {
        "verified": reason == "valid",
        "reason": reason,
        "signature": info.signature,
        "payload": info.payload.decode("utf-8", "replace") if signed else None,
        "verified_at": verified_at if reason == "valid" else None,
    }


def _keygen(args: list[str], payload: bytes, signature: str, signers: str | None = None) -> bool:
    with tempfile.TemporaryDirectory(prefix="gbx-verify-") as tmp:
        sig = Path(tmp) / "commit.sig"
        sig.write_text(signature, encoding="ascii", errors="replace")
        extra: list[str] = []
        if signers is not None:
            allowed = Path(tmp) / "allowed_signers"
            allowed.write_text(signers, encoding="utf-8")
            extra = ["-f", str(allowed)]
        proc = subprocess.run(
            ["ssh-keygen", "-Y", *args, *extra, "-n", "git", "-s", str(sig)],
            input=payload,
            capture_output=True,
            check=False,
            timeout=30,
        )
    return proc.returncode == 0


def _reason(app: ForgeApp, info: CommitInfo) -> str:
    signature = info.signature or ""
    if not signature.startswith(SSH_ARMOR):
        return "unknown_signature_type"
    if not available():
        return "gpgverify_unavailable"
    email = info.committer.email
    if not _keygen(["check-novalidate"], info.payload, signature):
        return "invalid"
    keys = app.store.signing_keys_for_email(email)
    if email.lower() == WEB_FLOW.email:
        keys = [" ".join(forge_signer(app.data_dir).public_line.split()[:2])]
    elif app.store.user_by_email(email) is None:
        return "no_user"
    if not keys:
        return "unknown_key"
    principal = email.replace('"', "")
    signers = "".join(f'"{principal}" namespaces="git" {key}\n' for key in keys)
    return "valid" if _keygen(["verify", "-I", principal], info.payload, signature, signers) else "unknown_key"


def verification(app: ForgeApp, info: CommitInfo) -> dict[str, Any]:
    if info.signature is None:
        return result(info, "unsigned")
    cached = app.verifications.get(info.sha)
    if cached is None:
        cached = app.verifications[info.sha] = (_reason(app, info), now_iso())
    return result(info, *cached)


def check_identity_name(login: str) -> None:
    if login == WEB_FLOW_KEY:
        raise UserError(f"identity {login!r} is the forge's own signing identity: rename it in the registry")
