"""Plan performance: time to plan a project of N resources, the share of it spent importing pulumi_aws,
the batching choice (one sandbox process per ref vs one per stack; base and head side by side or not), and a
plan of the sample estate in cold sandboxes against warm ones (:mod:`bot.plan.pool`).

Run: .venv/bin/python bench/bench_plan.py [--sizes 10,100,1000] [--repeat 3] [--warm-repeat 7] [--only-warm]

The cold-vs-warm figures are ``plan_change`` of the sample estate (this checkout's ``infra/``) for two changes:
one line of every project's program (base and head run every stack) and one stack-config value of
``network/dev`` (base and head run that stack: the pre-flight's usual change). Cold and warm alternate; before
each warm plan the pool's jails are left to finish warming (as between an agent's calls), which is not timed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import git

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bot.plan import SandboxPool, build_plan, plan_change  # noqa: E402
from bot.plan.project import find_projects  # noqa: E402
from bot.plan.runner import Job, run_jobs, sandbox_environment  # noqa: E402

# A program registering `count` resources: buckets with their public access blocks, security groups and
# IAM policies, so inputs nest and reference each other like a real estate's.
PROGRAM = """
import json

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
count = config.require_int("count")
retention = config.require_int("retention")
tags = {"Owner": "bench", "CostCenter": "cc-0", "Environment": pulumi.get_stack()}
made = 0
i = 0
while made < count:
    kind = i % 3
    if kind == 0 and made + 2 <= count:
        bucket = aws.s3.Bucket(f"bucket-{i}", bucket=f"bench-{i}", tags=tags)
        aws.s3.BucketPublicAccessBlock(f"bucket-{i}", bucket=bucket.id, block_public_acls=True,
                                       block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True)
        made += 2
    elif kind == 1:
        aws.ec2.SecurityGroup(f"sg-{i}", description="bench", vpc_id="vpc-1", tags=tags, ingress=[
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/8"]}])
        made += 1
    else:
        aws.cloudwatch.LogGroup(f"logs-{i}", retention_in_days=retention, tags=tags)
        made += 1
    i += 1
"""


def make_repo(root: Path, count: int) -> tuple[Path, str, str]:
    """A repository whose head changes one config value of a project with ``count`` resources."""
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "bench")
        config.set_value("user", "email", "bench@example.com")
    project = root / "infra" / "bench"
    project.mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: bench\nruntime: python\n", encoding="utf-8")
    (project / "__main__.py").write_text(PROGRAM, encoding="utf-8")
    stack = project / "Pulumi.dev.yaml"
    stack.write_text(f"config:\n  bench:count: {count}\n  bench:retention: 30\n", encoding="utf-8")
    repo.git.add(A=True)
    repo.git.commit("-m", "base")
    base = repo.head.commit.hexsha
    stack.write_text(f"config:\n  bench:count: {count}\n  bench:retention: 90\n", encoding="utf-8")
    repo.git.add(A=True)
    repo.git.commit("-m", "head")
    head = repo.head.commit.hexsha
    repo.close()
    return root, base, head


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def python_seconds(code: str, repeat: int) -> float:
    env = sandbox_environment()
    return timed(lambda: subprocess.run([sys.executable, "-c", code], env=env, check=True), repeat)


def sample_jobs(scratch: Path) -> list[Job]:
    """Every stack of the sample infra, exported from a throwaway repository."""
    root = scratch / "sample"
    shutil.copytree(REPO_ROOT / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "bench")
        config.set_value("user", "email", "bench@example.com")
    repo.git.add(A=True)
    repo.git.commit("-m", "sample")
    commit = repo.head.commit
    jobs: list[Job] = []
    for path, project in sorted(find_projects(commit).items()):
        directory = project.export(commit, scratch / "export")
        for stack in sorted(project.stack_files):
            values = project.stack_config(commit, stack)
            jobs.append(
                Job(
                    project.name,
                    stack,
                    values.environment,
                    path,
                    directory,
                    project.main,
                    values.values,
                    values.secret_keys,
                    values.region,
                )
            )
    repo.close()
    return jobs


def estate_repo(root: Path) -> tuple[Path, dict[str, tuple[str, str]]]:
    """The sample estate in a repository, and (base, head) for each change the cold-vs-warm figures plan."""
    shutil.copytree(REPO_ROOT / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "bench")
        config.set_value("user", "email", "bench@example.com")
    repo.git.add(A=True)
    repo.git.commit("-m", "sample")
    base = repo.head.commit.hexsha
    for program in sorted((root / "infra").glob("*/__main__.py")):
        program.write_text(program.read_text(encoding="utf-8") + "\n# touched\n", encoding="utf-8")
    repo.git.add(A=True)
    repo.git.commit("-m", "every project")
    every = repo.head.commit.hexsha
    stack = root / "infra" / "network" / "Pulumi.dev.yaml"
    lines = stack.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = next(i for i, line in enumerate(lines) if "Retention" in line or "retention" in line)
    key, _, value = lines[changed].rpartition(":")
    lines[changed] = f"{key}: {int(value.strip()) + 1}\n" if value.strip().isdigit() else lines[changed] + "\n"
    stack.write_text("".join(lines), encoding="utf-8")
    repo.git.add(A=True)
    repo.git.commit("-m", "network/dev: one config value")
    one = repo.head.commit.hexsha
    repo.close()
    return root, {"every project": (base, every), "network/dev config": (every, one)}


def cold_vs_warm(scratch: Path, repeat: int) -> None:
    root, changes = estate_repo(scratch / "estate")
    print(f"\nsample estate, cold vs warm sandboxes (plan_change, base and head in parallel; {repeat} runs each)")
    print("  command: .venv/bin/python bench/bench_plan.py --only-warm --warm-repeat", repeat)
    print(f"  {'change':<20} {'stacks':>6} {'cold min':>9} {'cold med':>9} {'warm min':>9} {'warm med':>9}")
    with SandboxPool() as pool:
        for name, (base, head) in changes.items():
            stacks = len(plan_change(root, base, head).plan.stacks)
            samples: dict[str, list[float]] = {"cold": [], "warm": []}
            for i in range(repeat):
                for mode in ("cold", "warm") if i % 2 == 0 else ("warm", "cold"):
                    if mode == "warm":
                        pool.wait_warm(60)
                    start = time.perf_counter()
                    plan_change(root, base, head, pool=pool if mode == "warm" else None)
                    samples[mode].append(time.perf_counter() - start)
            cold, warm = samples["cold"], samples["warm"]
            print(
                f"  {name:<20} {stacks:>6} {min(cold):8.2f}s {statistics.median(cold):8.2f}s "
                f"{min(warm):8.2f}s {statistics.median(warm):8.2f}s"
            )
        print(f"  (batches that ran warm: {pool.taken})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warm-repeat", type=int, default=7, help="runs of each cold-vs-warm figure")
    parser.add_argument("--only-warm", action="store_true", help="print only the cold-vs-warm figures")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.only_warm:
        with tempfile.TemporaryDirectory(prefix="glassbox-bench-") as scratch:
            cold_vs_warm(Path(scratch), args.warm_repeat)
        return 0

    bare = python_seconds("pass", args.repeat)
    with_pulumi = python_seconds("import pulumi", args.repeat)
    with_aws = python_seconds("import pulumi, pulumi_aws", args.repeat)
    # pulumi_aws loads its submodules lazily: the cost lands when a program first touches aws.s3, aws.ec2...
    with_modules = python_seconds(
        "import pulumi_aws as aws; aws.s3.Bucket; aws.ec2.SecurityGroup; aws.cloudwatch.LogGroup", args.repeat
    )
    with_sandbox = python_seconds("import pulumi, pulumi_aws, bot.plan.sandbox, bot.records", args.repeat)
    print(f"start-up (median of {args.repeat}, clean environment)")
    print(f"  python                      {bare:6.2f} s")
    print(f"  + import pulumi             {with_pulumi:6.2f} s")
    print(f"  + import pulumi_aws         {with_aws:6.2f} s   (pulumi_aws alone {with_aws - with_pulumi:.2f} s)")
    print(f"  + s3, ec2, cloudwatch       {with_modules:6.2f} s   (what a program of the bench pays)")
    print(f"  pulumi_aws + glassbox sandbox modules {with_sandbox:6.2f} s")

    print("\nplan of one project, one stack, base and head (one config value changes every resource of a kind)")
    print(f"  {'N':>6} {'plan s':>8} {'import share':>13} {'per resource ms':>16}")
    with tempfile.TemporaryDirectory(prefix="glassbox-bench-") as scratch:
        for n in sizes:
            root, base, head = make_repo(Path(scratch) / f"n{n}", n)
            result = build_plan(root, base, head)
            assert len(result.resources) == n, (len(result.resources), n)
            seconds = timed(partial(build_plan, root, base, head), args.repeat)
            # The two sides run in parallel, each paying the pulumi_aws import once.
            share = (with_modules - bare) / seconds
            per = (seconds - with_modules) / n * 1000
            print(f"  {n:>6} {seconds:8.2f} {share:12.0%} {per:16.2f}")

        jobs = sample_jobs(Path(scratch))
        names = ", ".join(f"{j.project}/{j.stack}" for j in jobs)
        print(f"\nbatching, sample infra ({len(jobs)} stacks: {names})")
        one = timed(lambda: run_jobs(jobs, ref="bench", timeout=300), args.repeat)
        each = timed(lambda: [run_jobs([j], ref="bench", timeout=300) for j in jobs], args.repeat)

        def two_batches_in_parallel() -> None:
            half = len(jobs) // 2
            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(lambda part: run_jobs(part, ref="bench", timeout=300), [jobs[:half], jobs[half:]]))

        split = timed(two_batches_in_parallel, args.repeat)

        def base_and_head(parallel: bool) -> None:
            if parallel:
                with ThreadPoolExecutor(max_workers=2) as pool:
                    list(pool.map(lambda _: run_jobs(jobs, ref="bench", timeout=300), range(2)))
            else:
                run_jobs(jobs, ref="bench", timeout=300)
                run_jobs(jobs, ref="bench", timeout=300)

        side_by_side = timed(lambda: base_and_head(True), args.repeat)
        one_after_other = timed(lambda: base_and_head(False), args.repeat)
        print(f"  one process, all stacks           {one:6.2f} s")
        print(f"  one process per stack, in turn    {each:6.2f} s")
        print(f"  two processes of half, parallel   {split:6.2f} s")
        print(f"  base + head batches, in parallel  {side_by_side:6.2f} s   (what build_plan does)")
        print(f"  base + head batches, in turn      {one_after_other:6.2f} s")
        cold_vs_warm(Path(scratch), args.warm_repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
