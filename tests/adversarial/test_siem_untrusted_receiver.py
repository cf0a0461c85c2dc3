"""A man in the middle of the SIEM feed: a syslog-over-TLS receiver on the configured address that presents a
certificate the configured CA never signed (its own CA, a self-signed certificate, or a genuine certificate of
another host). It receives nothing: the handshake fails with the verification failure named, and every event
stays in the spool for the real receiver."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from bot.audit.siem import SiemConfig, SiemDispatcher, SyslogSinkConfig
from tests.tls_helpers import CertificateAuthority, Issued, tls_receiver
from tests.unit.audit.test_siem import make_events, signer  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def trusted_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority("siem-ca", tmp_path_factory.mktemp("trusted"))


def sink(port: int, ca: CertificateAuthority) -> SiemConfig:
    cfg = SyslogSinkConfig(
        name="siem", type="syslog", host="127.0.0.1", port=port, transport="tls", ca_file=str(ca.pem)
    )
    return SiemConfig(sinks=[cfg])


def impostors(tmp_path: Path, trusted: CertificateAuthority) -> dict[str, tuple[Issued, str]]:
    attacker = CertificateAuthority("attacker-ca", tmp_path / "attacker")
    self_signed = CertificateAuthority("127.0.0.1", tmp_path / "self")  # a CA certificate naming the address
    return {
        "attacker's CA, right name": (
            attacker.issue("mitm", hosts=["127.0.0.1", "localhost"]),
            "unable to get local issuer certificate",
        ),
        "self-signed": (
            Issued(cert=self_signed.pem, key=_key_file(self_signed, tmp_path)),
            "self-signed certificate",
        ),
        "trusted CA, another host's certificate": (
            trusted.issue("other-host", hosts=["siem.example.internal"]),
            "IP address mismatch",
        ),
    }


def _key_file(ca: CertificateAuthority, tmp_path: Path) -> Path:
    path = tmp_path / "self.key"
    path.write_bytes(
        ca.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


@pytest.mark.parametrize("who", ["attacker's CA, right name", "self-signed", "trusted CA, another host's certificate"])
def test_mitm_receiver_with_a_certificate_the_ca_did_not_sign_receives_nothing(
    tmp_path: Path,
    signer: Any,  # noqa: F811
    trusted_ca: CertificateAuthority,
    who: str,
) -> None:
    events = make_events(tmp_path, signer, 3)
    certificate, cause = impostors(tmp_path, trusted_ca)[who]
    with tls_receiver(certificate) as mitm:
        dispatcher = SiemDispatcher(sink(mitm.port, trusted_ca), state_dir=tmp_path)
        [first] = dispatcher.publish(events[:2])
        [second] = dispatcher.publish(events[2:])  # a retry meets the same impostor: still nothing leaves
    assert mitm.streams == [] and mitm.frames == []  # not one byte of an event reached the impostor
    assert mitm.handshake_errors  # glassbox aborted the handshake itself
    for report in (first, second):
        assert not report.ok and report.sent == 0
        assert report.error and "TLS handshake failed: certificate verify failed" in report.error
        assert cause in report.error
    assert second.spooled == 3
    spooled = [json.loads(line) for line in (tmp_path / "siem.spool.jsonl").read_text().splitlines()]
    assert [e["metadata"]["uid"] for e in spooled] == [e.digest for e in events]  # all kept, in order, once

    # the real receiver (signed by the configured CA) then gets every spooled event
    genuine = trusted_ca.issue("receiver", hosts=["127.0.0.1"])
    with tls_receiver(genuine) as receiver:
        [report] = SiemDispatcher(sink(receiver.port, trusted_ca), state_dir=tmp_path).publish([])
    assert report.ok and report.flushed == 3
    assert [json.loads(f.split(b"\xef\xbb\xbf", 1)[1])["metadata"]["uid"] for f in receiver.frames] == [
        e.digest for e in events
    ]
    assert not (tmp_path / "siem.spool.jsonl").exists()
