"""The whole check against the plain checkov CLI, on generated estates (issue 11, the check path).

Each estate is a git repository holding this checkout's ``registry/`` and ``policy-pack/`` (the trust
anchors ``run_check`` reads from the base commit) and one Pulumi project under ``infra/bench``:

- ``mixed-N`` (N = 10, 100, 1000): units of about twenty resources a platform team owns (VPC, subnets,
  route table, flow log, security group + rule, KMS key, S3 bucket with public access block, versioning and
  encryption, RDS instance, log group, DynamoDB table, IAM role, a scoped policy and its attachment), with
  a wildcard IAM document in one unit in ten. The head commit changes the cost-centre tag and the log
  retention of the whole estate (every resource is updated).
- ``iam-250``: about 250 IAM policies with wildcard actions (a dozen shapes, every document distinct); the
  head commit adds them.

For each estate, measured in the same run:
- the whole check: ``run_check`` with a warm ``CheckovWorker`` (plan + Rego + checkov + verdict) plus
  signing the attestation;
- the plain CLI ``checkov -f plan.json --framework terraform_plan`` (the tool environment's entry point,
  checkov's offline switches as ``bot/policy/checkov.py`` sets them, the pack's skipped checks) on the
  same Terraform plan JSON the check hands to the worker;
- Rego only: the prepared regopy engine (compiled once) evaluating the same policy input the check built,
  split into input conversion and query; and the regorus engine on the same input, with whether both
  engines' results are identical;
- on the IAM-heavy estate, whether the check's checkov findings equal the CLI's.

Proportional evaluation (:mod:`bot.check.closure`), on ``touched-N`` (N = 1000 by default): the mixed
estate of N resources where the head commit changes five resources of one unit. Measured in the same run:

- ``full``: the check with ``proportional=False``, nothing cached (what every check cost before);
- ``cold``: proportional, nothing cached: the first PR against a new main, which also evaluates its base in full;
- ``ci``: a CI check of this PR after another PR against the same main was checked: the base side's plan (the
  plan cache, ``bot.plan.cache``) and its results (``GLASSBOX_EVALUATION_CACHE_DIR``) are on disk, the process
  cache is empty, the head is planned in the sandbox; also ``ci-full``, the same with ``proportional=False``;
- ``preflight``: the same check in one long-lived process holding warm services as ``glassbox mcp`` does (checkov,
  pack, anchors, plan cache, two warm sandboxes), after it judged the other PR and its sandboxes warmed again;
  then further PRs of five resources each (``--preflight-calls`` in all), the figure being their median;
- the plain CLI on that estate's (head) Terraform plan; whether every verdict is identical to ``full``'s.

Targets (printed with PASS/MISS): whole check within 1.3x of the CLI on mixed-1000 (every resource changes);
the CI check of touched-1000 within 0.5x of the CLI; faster than the CLI with identical findings on iam-250;
Rego over 1,000 resources within 100 ms for regopy and regorus here (the default engine, OPA, is measured beside
them by ``bench/bench_rego.py``).

The whole check uses the default engine (OPA, ``bot.policy.engines``) unless ``GLASSBOX_REGO_ENGINE`` says
otherwise.

Run: ``.venv/bin/python bench/bench_check.py [--sizes 10,100,1000] [--iam-policies 250] [--touched 1000]
[--repeat 1] [--preflight-calls 5]``.
A bench, not a test: it asserts nothing; the exit code is 0 unless a step fails outright.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import git

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import bot.check.closure as closure_module  # noqa: E402
import bot.check.evaluate as check_module  # noqa: E402
from bot.check.ci import attest_and_record  # noqa: E402
from bot.check.evaluate import CheckRequest, CheckResult, run_check  # noqa: E402
from bot.check.services import CheckServices  # noqa: E402
from bot.entry import describe_go_gc, start_with_go_gc  # noqa: E402
from bot.plan.cache import PlanCache  # noqa: E402
from bot.plan.terraform import to_terraform_plan  # noqa: E402
from bot.policy.checkov import CheckovWorker, checkov_python, load_policy, worker_environment  # noqa: E402
from bot.policy.engines import make_engine  # noqa: E402
from bot.policy.engines.input import prepare_input  # noqa: E402
from bot.policy.engines.regopy import RegopyEngine, rego_input  # noqa: E402
from bot.policy.engines.regorus import RegorusEngine, regorus_available  # noqa: E402
from bot.policy.pack import load_pack  # noqa: E402
from bot.trust.keys import generate_key  # noqa: E402

# --------------------------------------------------------------------------------------------------
# estates

# One Pulumi program for every estate: `units` platform units (about 20 resources each, cut to `count`)
# and `wildcards` IAM policies with wildcard actions. Tags and retention come from the stack config, so
# the head commit can change the whole estate by editing two config values.
PROGRAM = """
import json

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
count = config.require_int("count")
wildcards = config.require_int("wildcards")
retention = config.require_int("retention")
touched = config.get_int("touched")  # the unit whose five resources the head commit changes, if any
environment = pulumi.Config("glassbox").require("environment")
tags = {"Owner": "platform", "CostCenter": config.require("costCenter"), "Environment": environment}

SHAPES = [
    [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["iam:*", "sts:AssumeRole"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["lambda:*", "logs:*"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["dynamodb:*", "kms:*"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": "*", "Resource": "*"}, {"Effect": "Deny", "Action": "iam:*", "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["rds:*", "ec2:Describe*"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["sqs:*", "sns:*"], "Resource": "*"}],
    [{"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["secretsmanager:*", "ssm:*"], "Resource": "*"}],
]


def document(statements):
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


made = 0


def add(factory, *args, **kwargs):
    global made
    if made >= count:
        return None
    made += 1
    return factory(*args, **kwargs)


u = 0
while made < count:
    t = f"t{u}"
    edit = u == touched
    unit_tags = {**tags, "Revision": "2"} if edit else tags
    vpc = add(aws.ec2.Vpc, f"vpc-{t}", cidr_block=f"10.{u % 250}.0.0/16", enable_dns_support=True, tags=tags)
    vpc_id = vpc.id if vpc else "vpc-0"
    subnets = []
    for az in range(3):
        s = add(aws.ec2.Subnet, f"private-{t}-{az}", vpc_id=vpc_id, cidr_block=f"10.{u % 250}.{az}.0/24",
                map_public_ip_on_launch=False, tags=tags)
        if s:
            subnets.append(s.id)
    add(aws.ec2.RouteTable, f"private-{t}", vpc_id=vpc_id, tags=tags)
    logs = add(aws.cloudwatch.LogGroup, f"flow-{t}", retention_in_days=retention, tags=tags)
    add(aws.ec2.FlowLog, f"vpc-{t}", vpc_id=vpc_id, traffic_type="ALL",
        log_destination_type="cloud-watch-logs", log_destination=logs.arn if logs else "arn:aws:logs:x", tags=tags)
    sg = add(aws.ec2.SecurityGroup, f"app-{t}", description="application tier", vpc_id=vpc_id, tags=tags,
             ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [f"10.{u % 250}.0.0/16"],
                       "description": "https"}],
             egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/8"],
                      "description": "https"}])
    add(aws.ec2.SecurityGroupRule, f"db-from-app-{t}", type="ingress", from_port=5432, to_port=5432, protocol="tcp",
        cidr_blocks=["10.0.0.0/8"], security_group_id=sg.id if sg else "sg-0",
        description="postgres from the app tier" if edit else "postgres")
    key = add(aws.kms.Key, f"data-{t}", description=f"unit {u} data", enable_key_rotation=True,
              deletion_window_in_days=30, tags=tags)
    bucket = add(aws.s3.Bucket, f"data-{t}", bucket=f"acme-{environment}-{t}-data", force_destroy=False,
                 tags=unit_tags)
    bucket_id = bucket.id if bucket else f"data-{t}"
    add(aws.s3.BucketPublicAccessBlock, f"data-{t}", bucket=bucket_id, block_public_acls=True,
        block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True)
    add(aws.s3.BucketVersioning, f"data-{t}", bucket=bucket_id, versioning_configuration={"status": "Enabled"})
    add(aws.s3.BucketServerSideEncryptionConfiguration, f"data-{t}", bucket=bucket_id, rules=[{
        "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms",
                                                    "kms_master_key_id": key.arn if key else "arn:aws:kms:x"}}])
    add(aws.rds.Instance, f"db-{t}", engine="postgres", engine_version="16.3", instance_class="db.t4g.medium",
        allocated_storage=50, storage_encrypted=True, kms_key_id=key.arn if key else None,
        publicly_accessible=False, backup_retention_period=14, deletion_protection=True, multi_az=True,
        iam_database_authentication_enabled=True, db_subnet_group_name=f"db-{t}", skip_final_snapshot=False,
        tags=tags)
    add(aws.cloudwatch.LogGroup, f"app-{t}", retention_in_days=retention * 2 if edit else retention, tags=tags)
    add(aws.dynamodb.Table, f"state-{t}", billing_mode="PAY_PER_REQUEST", hash_key="id",
        attributes=[{"name": "id", "type": "S"}], point_in_time_recovery={"enabled": True},
        server_side_encryption={"enabled": True}, tags=tags)
    trust = document([{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                       "Action": "sts:AssumeRole"}])
    role = add(aws.iam.Role, f"app-{t}", assume_role_policy=trust, tags=unit_tags)
    if u % 10 == 3:
        statements = SHAPES[u % len(SHAPES)]
    else:
        statements = [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": f"arn:aws:s3:::acme-{environment}-{t}-data/*"},
            {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
             "Resource": "arn:aws:dynamodb:eu-west-1:123456789012:table/state"},
        ]
        if edit:
            statements[0]["Action"].append("s3:DeleteObject")
    policy = add(aws.iam.Policy, f"app-{t}", policy=document(statements), tags=tags)
    add(aws.iam.RolePolicyAttachment, f"app-{t}", role=role.name if role else f"app-{t}",
        policy_arn=policy.arn if policy else "arn:aws:iam::123456789012:policy/x")
    u += 1

for i in range(wildcards):
    statements = [dict(s) for s in SHAPES[i % len(SHAPES)]]
    statements[0]["Sid"] = f"Grant{i}"  # every document distinct
    aws.iam.Policy(f"wild-{i}", policy=document(statements), tags=tags)
"""


def _config(count: int, wildcards: int, retention: int, cost_center: str, touched: int | None = None) -> str:
    return (
        "config:\n"
        "  aws:region: eu-west-1\n"
        "  glassbox:environment: prod\n"
        f"  bench:count: {count}\n"
        f"  bench:wildcards: {wildcards}\n"
        f"  bench:retention: {retention}\n"
        f"  bench:costCenter: {cost_center}\n"
    ) + (f"  bench:touched: {touched}\n" if touched is not None else "")


def make_estate(
    root: Path, *, base: tuple[int, int], head: tuple[int, int], retag: bool, touched: int | None = None
) -> tuple[str, str]:
    """A repository: trust anchors + one project; base and head differ in size and/or config. ``touched``: the
    head commit changes five resources of that unit (the app log group's retention, the database rule's
    description, the bucket's and the role's tags, a permission of the role's policy)."""
    for name in ("registry", "policy-pack"):
        shutil.copytree(REPO_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    project = root / "infra" / "bench"
    project.mkdir(parents=True)
    (project / "Pulumi.yaml").write_text(
        "name: bench\nruntime:\n  name: python\ndescription: generated estate\n", encoding="utf-8"
    )
    (project / "__main__.py").write_text(PROGRAM, encoding="utf-8")
    stack = project / "Pulumi.prod.yaml"
    repo = git.Repo.init(root, initial_branch="main")
    env = {"GIT_AUTHOR_NAME": "alice", "GIT_AUTHOR_EMAIL": "alice@example.com"}
    env |= {"GIT_COMMITTER_NAME": "alice", "GIT_COMMITTER_EMAIL": "alice@example.com"}

    def commit(message: str) -> str:
        repo.git.add("-A")
        repo.git.commit("--no-gpg-sign", "--no-verify", "-m", message, env=env)
        return repo.head.commit.hexsha

    stack.write_text(_config(base[0], base[1], 30, "cc-1001"), encoding="utf-8")
    base_sha = commit("base estate")
    cost_center, retention = ("cc-2002", 90) if retag else ("cc-1001", 30)
    stack.write_text(_config(head[0], head[1], retention, cost_center, touched), encoding="utf-8")
    head_sha = commit("head: the change under check")
    repo.close()
    return base_sha, head_sha


def another_head(root: Path, base_sha: str, count: int, touched: int) -> str:
    """Another PR's head against the same base: five resources of unit ``touched`` change."""
    repo = git.Repo(root)
    env = {"GIT_AUTHOR_NAME": "bob", "GIT_AUTHOR_EMAIL": "bob@example.com"}
    env |= {"GIT_COMMITTER_NAME": "bob", "GIT_COMMITTER_EMAIL": "bob@example.com"}
    repo.git.checkout("--detach", base_sha)
    (root / "infra" / "bench" / "Pulumi.prod.yaml").write_text(
        _config(count, 0, 30, "cc-1001", touched), encoding="utf-8"
    )
    repo.git.add("-A")
    repo.git.commit("--no-gpg-sign", "--no-verify", "-m", "another PR against the same main", env=env)
    sha = repo.head.commit.hexsha
    repo.close()
    return sha


# --------------------------------------------------------------------------------------------------
# measuring


# The units whose five resources the later pre-flight PRs change (unit 2 is this PR's, unit 7 the other PR's).
PREFLIGHT_UNITS = (11, 13, 17, 19, 23, 29, 31, 37)


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    samples, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), value


def cli_command(plan_path: Path, skips: list[str]) -> list[str]:
    """The plain CLI on one plan file, as the bench runs it (in checkov's tool environment, offline)."""
    cmd = [str(checkov_python().parent / "checkov"), "-f", str(plan_path), "--framework", "terraform_plan"]
    return cmd + ["-o", "json", "--skip-download"] + (["--skip-check", ",".join(skips)] if skips else [])


def cli_scan(plan_path: Path, skips: list[str]) -> tuple[float, set[tuple[str, str]]]:
    """The plain CLI on one plan file: wall time and its failed (check id, address) pairs."""
    cmd = cli_command(plan_path, skips)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=worker_environment(), timeout=3600, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"checkov CLI failed ({proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if isinstance(data, list):
        data = data[0] if data else {}
    results = data.get("results", {}) if isinstance(data, dict) else {}
    failed = {(r["check_id"], r.get("resource_address") or r["resource"]) for r in results.get("failed_checks", [])}
    return elapsed, failed


def check_failed(result: CheckResult) -> set[tuple[str, str]]:
    return {(f.rule_id, str(f.details.get("address"))) for f in result.verdict.findings if f.engine == "checkov"}


def rego_split(engine: RegopyEngine, data: dict[str, Any], repeat: int) -> tuple[float, float, float]:
    """(evaluate, input, query) in ms, medians over ``repeat`` runs. ``input`` is what precedes the queries:
    normalising and indexing the input (Python), handing it to rego-cpp and rego-cpp ingesting it."""
    import regopy

    total, _ = median_time(lambda: engine.evaluate(data), repeat)
    interp = engine._interp  # a bench looks inside on purpose
    prepared, _ = median_time(lambda: interp.set_input(rego_input(regopy, prepare_input(data))), repeat)
    return total * 1000, prepared * 1000, max(total - prepared, 0.0) * 1000


def verdict_line(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def proportional_figures(
    tmp: Path,
    worker: CheckovWorker,
    signer: Any,
    args: argparse.Namespace,
    skips: list[str],
    phases: dict[str, float],
) -> dict[str, Any]:
    """A five-resource change in a ``--touched``-resource estate: full, cold and CI checks against the CLI."""
    n = args.touched
    root = tmp / f"touched-{n}"
    root.mkdir()
    base_sha, head_sha = make_estate(root, base=(n, 0), head=(n, 0), retag=False, touched=2)
    other_sha = another_head(root, base_sha, n, touched=7)

    def check(head: str, proportional: bool, services: CheckServices | None = None) -> tuple[float, CheckResult]:
        phases.clear()
        request = CheckRequest(
            repo_path=root,
            base=base_sha,
            head=head,
            repo="acme/bench",
            pr=2,
            checkov=worker,
            plan_timeout=900,
            proportional=proportional,
            services=services,
        )
        start = time.perf_counter()
        result = attest_and_record(run_check(request), signer=signer, ledger=None)
        return time.perf_counter() - start, result

    def report(label: str, seconds: float, result: CheckResult) -> None:
        split = ", ".join(f"{k} {v:.2f} s" for k, v in phases.items())
        print(f"touched-{n} {label}: {seconds:.2f} s ({split}); verdict {result.verdict.result.value}", flush=True)

    figures: dict[str, Any] = {}
    verdicts = {}
    for label, proportional in (("full", False), ("cold", True)):
        closure_module.ResultCache.clear_memory()
        figures[label], verdicts[label] = check(head_sha, proportional)
        report(label, figures[label], verdicts[label])
    # CI: another PR against the same main was checked first; this process starts with nothing in memory
    previous = os.environ.get(closure_module.CACHE_DIR_ENV)
    os.environ[closure_module.CACHE_DIR_ENV] = str(tmp / "evaluation-cache")
    try:
        closure_module.ResultCache.clear_memory()
        with CheckServices(plan_cache=PlanCache(tmp / "plan-cache")) as services:
            check(other_sha, True, services)
        for label, proportional in (("ci-full", False), ("ci", True)):
            closure_module.ResultCache.clear_memory()
            # each run finds the plan cache as the other PR left it: the base side only
            runner = tmp / f"plan-cache-{label}"
            shutil.copytree(tmp / "plan-cache", runner)
            with CheckServices(plan_cache=PlanCache(runner)) as services:
                figures[label], verdicts[label] = check(head_sha, proportional, services)
            report(label, figures[label], verdicts[label])
        # pre-flight: one long-lived process as `glassbox mcp` holds it (warm checkov, pack, anchors, plan cache and
        # two warm sandboxes) judged the other PR first; once its sandboxes are warm again (as between an agent's
        # calls; not timed) it judges this one
        closure_module.ResultCache.clear_memory()
        # it judges this PR, then further PRs (each five resources of another unit), and the figure is the median
        # of those later calls, as the target states it
        later = [another_head(root, base_sha, n, touched=unit) for unit in PREFLIGHT_UNITS[: args.preflight_calls - 1]]
        samples: list[float] = []
        with CheckServices(plan_cache=PlanCache(tmp / "plan-cache-preflight"), warm_sandboxes=2) as services:
            check(other_sha, True, services)
            for sha in [head_sha, *later]:
                if services.sandbox_pool is not None:
                    services.sandbox_pool.wait_warm(120.0)
                seconds, result = check(sha, True, services)
                samples.append(seconds)
                if sha == head_sha:
                    verdicts["preflight"] = result
                    report("preflight", seconds, result)
        figures["preflight"] = statistics.median(samples)
        figures["preflight_samples"] = samples
        print(
            f"touched-{n} preflight, {len(samples)} later calls: median {figures['preflight']:.2f} s "
            f"({', '.join(f'{x:.2f}' for x in samples)})",
            flush=True,
        )
    finally:
        if previous is None:
            os.environ.pop(closure_module.CACHE_DIR_ENV, None)
        else:
            os.environ[closure_module.CACHE_DIR_ENV] = previous
    plan = verdicts["full"].plan
    assert plan is not None
    plan_path = tmp / f"touched-{n}-plan.json"
    plan_path.write_text(json.dumps(to_terraform_plan(plan.resources)), encoding="utf-8")
    cli_runs = [cli_scan(plan_path, skips) for _ in range(args.repeat)]
    figures["cli"] = statistics.median(r[0] for r in cli_runs)

    def facts(r: CheckResult) -> Any:
        v = r.verdict
        return (v.result, v.findings, v.risk, v.risk_reasons, v.errors)

    figures["same"] = all(facts(v) == facts(verdicts["full"]) for v in verdicts.values())
    print(f"touched-{n}: the CLI: {shlex.join(cli_command(plan_path, skips))}")
    print(
        f"touched-{n}: {len(plan.resources)} resources, {len(plan.changes)} changes; CLI {figures['cli']:.2f} s, "
        f"full {figures['full']:.2f} s, cold {figures['cold']:.2f} s, "
        f"CI full {figures['ci-full']:.2f} s, CI proportional {figures['ci']:.2f} s "
        f"({figures['ci'] / figures['cli']:.2f}x the CLI); identical verdicts: {'yes' if figures['same'] else 'NO'}",
        flush=True,
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--iam-policies", type=int, default=250)
    parser.add_argument("--touched", type=int, default=1000, help="estate size for the five-resource change (0: skip)")
    parser.add_argument("--repeat", type=int, default=1, help="whole checks and CLI runs per estate (median)")
    parser.add_argument("--rego-repeat", type=int, default=5)
    parser.add_argument(
        "--preflight-calls", type=int, default=5, help="later pre-flight calls on touched-N, each another PR (median)"
    )
    parser.add_argument("--dump-inputs", type=Path, help="write each estate's policy input here (JSON)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    policy = load_policy(REPO_ROOT / "policy-pack" / "checkov")
    skips = policy.skipped_ids
    pack = load_pack(REPO_ROOT / "policy-pack")
    engine = RegopyEngine(pack)
    fast = RegorusEngine(pack) if regorus_available() else None
    print(
        f"cpus {os.cpu_count()}, checkov python {checkov_python()}, the check's rego engine {make_engine(pack).name}"
        f"; Rego-only figures: {engine.name} and {fast.name if fast else 'regorus (not installed)'}"
    )
    print(describe_go_gc())

    # The policy input each check built, captured on its way into the Rego engine.
    captured: list[dict[str, Any]] = []
    original = check_module.rego_findings

    # Where the last check's time went: plan, Rego (pack load + compile + evaluation), checkov.
    phases: dict[str, float] = {}
    original_plan = check_module.plan_change

    def phase(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*a: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - start

        return timed_call

    def spy(pack_dir: Path, data: dict[str, Any]) -> Any:
        captured.append(data)
        return original(pack_dir, data)

    check_module.rego_findings = phase("rego", spy)  # type: ignore[assignment]
    check_module.plan_change = phase("plan", original_plan)  # type: ignore[assignment]
    original_base_rego = closure_module.Proportional._base_rego
    closure_module.Proportional._base_rego = phase("rego-base", original_base_rego)  # type: ignore[method-assign]
    estates = [(f"mixed-{n}", (n, 0), (n, 0), True) for n in sizes]
    if args.iam_policies:
        estates.append((f"iam-{args.iam_policies}", (0, 0), (0, args.iam_policies), False))

    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="glassbox-bench-check-") as tmp,
        CheckovWorker(policy=policy, timeout=3600) as worker,
    ):
        signer = generate_key(Path(tmp) / "keys", "glassbox-ci")
        worker.start()
        warm = to_terraform_plan([])
        worker.scan_plan(warm)  # the worker is warm before any estate is timed
        worker.scan_plan = phase("checkov", worker.scan_plan)  # type: ignore[method-assign]
        for name, base, head, retag in estates:
            root = Path(tmp) / name
            root.mkdir()
            base_sha, head_sha = make_estate(root, base=base, head=head, retag=retag)
            request = CheckRequest(
                repo_path=root, base=base_sha, head=head_sha, repo="acme/bench", pr=1, checkov=worker, plan_timeout=900
            )
            captured.clear()

            def one_check(r: CheckRequest = request) -> CheckResult:
                phases.clear()
                result = run_check(r)
                return phase("sign", attest_and_record)(result, signer=signer, ledger=None)

            seconds, result = median_time(one_check, args.repeat)
            off_s = float("nan")
            if name.startswith("mixed-"):  # the same check with proportional evaluation off
                off_s, _ = median_time(lambda r=request: one_check(replace(r, proportional=False)), args.repeat)
            if result.verdict.errors:
                print(f"{name}: check errors: {result.verdict.errors}")
            assert result.plan is not None
            plan_json = to_terraform_plan(result.plan.resources)
            plan_path = root.parent / f"{name}-plan.json"
            plan_path.write_text(json.dumps(plan_json), encoding="utf-8")
            cli_runs = [cli_scan(plan_path, skips) for _ in range(args.repeat)]
            cli_s = statistics.median(r[0] for r in cli_runs)
            if args.dump_inputs:
                args.dump_inputs.mkdir(parents=True, exist_ok=True)
                (args.dump_inputs / f"{name}.json").write_text(json.dumps(captured[-1]), encoding="utf-8")
            total_ms, conv_ms, query_ms = rego_split(engine, captured[-1], args.rego_repeat)
            fast_ms, agree = float("nan"), None
            if fast is not None:
                fast_s, fast_eval = median_time(lambda d=captured[-1]: fast.evaluate(d), args.rego_repeat)
                fast_ms = fast_s * 1000
                neutral = {"engine": "-"}
                agree = fast_eval.model_copy(update=neutral) == engine.evaluate(captured[-1]).model_copy(update=neutral)
            ours = check_failed(result)
            rows.append(
                {
                    "name": name,
                    "resources": len(result.plan.resources),
                    "changes": len(result.plan.changes),
                    "check_s": seconds,
                    "off_s": off_s,
                    "cli_s": cli_s,
                    "rego_ms": total_ms,
                    "conv_ms": conv_ms,
                    "query_ms": query_ms,
                    "fast_ms": fast_ms,
                    "agree": agree,
                    "same": all(r[1] == ours for r in cli_runs),
                    "ours": len(ours),
                    "cli": len(cli_runs[0][1]),
                    "verdict": f"{result.verdict.result.value}/{result.verdict.risk.value}",
                    "phases": dict(phases),
                }
            )
            r = rows[-1]
            print(
                f"{name}: {r['resources']} resources, {r['changes']} changes; check {seconds:.2f} s "
                f"(proportional off: {off_s:.2f} s), "
                f"CLI {cli_s:.2f} s, Rego {total_ms:.1f} ms (regorus {fast_ms:.1f} ms); verdict {r['verdict']}; "
                "last check: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["phases"].items()),
                flush=True,
            )
        touched = proportional_figures(Path(tmp), worker, signer, args, skips, phases) if args.touched else None
    check_module.rego_findings = original  # type: ignore[assignment]
    check_module.plan_change = original_plan  # type: ignore[assignment]
    closure_module.Proportional._base_rego = original_base_rego  # type: ignore[method-assign]

    print(
        f"\n{'estate':>10} {'res':>5} {'chg':>5} {'check s':>8} {'off s':>7} {'CLI s':>7} {'check/CLI':>9} "
        f"{'rego ms':>8} {'(input':>7} {'query)':>7} {'regorus':>8} {'agree':>5} {'ckv failed':>10} "
        f"{'CLI failed':>10} same"
    )
    for r in rows:
        print(
            f"{r['name']:>10} {r['resources']:>5} {r['changes']:>5} {r['check_s']:8.2f} {r['off_s']:7.2f} "
            f"{r['cli_s']:7.2f} "
            f"{r['check_s'] / r['cli_s']:9.2f} {r['rego_ms']:8.1f} {r['conv_ms']:7.1f} {r['query_ms']:7.1f} "
            f"{r['fast_ms']:8.1f} {'-' if r['agree'] is None else 'yes' if r['agree'] else 'NO':>5} "
            f"{r['ours']:>10} {r['cli']:>10} {'yes' if r['same'] else 'NO'}"
        )
    print("\ntargets")
    by_name = {r["name"]: r for r in rows}
    if "mixed-1000" in by_name:
        r = by_name["mixed-1000"]
        ratio = r["check_s"] / r["cli_s"]
        print(
            f"  whole check within 1.3x of the CLI on mixed-1000: {ratio:.2f}x  {verdict_line(ratio <= 1.3)} "
            f"(proportional off: {r['off_s'] / r['cli_s']:.2f}x)"
        )
        print(
            f"  Rego over 1,000 resources within 100 ms, regopy (alternate engine): {r['rego_ms']:.1f} ms  "
            f"{verdict_line(r['rego_ms'] <= 100)} (the default engine: bench/bench_rego.py)"
        )
        if fast is not None:
            print(
                f"  Rego over 1,000 resources within 100 ms, regorus (opt-in): {r['fast_ms']:.1f} ms  "
                f"{verdict_line(r['fast_ms'] <= 100)}; results identical to regopy: {'yes' if r['agree'] else 'NO'}"
            )
    if touched is not None:
        print(
            f"  (figure) the check within a pre-flight (warm services), median of "
            f"{len(touched['preflight_samples'])} later calls, of a 5-resource change in touched-{args.touched}: "
            f"{touched['preflight']:.2f} s; the target (within 1.5 s) is the MCP pre-flight's, with its clone and "
            "would-be commit: bench/bench_preflight.py"
        )
        ratio = touched["ci"] / touched["cli"]
        print(
            f"  CI check of a 5-resource change in touched-{args.touched} within 0.5x of the CLI: {ratio:.2f}x "
            f"({touched['ci']:.2f} s vs {touched['cli']:.2f} s)  {verdict_line(ratio <= 0.5)}; verdicts identical "
            f"to the full evaluation: {'yes' if touched['same'] else 'NO'}"
        )
    iam = by_name.get(f"iam-{args.iam_policies}")
    if iam:
        ok = iam["check_s"] < iam["cli_s"] and iam["same"]
        print(
            f"  iam-{args.iam_policies}: check {iam['check_s']:.2f} s vs CLI {iam['cli_s']:.2f} s, findings "
            f"{'identical' if iam['same'] else 'DIFFERENT'}  {verdict_line(ok)}"
        )
    return 0


if __name__ == "__main__":
    start_with_go_gc()  # as the glassbox command starts: the embedded OPA's Go collector target (bot/entry.py)
    raise SystemExit(main())
