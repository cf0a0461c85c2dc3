from __future__ import annotations

import json
import logging
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from bot.audit.siem import (
    DOCUMENTATION_PEN,
    FileSinkConfig,
    HecSinkConfig,
    SiemConfig,
    SiemDispatcher,
    SyslogSinkConfig,
    event_key,
    load_siem_config,
    octet_frame,
    sd_escape,
    sd_id,
    siem_schema,
)
from bot.commands import audit as audit_cmd
from bot.errors import UserError, ValidationFailed
from bot.records import Actor, ActorKind, AuditEvent, Outcome, Subject
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger
from tests.factories import REPO_ROOT

CID = "019378a2-7f3c-7c4e-9b1a-2d3e4f5a6b7c"
WORKDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
GH_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PASSWORD = "hunter2-Correct-Horse-9"
HEC_TOKEN = "00000000-1111-2222-3333-444444444444"
RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<proc>\S+) (?P<msgid>\S+) "
    rb"(?P<sd>\[(?:[^\]\\]|\\.)*\]) \xef\xbb\xbf(?P<msg>.*)$",
    re.S,
)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    return generate_key(tmp_path_factory.mktemp("keys"), "cost-optimizer")


def make_events(tmp_path: Path, signer: Signer, n: int, *, reason: str = "", ticket: str = "OPS-1") -> list[AuditEvent]:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for i in range(n):
        ledger.append(
            signer,
            actor=Actor(id="cost-optimizer", kind=ActorKind.AGENT),
            action="propose",
            outcome=Outcome.ALLOW,
            reason=reason or f"PR #{i} opened",
            correlation_id=CID,
            subject=Subject(repo="acme/infra", pr=i + 1),
            details={"agent_id": "cost-optimizer", "ticket": ticket},
            time=WORKDAY + timedelta(minutes=i),
        )
    return list(ledger.events())


def no_sleep(_: float) -> None:
    return None


# --------------------------------------------------------------------------------------------------
# syslog


def parse_sd(sd: bytes) -> tuple[str, dict[str, str]]:
    body = sd.decode()[1:-1]
    element_id, _, rest = body.partition(" ")
    params = {k: re.sub(r"\\(.)", r"\1", v) for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest)}
    return element_id, params


def check_rfc5424(raw: bytes, event: AuditEvent, *, enterprise_number: int = DOCUMENTATION_PEN) -> dict[str, Any]:
    m = RFC5424.match(raw)
    assert m, raw[:200]
    assert int(m["pri"]) == 13 * 8 + 6  # log audit, informational
    assert datetime.fromisoformat(m["ts"].decode().replace("Z", "+00:00")) == event.time
    assert m["app"] == b"glassbox" and m["host"] == b"gb-test" and m["msgid"] == b"api_activity"
    element_id, params = parse_sd(m["sd"])
    assert element_id == sd_id(enterprise_number) == f"glassbox@{enterprise_number}"
    assert params["correlation_id"] == CID and params["seq"] == str(event.seq) and params["digest"] == event.digest
    ocsf: dict[str, Any] = json.loads(m["msg"].decode("utf-8"))
    assert ocsf["metadata"]["uid"] == event.digest
    return ocsf


def test_sd_param_values_are_escaped() -> None:
    assert sd_escape('a"b]c\\d') == 'a\\"b\\]c\\\\d'
    assert octet_frame(b"<14>1 x") == b"7 <14>1 x"


def test_syslog_udp_delivers_rfc5424(tmp_path: Path, signer: Signer) -> None:
    events = make_events(tmp_path, signer, 2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        port = server.getsockname()[1]
        sink = SyslogSinkConfig(name="udp", type="syslog", host="127.0.0.1", port=port, hostname="gb-test")
        reports = SiemDispatcher(SiemConfig(sinks=[sink]), state_dir=tmp_path).publish(events)
        assert reports[0].ok and reports[0].sent == 2
        received = [server.recvfrom(65535)[0] for _ in events]
    for raw, event in zip(received, events, strict=True):
        check_rfc5424(raw, event)


def test_syslog_tcp_uses_octet_counting(tmp_path: Path, signer: Signer) -> None:
    events = make_events(tmp_path, signer, 3)
    data = bytearray()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(5)
        port = server.getsockname()[1]

        def accept() -> None:
            conn, _ = server.accept()
            with conn:
                while chunk := conn.recv(65536):
                    data.extend(chunk)

        thread = threading.Thread(target=accept)
        thread.start()
        sink = SyslogSinkConfig(
            name="tcp", type="syslog", host="127.0.0.1", port=port, transport="tcp", hostname="gb-test"
        )
        reports = SiemDispatcher(SiemConfig(sinks=[sink]), state_dir=tmp_path).publish(events)
        thread.join(5)
    assert reports[0].ok and reports[0].sent == 3
    frames, buf = [], bytes(data)
    while buf:
        length, _, rest = buf.partition(b" ")
        frames.append(rest[: int(length)])
        buf = rest[int(length) :]
    assert len(frames) == 3
    for raw, event in zip(frames, events, strict=True):
        check_rfc5424(raw, event)


def test_syslog_tcp_down_spools(tmp_path: Path, signer: Signer) -> None:
    events = make_events(tmp_path, signer, 2)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        sink = SyslogSinkConfig(
            name="tcp", type="syslog", host="127.0.0.1", port=port, transport="tcp", timeout_seconds=2
        )
        [report] = SiemDispatcher(SiemConfig(sinks=[sink]), state_dir=tmp_path).publish(events)
    assert not report.ok and report.spooled == 2 and (tmp_path / "tcp.spool.jsonl").exists()


# --------------------------------------------------------------------------------------------------
# Splunk HEC


class Hec:
    """A Splunk HEC stand-in on 127.0.0.1: records accepted requests; answers 503 while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.fail_after: int | None = None  # go down after this many accepted requests
        self.accepted: list[dict[str, Any]] = []
        self.rejected = 0
        hec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hec.fail_after is not None and len(hec.accepted) >= hec.fail_after:
                    hec.down = True
                if hec.down:
                    hec.rejected += 1
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b'{"text":"Server is busy","code":9}')
                    return
                hec.accepted.append({"path": self.path, "auth": self.headers["Authorization"], "body": body})
                payload = b'{"text":"Success","code":0}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def envelopes(self) -> list[dict[str, Any]]:
        return [json.loads(line) for req in self.accepted for line in req["body"].decode().splitlines()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hec(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hec]:
    monkeypatch.setenv("GB_TEST_HEC_TOKEN", HEC_TOKEN)
    server = Hec()
    yield server
    server.close()


def hec_config(url: str, **kw: Any) -> SiemConfig:
    sink = HecSinkConfig(
        name="splunk", type="splunk_hec", url=url, token_env="GB_TEST_HEC_TOKEN", backoff_seconds=0.01, **kw
    )
    return SiemConfig(sinks=[sink])


def test_hec_receives_events_with_the_splunk_auth_header(tmp_path: Path, signer: Signer, hec: Hec) -> None:
    events = make_events(tmp_path, signer, 3)
    [report] = SiemDispatcher(hec_config(hec.url, index="glassbox"), state_dir=tmp_path).publish(events)
    assert report.ok and report.sent == 3
    assert [r["path"] for r in hec.accepted] == ["/services/collector/event"]
    assert hec.accepted[0]["auth"] == f"Splunk {HEC_TOKEN}"
    envs = hec.envelopes()
    assert [e["event"]["metadata"]["uid"] for e in envs] == [e.digest for e in events]
    assert all(e["fields"]["idempotency_key"] == e["event"]["metadata"]["uid"] for e in envs)
    assert all(e["index"] == "glassbox" and e["sourcetype"] == "glassbox:ocsf" for e in envs)


def test_hec_down_spools_then_delivers_in_order_none_lost_none_duplicated(
    tmp_path: Path, signer: Signer, hec: Hec
) -> None:
    events = make_events(tmp_path, signer, 6)
    sleeps: list[float] = []
    dispatcher = SiemDispatcher(
        hec_config(hec.url, max_retries=2, batch_size=2), state_dir=tmp_path / "state", sleep=sleeps.append
    )
    hec.down = True
    first = dispatcher.publish(events[:3])[0]
    assert (first.ok, first.sent, first.spooled) == (False, 0, 3)
    assert sleeps == [0.01, 0.02]  # exponential backoff between the 3 attempts
    second = dispatcher.publish(events[3:5])[0]
    assert (second.sent, second.spooled) == (0, 5)
    assert hec.accepted == [] and hec.rejected == 6
    hec.down = False
    third = dispatcher.publish(events[5:])[0]
    assert third.ok and (third.sent, third.flushed, third.spooled) == (6, 5, 0)
    keys = [e["fields"]["idempotency_key"] for e in hec.envelopes()]
    assert keys == [e.digest for e in events]  # in ledger order, each once
    assert not (tmp_path / "state" / "splunk.spool.jsonl").exists()
    # a replay of events already spooled does not duplicate them inside one delivery
    hec.down = True
    dispatcher.publish(events[:2])
    dispatcher.publish(events[:2])
    hec.down = False
    dispatcher.publish([])
    assert [e["fields"]["idempotency_key"] for e in hec.envelopes()][6:] == [e.digest for e in events[:2]]


def test_hec_unreachable_spools(tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GB_TEST_HEC_TOKEN", HEC_TOKEN)
    events = make_events(tmp_path, signer, 2)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        [report] = SiemDispatcher(hec_config(url, max_retries=1), state_dir=tmp_path, sleep=no_sleep).publish(events)
    assert report.spooled == 2 and "gave up after 2 attempts" in (report.error or "")
    spooled = [json.loads(line) for line in (tmp_path / "splunk.spool.jsonl").read_text().splitlines()]
    assert [event_key(s) for s in spooled] == [e.digest for e in events]


def test_a_partly_delivered_batch_spools_only_the_rest(tmp_path: Path, signer: Signer, hec: Hec) -> None:
    events = make_events(tmp_path, signer, 5)
    hec.fail_after = 1  # the first request (2 events) goes through, then the sink is down
    dispatcher = SiemDispatcher(hec_config(hec.url, max_retries=0, batch_size=2), state_dir=tmp_path)
    [report] = dispatcher.publish(events)
    assert (report.sent, report.spooled) == (2, 3)
    hec.fail_after = None
    hec.down = False
    [report] = dispatcher.publish([])
    assert (report.sent, report.flushed, report.spooled) == (3, 3, 0)
    assert [e["fields"]["idempotency_key"] for e in hec.envelopes()] == [e.digest for e in events]


def test_hec_token_is_never_logged_or_reported(
    tmp_path: Path, signer: Signer, hec: Hec, caplog: pytest.LogCaptureFixture
) -> None:
    events = make_events(tmp_path, signer, 1)
    hec.down = True
    dispatcher = SiemDispatcher(hec_config(hec.url, max_retries=0), state_dir=tmp_path)
    with caplog.at_level(logging.DEBUG):
        [report] = dispatcher.publish(events)
    assert not report.ok
    assert HEC_TOKEN not in caplog.text and HEC_TOKEN not in (report.error or "")
    assert HEC_TOKEN not in repr(dispatcher.sinks["splunk"])
    spool = (tmp_path / "splunk.spool.jsonl").read_text()
    assert HEC_TOKEN not in spool


def test_hec_without_its_token_spools(tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GB_TEST_HEC_TOKEN", raising=False)
    [report] = SiemDispatcher(hec_config("http://127.0.0.1:9"), state_dir=tmp_path).publish(
        make_events(tmp_path, signer, 1)
    )
    assert report.spooled == 1 and "GB_TEST_HEC_TOKEN is not set" in (report.error or "")


# --------------------------------------------------------------------------------------------------
# secrets, file sink, config, CLI


def test_a_secret_in_reason_or_details_reaches_no_sink_in_clear(tmp_path: Path, signer: Signer, hec: Hec) -> None:
    events = make_events(tmp_path, signer, 1, reason=f"leaked {GH_TOKEN}", ticket=f"password={PASSWORD}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(5)
        config = SiemConfig(
            sinks=[
                FileSinkConfig(name="file", type="file", path="out.jsonl"),
                FileSinkConfig(name="cef", type="file", path="out.cef", format="cef"),
                SyslogSinkConfig(name="udp", type="syslog", host="127.0.0.1", port=udp.getsockname()[1], format="ecs"),
                HecSinkConfig(name="splunk", type="splunk_hec", url=hec.url, token_env="GB_TEST_HEC_TOKEN"),
            ]
        )
        reports = SiemDispatcher(config, state_dir=tmp_path).publish(events)
        datagram = udp.recvfrom(65535)[0]
    assert all(r.ok for r in reports), [r.error for r in reports]
    outputs = [(tmp_path / "out.jsonl").read_bytes(), (tmp_path / "out.cef").read_bytes(), datagram]
    outputs += [r["body"] for r in hec.accepted]
    for raw in outputs:
        assert GH_TOKEN.encode() not in raw and PASSWORD.encode() not in raw
        assert b"REDACTED" in raw


def test_file_sink_appends_jsonl(tmp_path: Path, signer: Signer) -> None:
    events = make_events(tmp_path, signer, 2)
    dispatcher = SiemDispatcher(state_dir=tmp_path)  # the default config: one JSONL file sink
    dispatcher.publish(events[:1])
    dispatcher.publish(events[1:])
    lines = (tmp_path / "events.ocsf.jsonl").read_text().splitlines()
    assert [json.loads(line)["metadata"]["sequence"] for line in lines] == [1, 2]


def test_committed_siem_config_and_schema_are_in_step() -> None:
    committed = json.loads((REPO_ROOT / "registry" / "schema" / "siem.schema.json").read_text())
    assert committed == siem_schema()
    config = load_siem_config(REPO_ROOT / "registry" / "siem.yaml")
    assert [s.name for s in config.sinks] == ["file"]
    assert load_siem_config(None) == SiemConfig()


def test_bad_siem_config_names_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "siem.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "schema_version": 1,
                "sinks": [
                    {"name": "s", "type": "splunk_hec", "url": "ftp://x", "token_env": "lower"},
                    {"name": "t", "type": "syslog", "host": "h", "transport": "sctp"},
                ],
            }
        )
    )
    with pytest.raises(ValidationFailed) as err:
        load_siem_config(path)
    assert len(err.value.problems) >= 1
    duplicate = SiemConfig(sinks=[FileSinkConfig(name="a", type="file", path="x")])
    with pytest.raises(UserError, match="unknown SIEM sink 'b'"):
        duplicate.sink("b")


def _app() -> typer.Typer:
    app = typer.Typer()
    audit_cmd.register(app)
    return app


def test_cli_export_formats_and_replay_to_a_sink(tmp_path: Path, signer: Signer) -> None:
    make_events(tmp_path, signer, 2)
    ledger = str(tmp_path / "ledger.jsonl")
    runner = CliRunner()
    missing = str(tmp_path / "none.yaml")
    result = runner.invoke(_app(), ["audit", "export", "--format", "cef", "--ledger", ledger, "--siem-config", missing])
    assert result.exit_code == 0, result.output
    assert [line[:6] for line in result.output.splitlines()] == ["CEF:0|", "CEF:0|"]
    out = tmp_path / "x" / "ecs.jsonl"
    args = ["audit", "export", "--format", "ecs", "--ledger", ledger, "--siem-config", missing]
    result = runner.invoke(_app(), [*args, "--out", str(out), "--since", "2026-11-25T10:01:00Z"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["event"]["sequence"] for line in out.read_text().splitlines()] == [2]
    config = tmp_path / "siem.yaml"
    config.write_text(yaml.safe_dump({"sinks": [{"name": "archive", "type": "file", "path": "replay.jsonl"}]}))
    args = ["audit", "export", "--sink", "archive", "--ledger", ledger, "--siem-config", str(config)]
    result = runner.invoke(_app(), [*args, "--siem-dir", str(tmp_path / "state"), "--output", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sinks"][0]["sent"] == 2
    assert len((tmp_path / "state" / "replay.jsonl").read_text().splitlines()) == 2
    result = runner.invoke(_app(), ["audit", "export", "--ledger", ledger, "--since", "yesterday"])
    assert result.exit_code != 0
