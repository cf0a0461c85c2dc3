"""Sandbox overhead: the time to plan with PR code in the namespaces sandbox against ``--sandbox=none``.

Two figures, each the median of ``--repeat`` runs: one sandbox batch running every stack of the sample infra
(``run_jobs``: the per-ref unit a check pays twice, base and head in parallel), and a whole ``build_plan`` of a
change touching every sample stack (base and head). The difference is the sandbox's cost per plan: the
launcher's interpreter start, the namespaces, the bind mounts and the reaper. A third figure isolates the launcher:
``python -S -c pass`` started in the sandbox and without it, median of 10.

Run: .venv/bin/python bench/bench_sandbox.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from bench_plan import sample_jobs, timed  # noqa: E402

from bot.plan import (  # noqa: E402
    Sandbox,
    build_plan,
    jail,
)
from bot.plan.jail import JailSpec  # noqa: E402
from bot.plan.runner import interpreter_binds, run_jobs, sandbox_environment  # noqa: E402


def bare_start(jailed: bool) -> float:
    """Seconds to start and end ``python -S -c pass``, in the sandbox or not: the launcher's own cost."""
    read_fd, write_fd = os.pipe()
    try:
        with tempfile.TemporaryDirectory(prefix="glassbox-bench-jail-") as tmp:
            (Path(tmp) / "root").mkdir()
            program = [sys.executable, "-S", "-c", "pass"]
            argv = program
            if jailed:
                spec = JailSpec(
                    argv=program,
                    env=sandbox_environment(write_fd),
                    cwd="/tmp",
                    binds=interpreter_binds(),
                    scratch=str(Path(tmp) / "root"),
                    collector_fd=write_fd,
                )
                argv = [sys.executable, "-I", jail.__file__, spec.dump()]
            start = time.perf_counter()
            subprocess.run(argv, pass_fds=(write_fd,), env=sandbox_environment(), check=True)
            return time.perf_counter() - start
    finally:
        os.close(write_fd)
        os.close(read_fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    modes = {"namespaces": Sandbox("namespaces"), "none": Sandbox("none")}
    with tempfile.TemporaryDirectory(prefix="glassbox-bench-sandbox-") as tmp:
        scratch = Path(tmp)
        jobs = sample_jobs(scratch)
        repo = scratch / "sample"
        (repo / "infra").rename(repo / "infra-moved")
        import git

        with git.Repo(repo) as r:
            r.git.add(A=True)
            r.git.commit("-m", "move away")
            (repo / "infra-moved").rename(repo / "infra")
            r.git.add(A=True)
            r.git.commit("-m", "every stack back")
        # Modes alternate within each repetition, so a busy neighbour on the machine slows both alike.
        batch: dict[str, list[float]] = {name: [] for name in modes}
        plan: dict[str, list[float]] = {name: [] for name in modes}
        for i in range(args.repeat):
            for name in list(modes)[:: 1 if i % 2 == 0 else -1]:
                s = modes[name]
                batch[name].append(timed(lambda s=s: run_jobs(jobs, ref="bench", timeout=300, sandbox=s), 1))
                plan[name].append(timed(lambda s=s: build_plan(repo, "HEAD~1", "HEAD", timeout=300, sandbox=s), 1))
    b = {name: statistics.median(v) for name, v in batch.items()}
    p = {name: statistics.median(v) for name, v in plan.items()}
    bare = {name: statistics.median(bare_start(name == "namespaces") for _ in range(10)) for name in modes}
    print(f"sandbox overhead, {len(jobs)} stacks of the sample infra, median of {args.repeat}")
    rows = (("bare start (python -S):", bare), ("one batch (run_jobs):  ", b), ("one plan (build_plan): ", p))
    for label, figures in rows:
        overhead = figures["namespaces"] - figures["none"]
        print(
            f"  {label} namespaces {figures['namespaces']:.3f} s, none {figures['none']:.3f} s, "
            f"overhead {overhead:+.3f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
