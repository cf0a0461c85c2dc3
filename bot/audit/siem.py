"""Live SIEM sinks for the audit trail: JSONL file, syslog (RFC 5424 over UDP, TCP or TLS) and Splunk HEC.

One config file says where events go (``registry/siem.yaml``, JSON Schema ``registry/schema/siem.schema.json``;
without it, one JSONL file sink). :class:`SiemDispatcher` maps ledger events to OCSF once
(:mod:`bot.audit.ocsf`, redacted there) and hands them to every sink in the sink's format (ocsf, ecs, cef).

Delivery to a network sink that can be down (Splunk HEC, syslog over TCP or TLS) is at-least-once: events that
could not be sent are appended to the sink's **spool** (a JSONL file of already-redacted events), and the
spool is flushed, in order and ahead of new events, on the next successful send. Each event carries its
OCSF ``metadata.uid`` (the ledger digest, or ``<digest>#<kind>`` for a derived finding) as an idempotency
key, and the spool never holds the same key twice. Syslog over UDP is fire-and-forget by nature.

Syslog over TLS follows RFC 5425: octet-counted frames, TLS 1.2 or later, the receiver's certificate verified
against ``ca_file`` (else the system trust store) and its name checked against ``host``, always; an optional
client certificate for mutual TLS. A handshake that fails (untrusted certificate, wrong name, client certificate
refused) is a delivery failure naming the cause, and the events stay in the spool.

Networking is the standard library only (``socket``, ``ssl``, ``http.client``). A HEC token is read from the
environment variable named in the config when a request is made, and never logged or stored.
Operational problems go to ``logging`` (logger ``glassbox.siem``), never into the compliance ledger.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from bot.audit.ocsf import API_ACTIVITY, COMPLIANCE_FINDING, DETECTION_FINDING, Detections, OcsfMapper, render, to_ecs
from bot.errors import UserError
from bot.records import AuditEvent, Identifier, Record
from bot.registry import config_schema, load_config
from bot.trust.ledger import exclusive_lock

log = logging.getLogger("glassbox.siem")

DOCUMENTATION_PEN = 32473  # the private enterprise number reserved for documentation (RFC 5612)
TLS_PORT = 6514  # syslog over TLS (RFC 5425)
UTF8_BOM = b"\xef\xbb\xbf"
MAX_UDP_PAYLOAD = 65507
Format = Literal["ocsf", "ecs", "cef"]

# --------------------------------------------------------------------------------------------------
# config


class FileSinkConfig(Record):
    name: Identifier
    type: Literal["file"]
    path: str = Field(min_length=1, description="JSONL file; relative paths resolve under the SIEM state dir.")
    format: Format = "ocsf"


class SyslogSinkConfig(Record):
    name: Identifier
    type: Literal["syslog"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535, description="Default: 6514 for tls, 514 otherwise.")
    transport: Literal["udp", "tcp", "tls"] = Field(
        default="udp", description="tls: RFC 5425 (octet-counted, certificate verified); udp is fire-and-forget."
    )
    enterprise_number: int = Field(
        default=DOCUMENTATION_PEN,
        ge=1,
        description="The IANA private enterprise number in the structured-data id glassbox@<number>. The default, "
        "32473, is the documentation number: set your own PEN.",
    )
    ca_file: str | None = Field(
        default=None,
        min_length=1,
        description="tls: PEM bundle of the CA(s) that may sign the receiver's certificate (only these are "
        "trusted). Default: the system trust store. Relative paths resolve under the SIEM state dir.",
    )
    client_cert_file: str | None = Field(
        default=None, min_length=1, description="tls: PEM client certificate for mutual TLS (with its chain)."
    )
    client_key_file: str | None = Field(
        default=None,
        min_length=1,
        description="tls: unencrypted PEM key of client_cert_file. Default: the key is in client_cert_file.",
    )
    facility: int = Field(default=13, ge=0, le=23, description="13 = log audit.")
    app_name: str = Field(default="glassbox", pattern=r"^[!-~]{1,48}$")
    hostname: str | None = Field(default=None, pattern=r"^[!-~]{1,255}$", description="Default: this host's name.")
    format: Format = "ocsf"
    timeout_seconds: float = Field(default=5.0, gt=0)
    spool: str | None = Field(
        default=None, description="tcp and tls only. Default: <name>.spool.jsonl in the state dir."
    )

    @model_validator(mode="after")
    def _tls_settings(self) -> SyslogSinkConfig:
        if self.transport != "tls":
            given = [k for k in ("ca_file", "client_cert_file", "client_key_file") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} apply to transport tls only (transport is {self.transport})")
        if self.client_key_file is not None and self.client_cert_file is None:
            raise ValueError("client_key_file needs client_cert_file")
        return self

    @property
    def port_number(self) -> int:
        return self.port if self.port is not None else TLS_PORT if self.transport == "tls" else 514

    @property
    def uses_spool(self) -> bool:
        """Whether delivery is acknowledged by a connection (tcp, tls), so undelivered events are spooled."""
        return self.transport != "udp"


class HecSinkConfig(Record):
    name: Identifier
    type: Literal["splunk_hec"]
    url: str = Field(pattern=r"^https?://[^/\s]+(/\S*)?$", description="Base URL, e.g. https://splunk:8088")
    token_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$", description="Environment variable holding the HEC token.")
    index: str | None = None
    source: str = "glassbox"
    sourcetype: str = "glassbox:ocsf"
    format: Format = "ocsf"
    spool: str | None = Field(default=None, description="Default: <name>.spool.jsonl in the state dir.")
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0)
    max_backoff_seconds: float = Field(default=30.0, ge=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    batch_size: int = Field(default=100, ge=1, le=10000)
    tls_verify: bool = True
    ca_file: str | None = None


SinkConfig = Annotated[FileSinkConfig | SyslogSinkConfig | HecSinkConfig, Field(discriminator="type")]


def _default_sinks() -> list[SinkConfig]:
    return [FileSinkConfig(name="file", type="file", path="events.ocsf.jsonl")]


class SiemConfig(Record):
    schema_version: Literal[1] = 1
    detections: Detections = Field(default_factory=Detections)
    sinks: list[SinkConfig] = Field(default_factory=_default_sinks)

    @model_validator(mode="after")
    def _unique(self) -> SiemConfig:
        names = [s.name for s in self.sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate sink names: {', '.join(dupes)}")
        return self

    def sink(self, name: str) -> SinkConfig:
        for s in self.sinks:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.sinks) or "none"
        raise UserError(f"unknown SIEM sink {name!r}; configured sinks: {known}")


def siem_schema() -> dict[str, Any]:
    return config_schema(SiemConfig, "siem")


def load_siem_config(path: Path | None) -> SiemConfig:
    """The SIEM config at ``path`` (schema-checked, then parsed); the default JSONL sink when absent."""
    if path is None or not path.exists():
        return SiemConfig()
    return load_config(path, SiemConfig, name="siem", what="SIEM config")


def default_state_dir() -> Path:
    """Where relative sink paths and spools live: $GLASSBOX_SIEM_DIR, else the user data dir."""
    env = os.environ.get("GLASSBOX_SIEM_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("glassbox")) / "siem"


# --------------------------------------------------------------------------------------------------
# sinks


class SinkError(Exception):
    """A sink could not take every event; the first ``delivered`` of them did arrive."""

    def __init__(self, message: str, *, delivered: int = 0) -> None:
        super().__init__(message)
        self.delivered = delivered


class Sink(Protocol):
    name: str

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Deliver OCSF events in order; raise SinkError(delivered=n) when only the first n arrived."""


def _hostname() -> str:
    name = "".join(ch for ch in socket.gethostname() if "!" <= ch <= "~")[:255]
    return name or "-"


class FileSink:
    def __init__(self, config: FileSinkConfig, path: Path) -> None:
        self.name = config.name
        self.format = config.format
        self.path = path

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        if not events:
            return
        data = "".join(render(e, self.format) + "\n" for e in events).encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SinkError(f"{self.path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------------------
# syslog RFC 5424

_SYSLOG_SEVERITY = {0: 6, 1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1}  # OCSF severity_id → syslog severity
_MSGID = {
    API_ACTIVITY: "api_activity",
    COMPLIANCE_FINDING: "compliance_finding",
    DETECTION_FINDING: "detection_finding",
}


def sd_escape(value: str) -> str:
    """An SD-PARAM value: '"', '\\' and ']' escaped with a backslash (RFC 5424 section 6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def sd_id(enterprise_number: int) -> str:
    """The glassbox STRUCTURED-DATA id: ``name@<private enterprise number>`` (RFC 5424 section 6.3.2)."""
    return f"glassbox@{enterprise_number}"


def syslog_message(
    ocsf: Mapping[str, Any],
    payload: str,
    *,
    facility: int,
    app_name: str,
    hostname: str,
    procid: str,
    enterprise_number: int,
) -> bytes:
    """One RFC 5424 message: header, the glassbox STRUCTURED-DATA element, then BOM + UTF-8 payload."""
    pri = facility * 8 + _SYSLOG_SEVERITY.get(int(ocsf.get("severity_id", 1)), 5)
    ts = datetime.fromtimestamp(int(ocsf["time"]) / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    meta = ocsf.get("metadata", {})
    params = [
        ("correlation_id", meta.get("correlation_uid")),
        ("seq", meta.get("sequence")),
        ("digest", meta.get("original_event_uid")),
        ("uid", meta.get("uid")),
        ("class_uid", ocsf.get("class_uid")),
    ]
    sd = (
        "["
        + sd_id(enterprise_number)
        + "".join(f' {k}="{sd_escape(str(v))}"' for k, v in params if v is not None)
        + "]"
    )
    msgid = _MSGID.get(int(ocsf.get("class_uid", 0)), "-")
    header = f"<{pri}>1 {ts} {hostname} {app_name} {procid} {msgid} {sd} "
    return header.encode("ascii", errors="replace") + UTF8_BOM + payload.encode("utf-8")


def octet_frame(message: bytes) -> bytes:
    """Octet counting, ``MSG-LEN SP SYSLOG-MSG``: RFC 6587 section 3.4.1 (TCP), RFC 5425 section 4.3 (TLS)."""
    return str(len(message)).encode("ascii") + b" " + message


class SyslogSink:
    def __init__(self, config: SyslogSinkConfig, resolve: Callable[[str], Path] = Path) -> None:
        self.name = config.name
        self.config = config
        self.hostname = config.hostname or _hostname()
        self.resolve = resolve  # where ca_file and the client certificate files are

    def _messages(self, events: Sequence[Mapping[str, Any]]) -> list[bytes]:
        c = self.config
        return [
            syslog_message(
                e,
                render(e, c.format),
                facility=c.facility,
                app_name=c.app_name,
                hostname=self.hostname,
                procid=str(os.getpid()),
                enterprise_number=c.enterprise_number,
            )
            for e in events
        ]

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        if not events:
            return
        messages = self._messages(events)
        c = self.config
        if c.transport == "tls":
            self._send_tls(messages)
            return
        if c.transport == "udp":
            sent = 0
            with socket.socket(socket.AF_INET6 if ":" in c.host else socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for msg in messages:
                    if len(msg) > MAX_UDP_PAYLOAD:
                        raise SinkError(
                            f"syslog/udp: a {len(msg)}-byte message does not fit a datagram; use tcp", delivered=sent
                        )
                    try:
                        sock.sendto(msg, (c.host, c.port_number))
                    except OSError as exc:
                        raise SinkError(
                            f"syslog/udp {c.host}:{c.port_number}: {exc.strerror or exc}", delivered=sent
                        ) from None
                    sent += 1
            return
        sent = 0
        try:
            with socket.create_connection((c.host, c.port_number), timeout=c.timeout_seconds) as sock:
                for msg in messages:
                    sock.sendall(octet_frame(msg))
                    sent += 1
        except OSError as exc:
            # a TCP send can succeed locally and still be lost; count nothing of the failed connection as sure
            raise SinkError(
                f"syslog/tcp {c.host}:{c.port_number}: {exc.strerror or exc}",
                delivered=0 if sent < len(messages) else sent,
            ) from None

    def tls_context(self) -> ssl.SSLContext:
        """The client context: TLS 1.2 or later, certificate and host name verified, optional client certificate."""
        c = self.config
        where = f"syslog/tls {self.name}"
        ca = self.resolve(c.ca_file) if c.ca_file else None
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise SinkError(f"{where}: cannot load ca_file {ca}: {_reason(exc)}") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED  # the defaults already; stated so no one has to look them up
        ctx.check_hostname = True
        if c.client_cert_file:
            cert = self.resolve(c.client_cert_file)
            key = self.resolve(c.client_key_file) if c.client_key_file else None
            try:
                ctx.load_cert_chain(cert, key, password=_no_password)
            except (OSError, ssl.SSLError, _EncryptedKey) as exc:
                files = f"{cert}" + (f" / {key}" if key else "")
                raise SinkError(f"{where}: cannot load the client certificate {files}: {_reason(exc)}") from None
        return ctx

    def _send_tls(self, messages: Sequence[bytes]) -> None:
        c = self.config
        where = f"syslog/tls {c.host}:{c.port_number}"
        ctx = self.tls_context()
        try:
            raw = socket.create_connection((c.host, c.port_number), timeout=c.timeout_seconds)
        except OSError as exc:
            raise SinkError(f"{where}: {_reason(exc)}") from None
        with raw:
            try:
                tls = ctx.wrap_socket(raw, server_hostname=c.host)
            except ssl.SSLCertVerificationError as exc:
                raise SinkError(
                    f"{where}: TLS handshake failed: certificate verify failed: {exc.verify_message} "
                    f"(the receiver's certificate must be signed by {c.ca_file or 'a CA in the system trust store'} "
                    f"and name {c.host})"
                ) from None
            except (ssl.SSLError, OSError) as exc:
                raise SinkError(f"{where}: TLS handshake failed: {_reason(exc)}") from None
            with tls:
                try:
                    _await_acceptance(tls, min(c.timeout_seconds, ACCEPTANCE_WAIT_SECONDS))
                except (ssl.SSLError, OSError, ConnectionError) as exc:
                    raise SinkError(f"{where}: TLS handshake failed: the receiver refused: {_reason(exc)}") from None
                try:
                    for msg in messages:
                        tls.sendall(octet_frame(msg))
                    _close(tls)
                except OSError as exc:
                    # nothing of a session that broke is sure to have arrived: all of it stays spooled
                    raise SinkError(f"{where}: {_reason(exc)}") from None


ACCEPTANCE_WAIT_SECONDS = 1.0


class _EncryptedKey(Exception):
    def __str__(self) -> str:
        return "the key is encrypted; give an unencrypted key file readable only by glassbox"


def _no_password() -> str:
    raise _EncryptedKey  # never let OpenSSL prompt on a terminal


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.reason.lower().replace('_', ' ')} ({exc.reason})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _await_acceptance(tls: ssl.SSLSocket, wait: float) -> None:
    """Under TLS 1.3 the receiver judges a client certificate (or its absence) after the client's handshake is
    done: wait for its verdict before sending any event. An OpenSSL or GnuTLS receiver that accepts sends a
    session ticket at once; one that refuses sends an alert, raised here. Without either within ``wait``, go on.
    Under TLS 1.2 that verdict was part of the handshake."""
    if tls.version() != "TLSv1.3":
        return
    timeout = tls.gettimeout()
    deadline = time.monotonic() + wait
    tls.setblocking(False)
    try:
        while not (tls.session is not None and tls.session.has_ticket):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            select.select([tls], [], [], remaining)
            try:
                data = tls.recv(1)
            except ssl.SSLWantReadError:
                continue
            if not data:
                raise ConnectionError("the receiver closed the connection")
            raise ConnectionError("the receiver sent data; a syslog receiver never does")
    finally:
        tls.settimeout(timeout)


def _close(tls: ssl.SSLSocket) -> None:
    """End the session with close_notify; a receiver that closes TCP without answering it is fine."""
    with suppress(ssl.SSLEOFError):
        tls.unwrap()


# --------------------------------------------------------------------------------------------------
# Splunk HTTP Event Collector


class _Retryable(Exception):
    pass


class HecSink:
    def __init__(
        self, config: HecSinkConfig, *, sleep: Callable[[float], None] = time.sleep, hostname: str | None = None
    ) -> None:
        self.name = config.name
        self.config = config
        self.sleep = sleep
        self.host_field = hostname or _hostname()
        parts = urlsplit(config.url)
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._path = parts.path.rstrip("/") + "/services/collector/event"

    def __repr__(self) -> str:  # never show the token, even by accident
        return f"HecSink(name={self.name!r}, url={self.config.url!r})"

    def _token(self) -> str:
        token = os.environ.get(self.config.token_env)
        if not token:
            raise SinkError(f"splunk_hec {self.name}: environment variable {self.config.token_env} is not set")
        return token

    def payload(self, events: Sequence[Mapping[str, Any]]) -> bytes:
        """Stacked HEC event envelopes; ``fields.idempotency_key`` lets the receiver drop a repeat."""
        c = self.config
        out = []
        for e in events:
            meta = e.get("metadata", {})
            body: Any = e if c.format == "ocsf" else to_ecs(e) if c.format == "ecs" else render(e, "cef")
            envelope: dict[str, Any] = {
                "time": int(e["time"]) / 1000,
                "host": self.host_field,
                "source": c.source,
                "sourcetype": c.sourcetype,
                "event": body,
                "fields": {
                    "idempotency_key": str(meta.get("uid", "")),
                    "correlation_id": str(meta.get("correlation_uid", "")),
                    "ocsf_class_uid": str(e.get("class_uid", "")),
                },
            }
            if c.index:
                envelope["index"] = c.index
            out.append(json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        return "\n".join(out).encode("utf-8")

    def _connection(self) -> http.client.HTTPConnection:
        c = self.config
        if self._scheme == "https":
            ctx = ssl.create_default_context(cafile=c.ca_file)
            if not c.tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(self._netloc, timeout=c.timeout_seconds, context=ctx)
        return http.client.HTTPConnection(self._netloc, timeout=c.timeout_seconds)

    def _post(self, body: bytes, token: str) -> None:
        conn = self._connection()
        try:
            conn.request(
                "POST",
                self._path,
                body=body,
                headers={"Authorization": f"Splunk {token}", "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            raw = resp.read(65536)
        except (OSError, http.client.HTTPException) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
        if resp.status == 200:
            try:
                code = json.loads(raw or b"{}").get("code", 0)
            except ValueError:
                code = 0
            if code == 0:
                return
            raise SinkError(f"HEC answered code {code}")
        text = raw[:200].decode("utf-8", errors="replace")
        if resp.status == 429 or resp.status >= 500:
            raise _Retryable(f"HTTP {resp.status}: {text}")
        raise SinkError(f"HTTP {resp.status}: {text}")

    def _post_with_retries(self, body: bytes, token: str) -> None:
        c = self.config
        last = ""
        for attempt in range(c.max_retries + 1):
            try:
                self._post(body, token)
                return
            except _Retryable as exc:
                last = str(exc)
                if attempt < c.max_retries:
                    self.sleep(min(c.backoff_seconds * 2**attempt, c.max_backoff_seconds))
        raise SinkError(f"gave up after {c.max_retries + 1} attempts: {last}")

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        if not events:
            return
        token = self._token()
        delivered = 0
        size = self.config.batch_size
        for start in range(0, len(events), size):
            chunk = events[start : start + size]
            try:
                self._post_with_retries(self.payload(chunk), token)
            except SinkError as exc:
                raise SinkError(f"splunk_hec {self.name} {self.config.url}: {exc}", delivered=delivered) from None
            delivered += len(chunk)


# --------------------------------------------------------------------------------------------------
# the spool


class Spool:
    """Events a sink could not take yet, oldest first, one JSON object per line, no key twice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def locked(self) -> Iterator[None]:
        with exclusive_lock(self.lock_path, 0o600):
            yield

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    log.warning("spool %s: skipping an unreadable line", self.path)
        return out

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Replace the spool's content atomically (temp file + rename)."""
        if not events:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = "".join(json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n" for e in events)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def event_key(ocsf: Mapping[str, Any]) -> str:
    return str(ocsf.get("metadata", {}).get("uid", ""))


def _dedupe(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    seen: set[str] = set()
    out = []
    for e in events:
        key = event_key(e)
        if key in seen:
            continue
        seen.add(key)
        out.append(e)
    return out


# --------------------------------------------------------------------------------------------------
# the dispatcher


@dataclass
class SinkReport:
    name: str
    sent: int = 0
    flushed: int = 0  # of those sent, how many came from the spool
    spooled: int = 0  # now waiting in the spool
    failed: int = 0  # lost (a sink without a spool that failed)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "sent": self.sent,
            "flushed": self.flushed,
            "spooled": self.spooled,
            "failed": self.failed,
            "error": self.error,
        }


class SiemDispatcher:
    """Publish ledger events to every configured sink (or one, for replays)."""

    def __init__(
        self,
        config: SiemConfig | None = None,
        *,
        state_dir: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config or SiemConfig()
        self.state_dir = state_dir or default_state_dir()
        self.mapper = OcsfMapper(self.config.detections)
        self.sinks: dict[str, Sink] = {}
        self.spools: dict[str, Spool] = {}
        for cfg in self.config.sinks:
            if isinstance(cfg, FileSinkConfig):
                self.sinks[cfg.name] = FileSink(cfg, self._resolve(cfg.path))
            elif isinstance(cfg, SyslogSinkConfig):
                self.sinks[cfg.name] = SyslogSink(cfg, self._resolve)
                if cfg.uses_spool:
                    self.spools[cfg.name] = Spool(self._resolve(cfg.spool or f"{cfg.name}.spool.jsonl"))
            else:
                self.sinks[cfg.name] = HecSink(cfg, sleep=sleep)
                self.spools[cfg.name] = Spool(self._resolve(cfg.spool or f"{cfg.name}.spool.jsonl"))

    def _resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.state_dir / p

    def publish(
        self,
        events: Iterable[AuditEvent],
        *,
        sink: str | None = None,
        high_water: Mapping[str, Any] | None = None,
    ) -> list[SinkReport]:
        """Map ``events`` (in ledger order) to OCSF and deliver them; never raises for a sink that is down."""
        return self.deliver(self.mapper.map_all(events, high_water=high_water), sink=sink)

    def deliver(self, ocsf_events: Sequence[Mapping[str, Any]], *, sink: str | None = None) -> list[SinkReport]:
        names = [self.config.sink(sink).name] if sink else list(self.sinks)
        return [self._deliver_one(name, ocsf_events) for name in names]

    def _deliver_one(self, name: str, events: Sequence[Mapping[str, Any]]) -> SinkReport:
        target = self.sinks[name]
        spool = self.spools.get(name)
        report = SinkReport(name=name)
        if spool is None:
            try:
                target.send(events)
                report.sent = len(events)
            except SinkError as exc:
                report.sent, report.failed, report.error = exc.delivered, len(events) - exc.delivered, str(exc)
                log.warning("SIEM sink %s lost %d event(s): %s", name, report.failed, exc)
            return report
        with spool.locked():
            pending = spool.read()
            batch = _dedupe([*pending, *events])
            try:
                target.send(batch)
            except SinkError as exc:
                rest = batch[exc.delivered :]
                spool.write(rest)
                report.sent = exc.delivered
                report.flushed = min(exc.delivered, len(pending))
                report.spooled = len(rest)
                report.error = str(exc)
                log.warning("SIEM sink %s is down; %d event(s) spooled in %s: %s", name, len(rest), spool.path, exc)
                return report
            spool.write([])
            report.sent, report.flushed = len(batch), len(_dedupe(pending))
            return report
