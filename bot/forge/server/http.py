"""The HTTP face of the embedded forge: a stdlib ``ThreadingHTTPServer`` bound to 127.0.0.1 only.

It reads a request, hands it to :class:`bot.forge.server.app.ForgeApp` and writes the answer (or drops the
connection when a fault says so). Logs go to stderr (or a given stream) and never carry a token: the
request line is logged without its query string's secrets, headers are never logged, and anything that
looks like a forge token is scrubbed from every line, tracebacks included.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

from bot.forge.server import shapes
from bot.forge.server.api import Response
from bot.forge.server.app import MAX_BODY_BYTES, ForgeApp
from bot.forge.server.shapes import Urls

HOST = "127.0.0.1"
_SECRET = re.compile(r"(gbt_[A-Za-z0-9_-]+|(?i:(?:token|bearer)\s+)\S+|(?i:access_token|token)=[^&\s]+)")


def scrub(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


def _content_length(value: str | None) -> int | None:
    """The declared body length; None when it is not a non-negative decimal number."""
    if value is None or value == "":
        return 0
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "glassbox-forge/1"
    server: ForgeHTTPServer

    def _serve(self) -> None:
        app = self.server.app
        try:
            headers = {k.lower(): v for k, v in self.headers.items()}
            length = _content_length(headers.get("content-length"))
            if length is None or length > MAX_BODY_BYTES:
                # unread bytes would be taken for the next request: answer, then close the connection
                self.close_connection = True
                response = Response(
                    400 if length is None else 413,
                    shapes.error("Invalid Content-Length" if length is None else "Request body too large"),
                )
            else:
                raw = self.rfile.read(length) if length else b""
                response = app.handle(self.command, self.path, headers, raw)
        except Exception:
            self.server.log("server error on " + self.command + " " + self.path.split("?", 1)[0])
            self.server.log(traceback.format_exc())
            response = Response(500, {"message": "Server Error", "documentation_url": "https://docs.github.com/rest"})
        if response.drop:
            # Close without a byte of answer: the client sees a dropped connection.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.log_message('"%s" dropped', self.requestline)
            return
        payload = response.encoded()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: object) -> None:
        self.server.log(f"{self.address_string()} {format % args}")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        self.server.log(f'{self.address_string()} "{self.command} {path}" {code}')


class ForgeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: ForgeApp, port: int, log: IO[str] | None = None) -> None:
        self.app = app
        self._log = log
        self._log_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)
        self.port = int(self.server_address[1])
        app.urls = Urls(f"http://{HOST}:{self.port}")

    def log(self, line: str) -> None:
        stream = self._log if self._log is not None else sys.stderr
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._log_lock:
            stream.write(f"{stamp} forge {scrub(line)}\n")
            stream.flush()

    def handle_error(self, request: object, client_address: object) -> None:
        self.log("connection error: " + traceback.format_exc(limit=3))

    @property
    def api_url(self) -> str:
        return self.app.urls.api


def start_forge(data_dir: Path, *, port: int = 0, log: IO[str] | None = None) -> tuple[str, Callable[[], None]]:
    """Serve ``data_dir`` from a background thread; return (PyGithub base URL, stop function)."""
    app = ForgeApp(data_dir)
    server = ForgeHTTPServer(app, port, log)
    thread = threading.Thread(
        target=lambda: server.serve_forever(poll_interval=0.05), name=f"forge-{server.port}", daemon=True
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        app.close()

    return server.api_url, stop


def serve(data_dir: Path, port: int, announce: Callable[[str], None], log: IO[str] | None = None) -> None:
    """Serve until interrupted; ``announce`` receives the API base URL once the port is bound."""
    app = ForgeApp(data_dir)
    server = ForgeHTTPServer(app, port, log)
    announce(server.api_url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.close()
