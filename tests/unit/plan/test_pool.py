"""Warm sandboxes (bot.plan.pool) with real jails and real processes: the same plan as a cold run, one batch per
jail, no idle jail outliving its timeout or its parent, and the program's limits unchanged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import EngineError
from bot.plan import plan_change
from bot.plan.jail import Limits
from bot.plan.model import Resource
from bot.plan.pool import SandboxPool
from bot.plan.runner import Job, Sandbox, run_jobs
from tests.plan_helpers import REPO_ROOT, append, commit_all, edit, infra_repo

pytestmark = pytest.mark.slow

SMALL = Limits(cpu_seconds=20, processes=48, open_files=128, output_bytes=1 << 20)


def _job(directory: Path, program: str, *, name: str = "probe") -> Job:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text(f"name: {name}\nruntime: python\n", encoding="utf-8")
    (directory / "__main__.py").write_text("import os, sys, time\nimport pulumi_aws as aws\n" + program)
    return Job(name, "dev", "dev", f"infra/{name}", directory, "__main__.py", {}, [], None)


def _tags(resources: dict[tuple[str, str], list[Resource]], project: str = "probe") -> dict[str, str]:
    (bucket,) = resources[(project, "dev")]
    return dict(bucket.inputs["tags"])


def _ready(pool: SandboxPool, timeout: float = 60) -> None:
    """Wait until every jail the pool holds has said it is ready (without taking it)."""
    assert pool.wait_warm(timeout)


def jail_processes(marker: bytes) -> list[int]:
    """Host processes whose command line holds ``marker`` (the launcher, its namespace's processes, the program)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def _gone(marker: bytes, within: float) -> list[int]:
    deadline = time.monotonic() + within
    while (alive := jail_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


@pytest.fixture
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(Sandbox(limits=SMALL), size=1) as held:
        yield held


def test_a_warm_pool_plans_the_sample_estate_exactly_as_a_cold_run(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path / "estate")
    base = repo.head.commit.hexsha
    edit(repo, "infra/data/Pulumi.prod.yaml", "dbBackupRetentionDays: 14", "dbBackupRetentionDays: 21")
    append(repo, "infra/network/__main__.py", "\n# touched\n")
    append(repo, "infra/identity/__main__.py", "\n# touched\n")
    head = commit_all(repo, "touch every project")
    cold = plan_change(tmp_path / "estate", base, head).plan
    with SandboxPool() as pool:
        _ready(pool)
        warm = plan_change(tmp_path / "estate", base, head, pool=pool).plan
        assert pool.taken == 2  # base and head, one jail each
        again = plan_change(tmp_path / "estate", base, head, pool=pool).plan  # the replacements
        assert pool.taken == 4
    assert len(cold.resources) > 50 and cold.changes
    assert warm.model_dump() == cold.model_dump()
    assert again.digest == cold.digest


def test_a_warm_jail_runs_one_batch_and_is_never_handed_out_again(tmp_path: Path, pool: SandboxPool) -> None:
    writer = _job(
        tmp_path / "a",
        """
open("/tmp/marker", "w").write("left by the first program")
aws.s3.Bucket("first", tags={"pid": str(os.getpid())})
""",
    )
    reader = _job(
        tmp_path / "b",
        """
aws.s3.Bucket("second", tags={"marker": str(os.path.exists("/tmp/marker")), "tmp": ",".join(os.listdir("/tmp"))})
""",
    )
    _ready(pool)
    (first_jail,) = pool.pids()
    run_jobs([writer], ref="head", timeout=60, sandbox=pool.sandbox, pool=pool)
    assert pool.taken == 1
    assert first_jail not in pool.pids()
    assert not Path(f"/proc/{first_jail}").exists() or b"zombie" in Path(f"/proc/{first_jail}/status").read_bytes()
    found = _tags(run_jobs([reader], ref="head", timeout=60, sandbox=pool.sandbox, pool=pool))
    assert pool.taken == 2
    assert found["marker"] == "False"
    assert "marker" not in found["tmp"]
    # The same two programs in one batch share one jail (one side's batch, by design): the marker is seen there.
    both = run_jobs([writer, _job(tmp_path / "a" / "b", reader_program(), name="other")], ref="head", timeout=60)
    assert _tags(both, "other")["marker"] == "True"


def reader_program() -> str:
    return 'aws.s3.Bucket("second", tags={"marker": str(os.path.exists("/tmp/marker"))})\n'


def test_an_idle_warm_jail_exits_after_its_idle_timeout() -> None:
    marker = b"--warm\x007.25"
    with SandboxPool(size=1, idle_seconds=7.25) as pool:
        _ready(pool)
        assert jail_processes(marker)
        assert _gone(marker, within=20) == []
        # The pool does not hand it out: the batch runs cold, and a fresh jail replaces it.
        assert pool.take(pool.sandbox, time.monotonic() + 10) is None
        assert pool.warm == 0
    assert _gone(marker, within=5) == []


def test_an_idle_warm_jail_dies_with_its_parent(tmp_path: Path) -> None:
    marker = b"--warm\x00291.5"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from bot.plan.pool import SandboxPool\n"
            "pool = SandboxPool(size=2, idle_seconds=291.5)\n"
            "assert pool.wait_warm(60)\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        assert len(jail_processes(marker)) >= 2
        holder.send_signal(signal.SIGKILL)  # no close(), no cleanup: the parent just vanishes
        holder.wait()
        assert _gone(marker, within=10) == []
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_the_cpu_limit_still_bounds_a_program_in_a_warm_jail(tmp_path: Path) -> None:
    spin = _job(tmp_path / "spin", "while True:\n    pass\n")
    limited = Sandbox(limits=Limits(cpu_seconds=4))
    with pytest.raises(EngineError) as cold:
        run_jobs([spin], ref="head", timeout=60, sandbox=limited)
    with SandboxPool(limited, size=1) as pool:
        _ready(pool)
        time.sleep(1)  # idle: no CPU time spent
        started = time.monotonic()
        with pytest.raises(EngineError) as warm:
            run_jobs([spin], ref="head", timeout=60, sandbox=pool.sandbox, pool=pool)
        assert pool.taken == 1
    # Killed by the CPU limit (soft and hard limits are equal: the kernel's SIGKILL), well before the timeout.
    assert time.monotonic() - started < 40
    for caught in (cold, warm):
        assert "the program was killed by" in str(caught.value) and "4 s of CPU time" in str(caught.value)


def test_the_wall_clock_counts_from_the_batch_not_from_the_jails_start(tmp_path: Path, pool: SandboxPool) -> None:
    napper = _job(tmp_path / "nap", 'time.sleep(1)\naws.s3.Bucket("rested", tags={"ok": "yes"})\n')
    _ready(pool)
    time.sleep(12)  # longer than the batch's timeout: the idle wait must not count
    assert _tags(run_jobs([napper], ref="head", timeout=10, sandbox=pool.sandbox, pool=pool))["ok"] == "yes"
    assert pool.taken == 1
    sleeper = _job(tmp_path / "sleep", "time.sleep(10**6)\n")
    _ready(pool)
    started = time.monotonic()
    with pytest.raises(EngineError, match="did not finish within 3 s"):
        run_jobs([sleeper], ref="head", timeout=3, sandbox=pool.sandbox, pool=pool)
    assert pool.taken == 2
    assert time.monotonic() - started < 15


def test_a_batch_under_other_limits_runs_cold(tmp_path: Path, pool: SandboxPool) -> None:
    job = _job(tmp_path / "p", 'aws.s3.Bucket("b", tags={"pid": str(os.getpid())})\n')
    _ready(pool)
    other = Sandbox(limits=Limits(cpu_seconds=30))
    assert _tags(run_jobs([job], ref="head", timeout=60, sandbox=other, pool=pool))["pid"] == "2"
    assert pool.taken == 0 and pool.warm == 1
    assert _tags(run_jobs([job], ref="head", timeout=60, sandbox=pool.sandbox, pool=pool))["pid"] == "2"
    assert pool.taken == 1


def test_a_pool_is_only_for_the_namespaces_sandbox() -> None:
    with pytest.raises(ValueError, match="namespaces"):
        SandboxPool(Sandbox("none"))
