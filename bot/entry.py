"""The ``glassbox`` command's first step: start with the Go collector target the embedded OPA is tuned for.

The default Rego engine is OPA's Go evaluator in process (``libopabridge.so``, ``bot.policy.engines.opa_embedded``).
Its Go runtime reads ``GOGC`` once, when the library loads, and only from the environment the process was started
with: it reads the block that follows ``argv``, which ``os.environ`` never changes. Every evaluation turns the
policy input into OPA's values (about a megabyte and 80,000 values for 1,000 resources) and drops them; at Go's
default of 100 the collector runs several times per evaluation, and ``GOGC=200`` takes a tenth to a fifth off an
evaluation of 1,000 resources for 30-50 MB more peak memory (``bench/bench_rego.py`` prints both).

So, before anything else is imported, the command starts itself once more, the same interpreter with the same
arguments, with ``GOGC`` set to :data:`GO_GC_PERCENT`. A ``GOGC`` already in the environment (any value, ``off``
included) is the operator's and is kept: then, and when the process cannot be re-executed, the command simply
runs. Nothing else changes: the same process id, file descriptors and environment otherwise.
"""

from __future__ import annotations

import os
import sys

GO_GC_PERCENT = "200"
GO_GC_VARIABLE = "GOGC"


def start_with_go_gc() -> None:
    """Re-execute this process with ``GOGC`` set, unless it is set already; returns only when nothing was done."""
    if GO_GC_VARIABLE in os.environ or not sys.executable or not getattr(sys, "orig_argv", None):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, {**os.environ, GO_GC_VARIABLE: GO_GC_PERCENT})  # noqa: S606 - itself
    except OSError:
        return  # not re-executable here (no exec permission, a vanished interpreter): run as started


def started_go_gc() -> str | None:
    """The ``GOGC`` this process was started with, which is what its Go runtime reads (None: unset, Go's 100)."""
    try:
        with open("/proc/self/environ", "rb") as handle:
            block = handle.read()
    except OSError:
        return os.environ.get(GO_GC_VARIABLE)
    prefix = GO_GC_VARIABLE.encode() + b"="
    for entry in block.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode("utf-8", "replace")
    return None


def describe_go_gc() -> str:
    """One line for a bench: the collector target this process's Go runtime read, and how to measure another."""
    started = started_go_gc()
    how = "as the glassbox command starts" if started == GO_GC_PERCENT else "from the environment"
    return f"Go collector of the embedded OPA: GOGC={started or 'unset (100)'} ({how}; set GOGC to measure another)"


def main() -> int:
    """The console script: the collector target first, then the CLI."""
    start_with_go_gc()
    from bot.cli import main as cli_main

    return cli_main()
