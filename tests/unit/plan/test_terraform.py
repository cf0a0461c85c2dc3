"""Terraform-plan translation (shape, names, references) and checkov's verdicts on bad and good resources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.plan.mockcloud import mock_arn, mock_id
from bot.plan.model import Resource
from bot.plan.terraform import TERRAFORM_TYPES, address_map, snake, to_terraform_plan
from tests.plan_helpers import CHECKOV_PYTHON, INFRA

STACK, PROJECT = "test", "checks"
TAGS = {"Owner": "platform", "CostCenter": "cc-1", "Environment": "prod"}


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::{PROJECT}::{type_}::{name}"


def res(type_: str, name: str, inputs: dict[str, Any], *depends_on: Resource) -> Resource:
    return Resource(
        urn=urn(type_, name),
        project=PROJECT,
        stack=STACK,
        environment="prod",
        type=type_,
        name=name,
        dependencies=sorted(d.urn for d in depends_on),
        inputs=inputs,
    )


def rid(r: Resource) -> str:
    return mock_id(r.urn, r.type, r.inputs)


def arn(r: Resource) -> str:
    return mock_arn(r.type, r.urn, r.inputs)


def policy(action: Any, resource: Any, **extra: Any) -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource, **extra}]}
    )


def trust(principal: Any) -> str:
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


# --------------------------------------------------------------------------------------------------
# pure translation


def test_types_the_sample_infra_uses_are_all_mapped() -> None:
    used = set()
    for program in INFRA.glob("*/__main__.py"):
        text = program.read_text(encoding="utf-8")
        for module_class in (
            "ec2.Vpc",
            "ec2.DefaultSecurityGroup",
            "ec2.InternetGateway",
            "ec2.Subnet",
            "ec2.Eip",
            "ec2.NatGateway",
            "ec2.SecurityGroup",
            "ec2.Instance",
            "ec2.FlowLog",
            "cloudwatch.LogGroup",
            "iam.Role",
            "iam.RolePolicy",
            "iam.Policy",
            "iam.RolePolicyAttachment",
            "kms.Key",
            "kms.Alias",
            "s3.Bucket",
            "s3.BucketVersioning",
            "s3.BucketServerSideEncryptionConfiguration",
            "s3.BucketPublicAccessBlock",
            "s3.BucketLogging",
            "rds.SubnetGroup",
            "rds.Instance",
        ):
            if f"aws.{module_class}(" in text:
                used.add(module_class)
    assert len(used) == 23
    tokens = {t.split(":")[1].split("/")[0] + "." + t.rsplit(":", 1)[-1] for t in TERRAFORM_TYPES}
    assert used <= tokens
    assert TERRAFORM_TYPES["aws:ec2/securityGroup:SecurityGroup"] == "aws_security_group"
    assert TERRAFORM_TYPES["aws:rds/instance:Instance"] == "aws_db_instance"
    assert TERRAFORM_TYPES["aws:rds/subnetGroup:SubnetGroup"] == "aws_db_subnet_group"
    assert TERRAFORM_TYPES["aws:ec2/instance:Instance"] == "aws_instance"


def test_snake_case() -> None:
    assert snake("blockPublicAcls") == "block_public_acls"
    assert snake("applyServerSideEncryptionByDefault") == "apply_server_side_encryption_by_default"
    assert snake("ipv6CidrBlock") == "ipv6_cidr_block"


def test_plan_shape_blocks_maps_renames_and_references() -> None:
    key = res("aws:kms/key:Key", "data", {"enableKeyRotation": True})
    bucket = res("aws:s3/bucket:Bucket", "logs", {"bucket": "acme-logs", "tags": TAGS})
    sse = res(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "logs",
        {
            "bucket": rid(bucket),
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": arn(key)}}],
        },
        bucket,
        key,
    )
    component = res("acme:storage:Bucket", "logs", {})

    plan = to_terraform_plan([key, bucket, sse, component])

    assert plan["terraform_version"] and plan["format_version"]
    planned = {r["address"]: r for r in plan["planned_values"]["root_module"]["resources"]}
    assert set(planned) == {
        "aws_kms_key.data",
        "aws_s3_bucket.logs",
        "aws_s3_bucket_server_side_encryption_configuration.logs",
    }
    assert planned["aws_s3_bucket.logs"]["values"] == {"bucket": "acme-logs", "tags": TAGS}
    assert planned["aws_s3_bucket.logs"]["mode"] == "managed"
    sse_values = planned["aws_s3_bucket_server_side_encryption_configuration.logs"]["values"]
    # The bucket's id is a reference to a resource being created: unknown at plan time, as Terraform says.
    assert "bucket" not in sse_values
    assert sse_values == {"rule": [{"apply_server_side_encryption_by_default": [{"sse_algorithm": "aws:kms"}]}]}
    config = {r["address"]: r for r in plan["configuration"]["root_module"]["resources"]}
    expressions = config["aws_s3_bucket_server_side_encryption_configuration.logs"]["expressions"]
    assert expressions["bucket"] == {"references": ["aws_s3_bucket.logs.id", "aws_s3_bucket.logs"]}
    assert expressions["rule"] == [
        {
            "apply_server_side_encryption_by_default": [
                {"kms_master_key_id": {"references": ["aws_kms_key.data.arn", "aws_kms_key.data"]}}
            ]
        }
    ]
    changes = {c["address"]: c for c in plan["resource_changes"]}
    assert changes["aws_s3_bucket_server_side_encryption_configuration.logs"]["change"]["after_unknown"] == {
        "bucket": True
    }
    assert address_map([key, bucket, sse, component]) == {
        "aws_kms_key.data": key.urn,
        "aws_s3_bucket.logs": bucket.urn,
        "aws_s3_bucket_server_side_encryption_configuration.logs": sse.urn,
    }


def test_names_are_unique_across_stacks_and_known_name_references_stay() -> None:
    role = Resource(
        urn="urn:pulumi:prod::identity::aws:iam/role:Role::app",
        project="identity",
        stack="prod",
        environment="prod",
        type="aws:iam/role:Role",
        name="app",
        inputs={"name": "prod-app", "assumeRolePolicy": trust({"Service": "ecs-tasks.amazonaws.com"})},
    )
    attachment = role.model_copy(
        update={
            "urn": "urn:pulumi:prod::identity::aws:iam/rolePolicyAttachment:RolePolicyAttachment::app",
            "type": "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            "dependencies": [role.urn],
            "inputs": {"role": "prod-app", "policyArn": "arn:aws:iam::aws:policy/SecurityAudit"},
        }
    )
    dev_role = role.model_copy(update={"urn": role.urn.replace("prod", "dev"), "stack": "dev"})

    plan = to_terraform_plan([role, attachment, dev_role])

    addresses = sorted(address_map([role, attachment, dev_role]))
    assert addresses == [
        "aws_iam_role.identity_dev_app",
        "aws_iam_role.identity_prod_app",
        "aws_iam_role_policy_attachment.identity_prod_app",
    ]
    attached = next(r for r in plan["planned_values"]["root_module"]["resources"] if r["type"].endswith("attachment"))
    assert attached["values"]["role"] == "prod-app"  # a known name stays a value, and is a reference too
    conf = next(r for r in plan["configuration"]["root_module"]["resources"] if r["type"].endswith("attachment"))
    assert conf["expressions"]["role"]["references"][1] == "aws_iam_role.identity_prod_app"


# --------------------------------------------------------------------------------------------------
# checkov over the translation: one bad and one good resource per type the sample infra uses


def _cases() -> tuple[list[Resource], dict[str, set[str]], dict[str, set[str]]]:
    """Resources, and per Terraform address the check ids that must fail / must not fail."""
    rs: list[Resource] = []
    fails: dict[str, set[str]] = {}
    passes: dict[str, set[str]] = {}

    def add(r: Resource, *, fail: set[str] | None = None, ok: set[str] | None = None) -> Resource:
        rs.append(r)
        address = f"{TERRAFORM_TYPES[r.type]}.{r.name}"
        if fail:
            fails[address] = fail
        if ok:
            passes[address] = ok
        return r

    # network: a VPC with flow logs and an empty default security group, and one without either
    good_vpc = add(
        res("aws:ec2/vpc:Vpc", "good", {"cidrBlock": "10.0.0.0/16", "tags": TAGS}), ok={"CKV2_AWS_11", "CKV2_AWS_12"}
    )
    add(res("aws:ec2/vpc:Vpc", "bare", {"cidrBlock": "10.1.0.0/16", "tags": TAGS}), fail={"CKV2_AWS_11", "CKV2_AWS_12"})
    open_vpc = add(res("aws:ec2/vpc:Vpc", "open-default", {"cidrBlock": "10.2.0.0/16"}), fail={"CKV2_AWS_12"})
    add(res("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "good", {"vpcId": rid(good_vpc)}, good_vpc))
    add(
        res(
            "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
            "open-default",
            {"vpcId": rid(open_vpc), "ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]},
            open_vpc,
        )
    )
    log_group = add(
        res("aws:cloudwatch/logGroup:LogGroup", "good", {"name": "/flow", "retentionInDays": 365}),
        ok={"CKV_AWS_66", "CKV_AWS_338"},
    )
    add(res("aws:cloudwatch/logGroup:LogGroup", "forever", {"name": "/x"}), fail={"CKV_AWS_66"})
    flow_role = add(
        res("aws:iam/role:Role", "good", {"assumeRolePolicy": trust({"Service": "vpc-flow-logs.amazonaws.com"})}),
        ok={"CKV_AWS_60"},
    )
    add(res("aws:iam/role:Role", "anyone", {"assumeRolePolicy": trust({"AWS": "*"})}), fail={"CKV_AWS_60"})
    add(
        res(
            "aws:ec2/flowLog:FlowLog",
            "good",
            {
                "vpcId": rid(good_vpc),
                "trafficType": "ALL",
                "logDestination": arn(log_group),
                "iamRoleArn": arn(flow_role),
            },
            good_vpc,
            log_group,
            flow_role,
        )
    )
    add(
        res(
            "aws:ec2/subnet:Subnet",
            "good",
            {"vpcId": rid(good_vpc), "cidrBlock": "10.0.1.0/24", "mapPublicIpOnLaunch": False},
            good_vpc,
        ),
        ok={"CKV_AWS_130"},
    )
    public = add(
        res(
            "aws:ec2/subnet:Subnet",
            "public",
            {"vpcId": rid(good_vpc), "cidrBlock": "10.0.0.0/24", "mapPublicIpOnLaunch": True},
            good_vpc,
        ),
        fail={"CKV_AWS_130"},
    )
    add(res("aws:ec2/internetGateway:InternetGateway", "good", {"vpcId": rid(good_vpc), "tags": TAGS}, good_vpc))
    nat_ip = add(res("aws:ec2/eip:Eip", "good", {"domain": "vpc"}), ok={"CKV2_AWS_19"})
    add(res("aws:ec2/eip:Eip", "stray", {"domain": "vpc"}), fail={"CKV2_AWS_19"})
    add(
        res(
            "aws:ec2/natGateway:NatGateway",
            "good",
            {"allocationId": rid(nat_ip), "subnetId": rid(public)},
            nat_ip,
            public,
        )
    )
    rule = {"description": "x", "protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.0.0.0/16"]}
    good_sg = add(
        res(
            "aws:ec2/securityGroup:SecurityGroup",
            "good",
            {"description": "app", "vpcId": rid(good_vpc), "ingress": [rule]},
            good_vpc,
        ),
        ok={"CKV_AWS_24", "CKV_AWS_25", "CKV_AWS_260", "CKV_AWS_277", "CKV2_AWS_5"},
    )
    ssh = {"description": "ssh", "protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}
    add(
        res(
            "aws:ec2/securityGroup:SecurityGroup",
            "ssh-world",
            {"description": "bad", "vpcId": rid(good_vpc), "ingress": [ssh]},
            good_vpc,
        ),
        fail={"CKV_AWS_24"},
    )
    instance = {
        "ami": "ami-1",
        "instanceType": "t3.small",
        "subnetId": rid(public),
        "vpcSecurityGroupIds": [rid(good_sg)],
        "monitoring": True,
        "ebsOptimized": True,
    }
    add(
        res(
            "aws:ec2/instance:Instance",
            "good",
            {**instance, "metadataOptions": {"httpTokens": "required"}, "rootBlockDevice": {"encrypted": True}},
            public,
            good_sg,
        ),
        ok={"CKV_AWS_79", "CKV_AWS_8"},
    )
    add(
        res(
            "aws:ec2/instance:Instance",
            "imdsv1",
            {**instance, "metadataOptions": {"httpTokens": "optional"}},
            public,
            good_sg,
        ),
        fail={"CKV_AWS_79", "CKV_AWS_8"},
    )

    # data: a bucket with every companion, and buckets each missing or misconfiguring one
    key = add(res("aws:kms/key:Key", "good", {"enableKeyRotation": True}), ok={"CKV_AWS_7"})
    add(res("aws:kms/key:Key", "static", {"enableKeyRotation": False}), fail={"CKV_AWS_7"})
    add(res("aws:kms/alias:Alias", "good", {"name": "alias/data", "targetKeyId": rid(key)}, key))
    logs_bucket = add(res("aws:s3/bucket:Bucket", "access-logs", {"bucket": "acme-access-logs"}))
    good_bucket = add(
        res("aws:s3/bucket:Bucket", "good", {"bucket": "acme-good", "tags": TAGS}),
        ok={"CKV2_AWS_6", "CKV_AWS_21", "CKV_AWS_145", "CKV_AWS_18"},
    )
    add(
        res("aws:s3/bucket:Bucket", "naked", {"bucket": "acme-naked"}),
        fail={"CKV2_AWS_6", "CKV_AWS_21", "CKV_AWS_145", "CKV_AWS_18"},
    )
    half = add(res("aws:s3/bucket:Bucket", "half", {"bucket": "acme-half"}), fail={"CKV_AWS_21", "CKV_AWS_145"})

    def companions(bucket: Resource, suffix: str, *, versioning: str, sse: dict[str, Any], block: bool) -> None:
        name = f"{bucket.name}{suffix}"
        add(
            res(
                "aws:s3/bucketVersioning:BucketVersioning",
                name,
                {"bucket": rid(bucket), "versioningConfiguration": {"status": versioning}},
                bucket,
            )
        )
        add(
            res(
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                name,
                {"bucket": rid(bucket), "rules": [{"applyServerSideEncryptionByDefault": sse}]},
                bucket,
                key,
            )
        )
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        add(
            res(
                "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                name,
                {"bucket": rid(bucket), **{f: block for f in flags}},
                bucket,
            ),
            **(
                {"ok": {"CKV_AWS_53", "CKV_AWS_54", "CKV_AWS_55", "CKV_AWS_56"}}
                if block
                else {"fail": {"CKV_AWS_53", "CKV_AWS_56"}}
            ),
        )

    companions(
        good_bucket, "", versioning="Enabled", sse={"sseAlgorithm": "aws:kms", "kmsMasterKeyId": arn(key)}, block=True
    )
    companions(half, "", versioning="Suspended", sse={"sseAlgorithm": "AES256"}, block=False)
    add(
        res(
            "aws:s3/bucketLogging:BucketLogging",
            "good",
            {"bucket": rid(good_bucket), "targetBucket": rid(logs_bucket), "targetPrefix": "good/"},
            good_bucket,
            logs_bucket,
        )
    )
    subnet_group = add(
        res("aws:rds/subnetGroup:SubnetGroup", "orders", {"name": "orders", "subnetIds": ["subnet-a", "subnet-b"]})
    )
    db = {
        "engine": "postgres",
        "instanceClass": "db.t4g.micro",
        "allocatedStorage": 20,
        "dbSubnetGroupName": "orders",
        "backupRetentionPeriod": 14,
    }
    add(
        res(
            "aws:rds/instance:Instance",
            "good",
            {
                **db,
                "storageEncrypted": True,
                "kmsKeyId": arn(key),
                "publiclyAccessible": False,
                "deletionProtection": True,
            },
            subnet_group,
            key,
        ),
        ok={"CKV_AWS_16", "CKV_AWS_17", "CKV_AWS_293"},
    )
    add(
        res(
            "aws:rds/instance:Instance",
            "exposed",
            {**db, "storageEncrypted": False, "publiclyAccessible": True, "deletionProtection": False},
            subnet_group,
        ),
        fail={"CKV_AWS_16", "CKV_AWS_17", "CKV_AWS_293"},
    )

    # identity
    scoped = policy(["s3:GetObject"], ["arn:aws:s3:::acme-good/releases/latest.json"])
    admin = policy("*", "*")
    good_policy = add(
        res("aws:iam/policy:Policy", "good", {"name": "read", "policy": scoped}),
        ok={"CKV_AWS_62", "CKV_AWS_63", "CKV_AWS_355"},
    )
    add(res("aws:iam/policy:Policy", "admin", {"name": "admin", "policy": admin}), fail={"CKV_AWS_62", "CKV_AWS_63"})
    add(
        res("aws:iam/rolePolicy:RolePolicy", "good", {"role": rid(flow_role), "policy": scoped}, flow_role),
        ok={"CKV_AWS_355", "CKV_AWS_63"},
    )
    add(
        res(
            "aws:iam/rolePolicy:RolePolicy",
            "any-resource",
            {"role": rid(flow_role), "policy": policy(["s3:GetObject"], "*")},
            flow_role,
        ),
        fail={"CKV_AWS_355"},
    )
    add(
        res(
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            "good",
            {"role": rid(flow_role), "policyArn": arn(good_policy)},
            flow_role,
            good_policy,
        ),
        ok={"CKV_AWS_274"},
    )
    add(
        res(
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            "admin",
            {"role": rid(flow_role), "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            flow_role,
        ),
        fail={"CKV_AWS_274"},
    )
    return rs, fails, passes


Findings = dict[str, set[str]]


def run_checkov(plan: dict[str, Any], directory: Path) -> tuple[Findings, Findings]:
    """Failed and passed check ids per address, from checkov's own virtualenv in a subprocess."""
    if not CHECKOV_PYTHON.exists():
        pytest.skip(f"checkov's own virtualenv is absent ({CHECKOV_PYTHON}); `make test` creates it")
    plan_file = directory / "plan.json"
    plan_file.write_text(json.dumps(plan, indent=1), encoding="utf-8")
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    command = [str(CHECKOV_PYTHON), "-m", "checkov.main", "-f", str(plan_file), "--framework", "terraform_plan"]
    completed = subprocess.run(
        [*command, "-o", "json", "--skip-download"], capture_output=True, text=True, timeout=240, env=env, check=False
    )
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    report = json.loads(completed.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0
    failed: Findings = {}
    passed: Findings = {}
    for check in report["results"]["failed_checks"]:
        failed.setdefault(check["resource"], set()).add(check["check_id"])
    for check in report["results"]["passed_checks"]:
        passed.setdefault(check["resource"], set()).add(check["check_id"])
    return failed, passed


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Findings, Findings, list[Resource]]:
    resources, _, _ = _cases()
    failed, passed = run_checkov(to_terraform_plan(resources), tmp_path_factory.mktemp("checkov"))
    return failed, passed, resources


@pytest.mark.slow
def test_known_bad_resources_trip_their_checks(
    checkov_report: tuple[Findings, Findings, list[Resource]],
) -> None:
    failed, _, _ = checkov_report
    _, fails, _ = _cases()
    missing = {address: sorted(ids - failed.get(address, set())) for address, ids in fails.items()}
    assert {a: m for a, m in missing.items() if m} == {}


@pytest.mark.slow
def test_known_good_resources_pass_their_checks(
    checkov_report: tuple[Findings, Findings, list[Resource]],
) -> None:
    failed, passed, _ = checkov_report
    _, _, passes = _cases()
    wrongly_failed = {address: sorted(ids & failed.get(address, set())) for address, ids in passes.items()}
    assert {a: w for a, w in wrongly_failed.items() if w} == {}
    not_run = {address: sorted(ids - passed.get(address, set())) for address, ids in passes.items()}
    assert {a: n for a, n in not_run.items() if n} == {}


@pytest.mark.slow
def test_every_finding_maps_back_to_a_urn(
    checkov_report: tuple[Findings, Findings, list[Resource]],
) -> None:
    failed, passed, resources = checkov_report
    back = address_map(resources)
    # Provider-level checks report the provider ("aws.default"), which is no resource of ours.
    findings = {address for address in set(failed) | set(passed) if not address.startswith("aws.")}
    assert findings <= set(back)
    assert back["aws_s3_bucket.naked"] == urn("aws:s3/bucket:Bucket", "naked")
    # Every Terraform type the translation produced was parsed by checkov (no resource silently dropped).
    scanned_types = {address.split(".")[0] for address in findings}
    assert {"aws_vpc", "aws_eip", "aws_s3_bucket", "aws_db_instance", "aws_iam_role_policy_attachment"} <= scanned_types


def test_checkov_python_path_is_where_the_makefile_puts_it() -> None:
    assert Path(CHECKOV_PYTHON).parts[-4:] == (".tools", "checkov", "bin", "python")


# What glassbox's sample estates promise (infra/*/__main__.py docstrings), as checkov checks them.
PROMISED = {
    "CKV_AWS_24",  # no SSH from the world
    "CKV_AWS_25",  # no RDP from the world
    "CKV_AWS_260",  # no HTTP from the world
    "CKV_AWS_130",  # subnets assign no public IP
    "CKV2_AWS_11",  # VPC flow logs
    "CKV2_AWS_12",  # default security group restricts all traffic
    "CKV2_AWS_6",  # buckets have a public access block
    "CKV_AWS_53",
    "CKV_AWS_54",
    "CKV_AWS_55",
    "CKV_AWS_56",
    "CKV_AWS_145",  # buckets encrypted with KMS
    "CKV_AWS_18",  # artifacts bucket access logging (access-logs bucket itself excepted below)
    "CKV_AWS_7",  # KMS rotation
    "CKV_AWS_16",  # RDS encrypted
    "CKV_AWS_17",  # RDS not public
    "CKV_AWS_60",  # roles trust specific principals
    "CKV_AWS_62",  # no admin policy
    "CKV_AWS_63",  # no wildcard action
    "CKV_AWS_355",  # no wildcard resource
    "CKV_AWS_274",  # no AdministratorAccess
    "CKV_AWS_79",  # IMDSv2 on the bastion
    "CKV_AWS_8",  # encrypted root volume
    "CKV_AWS_88",  # no public IP on the bastion
}
# Promised in prod only: the dev stacks differ on purpose (versioning suspended, no deletion protection).
PROMISED_IN_PROD = {"CKV_AWS_21", "CKV_AWS_293", "CKV_AWS_157", "CKV_AWS_338"}


@pytest.mark.slow
def test_sample_infra_keeps_its_promises(tmp_path: Path) -> None:
    from bot.plan import build_plan
    from tests.plan_helpers import commit_all, infra_repo

    repo = infra_repo(tmp_path / "repo", projects=())
    base = repo.head.commit.hexsha
    for project in ("network", "data", "identity"):
        shutil.copytree(INFRA / project, tmp_path / "repo" / "infra" / project)
    head = commit_all(repo, "the sample estates")
    plan = build_plan(tmp_path / "repo", base, head)
    assert len({(s.project, s.stack) for s in plan.stacks}) == 6

    failed, passed = run_checkov(to_terraform_plan(plan.resources), tmp_path)
    # The cross-resource checks did run, and passed, thanks to the references.
    assert {"CKV2_AWS_6", "CKV_AWS_21", "CKV_AWS_145"} <= passed["aws_s3_bucket.data_prod_artifacts"]
    assert {"CKV2_AWS_11", "CKV2_AWS_12"} <= passed["aws_vpc.network_prod_main"]

    broken = {}
    for address, ids in failed.items():
        promised = PROMISED | (PROMISED_IN_PROD if "_prod_" in address else set())
        if address.endswith("_access-logs"):
            promised = promised - {"CKV_AWS_18"}  # the log bucket does not log to itself
        if ids & promised:
            broken[address] = sorted(ids & promised)
    assert broken == {}
