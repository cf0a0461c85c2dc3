"""Throwaway X.509 material and a real RFC 5425 receiver (Python ``ssl`` over TCP on 127.0.0.1) for SIEM tests."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its unencrypted key, as PEM files."""

    cert: Path
    key: Path


@dataclass
class CertificateAuthority:
    """A CA that can sign server and client certificates; ``pem`` is the file to configure as ``ca_file``."""

    name: str
    directory: Path
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.directory / f"{self.name}.ca.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, hosts: list[str] | None = None, client: bool = False) -> Issued:
        """A leaf certificate for ``hosts`` (DNS names or IP addresses), for a server or (``client``) a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        sans: list[x509.GeneralName] = []
        for host in hosts or []:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        issued = Issued(cert=self.directory / f"{name}.pem", key=self.directory / f"{name}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        issued.key.chmod(0o600)
        return issued


@dataclass
class Receiver:
    """What an RFC 5425 receiver saw: octet-counted frames, and why any handshake it ran failed."""

    port: int
    streams: list[bytes] = field(default_factory=list)  # one per connection whose session completed
    handshake_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def frames(self) -> list[bytes]:
        """Every message received, in order (read it after the receiver has stopped)."""
        return [frame for stream in self.streams for frame in parse_frames(stream)]


def parse_frames(data: bytes) -> list[bytes]:
    """Split an RFC 5425 section 4.3 stream (``MSG-LEN SP SYSLOG-MSG``...) into messages; a bad frame fails."""
    frames = []
    while data:
        length, sep, rest = data.partition(b" ")
        assert sep and length.isdigit() and not length.startswith(b"0"), data[:40]
        assert len(rest) >= int(length), f"truncated frame: {len(rest)} < {length!r}"
        frames.append(rest[: int(length)])
        data = rest[int(length) :]
    return frames


@contextmanager
def tls_receiver(
    server: Issued,
    *,
    client_ca: Path | None = None,
    maximum_version: ssl.TLSVersion | None = None,
) -> Iterator[Receiver]:
    """A syslog-over-TLS receiver on 127.0.0.1 presenting ``server``; with ``client_ca`` it requires client certs.

    Each connection's bytes are recorded once its sender closes the session (close_notify or EOF); read
    ``frames`` after the ``with`` block, when every connection has been served.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server.cert, server.key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    if maximum_version is not None:
        with warnings.catch_warnings():  # an outdated receiver on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = maximum_version
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    receiver = Receiver(port=listener.getsockname()[1])
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        conn.settimeout(10)
        data = bytearray()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                while chunk := tls.recv(65536):
                    data.extend(chunk)
                with suppress(ssl.SSLError, OSError):
                    tls.unwrap()
        except ssl.SSLError as exc:
            with receiver.lock:
                receiver.handshake_errors.append(exc.reason or str(exc))
            return
        except OSError:
            return
        finally:
            conn.close()
        with receiver.lock:
            receiver.streams.append(bytes(data))

    threads: list[threading.Thread] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=serve, args=(conn,), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield receiver
    finally:
        stop.set()
        acceptor.join(5)
        for thread in threads:
            thread.join(10)
        listener.close()
