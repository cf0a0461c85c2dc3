"""Syslog over TLS (RFC 5425) against a real TLS receiver on 127.0.0.1, with throwaway certificates."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError
from typer.testing import CliRunner

from bot.audit.siem import (
    DOCUMENTATION_PEN,
    SiemConfig,
    SiemDispatcher,
    SyslogSink,
    SyslogSinkConfig,
    load_siem_config,
)
from tests.factories import REPO_ROOT
from tests.tls_helpers import CertificateAuthority, Issued, tls_receiver
from tests.unit.audit.test_siem import _app, check_rfc5424, make_events, signer  # noqa: F401  (fixture)

PEN = 99999


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority("siem-ca", directory)
    return {
        "ca": ca,
        "server": ca.issue("receiver", hosts=["127.0.0.1", "localhost"]),
        "client": ca.issue("glassbox-client", client=True),
    }


def tls_sink(port: int, ca: Path, **kw: Any) -> SyslogSinkConfig:
    return SyslogSinkConfig(
        name="tls",
        type="syslog",
        host="127.0.0.1",
        port=port,
        transport="tls",
        hostname="gb-test",
        ca_file=str(ca),
        timeout_seconds=5,
        **kw,
    )


def test_tls_receiver_gets_the_exact_rfc5424_messages_octet_counted(
    tmp_path: Path,
    signer: Any,  # noqa: F811
    pki: dict[str, Any],
) -> None:
    events = make_events(tmp_path, signer, 3)
    with tls_receiver(pki["server"]) as receiver:
        config = SiemConfig(sinks=[tls_sink(receiver.port, pki["ca"].pem, enterprise_number=PEN)])
        dispatcher = SiemDispatcher(config, state_dir=tmp_path)
        [report] = dispatcher.publish(events)
    assert report.ok, report.error
    assert report.sent == 3 and report.spooled == 0
    frames = receiver.frames
    assert len(receiver.streams) == 1 and len(frames) == 3  # one session, three octet-counted frames
    sink = dispatcher.sinks["tls"]
    assert isinstance(sink, SyslogSink)
    assert frames == sink._messages(SiemDispatcher(config, state_dir=tmp_path).mapper.map_all(events))  # byte for byte
    for frame, event in zip(frames, events, strict=True):
        check_rfc5424(frame, event, enterprise_number=PEN)
    assert b"[glassbox@99999 " in frames[0] and b"@32473" not in b"".join(frames)
    assert not (tmp_path / "tls.spool.jsonl").exists()


def test_mutual_tls_receiver_that_requires_a_client_certificate(
    tmp_path: Path,
    signer: Any,  # noqa: F811
    pki: dict[str, Any],
) -> None:
    events = make_events(tmp_path, signer, 2)
    client: Issued = pki["client"]
    with tls_receiver(pki["server"], client_ca=pki["ca"].pem) as receiver:
        without = SiemConfig(sinks=[tls_sink(receiver.port, pki["ca"].pem)])
        [refused] = SiemDispatcher(without, state_dir=tmp_path).publish(events[:1])
        with_cert = SiemConfig(
            sinks=[
                tls_sink(
                    receiver.port,
                    pki["ca"].pem,
                    client_cert_file=str(client.cert),
                    client_key_file=str(client.key),
                )
            ]
        )
        [report] = SiemDispatcher(with_cert, state_dir=tmp_path).publish(events[1:])
    # without a client certificate the receiver refuses the session: named, and the event stays spooled
    assert not refused.ok and refused.spooled == 1
    assert refused.error and "TLS handshake failed" in refused.error and "certificate required" in refused.error
    # with it, the spooled event is flushed first, then the new one: both arrive, in ledger order
    assert report.ok, report.error
    assert report.sent == 2 and report.flushed == 1
    assert [check_rfc5424(f, e)["metadata"]["sequence"] for f, e in zip(receiver.frames, events, strict=True)] == [1, 2]
    assert receiver.handshake_errors == ["PEER_DID_NOT_RETURN_A_CERTIFICATE"]
    assert not (tmp_path / "tls.spool.jsonl").exists()


def test_relative_certificate_paths_resolve_under_the_siem_state_dir(
    tmp_path: Path,
    signer: Any,  # noqa: F811
    pki: dict[str, Any],
) -> None:
    events = make_events(tmp_path, signer, 1)
    state = tmp_path / "state"
    state.mkdir()
    (state / "ca.pem").write_bytes(pki["ca"].pem.read_bytes())
    with tls_receiver(pki["server"]) as receiver:
        [report] = SiemDispatcher(SiemConfig(sinks=[tls_sink(receiver.port, Path("ca.pem"))]), state_dir=state).publish(
            events
        )
    assert report.ok, report.error
    assert len(receiver.frames) == 1


def test_a_missing_ca_file_is_named_and_nothing_is_lost(
    tmp_path: Path,
    signer: Any,  # noqa: F811
    pki: dict[str, Any],
) -> None:
    events = make_events(tmp_path, signer, 2)
    with tls_receiver(pki["server"]) as receiver:
        config = SiemConfig(sinks=[tls_sink(receiver.port, tmp_path / "no-such-ca.pem")])
        [report] = SiemDispatcher(config, state_dir=tmp_path).publish(events)
    assert not report.ok and report.spooled == 2 and receiver.streams == []
    assert report.error and "cannot load ca_file" in report.error and "no-such-ca.pem" in report.error


def test_a_receiver_limited_to_tls_1_1_is_refused(
    tmp_path: Path,
    signer: Any,  # noqa: F811
    pki: dict[str, Any],
) -> None:
    events = make_events(tmp_path, signer, 1)
    try:
        old = tls_receiver(pki["server"], maximum_version=ssl.TLSVersion.TLSv1_1)
        receiver = old.__enter__()
    except ssl.SSLError as exc:  # this OpenSSL build cannot even offer TLS 1.1
        pytest.skip(f"TLS 1.1 server unavailable: {exc}")
    try:
        [report] = SiemDispatcher(
            SiemConfig(sinks=[tls_sink(receiver.port, pki["ca"].pem)]), state_dir=tmp_path
        ).publish(events)
    finally:
        old.__exit__(None, None, None)
    assert not report.ok and report.spooled == 1 and receiver.streams == []
    assert report.error and "TLS handshake failed" in report.error and "protocol" in report.error.lower()


def test_tls_settings_are_checked_when_the_config_loads(tmp_path: Path) -> None:
    base = {"name": "s", "type": "syslog", "host": "siem.example.internal"}
    assert SyslogSinkConfig.model_validate({**base, "transport": "tls"}).port_number == 6514
    assert SyslogSinkConfig.model_validate({**base, "transport": "tcp"}).port_number == 514
    assert SyslogSinkConfig.model_validate(base).enterprise_number == DOCUMENTATION_PEN == 32473
    with pytest.raises(ValidationError, match="ca_file apply to transport tls only"):
        SyslogSinkConfig.model_validate({**base, "transport": "tcp", "ca_file": "ca.pem"})
    with pytest.raises(ValidationError, match="client_key_file needs client_cert_file"):
        SyslogSinkConfig.model_validate({**base, "transport": "tls", "client_key_file": "k.pem"})
    with pytest.raises(ValidationError, match="enterprise_number"):
        SyslogSinkConfig.model_validate({**base, "enterprise_number": 0})
    for removed in ("tls_verify", "verify", "insecure"):  # there is no way to turn verification off
        with pytest.raises(ValidationError, match=removed):
            SyslogSinkConfig.model_validate({**base, "transport": "tls", removed: False})


def test_the_sample_config_port_6514_example_means_tls_and_names_the_documentation_pen() -> None:
    text = (REPO_ROOT / "registry" / "siem.yaml").read_text()
    block = [line.removeprefix("  # ") for line in text.splitlines() if line.startswith("  # ")]
    start = next(i for i, line in enumerate(block) if line.startswith("- name: syslog"))
    end = next(i for i, line in enumerate(block) if i > start and line.startswith("- name:"))
    example = yaml.safe_load("\n".join(block[start:end]))[0]
    parsed = SyslogSinkConfig.model_validate(example)
    assert parsed.port_number == 6514 and parsed.transport == "tls" and parsed.ca_file
    assert parsed.enterprise_number == 32473
    assert "documentation number: set your own PEN" in text
    readme = (REPO_ROOT / "README.md").read_text()
    assert "documentation number: set your own PEN" in readme and "client_cert_file" in readme


def test_cli_replay_over_tls_fails_with_the_cause_and_exit_1(
    tmp_path: Path,
    signer: Any,  # noqa: F811
    pki: dict[str, Any],
) -> None:
    make_events(tmp_path, signer, 2)
    wrong_name = pki["ca"].issue("other-host", hosts=["siem.example.internal"])
    config = tmp_path / "siem.yaml"
    with tls_receiver(wrong_name) as receiver:
        sink = tls_sink(receiver.port, pki["ca"].pem).model_dump(mode="json", exclude_none=True)
        config.write_text(yaml.safe_dump({"sinks": [sink]}))
        args = ["audit", "export", "--sink", "tls", "--ledger", str(tmp_path / "ledger.jsonl")]
        result = CliRunner().invoke(
            _app(), [*args, "--siem-config", str(config), "--siem-dir", str(tmp_path / "s"), "--output", "json"]
        )
    assert result.exit_code == 1, result.output
    [report] = json.loads(result.output)["sinks"]
    assert report["spooled"] == 2 and report["sent"] == 0 and receiver.streams == []
    assert "certificate verify failed" in report["error"] and "not valid for '127.0.0.1'" in report["error"]
    assert len((tmp_path / "s" / "tls.spool.jsonl").read_text().splitlines()) == 2
    assert load_siem_config(config).sinks[0] == tls_sink(receiver.port, pki["ca"].pem)


def test_an_encrypted_client_key_is_named_and_never_prompts(
    tmp_path: Path,
    signer: Any,  # noqa: F811
    pki: dict[str, Any],
) -> None:
    client: Issued = pki["client"]
    key = serialization.load_pem_private_key(client.key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    events = make_events(tmp_path, signer, 1)
    with tls_receiver(pki["server"], client_ca=pki["ca"].pem) as receiver:
        cfg = tls_sink(receiver.port, pki["ca"].pem, client_cert_file=str(client.cert), client_key_file=str(locked))
        [report] = SiemDispatcher(SiemConfig(sinks=[cfg]), state_dir=tmp_path).publish(events)
    assert not report.ok and report.spooled == 1 and receiver.streams == []
    assert report.error and "cannot load the client certificate" in report.error and "encrypted" in report.error
