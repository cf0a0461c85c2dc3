"""Warm sandboxes: jails started ahead of time, with the interpreter running inside and Pulumi already
imported, each waiting for the one batch of jobs it will ever run.

A cold sandbox run (:func:`bot.plan.runner.run_jobs`) starts the launcher, builds the namespaces, starts the
interpreter and imports ``pulumi`` and ``pulumi_aws`` (≈0.5–1 s) before the program's own work. A long-lived
caller (the MCP server's :class:`bot.check.services.CheckServices`) holds a :class:`SandboxPool` instead: a few
jails (default 2, one per side of a plan) built by :func:`bot.plan.runner.launch` exactly as a cold one is, whose
interpreter (``python -m bot.plan.sandbox --warm``) has done only what does not depend on a program
(:func:`bot.plan.sandbox.preload`) and then blocks on stdin. ``run_jobs(..., pool=pool)`` takes one, delivers the
tree, sends the batch, collects, and stops it; the pool then starts the next one.

**Isolation is the cold sandbox's, unchanged.** Same launcher, namespaces, filesystem view, environment,
limits, uid, reaper and collector protocol. What differs is only *when* the jail was built, so what matters is
what exists in it before its batch arrives: the jail is started by trusted code (this module) only, with no PR
data (no tree, no job, no config); the only code that has run in it is glassbox's and the site-packages' import
of the SDK. It is **used once**: :meth:`SandboxPool.take` removes it from the pool, and
:meth:`SandboxPool.done` kills every process of it and deletes its directory whatever the batch did; no jail is
ever handed out twice, so nothing a program leaves behind (in its ``/tmp``, its processes, its environment, its
``sys.modules``) is seen by another program, a base never shares a jail with its head, and a PR never with
another PR.

**How the tree gets in: a bind-mounted empty directory, filled on arrival.** Each warm jail is started with one
extra read-only bind, an empty host directory of its own (``<scratch>/tree``, under a 0700 temporary directory),
in the place where a cold jail binds the exported tree. When the batch arrives, the parent copies the side's
exported tree into that host directory (the bind shows it to the jail at once) and only then writes the batch to
the interpreter's stdin. The alternative, streaming the tree over a pipe into the jail's private ``/tmp``, was
rejected: the tree would then be written by code inside the jail and be writable by the program (a cold jail's
tree is a read-only bind), and it would share the program's 64 MiB ``/tmp`` quota. With the bind, the program
sees the tree exactly as in a cold jail: read-only, at a host path it cannot write, holding what the export wrote.

**Limits.** The wall clock is the parent's: ``run_jobs``' deadline starts when the batch is submitted, so the idle
wait before it costs the program nothing (a jail still importing when taken is waited for within that deadline;
a cold run spends the same time inside its timeout). CPU time is ``RLIMIT_CPU`` of the program's interpreter as in
a cold jail, set before its exec: it counts the imports as a cold run does (they happen in the same process,
earlier); blocked on stdin, it uses none. Memory, processes, files and output are the cold jail's. An idle warm
jail does not live forever: its interpreter exits after ``idle_seconds`` without a batch, and when its stdin
closes (its parent exited or was killed: the pipe's only writer is gone); the pool never hands out one older
than ``idle_seconds`` less a margin, and :meth:`SandboxPool.close` kills every one it holds. The pool starts
replacements only when a jail is consumed: it never keeps a fleet alive on its own.

**When warming fails** (the interpreter exits, reports a setup error or is not ready by the batch's deadline),
the batch runs in a cold sandbox instead: the isolation is the same, and a sandbox that cannot be built fails
closed there, naming what is missing, as it always has. After two warm start-ups in a row fail, the pool stops
starting jails (:attr:`SandboxPool.disabled`) and every batch runs cold.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from types import TracebackType

from bot.plan.runner import SANDBOX_NAMESPACES, Sandbox, launch, stop
from bot.plan.sandbox import WARM_FLAG

DEFAULT_SIZE = 2
DEFAULT_IDLE_SECONDS = 300.0
_IDLE_MARGIN = 5.0  # a jail this close to its idle exit is not handed out
_READY_LINE_LIMIT = 4096
_FAILURES_BEFORE_DISABLED = 2


@dataclass
class WarmJail:
    """One warm sandbox: its launcher process, the read end of its collector pipe, the host directory bound
    (read-only) where its tree goes, and the frame bytes read past its ``ready`` frame (normally none)."""

    process: Popen[bytes]
    read_fd: int
    scratch: Path
    started: float
    pending: bytes = b""
    ready: bool = False
    stopped: bool = False
    _buffer: bytes = field(default=b"", repr=False)

    @property
    def tree(self) -> Path:
        return self.scratch / "tree"

    def wait_ready(self, deadline: float) -> str | None:
        """Block until the interpreter says its imports are done; None, or why it will not be."""
        while not self.ready:
            if self.process.poll() is not None:
                return f"the warm sandbox exited (status {self.process.returncode}) before it was ready"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "the warm sandbox was not ready in time"
            readable, _, _ = select.select([self.read_fd], [], [], min(remaining, 0.5))
            if not readable:
                continue
            chunk = os.read(self.read_fd, 1 << 12)
            if not chunk:
                return "the warm sandbox closed its pipe before it was ready"
            self._buffer += chunk
            if b"\n" not in self._buffer:
                if len(self._buffer) > _READY_LINE_LIMIT:
                    return "the warm sandbox sent something other than its ready frame"
                continue
            line, self.pending = self._buffer.split(b"\n", 1)
            try:
                frame = json.loads(line)
            except ValueError:
                frame = None
            if frame != {"op": "ready"}:
                message = frame.get("message") if isinstance(frame, dict) else None
                return f"the warm sandbox could not start: {message or 'no ready frame'}"
            self.ready = True
        return None

    def stop(self) -> None:
        """Kill every process of the jail, reap it, close its pipes, delete its directory; once."""
        if self.stopped:
            return
        self.stopped = True
        stop(self.process, self.read_fd)
        shutil.rmtree(self.scratch, ignore_errors=True)


class SandboxPool:
    """Up to ``size`` warm sandboxes for ``sandbox`` (mode namespaces; a batch for other limits runs cold).

    Thread-safe: base and head take one each, in parallel. Close it (or use it as a context manager) to kill
    the jails it holds; those it handed out are stopped by :meth:`done`.
    """

    def __init__(
        self,
        sandbox: Sandbox | None = None,
        *,
        size: int = DEFAULT_SIZE,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        start: bool = True,
    ) -> None:
        self.sandbox = sandbox or Sandbox()
        if self.sandbox.mode != SANDBOX_NAMESPACES:
            raise ValueError("warm sandboxes exist only for the namespaces sandbox")
        if size < 1 or idle_seconds <= _IDLE_MARGIN:
            raise ValueError(f"a sandbox pool needs size >= 1 and idle_seconds > {_IDLE_MARGIN:g}")
        self.size = size
        self.idle_seconds = idle_seconds
        self.disabled: str | None = None
        self.taken = 0  # batches that ran warm
        self._jails: list[WarmJail] = []
        self._failures = 0
        self._lock = threading.Lock()
        self._closed = False
        if start:
            self.fill()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def fill(self) -> None:
        """Start jails until the pool holds ``size`` (each warms up in its own processes; this does not wait)."""
        while True:
            with self._lock:
                if self._closed or self.disabled is not None or len(self._jails) >= self.size:
                    return
                jail = self._start()
                if jail is None:
                    return
                self._jails.append(jail)

    def _start(self) -> WarmJail | None:
        scratch = Path(tempfile.mkdtemp(prefix="glassbox-warm-"))
        (scratch / "tree").mkdir()
        program = [sys.executable, "-m", "bot.plan.sandbox", WARM_FLAG, f"{self.idle_seconds:g}"]
        try:
            process, read_fd = launch(
                program, cwd=str(scratch / "tree"), tree=str(scratch / "tree"), scratch=scratch, sandbox=self.sandbox
            )
        except OSError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            self._failed(f"starting a warm sandbox: {exc}")
            return None
        return WarmJail(process=process, read_fd=read_fd, scratch=scratch, started=time.monotonic())

    def _failed(self, reason: str) -> None:
        self._failures += 1
        if self._failures >= _FAILURES_BEFORE_DISABLED:
            self.disabled = reason

    def take(self, sandbox: Sandbox, deadline: float) -> WarmJail | None:
        """A ready warm jail for one batch under ``sandbox``, removed from the pool; None when there is none
        (the batch then runs cold). Waits, until ``deadline``, for a jail still importing."""
        if sandbox != self.sandbox:
            return None
        while True:
            with self._lock:
                if self._closed or not self._jails:
                    return None
                jail = self._jails.pop(0)
            too_old = time.monotonic() - jail.started > self.idle_seconds - _IDLE_MARGIN
            problem = "idle too long" if too_old else jail.wait_ready(deadline)
            if problem is None:
                with self._lock:
                    self.taken += 1
                    self._failures = 0
                return jail
            jail.stop()
            if not too_old:
                with self._lock:
                    self._failed(problem)

    def done(self, jail: WarmJail) -> None:
        """The batch in ``jail`` is over: destroy it, and start a replacement."""
        jail.stop()
        self.fill()

    def wait_warm(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every jail the pool holds is ready (none is taken); True if so."""
        deadline = time.monotonic() + timeout
        with self._lock:
            jails = list(self._jails)
        return all(jail.wait_ready(deadline) is None for jail in jails)

    @property
    def warm(self) -> int:
        """Jails the pool holds now (ready or still importing)."""
        with self._lock:
            return len(self._jails)

    def pids(self) -> list[int]:
        """The launcher process of each jail the pool holds."""
        with self._lock:
            return [j.process.pid for j in self._jails]

    def close(self) -> None:
        """Kill every jail the pool holds; safe to call twice."""
        with self._lock:
            self._closed = True
            jails, self._jails = self._jails, []
        for jail in jails:
            with contextlib.suppress(OSError):
                jail.stop()
