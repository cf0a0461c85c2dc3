"""Runs Pulumi programs in the plan sandbox subprocess and turns what they register into :class:`Resource` records.

One subprocess per git ref runs every stack touched at that ref (``python -m bot.plan.sandbox``): the
start-up of Pulumi and ``pulumi_aws`` (≈0.5 s with the submodules a program touches) is paid once per ref
rather than once per stack, and the base and head batches run side by side. Measured on 2 idle cores
(bench/bench_plan.py, the 6 sample stacks): one process for all stacks ≈1.1 s, one process per stack
≈3.1 s, two half batches in parallel ≈1.0 s (no clear gain, so not done); base and head batches in
parallel ≈1.1 s against ≈2.1 s one after the other (done).

The subprocess gets a clean environment: no cloud credential, token or proxy variable can reach a
program, only ``PATH``, ``HOME``, locale, and the Python path to glassbox itself. It runs in its own
session so that a timeout kills the program and anything it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bot
from bot.errors import EngineError
from bot.plan.model import Resource

# Marker line the sandbox writes to stderr before each job: on a timeout, it names the job that was running.
START_MARK = "\x1eglassbox-sandbox start "

# Variables a Python program needs to start and to behave the same everywhere; nothing else is passed.
_PASSED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")


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


def sandbox_environment() -> dict[str, str]:
    env = {key: os.environ[key] for key in _PASSED_VARIABLES if key in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    # glassbox itself must be importable for `-m bot.plan.sandbox`, installed or not.
    env["PYTHONPATH"] = str(Path(bot.__file__).resolve().parent.parent)
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_jobs(jobs: Sequence[Job], *, ref: str, timeout: float) -> dict[tuple[str, str], list[Resource]]:
    """Run ``jobs`` (all at ``ref``) in one sandbox process; resources per (project, stack), sorted by URN.

    Raises :class:`EngineError` naming the project, the stack and the cause when a program raises, imports
    something missing, or the batch outlives ``timeout`` seconds.
    """
    if not jobs:
        return {}
    payload = json.dumps({"jobs": [job.request() for job in jobs]})
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.plan.sandbox"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=sandbox_environment(),
        cwd=str(jobs[0].directory),
        start_new_session=True,
        text=True,
        encoding="utf-8",
    )
    try:
        stdout, stderr = process.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        _, stderr = process.communicate()
        running = _last_started(stderr) or f"{jobs[0].project}/{jobs[0].stack}"
        project, _, stack = running.partition("/")
        raise EngineError(
            f"project {project!r} stack {stack!r} at {ref}: program did not finish within {timeout:g} s",
            engine="plan",
        ) from None
    if process.returncode != 0:
        running = _last_started(stderr) or f"{jobs[0].project}/{jobs[0].stack}"
        project, _, stack = running.partition("/")
        raise EngineError(
            f"project {project!r} stack {stack!r} at {ref}: sandbox exited with status "
            f"{process.returncode}: {_last_line(stderr)}",
            engine="plan",
        )
    try:
        results = json.loads(stdout)["results"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"sandbox at {ref} returned no readable result: {exc}", engine="plan") from exc

    failures = [f"project {r['project']!r} stack {r['stack']!r} at {ref}: {r['error']}" for r in results if not r["ok"]]
    if failures:
        raise EngineError("; ".join(failures), engine="plan")

    by_key = {(job.project, job.stack): job for job in jobs}
    out: dict[tuple[str, str], list[Resource]] = {}
    for result in results:
        job = by_key[(result["project"], result["stack"])]
        out[(job.project, job.stack)] = [
            Resource(project=job.project, stack=job.stack, environment=job.environment, **raw)
            for raw in result["resources"]
        ]
    return out


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _last_started(stderr: str | None) -> str | None:
    found = None
    for line in (stderr or "").splitlines():
        if line.startswith(START_MARK):
            found = line[len(START_MARK) :].strip()
    return found


def _last_line(stderr: str | None) -> str:
    lines = [line for line in (stderr or "").splitlines() if line.strip() and not line.startswith(START_MARK)]
    return lines[-1].strip() if lines else "no output"
