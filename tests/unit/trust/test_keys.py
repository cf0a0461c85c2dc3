from __future__ import annotations

import base64
import json
import stat
import subprocess
from pathlib import Path

import pytest

from bot.errors import IntegrityError, UserError
from bot.keyformat import KeyFormatError, parse_public_key
from bot.trust.keys import generate_key, load_signer, pae, sign_json, verify_json_envelope

PTYPE = "application/vnd.glassbox.test+json"


def test_key_init_writes_private_key_0600_and_a_trust_line(tmp_path: Path) -> None:
    signer = generate_key(tmp_path / "keys", "glassbox-ci")
    assert signer.path is not None
    assert stat.S_IMODE(signer.path.stat().st_mode) == 0o600
    assert signer.public_line.startswith("ssh-ed25519 ") and signer.public_line.endswith(" glassbox-ci")
    assert signer.keyid.startswith("sha256:")
    assert parse_public_key(signer.public_line) == signer.public_raw
    assert load_signer(tmp_path / "keys", "glassbox-ci").keyid == signer.keyid


def test_key_init_refuses_to_overwrite_and_to_write_into_a_repository(tmp_path: Path) -> None:
    generate_key(tmp_path / "keys", "alice")
    with pytest.raises(UserError, match="already exists"):
        generate_key(tmp_path / "keys", "alice")
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    with pytest.raises(UserError, match="inside the git work tree"):
        generate_key(repo / "keys", "alice")
    (repo / ".gitignore").write_text("ignored/\n")
    generate_key(repo / "ignored", "alice")  # an ignored folder cannot be committed by accident


def test_loose_private_key_permissions_are_refused(tmp_path: Path) -> None:
    signer = generate_key(tmp_path / "keys", "alice")
    assert signer.path is not None
    signer.path.chmod(0o644)
    with pytest.raises(UserError, match="chmod 600"):
        load_signer(tmp_path / "keys", "alice")


def test_private_key_is_usable_by_ssh_keygen(tmp_path: Path) -> None:
    signer = generate_key(tmp_path / "keys", "alice")
    out = subprocess.run(["ssh-keygen", "-y", "-f", str(signer.path)], capture_output=True, text=True, check=True)
    assert out.stdout.split()[:2] == signer.public_line.split()[:2]


def test_envelope_round_trip_and_forgeries(tmp_path: Path) -> None:
    ci = generate_key(tmp_path / "keys", "glassbox-ci")
    mallory = generate_key(tmp_path / "keys", "mallory")
    trusted = {ci.keyid: ci.public_raw}
    env = sign_json({"result": "PASSED", "tree": "abc"}, PTYPE, ci)
    data, keyid = verify_json_envelope(env, trusted, payload_type=PTYPE)
    assert data == {"result": "PASSED", "tree": "abc"} and keyid == ci.keyid

    tampered = dict(env, payload=base64.b64encode(b'{"result":"FAILED","tree":"abc"}').decode())
    with pytest.raises(IntegrityError, match="no signature by a trusted key"):
        verify_json_envelope(tampered, trusted)
    with pytest.raises(IntegrityError, match="no signature by a trusted key"):
        verify_json_envelope(sign_json({"result": "PASSED"}, PTYPE, mallory), trusted)
    # an attacker relabelling their own signature with the trusted key id
    relabelled = sign_json({"result": "PASSED"}, PTYPE, mallory)
    relabelled["signatures"][0]["keyid"] = ci.keyid
    with pytest.raises(IntegrityError):
        verify_json_envelope(relabelled, trusted)
    with pytest.raises(IntegrityError, match="payload type"):
        verify_json_envelope(env, trusted, payload_type="application/other")
    with pytest.raises(IntegrityError, match="no signature"):
        verify_json_envelope(dict(env, signatures=[]), trusted)
    with pytest.raises(IntegrityError, match="malformed"):
        verify_json_envelope({"payload": "!!"}, trusted)


def test_envelope_verifies_with_securesystemslib(tmp_path: Path) -> None:
    """The DSSE encoding is the standard one: an independent implementation accepts it."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    ci = generate_key(tmp_path / "keys", "glassbox-ci")
    env = sign_json({"ok": True}, PTYPE, ci)
    key = SSlibKey(ci.keyid, "ed25519", "ed25519", {"public": ci.public_raw.hex()})
    verified = Envelope.from_dict(json.loads(json.dumps(env))).verify([key], 1)
    assert ci.keyid in verified


def test_pae_matches_the_dsse_specification() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize("line", ["", "ssh-ed25519", "ssh-rsa AAAAB3NzaC1yc2E x", "ssh-ed25519 !!!notbase64"])
def test_malformed_public_keys_are_rejected(line: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_public_key(line)
