"""Builders for the proportional-evaluation tests: estates as git repositories, and one change checked twice.

:func:`judged_both_ways` checks one base..head pair in full (``proportional=False``) and proportionally, first
with nothing cached for the base and then with the base's results cached, on the same real plan (planned once in
the sandbox), the same checkov worker and the same engine, and records what each engine was handed.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
import pytest

import bot.check.evaluate as evaluate
from bot.check.closure import ResultCache
from bot.check.evaluate import CheckRequest, CheckResult, run_check
from bot.policy.checkov import CheckovWorker
from bot.records import Finding, FindingStatus, Verdict
from tests.flow_helpers import TEST_GIT_ENV

ROOT = Path(__file__).resolve().parents[1]


def bench_check() -> Any:
    """``bench/bench_check.py`` as a module: its estate builders (``make_estate``) are the bench's own."""
    spec = importlib.util.spec_from_file_location("bench_check", ROOT / "bench" / "bench_check.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[spec.name] = module
    return module


# A prod stack with cross-resource relations of every kind the pack and checkov join on, and violations on
# resources no case touches (they fail every check: a proportional check must still report them). `case`,
# from the stack config, is what the head commit changes.
SHOP = """
import json

import pulumi
import pulumi_aws as aws

case = pulumi.Config().get("case") or "none"
tags = {"Owner": "platform"}
sse = [{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"}}]
blocked = dict(block_public_acls=True, block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True)


def document(statements):
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


for i in range(6):
    bucket = aws.s3.Bucket(f"data-{i}", bucket=f"acme-data-{i}", tags=tags)
    pab = dict(blocked, restrict_public_buckets=not (case == "pab" and i == 0))
    aws.s3.BucketPublicAccessBlock(f"data-{i}", bucket=bucket.id, **pab)
    if not (case == "drop-versioning" and i == 1):
        aws.s3.BucketVersioning(f"data-{i}", bucket=bucket.id, versioning_configuration={"status": "Enabled"})
    aws.s3.BucketServerSideEncryptionConfiguration(f"data-{i}", bucket=bucket.id, rules=sse)

# companions that name their bucket by its literal name: no dependency joins them to it
aws.s3.Bucket("archive", bucket="acme-archive", tags=tags)
if case != "drop-archive-block":
    target = "acme-archive-v2" if case == "retarget-archive-block" else "acme-archive"
    aws.s3.BucketPublicAccessBlock("archive", bucket=target, **blocked)
aws.s3.BucketVersioning("archive", bucket="acme-archive", versioning_configuration={"status": "Enabled"})
aws.s3.BucketServerSideEncryptionConfiguration("archive", bucket="acme-archive", rules=sse)

# a bucket renamed under companions that keep naming it by its old name
vault = "acme-vault-2" if case == "rename-vault" else "acme-vault"
aws.s3.Bucket("vault", bucket=vault, tags=tags)
aws.s3.BucketPublicAccessBlock("vault", bucket="acme-vault", **blocked)
aws.s3.BucketVersioning("vault", bucket="acme-vault", versioning_configuration={"status": "Enabled"})
aws.s3.BucketServerSideEncryptionConfiguration("vault", bucket="acme-vault", rules=sse)

# a block that names its bucket literally, and comes to depend on it without any input changing
ledger = aws.s3.Bucket("ledger", bucket="acme-ledger", tags=tags)
depends = pulumi.ResourceOptions(depends_on=[ledger]) if case == "depends-on" else None
aws.s3.BucketPublicAccessBlock("ledger", bucket="acme-ledger", opts=depends, **blocked)

trust = document([{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}])
role = aws.iam.Role("app", assume_role_policy=trust, tags=tags)
policy = aws.iam.Policy("app", policy=document([{"Effect": "Allow", "Action": ["s3:GetObject"],
                                                 "Resource": "arn:aws:s3:::acme-data-0/*"}]), tags=tags)
admin = "arn:aws:iam::aws:policy/AdministratorAccess"
aws.iam.RolePolicyAttachment("app", role=role.name, policy_arn=admin if case == "admin" else policy.arn)

vpc = aws.ec2.Vpc("main", cidr_block="10.0.0.0/16", tags=tags)
sg = aws.ec2.SecurityGroup("app", vpc_id=vpc.id, description="app tier", tags=tags)
world = ["0.0.0.0/0"] if case == "ssh" else ["10.0.0.0/8"]
aws.ec2.SecurityGroupRule("ssh", type="ingress", protocol="tcp", from_port=22, to_port=22, cidr_blocks=world,
                          security_group_id=sg.id, description="operators")
note = "aws_s3_bucket_public_access_block.archive" if case == "address-tag" else "none"
aws.ec2.SecurityGroupRule("https", type="ingress", protocol="tcp", from_port=443, to_port=443,
                          cidr_blocks=["10.0.0.0/8"], security_group_id=sg.id, description=f"https, see {note}")

# a VPC whose default security group must allow nothing: checkov reads the VPC, its default group and the
# group's rules, two hops from the VPC
edge = aws.ec2.Vpc("edge", cidr_block="10.1.0.0/16", tags=tags)
default = aws.ec2.DefaultSecurityGroup("edge", vpc_id=edge.id, tags=tags)
if case == "default-group-rule":
    aws.ec2.SecurityGroupRule("edge-https", type="ingress", protocol="tcp", from_port=443, to_port=443,
                              cidr_blocks=["10.1.0.0/16"], security_group_id=default.id, description="https")

# untouched by every case, and in violation: no key rotation, no deletion protection
key = aws.kms.Key("legacy", enable_key_rotation=False, description="legacy data")
aws.rds.Instance("legacy", engine="postgres", engine_version="16.3", instance_class="db.t4g.micro",
                 allocated_storage=20, storage_encrypted=True, kms_key_id=key.arn, backup_retention_period=14,
                 deletion_protection=False, skip_final_snapshot=True, tags=tags)
"""


SHOP_ESTATE_ENTRY = """  - name: shop
    directory: infra/shop
    owners: [team:platform]
    stacks:
      - {name: prod, environment: prod}
"""


@dataclass
class ShopEstate:
    """A git repository holding this checkout's trust anchors and the ``shop`` project at one base commit."""

    root: Path
    repo: git.Repo
    base: str
    heads: dict[str, str] = field(default_factory=dict)

    def head(self, case: str) -> str:
        """A commit on top of the base whose stack config selects ``case`` (made once per case)."""
        if case not in self.heads:
            self.repo.git.checkout("--detach", self.base)
            (self.root / "infra" / "shop" / "Pulumi.prod.yaml").write_text(_shop_config(case), encoding="utf-8")
            self.repo.git.add("-A")
            self.repo.git.commit("--no-gpg-sign", "--no-verify", "-m", f"change: {case}", env=TEST_GIT_ENV)
            self.heads[case] = self.repo.head.commit.hexsha
        return self.heads[case]


def _shop_config(case: str) -> str:
    return f"config:\n  aws:region: eu-west-1\n  glassbox:environment: prod\n  shop:case: {case}\n"


def shop_estate(root: Path) -> ShopEstate:
    for name in ("registry", "policy-pack"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    with (root / "registry" / "estate.yaml").open("a", encoding="utf-8") as estate:
        # registered, so that a change to its stack config is no governance change: the tier is the plan's
        estate.write(SHOP_ESTATE_ENTRY)
    project = root / "infra" / "shop"
    project.mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: shop\nruntime:\n  name: python\n", encoding="utf-8")
    (project / "__main__.py").write_text(SHOP, encoding="utf-8")
    (project / "Pulumi.prod.yaml").write_text(_shop_config("none"), encoding="utf-8")
    repo = git.Repo.init(root, initial_branch="main")
    repo.git.add("-A")
    repo.git.commit("--no-gpg-sign", "--no-verify", "-m", "base estate", env=TEST_GIT_ENV)
    return ShopEstate(root, repo, repo.head.commit.hexsha)


# --------------------------------------------------------------------------------------------------
# one change, judged in full and proportionally


@dataclass
class Judged:
    full: Verdict
    cold: Verdict  # proportional, nothing cached for the base
    warm: Verdict  # proportional, the base's results cached
    estate: int  # resources at head
    changes: int  # the plan's changes
    rego_inputs: dict[str, list[int]]  # per run: the resources each Rego evaluation was handed
    checkov_scans: dict[str, list[int]]  # per run: the resources of each plan checkov scanned


def verdict_facts(v: Verdict) -> tuple[Any, ...]:
    """What a verdict says about the change: result, findings (in order), tier and reasons."""
    return (v.result, v.findings, v.risk, v.risk_reasons, v.required_approvals, v.errors)


def denied(v: Verdict, rule: str) -> list[Finding]:
    return [f for f in v.findings if f.rule_id == rule and f.status is FindingStatus.DENY]


@contextmanager
def observed(monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker) -> Iterator[tuple[list[int], list[int]]]:
    """Record the size of every Rego input and every checkov plan scan while the block runs; plans are
    computed once per base..head pair (the sandbox runs them; both evaluations judge the same plan)."""
    rego_sizes: list[int] = []
    scan_sizes: list[int] = []
    real_rego = evaluate.rego_findings
    real_scan = worker.scan_plan
    real_plan = evaluate.plan_change
    plans: dict[tuple[Any, ...], Any] = {}

    def rego(pack: Any, data: dict[str, Any]) -> Any:
        rego_sizes.append(len(data["plan"]["resources"]))
        return real_rego(pack, data)

    def scan(plan: Any) -> Any:
        scan_sizes.append(len(plan["resource_changes"]))
        return real_scan(plan)

    def plan_once(*args: Any, **kwargs: Any) -> Any:
        key = tuple(args[:3])
        if key not in plans:
            plans[key] = real_plan(*args, **kwargs)
        return plans[key]

    monkeypatch.setattr(evaluate, "rego_findings", rego)
    monkeypatch.setattr(evaluate, "plan_change", plan_once)
    monkeypatch.setattr(worker, "scan_plan", scan)
    try:
        yield rego_sizes, scan_sizes
    finally:
        monkeypatch.setattr(worker, "scan_plan", real_scan)


def judged_both_ways(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, root: Path, base: str, head: str, **request: Any
) -> Judged:
    rego_inputs: dict[str, list[int]] = {}
    scans: dict[str, list[int]] = {}
    verdicts: dict[str, CheckResult] = {}
    with observed(monkeypatch, worker) as (rego_sizes, scan_sizes):
        for run, proportional in (("full", False), ("cold", True), ("warm", True)):
            if run == "cold":
                ResultCache.clear_memory()
            rego_sizes.clear()
            scan_sizes.clear()
            check = CheckRequest(
                repo_path=root, base=base, head=head, checkov=worker, proportional=proportional, **request
            )
            verdicts[run] = run_check(check)
            rego_inputs[run] = list(rego_sizes)
            scans[run] = list(scan_sizes)
    plan = verdicts["full"].plan
    assert plan is not None and not verdicts["full"].verdict.errors
    return Judged(
        full=verdicts["full"].verdict,
        cold=verdicts["cold"].verdict,
        warm=verdicts["warm"].verdict,
        estate=len(plan.resources),
        changes=len(plan.changes),
        rego_inputs=rego_inputs,
        checkov_scans=scans,
    )
