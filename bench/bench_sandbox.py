"""Sandbox overhead: the time to plan with PR code in the namespaces sandbox against ``--sandbox=none``.

Two figures, each the median of ``--repeat`` runs: one sandbox batch running every stack of the sample infra
(``run_jobs``: the per-ref unit a check pays twice, base and head in parallel), and a whole ``build_plan`` of a
change touching every sample stack (base and head). The difference is the sandbox's cost per plan: the
launcher's interpreter start, the namespaces, the bind mounts and the reaper.

Run: .venv/bin/python bench/bench_sandbox.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from bench_plan import sample_jobs, timed  # noqa: E402

from bot.plan import Sandbox, build_plan  # noqa: E402
from bot.plan.runner import run_jobs  # noqa: E402


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
        batch = {
            name: timed(lambda s=sandbox: run_jobs(jobs, ref="bench", timeout=300, sandbox=s), args.repeat)
            for name, sandbox in modes.items()
        }
        plan = {
            name: timed(lambda s=sandbox: build_plan(repo, "HEAD~1", "HEAD", timeout=300, sandbox=s), args.repeat)
            for name, sandbox in modes.items()
        }
    print(f"sandbox overhead, {len(jobs)} stacks of the sample infra, median of {args.repeat}")
    print(
        f"  one batch (run_jobs):  namespaces {batch['namespaces']:.3f} s, none {batch['none']:.3f} s, "
        f"overhead {batch['namespaces'] - batch['none']:+.3f} s"
    )
    print(
        f"  one plan (build_plan): namespaces {plan['namespaces']:.3f} s, none {plan['none']:.3f} s, "
        f"overhead {plan['namespaces'] - plan['none']:+.3f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
