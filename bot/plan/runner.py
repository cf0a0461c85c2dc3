"""Runs Pulumi programs in the plan sandbox and turns what the collector received into :class:`Resource` records.

One sandbox per git ref runs every stack touched at that ref (``python -m bot.plan.sandbox`` inside
:mod:`bot.plan.jail`): the
start-up of Pulumi and ``pulumi_aws`` (≈0.5 s with the submodules a program touches) is paid once per ref
rather than once per stack, and the base and head batches run side by side. Measured on 2 idle cores
(bench/bench_plan.py, the 6 sample stacks): one process for all stacks ≈1.1 s, one process per stack
≈3.1 s, two half batches in parallel ≈1.0 s (no clear gain, so not done); base and head batches in
parallel ≈1.1 s against ≈2.1 s one after the other (done).

The sandbox (:mod:`bot.plan.jail`) gives the program its own namespaces, a filesystem view of the exported
tree, the interpreter and site-packages, no network, limits, and an environment holding only what Python
needs. What it registered arrives over a pipe at the collector here (:mod:`bot.plan.collector`); its output
is read up to a cap and only ever shown truncated and quoted (:func:`quote_untrusted`). Where the sandbox
cannot be built the plan fails, saying what is missing; ``Sandbox(mode="none")`` (``--sandbox=none``) runs the
program as a plain subprocess, for local development only, and verdicts record it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import selectors
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bot
from bot.errors import EngineError
from bot.plan import jail
from bot.plan.collector import Collector, ProtocolError
from bot.plan.jail import SETUP_FAILED, JailSpec, Limits
from bot.plan.model import Resource
from bot.plan.sandbox import COLLECTOR_FD_VARIABLE

if TYPE_CHECKING:
    from bot.plan.pool import SandboxPool

SANDBOX_NAMESPACES = "namespaces"
SANDBOX_NONE = "none"
SANDBOX_MODES = (SANDBOX_NAMESPACES, SANDBOX_NONE)
UNTRUSTED_TEXT_LIMIT = 300
SANDBOX_TMP = "/tmp"  # noqa: S108 - inside the sandbox, a private tmpfs
_OUTPUT_TAIL = 64 << 10
# The collector pipe's buffer: a 1,000-resource program reports ≈0.5 MB of frames, and with the kernel's default
# 64 KiB it waited on every few dozen registrations until the parent, busy with the other side, read them. The
# size an unprivileged process may set at most (fs.pipe-max-size's default).
COLLECTOR_PIPE_BYTES = 1 << 20


@dataclass(frozen=True)
class Sandbox:
    """How PR code runs: ``namespaces`` (the real sandbox) or ``none`` (development only, refused by deploy)."""

    mode: str = SANDBOX_NAMESPACES
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.mode not in SANDBOX_MODES:
            raise ValueError(f"sandbox mode {self.mode!r}: choose one of {', '.join(SANDBOX_MODES)}")


@dataclass(frozen=True)
class Job:
    """One stack of one project, exported to ``directory``, to run at one ref."""

    project: str
    stack: str
    environment: str
    path: str  # the project's repository-relative directory
    directory: Path
    main: str
    config: dict[str, str]
    secret_keys: list[str]
    region: str | None

    def request(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "directory": str(self.directory),
            "main": self.main,
            "config": self.config,
            "secret_keys": self.secret_keys,
            "region": self.region,
        }


def quote_untrusted(text: str, limit: int = UNTRUSTED_TEXT_LIMIT) -> str:
    """Text produced inside a sandbox, as it may be shown anywhere: truncated, quoted, control characters escaped."""
    text = text.strip()
    if len(text) > limit:
        text = f"{text[:limit]}…[{len(text) - limit} more characters]"
    return repr(text)


def sandbox_environment(collector_fd: int | None = None) -> dict[str, str]:
    """All the environment a sandboxed interpreter gets: nothing from the caller's."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": SANDBOX_TMP,
        "TMPDIR": SANDBOX_TMP,
        # glassbox itself must be importable for `-m bot.plan.sandbox`, installed or not.
        "PYTHONPATH": str(Path(bot.__file__).resolve().parent.parent),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONIOENCODING": "utf-8",
        "GIT_PYTHON_REFRESH": "quiet",  # glassbox's package imports GitPython; no git is run in the sandbox
    }
    if collector_fd is not None:
        env[COLLECTOR_FD_VARIABLE] = str(collector_fd)
    return env


def interpreter_binds() -> list[str]:
    """What the sandbox sees besides the exported tree: the interpreter, its site-packages, glassbox's package."""
    paths = {sys.prefix, sys.base_prefix, str(Path(bot.__file__).resolve().parent)}
    paths.update(p for p in site.getsitepackages() if os.path.isdir(p))
    paths.add(str(Path(sys.executable).resolve().parent.parent))
    return _outermost(paths)


def visible_paths() -> list[str]:
    """Every host path a sandbox sees besides its exported tree: the jail's system directories and devices, and
    :func:`interpreter_binds`. Whatever must stay out of PR code's reach lives under none of them."""
    return _outermost({*jail.SYSTEM_DIRS, *jail.DEVICES, *interpreter_binds()})


def _outermost(paths: set[str]) -> list[str]:
    out: list[str] = []
    for path in sorted({os.path.realpath(p) for p in paths} | set(paths), key=len):
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in out):
            out.append(path)
    return out


@dataclass
class _Run:
    output: bytearray = field(default_factory=bytearray)
    output_bytes: int = 0
    timed_out: bool = False
    output_capped: bool = False
    protocol_error: str | None = None
    returncode: int | None = None


def run_jobs(
    jobs: Sequence[Job],
    *,
    ref: str,
    timeout: float,
    sandbox: Sandbox | None = None,
    pool: SandboxPool | None = None,
) -> dict[tuple[str, str], list[Resource]]:
    """Run ``jobs`` (all at ``ref``) in one sandbox; resources per (project, stack), sorted by URN.

    With ``pool`` (:class:`bot.plan.pool.SandboxPool`), the batch runs in one of its warm sandboxes when one is
    ready for this ``sandbox``: a jail of the same isolation, started earlier, used for this batch only and then
    destroyed. Otherwise (no pool, none ready, or it failed to warm up) it runs in a sandbox started now.

    Raises :class:`EngineError` naming the project, the stack and the cause when a program raises, imports
    something missing, hits a limit, breaks the collector protocol, or the batch outlives ``timeout`` seconds;
    and, naming what is missing, when the sandbox cannot be built.
    """
    if not jobs:
        return {}
    sandbox = sandbox or Sandbox()
    deadline = time.monotonic() + timeout
    if pool is not None and sandbox.mode == SANDBOX_NAMESPACES:
        warm = pool.take(sandbox, deadline)
        if warm is not None:
            try:
                tree = os.path.commonpath([str(job.directory) for job in jobs])
                # The tree arrives now, in the host directory bound read-only into the jail since it started.
                shutil.copytree(tree, warm.tree, symlinks=True, dirs_exist_ok=True)
                moved = [dataclasses.replace(j, directory=warm.tree / j.directory.relative_to(tree)) for j in jobs]
                run, collector = _execute(warm.process, warm.read_fd, warm.pending, moved, deadline, sandbox)
            finally:
                pool.done(warm)  # stopped, removed, never handed out again
            return _results(jobs, ref, timeout, sandbox, collector, run)
    with tempfile.TemporaryDirectory(prefix="glassbox-jail-") as scratch:
        program = [sys.executable, "-m", "bot.plan.sandbox"]
        cwd = str(jobs[0].directory)
        tree = os.path.commonpath([str(job.directory) for job in jobs])
        process, read_fd = launch(program, cwd=cwd, tree=tree, scratch=Path(scratch), sandbox=sandbox)
        try:
            run, collector = _execute(process, read_fd, b"", jobs, deadline, sandbox)
        finally:
            stop(process, read_fd)
    if pool is not None:
        pool.fill()  # replace the jails it dropped (idle too long, failed to warm up), now that this run is over
    return _results(jobs, ref, timeout, sandbox, collector, run)


def launch(
    program: list[str], *, cwd: str, tree: str, scratch: Path, sandbox: Sandbox
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``program`` in a sandbox seeing ``tree`` (read-only) and return the process and the read end of
    its collector pipe. In the namespaces mode ``scratch`` (an empty directory, kept until the process is
    gone) receives the jail's root mount point."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):  # the kernel's default (64 KiB) where a larger pipe is not allowed
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, COLLECTOR_PIPE_BYTES)
    if sandbox.mode == SANDBOX_NAMESPACES:
        (scratch / "root").mkdir()
        spec = JailSpec(
            argv=program,
            env=sandbox_environment(write_fd),
            cwd=cwd,
            binds=_outermost({tree, *interpreter_binds()}),
            scratch=str(scratch / "root"),
            collector_fd=write_fd,
            limits=sandbox.limits,
        )
        # The launcher imports only the standard library: run as a script, isolated from any environment.
        argv, env = [sys.executable, "-I", jail.__file__, spec.dump()], sandbox_environment()
    else:
        argv, env = program, sandbox_environment(write_fd)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            pass_fds=(write_fd,),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return process, read_fd


def stop(process: subprocess.Popen[bytes], read_fd: int) -> None:
    """Kill a sandbox (every process of it), reap it and close its pipes; once per sandbox."""
    _kill(process)
    process.wait()
    with contextlib.suppress(OSError):
        os.close(read_fd)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _execute(
    process: subprocess.Popen[bytes],
    read_fd: int,
    pending: bytes,
    jobs: Sequence[Job],
    deadline: float,
    sandbox: Sandbox,
) -> tuple[_Run, Collector]:
    """Hand ``jobs`` to a started sandbox and collect what it reports until it ends or ``deadline`` (the caller
    then stops it). ``pending``: frame bytes already read from its pipe (none from a cold one)."""
    collector = Collector([(job.project, job.stack) for job in jobs])
    payload = json.dumps({"jobs": [job.request() for job in jobs]}).encode("utf-8")
    try:
        if pending:
            collector.feed(pending)
    except ProtocolError as exc:
        return _Run(protocol_error=str(exc)), collector
    return _pump(process, payload, read_fd, collector, deadline, sandbox.limits.output_bytes), collector


def _pump(
    process: subprocess.Popen[bytes], payload: bytes, read_fd: int, collector: Collector, deadline: float, cap: int
) -> _Run:
    """Feed the payload, read output (capped) and frames (to the collector) until both close or time is up."""
    run = _Run()
    assert process.stdin is not None and process.stdout is not None
    selector = selectors.DefaultSelector()
    os.set_blocking(process.stdin.fileno(), False)
    pending = memoryview(payload)
    selector.register(process.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
    selector.register(process.stdout.fileno(), selectors.EVENT_READ, "output")
    selector.register(read_fd, selectors.EVENT_READ, "frames")
    open_reads = 2
    try:
        while open_reads:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                run.timed_out = True
                return run
            for key, _ in selector.select(remaining):
                if key.data == "stdin":
                    try:
                        pending = pending[os.write(key.fd, pending) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(key.fd)
                        process.stdin.close()
                    continue
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fd)
                    open_reads -= 1
                elif key.data == "output":
                    run.output_bytes += len(chunk)
                    run.output += chunk
                    del run.output[:-_OUTPUT_TAIL]
                    if run.output_bytes > cap:
                        run.output_capped = True
                        return run
                else:
                    try:
                        collector.feed(chunk)
                    except ProtocolError as exc:
                        run.protocol_error = str(exc)
                        return run
        try:
            collector.close()
        except ProtocolError as exc:
            run.protocol_error = str(exc)
        try:
            run.returncode = process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            run.timed_out = True
        return run
    finally:
        selector.close()
        if process.stdin and not process.stdin.closed:
            with contextlib.suppress(OSError):
                process.stdin.close()


_HINTS = (
    ("MemoryError", "the sandbox's memory limit is {memory} MiB"),
    ("Resource temporarily unavailable", "the sandbox allows {processes} processes"),
    ("Network is unreachable", "the sandbox has no network"),
    ("Connection refused", "the sandbox has no network"),
    ("name resolution", "the sandbox has no network and no resolver"),
    ("Name or service not known", "the sandbox has no network and no resolver"),
    ("No such file or directory", "the sandbox sees only the exported tree, the interpreter and site-packages"),
    ("Permission denied", "the sandbox runs unprivileged, in its own PID namespace"),
    ("File too large", "the sandbox's file size limit is {file} MiB"),
)


def _explained(error: str, limits: Limits) -> str:
    values = {
        "memory": limits.memory_bytes >> 20,
        "processes": limits.processes,
        "file": limits.file_bytes >> 20,
    }
    hints = sorted({hint.format(**values) for marker, hint in _HINTS if marker in error})
    return quote_untrusted(error) + (f" ({'; '.join(hints)})" if hints else "")


def _results(
    jobs: Sequence[Job], ref: str, timeout: float, sandbox: Sandbox, collector: Collector, run: _Run
) -> dict[tuple[str, str], list[Resource]]:
    limits = sandbox.limits
    if collector.setup_error is not None:
        raise EngineError(
            f"the sandbox for PR code cannot be set up at {ref}, so the plan fails closed: {collector.setup_error}. "
            "`--sandbox=none` runs programs without it, for local development only (deploy refuses such verdicts)",
            engine="plan",
        )
    job = collector.current or (collector.jobs[collector.next] if collector.next < len(collector.jobs) else None)
    job = job or collector.jobs[-1]
    where = f"project {job.project!r} stack {job.stack!r} at {ref}"
    if run.timed_out:
        raise EngineError(
            f"{where}: program did not finish within {timeout:g} s; the sandbox was stopped", engine="plan"
        )
    if run.output_capped:
        raise EngineError(
            f"{where}: the program printed more than {limits.output_bytes >> 20} MiB "
            f"(the sandbox's output cap); the sandbox was stopped",
            engine="plan",
        )
    if run.protocol_error is not None:
        raise EngineError(
            f"{where}: the sandbox broke the collector protocol, so nothing it reported is trusted: "
            f"{quote_untrusted(run.protocol_error)}",
            engine="plan",
        )
    exit_frame = collector.exit
    if sandbox.mode == SANDBOX_NONE:
        exit_frame = {"op": "exit", "status": run.returncode, "leftovers": 0}
    if run.returncode == SETUP_FAILED and exit_frame is None:
        raise EngineError(f"{where}: the sandbox could not be started (launcher status {SETUP_FAILED})", engine="plan")
    if exit_frame is None:
        raise EngineError(
            f"{where}: the sandbox ended without its exit report (status {run.returncode})", engine="plan"
        )
    failures = [
        f"project {j.project!r} stack {j.stack!r} at {ref}: {_explained(j.error, limits)}"
        for j in collector.jobs
        if j.error is not None
    ]
    signal_name = exit_frame.get("signal")
    if signal_name is not None:
        cause = {
            "SIGXCPU": f"it used its {limits.cpu_seconds} s of CPU time",
            "SIGXFSZ": f"it wrote a file larger than {limits.file_bytes >> 20} MiB",
            "SIGKILL": f"it was killed (out of memory, {limits.memory_bytes >> 20} MiB address space "
            f"or its {limits.cpu_seconds} s of CPU time?)",
        }.get(str(signal_name), "")
        failures.append(
            f"{where}: the program was killed by {quote_untrusted(str(signal_name))}" + (f": {cause}" if cause else "")
        )
    elif exit_frame.get("status") not in (0, None) and not failures:
        tail = run.output.decode("utf-8", "replace").strip().splitlines()
        failures.append(
            f"{where}: sandbox exited with status {exit_frame.get('status')!r}: "
            f"{quote_untrusted(tail[-1] if tail else 'no output')}"
        )
    leftovers = exit_frame.get("leftovers")
    if isinstance(leftovers, int) and leftovers > 0:
        failures.append(
            f"{where}: the program left {leftovers} process(es) running after it finished; "
            "they were killed with the sandbox"
        )
    if failures:
        raise EngineError("; ".join(failures), engine="plan")
    unfinished = [j for j in collector.jobs if not j.ended]
    if unfinished:
        first = unfinished[0]
        raise EngineError(
            f"project {first.project!r} stack {first.stack!r} at {ref}: the program ended before its stack was planned",
            engine="plan",
        )
    out: dict[tuple[str, str], list[Resource]] = {}
    for item, record in zip(jobs, collector.jobs, strict=True):
        out[(item.project, item.stack)] = [
            Resource(project=item.project, stack=item.stack, environment=item.environment, **raw)
            for _, raw in sorted(record.resources.items())
        ]
    return out


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
