"""The ``glassbox`` command starts with the Go collector target of the embedded OPA (bot/entry.py).

The Go runtime inside OPA's library reads ``GOGC`` only from the environment the process was started with, so the
command re-executes itself once with it set; an operator's own ``GOGC`` is kept, and nothing else about the process
changes (its id, arguments, standard input).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.entry import GO_GC_PERCENT, started_go_gc

PROBE = """
import os, sys
from bot.entry import start_with_go_gc, started_go_gc
print("before", os.getpid(), flush=True)
start_with_go_gc()
print("after", os.getpid(), started_go_gc(), sys.argv[1:], sys.stdin.read().strip())
"""


def _probe(gogc: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "GOGC"}
    if gogc is not None:
        env["GOGC"] = gogc
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--flag", "two words"],
        input="from stdin\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


def test_unset_gogc_restarts_the_same_process_with_the_tuned_target() -> None:
    lines = _probe(None)
    # the process ran its first lines twice: once as started, once after re-executing itself
    assert [line.split()[0] for line in lines] == ["before", "before", "after"]
    pid = lines[0].split()[1]
    assert lines[1].split()[1] == pid
    assert lines[2] == f"after {pid} {GO_GC_PERCENT} ['--flag', 'two words'] from stdin"


@pytest.mark.parametrize("operator_value", ["150", "off", ""])
def test_an_operators_gogc_is_kept_and_nothing_is_re_executed(operator_value: str) -> None:
    lines = _probe(operator_value)
    assert [line.split()[0] for line in lines] == ["before", "after"]
    pid = lines[0].split()[1]
    assert lines[1] == f"after {pid} {operator_value} ['--flag', 'two words'] from stdin"


def test_the_console_script_runs_the_cli_after_the_restart() -> None:
    script = Path(sys.executable).with_name("glassbox")
    env = {k: v for k, v in os.environ.items() if k != "GOGC"}
    done = subprocess.run(
        [str(script), "schema", "policy-input"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (Path(__file__).resolve().parents[2] / "policy-pack/schema/policy_input.json").read_text()


def test_the_started_value_is_read_from_the_start_environment_not_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    before = started_go_gc()
    monkeypatch.setenv("GOGC", "12345")
    assert started_go_gc() == before  # what the Go runtime reads was fixed when this process started
