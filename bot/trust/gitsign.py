"""SSH signatures on git commits: signing commit objects, and the allowed-signers file git verifies against.

Commits are signed in the SSH signature format (``gpg.format=ssh``) with the identity's ed25519 key through
``ssh-keygen -Y sign -n git``, so plain ``git verify-commit`` checks them against an allowed-signers file
generated from ``registry/trust.yaml`` (only keys with the ``commit-signer`` role).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from bot.errors import IntegrityError, UserError
from bot.registry import KeyRole, Registry
from bot.trust.keys import Signer


def allowed_signers(reg: Registry, role: KeyRole = KeyRole.COMMIT_SIGNER, identities: set[str] | None = None) -> str:
    """Lines of an allowed-signers file: each key with ``role`` (of ``identities`` only, when given)."""
    lines = []
    for key in reg.keys_for(role=role):
        if identities is not None and key.identity not in identities:
            continue
        algo, blob = key.public_key.split()[:2]
        lines.append(f'{key.identity} namespaces="git" {algo} {blob}')
    return "\n".join(lines) + ("\n" if lines else "")


def write_allowed_signers(reg: Registry, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(allowed_signers(reg), encoding="utf-8")
    return path


def ssh_sign(signer: Signer, data: bytes) -> str:
    """An armored SSH signature (namespace ``git``) over ``data``, made with the signer's key file."""
    if signer.path is None:
        raise UserError(f"identity {signer.identity!r} has no key file to sign commits with")
    proc = subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", "git", "-f", str(signer.path)],
        input=data,
        capture_output=True,
        check=False,
        timeout=30,
    )
    if proc.returncode != 0:
        raise UserError(f"ssh-keygen could not sign for {signer.identity!r}: {proc.stderr.decode().strip()}")
    return proc.stdout.decode("ascii")


def verify_commit(repo: Path, sha: str, reg: Registry) -> str:
    """Run ``git verify-commit`` against the registry's commit signers; return the signer identity."""
    return verify_commit_against(repo, sha, allowed_signers(reg), "a trusted commit signer")


def verify_commit_against(repo: Path, sha: str, signers_text: str, who: str) -> str:
    """``git verify-commit`` of ``sha`` against an allowed-signers file with ``signers_text``; the signer's identity.
    ``who`` names the signers in the error (e.g. "a trusted commit signer")."""
    with tempfile.TemporaryDirectory(prefix="glassbox-signers-") as tmp:
        signers = Path(tmp) / "allowed_signers"
        signers.write_text(signers_text, encoding="utf-8")
        proc = subprocess.run(
            [
                "git",
                "-C",
                str(repo),
                "-c",
                "gpg.format=ssh",
                "-c",
                f"gpg.ssh.allowedSignersFile={signers}",
                "verify-commit",
                "--raw",
                sha,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    output = (proc.stderr + proc.stdout).strip()
    if proc.returncode != 0:
        raise IntegrityError(f"commit {sha[:12]} has no valid signature by {who}: {output}")
    for line in output.splitlines():
        if 'Good "git" signature for ' in line:
            return line.split('Good "git" signature for ', 1)[1].split()[0]
    return "unknown"
