"""Benchmark checkov in glassbox: the plain CLI against the warm worker, and the worker's IAM memo.

Generates two Terraform plans (deterministic, seeded):
- "mixed": ~1,000 resources in units a platform team would own (VPC, subnets, routes, security groups,
  flow logs, S3 with its companion resources, KMS, RDS, log groups, DynamoDB, IAM roles and scoped
  policies), with a wildcard IAM document in one unit in ten;
- "iam": ~250 IAM policies with wildcard actions (``*``, ``s3:*``, ``iam:*``, ... over a dozen shapes).

Prints: the CLI (``checkov -f plan.json --framework terraform_plan``, the tool environment's entry point,
offline switches set) against the worker (start-up, first scan, warm scans), with or without the IAM memo,
and whether the findings are identical (CLI vs worker, memo vs no memo).

Run: ``.venv/bin/python bench/bench_checkov.py [--resources 1000] [--iam-policies 250] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.policy.checkov import CheckovReport, CheckovWorker, checkov_python, load_policy, worker_environment

Resource = dict[str, Any]
Finding = tuple[str, str, str]  # check id, resource address, status


# --------------------------------------------------------------------------------------------------
# plan generation


class PlanBuilder:
    def __init__(self) -> None:
        self.resources: list[Resource] = []
        self.config: list[Resource] = []

    def add(self, rtype: str, name: str, values: dict[str, Any], refs: dict[str, list[str]] | None = None) -> str:
        address = f"{rtype}.{name}"
        self.resources.append(
            {
                "address": address,
                "mode": "managed",
                "type": rtype,
                "name": name,
                "provider_name": "registry.terraform.io/hashicorp/aws",
                "values": values,
            }
        )
        # References let checkov's cross-resource (CKV2) checks link companions, as in a real plan.
        expressions = {attr: {"references": targets} for attr, targets in (refs or {}).items()}
        self.config.append(
            {"address": address, "mode": "managed", "type": rtype, "name": name, "expressions": expressions}
        )
        return address

    def plan(self) -> dict[str, Any]:
        return {
            "format_version": "1.2",
            "terraform_version": "1.9.8",
            "planned_values": {"root_module": {"resources": self.resources}},
            "configuration": {"root_module": {"resources": self.config}},
        }


def _doc(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


_WILDCARD_SHAPES: list[list[dict[str, Any]]] = [
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


def _unit(b: PlanBuilder, u: int, rng: random.Random, wildcard: bool) -> None:
    """About twenty resources: one team's slice of network, data and identity."""
    env = "prod" if u % 3 == 0 else "dev"
    tags = {"team": f"team-{u}", "env": env}
    vpc = b.add("aws_vpc", f"vpc_{u}", {"cidr_block": f"10.{u % 250}.0.0/16", "enable_dns_support": True, "tags": tags})
    subnets = []
    for az in range(3):
        subnets.append(
            b.add(
                "aws_subnet",
                f"private_{u}_{az}",
                {"cidr_block": f"10.{u % 250}.{az}.0/24", "map_public_ip_on_launch": False, "tags": tags},
                {"vpc_id": [f"{vpc}.id", vpc]},
            )
        )
    rt = b.add("aws_route_table", f"private_{u}", {"tags": tags}, {"vpc_id": [f"{vpc}.id", vpc]})
    b.add("aws_route", f"default_{u}", {"destination_cidr_block": "0.0.0.0/0"}, {"route_table_id": [f"{rt}.id", rt]})
    b.add(
        "aws_flow_log",
        f"vpc_{u}",
        {"traffic_type": "ALL", "log_destination_type": "cloud-watch-logs"},
        {"vpc_id": [f"{vpc}.id", vpc]},
    )
    open_to = ["0.0.0.0/0"] if rng.random() < 0.1 else [f"10.{u % 250}.0.0/16"]
    sg = b.add(
        "aws_security_group",
        f"app_{u}",
        {
            "name": f"app-{u}",
            "description": "application tier",
            "ingress": [
                {
                    "from_port": 443,
                    "to_port": 443,
                    "protocol": "tcp",
                    "cidr_blocks": open_to,
                    "description": "https",
                    "ipv6_cidr_blocks": [],
                    "prefix_list_ids": [],
                    "security_groups": [],
                    "self": False,
                }
            ],
            "egress": [],
            "tags": tags,
        },
        {"vpc_id": [f"{vpc}.id", vpc]},
    )
    b.add(
        "aws_security_group_rule",
        f"db_from_app_{u}",
        {"type": "ingress", "from_port": 5432, "to_port": 5432, "protocol": "tcp", "description": "postgres"},
        {"security_group_id": [f"{sg}.id", sg]},
    )
    key = b.add(
        "aws_kms_key",
        f"data_{u}",
        {
            "description": f"team {u} data",
            "enable_key_rotation": u % 4 != 0,
            "policy": _doc(
                [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                        "Action": "kms:*",
                        "Resource": "*",
                    }
                ]
            ),
        },
    )
    bucket_name = f"glassbox-team-{u}-data"
    bucket = b.add("aws_s3_bucket", f"data_{u}", {"bucket": bucket_name, "force_destroy": False, "tags": tags})
    bucket_ref = {"bucket": [f"{bucket}.id", bucket]}
    b.add(
        "aws_s3_bucket_public_access_block",
        f"data_{u}",
        {
            "bucket": bucket_name,
            "block_public_acls": True,
            "block_public_policy": True,
            "ignore_public_acls": True,
            "restrict_public_buckets": True,
        },
        bucket_ref,
    )
    b.add(
        "aws_s3_bucket_versioning",
        f"data_{u}",
        {"bucket": bucket_name, "versioning_configuration": [{"status": "Enabled"}]},
        bucket_ref,
    )
    b.add(
        "aws_s3_bucket_server_side_encryption_configuration",
        f"data_{u}",
        {
            "bucket": bucket_name,
            "rule": [{"apply_server_side_encryption_by_default": [{"sse_algorithm": "aws:kms"}]}],
        },
        bucket_ref,
    )
    subnet_group = b.add(
        "aws_db_subnet_group", f"db_{u}", {"name": f"db-{u}"}, {"subnet_ids": [f"{s}.id" for s in subnets]}
    )
    b.add(
        "aws_db_instance",
        f"db_{u}",
        {
            "identifier": f"team-{u}",
            "engine": "postgres",
            "engine_version": "16.3",
            "instance_class": "db.t4g.medium",
            "storage_encrypted": True,
            "publicly_accessible": False,
            "backup_retention_period": 7 if env == "prod" else 1,
            "deletion_protection": env == "prod",
            "multi_az": env == "prod",
            "iam_database_authentication_enabled": True,
            "tags": tags,
        },
        {"db_subnet_group_name": [f"{subnet_group}.name", subnet_group], "kms_key_id": [f"{key}.arn", key]},
    )
    b.add(
        "aws_cloudwatch_log_group",
        f"app_{u}",
        {"name": f"/team-{u}/app", "retention_in_days": 365 if env == "prod" else 30},
        {"kms_key_id": [f"{key}.arn", key]},
    )
    b.add(
        "aws_dynamodb_table",
        f"state_{u}",
        {
            "name": f"team-{u}-state",
            "billing_mode": "PAY_PER_REQUEST",
            "hash_key": "id",
            "point_in_time_recovery": [{"enabled": True}],
            "server_side_encryption": [{"enabled": True}],
        },
    )
    trust = _doc([{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}])
    role = b.add("aws_iam_role", f"app_{u}", {"name": f"team-{u}-app", "assume_role_policy": trust, "tags": tags})
    if wildcard:
        statements = _WILDCARD_SHAPES[u % len(_WILDCARD_SHAPES)]
    else:
        statements = [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{bucket_name}/*",
            },
            {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": "arn:aws:dynamodb:*"},
        ]
    policy = b.add("aws_iam_policy", f"app_{u}", {"name": f"team-{u}-app", "policy": _doc(statements)})
    b.add(
        "aws_iam_role_policy_attachment",
        f"app_{u}",
        {},
        {"role": [f"{role}.name", role], "policy_arn": [f"{policy}.arn", policy]},
    )


def _has_wildcard_action(resource: Resource) -> bool:
    if resource["type"] != "aws_iam_policy":
        return False
    for statement in json.loads(resource["values"]["policy"])["Statement"]:
        if "NotAction" in statement:
            return True
        actions = statement.get("Action", [])
        if any("*" in a for a in ([actions] if isinstance(actions, str) else actions)):
            return True
    return False


def mixed_plan(resources: int, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    b = PlanBuilder()
    u = 0
    while len(b.resources) < resources:
        _unit(b, u, rng, wildcard=u % 10 == 3)
        u += 1
    b.resources = b.resources[:resources]
    kept = {r["address"] for r in b.resources}
    b.config = [c for c in b.config if c["address"] in kept]
    return b.plan()


def iam_plan(policies: int) -> dict[str, Any]:
    b = PlanBuilder()
    kinds = ["aws_iam_policy", "aws_iam_role_policy", "aws_iam_user_policy", "aws_iam_group_policy"]
    extra = {"aws_iam_role_policy": {"role": "app"}, "aws_iam_user_policy": {"user": "ci"}}
    extra["aws_iam_group_policy"] = {"group": "ops"}
    for i in range(policies):
        statements = [dict(s) for s in _WILDCARD_SHAPES[i % len(_WILDCARD_SHAPES)]]
        statements[0]["Sid"] = f"Grant{i}"  # every document distinct: no free wins from identical text
        kind = kinds[i % len(kinds)]
        b.add(kind, f"p{i}", {"name": f"p{i}", "policy": _doc(statements), **extra.get(kind, {})})
    return b.plan()


# --------------------------------------------------------------------------------------------------
# measuring


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def report_findings(report: CheckovReport) -> set[Finding]:
    return {(f.check_id, f.resource_address, f.status) for f in report.findings}


def cli_scan(plan_path: Path, skip_checks: list[str]) -> tuple[float, set[Finding]]:
    checkov_cli = checkov_python().parent / "checkov"
    cmd = [str(checkov_cli), "-f", str(plan_path), "--framework", "terraform_plan", "-o", "json", "--skip-download"]
    if skip_checks:
        cmd += ["--skip-check", ",".join(skip_checks)]
    start = time.perf_counter()
    # Same offline environment as the worker (no update check, no platform calls).
    proc = subprocess.run(cmd, capture_output=True, text=True, env=worker_environment(), timeout=1800, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # 1 = some check failed
        raise SystemExit(f"checkov CLI failed ({proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout)
    results = (data[0] if isinstance(data, list) else data)["results"]
    found: set[Finding] = set()
    for status in ("failed", "passed"):
        for rec in results[f"{status}_checks"]:
            found.add((rec["check_id"], rec.get("resource_address") or rec["resource"], status))
    return elapsed, found


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def describe(report: CheckovReport) -> str:
    return f"{report.failed_count} failed, {report.passed_count} passed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--iam-policies", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3, help="CLI runs and warm scans to take the median of")
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args(argv)

    policy = load_policy()
    skips = policy.skipped_ids
    mixed = mixed_plan(args.resources)
    iam = iam_plan(args.iam_policies)
    n_wild = sum(1 for r in mixed["planned_values"]["root_module"]["resources"] if _has_wildcard_action(r))
    print(f"checkov python: {checkov_python()}  cpus: {os.cpu_count()}  skipped checks: {', '.join(skips)}")

    ok = True
    with tempfile.TemporaryDirectory(prefix="glassbox-bench-") as tmp:
        mixed_path = Path(tmp, "plan.json")
        mixed_path.write_text(json.dumps(mixed), encoding="utf-8")
        iam_path = Path(tmp, "iam-plan.json")
        iam_path.write_text(json.dumps(iam), encoding="utf-8")

        print(f"\n== mixed plan: {args.resources} resources ({n_wild} IAM policies with wildcard-ish documents)")
        with CheckovWorker(policy=policy, timeout=1800) as worker:
            start_s, _ = timed(worker.start)
            first_s, first = timed(lambda: worker.scan_plan(mixed))
            warm = [timed(lambda: worker.scan_plan(mixed))[0] for _ in range(args.repeat)]
            print(f"worker start (spawn + import checkov):   {start_s:6.2f} s   (checkov {worker.checkov_version})")
            print(f"worker first scan:                       {first_s:6.2f} s   ({describe(first)})")
            print(f"worker warm scan (median of {args.repeat}):          {median(warm):6.2f} s")
            if not args.skip_cli:
                runs = [cli_scan(mixed_path, skips) for _ in range(args.repeat)]
                cli_s = median([r[0] for r in runs])
                same = all(r[1] == report_findings(first) for r in runs)
                ok &= same
                print(f"CLI checkov -f plan.json --framework terraform_plan (median of {args.repeat}): {cli_s:6.2f} s")
                print(f"CLI / warm worker:                       {cli_s / median(warm):6.1f}x")
                print(f"CLI and worker findings identical:       {'yes' if same else 'NO'}")

        print(f"\n== IAM-heavy plan: {args.iam_policies} policies with wildcard actions, every document distinct")
        results: dict[bool, list[CheckovReport]] = {}
        for memo in (False, True):
            with CheckovWorker(policy=policy, timeout=1800, iam_memo=memo) as w:
                w.start()
                first_s, first = timed(functools.partial(w.scan_plan, iam))
                again_s, again = timed(functools.partial(w.scan_plan, iam))
                results[memo] = [first, again]
                label = "memoized  " if memo else "unmemoized"
                print(f"{label} first scan {first_s:6.2f} s, repeat scan {again_s:6.2f} s   ({describe(first)})")
        identical = results[False][0] == results[True][0] == results[True][1] == results[False][1]
        ok &= identical
        print(f"memoized and unmemoized findings identical: {'yes' if identical else 'NO'}")
        if not args.skip_cli:
            cli_s, cli_found = cli_scan(iam_path, skips)
            same = cli_found == report_findings(results[True][0])
            ok &= same
            verdict = "yes" if same else "NO"
            print(f"CLI on the IAM-heavy plan: {cli_s:6.2f} s; findings identical to the worker's: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
