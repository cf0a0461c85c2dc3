"""build_plan end to end: a real git repository, the sample infra, the Pulumi mock runtime in a subprocess."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.errors import EngineError, UserError
from bot.plan import Plan, build_plan
from bot.records import ChangeAction
from tests.plan_helpers import append, commit_all, edit, infra_repo, one_program, write


@dataclass(frozen=True)
class History:
    path: Path
    initial: str
    config_change: str
    new_resource: str
    deleted_resource: str
    nested_update: str


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """One repository, one commit per kind of change, each on top of the previous."""
    path = tmp_path_factory.mktemp("estate")
    repo = infra_repo(path)
    initial = repo.head.commit.hexsha

    edit(repo, "infra/data/Pulumi.prod.yaml", "dbBackupRetentionDays: 14", "dbBackupRetentionDays: 21")
    config_change = commit_all(repo, "data/prod: keep backups three weeks")

    append(
        repo,
        "infra/identity/__main__.py",
        """
metrics_read = aws.iam.Policy(
    "metrics-read",
    name=f"{environment}-metrics-read",
    policy=document(
        {"Effect": "Allow", "Action": ["cloudwatch:GetMetricData"], "Resource": ["arn:aws:cloudwatch:eu-west-1:1:x"]}
    ),
    tags=tags,
)
""",
    )
    new_resource = commit_all(repo, "identity: metrics-read policy")

    edit(
        repo,
        "infra/identity/__main__.py",
        """aws.iam.RolePolicyAttachment(
    "auditor-security-audit", role=auditor.name, policy_arn="arn:aws:iam::aws:policy/SecurityAudit"
)
""",
        "",
    )
    deleted_resource = commit_all(repo, "identity: drop the auditor's SecurityAudit attachment")

    edit(
        repo,
        "infra/network/__main__.py",
        "from_port=443,\n            to_port=443,\n            cidr_blocks=[vpc_cidr]",
        "from_port=8443,\n            to_port=8443,\n            cidr_blocks=[vpc_cidr]",
    )
    edit(repo, "infra/network/__main__.py", 'cidr_block=f"{prefix}.0.0/24"', 'cidr_block=f"{prefix}.1.0/24"')
    nested_update = commit_all(repo, "network: app tier on 8443, public subnet moves")
    return History(path, initial, config_change, new_resource, deleted_resource, nested_update)


def _by_action(plan: Plan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for change in plan.changes:
        out.setdefault(change.action.value, []).append(f"{change.stack}:{change.type}::{change.name}")
    return out


def test_pure_config_change_touches_one_stack_and_one_property(history: History) -> None:
    plan = build_plan(history.path, history.initial, history.config_change)

    assert [(s.project, s.stack, s.environment, s.path) for s in plan.stacks] == [
        ("data", "prod", "prod", "infra/data")
    ]
    assert len(plan.changes) == 1
    change = plan.changes[0]
    assert change.urn == "urn:pulumi:prod::data::aws:rds/instance:Instance::orders"
    assert change.action is ChangeAction.UPDATE and not change.replace_predicted
    assert [(c.path, c.before, c.after) for c in change.changed] == [("backupRetentionPeriod", 14, 21)]
    assert plan.verify_digest()
    # Both sides were run: every resource of the stack is there, once per side, with ints not floats.
    assert len(plan.resources) == len(plan.base_resources) == 13
    rds = next(r for r in plan.resources if r.name == "orders" and r.type.endswith("Instance"))
    assert rds.inputs["allocatedStorage"] == 200 and isinstance(rds.inputs["allocatedStorage"], int)
    assert rds.protect is True and rds.environment == "prod" and rds.parent is None
    assert "urn:pulumi:prod::data::aws:kms/key:Key::data" in rds.dependencies


def test_new_resource_is_a_create_in_every_stack_of_the_project(history: History) -> None:
    plan = build_plan(history.path, history.config_change, history.new_resource)

    assert {(s.project, s.stack) for s in plan.stacks} == {("identity", "dev"), ("identity", "prod")}
    assert _by_action(plan) == {
        "create": ["dev:aws:iam/policy:Policy::metrics-read", "prod:aws:iam/policy:Policy::metrics-read"]
    }
    created = plan.changes[0]
    assert created.before is None and created.after is not None and created.after["name"] == "dev-metrics-read"


def test_deleted_resource_is_a_delete(history: History) -> None:
    plan = build_plan(history.path, history.new_resource, history.deleted_resource)

    attachment = "aws:iam/rolePolicyAttachment:RolePolicyAttachment::auditor-security-audit"
    assert _by_action(plan) == {"delete": [f"dev:{attachment}", f"prod:{attachment}"]}
    deleted = plan.changes[0]
    assert deleted.after is None and deleted.before == {
        "policyArn": "arn:aws:iam::aws:policy/SecurityAudit",
        "role": "dev-auditor",
    }


def test_nested_property_update_and_predicted_replace(history: History) -> None:
    plan = build_plan(history.path, history.deleted_resource, history.nested_update)

    changes = {(c.stack, c.name, c.type.rsplit(":", 1)[-1]): c for c in plan.changes}
    assert set(changes) == {
        ("dev", "app", "SecurityGroup"),
        ("prod", "app", "SecurityGroup"),
        ("dev", "public-a", "Subnet"),
        ("prod", "public-a", "Subnet"),
    }
    group = changes[("prod", "app", "SecurityGroup")]
    assert group.action is ChangeAction.UPDATE and not group.replace_predicted
    assert [(c.path, c.before, c.after) for c in group.changed] == [
        ("ingress[0].fromPort", 443, 8443),
        ("ingress[0].toPort", 443, 8443),
    ]
    subnet = changes[("prod", "public-a", "Subnet")]
    assert subnet.action is ChangeAction.REPLACE and subnet.replace_predicted
    assert [(c.path, c.before, c.after) for c in subnet.changed] == [("cidrBlock", "10.20.0.0/24", "10.20.1.0/24")]


def test_same_commits_give_the_same_digest(history: History) -> None:
    first = build_plan(history.path, history.initial, history.config_change)
    second = build_plan(history.path, "HEAD~4", "HEAD~3")  # the same two commits, named differently

    assert first.digest == second.digest
    assert first.model_dump(mode="json") == second.model_dump(mode="json")


def test_new_and_deleted_project(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path, projects=("identity",))
    before = repo.head.commit.hexsha
    write(repo, "infra/cache/Pulumi.yaml", "name: cache\nruntime: python\n")
    write(repo, "infra/cache/Pulumi.dev.yaml", "config:\n  glassbox:environment: dev\n")
    write(
        repo,
        "infra/cache/__main__.py",
        "import pulumi_aws as aws\n\n"
        'aws.sqs.Queue("jobs", sqs_managed_sse_enabled=True, tags={"Owner": "app", "CostCenter": "cc-9", '
        '"Environment": "dev"})\n',
    )
    after = commit_all(repo, "cache project")

    added = build_plan(tmp_path, before, after)
    assert [(s.project, s.stack, s.path) for s in added.stacks] == [("cache", "dev", "infra/cache")]
    assert [(c.action, c.name) for c in added.changes] == [(ChangeAction.CREATE, "jobs")]
    assert added.base_resources == []

    removed = build_plan(tmp_path, after, before)
    assert [(c.action, c.name) for c in removed.changes] == [(ChangeAction.DELETE, "jobs")]
    assert removed.resources == []


def test_program_errors_name_project_stack_and_cause(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path, projects=("network", "identity"))
    before = repo.head.commit.hexsha
    append(repo, "infra/identity/__main__.py", '\nraise RuntimeError("trust policy template missing")\n')
    edit(
        repo,
        "infra/network/__main__.py",
        "import pulumi_aws as aws\n",
        "import pulumi_aws as aws\nimport acme_netlib\n",
    )
    after = commit_all(repo, "broken programs")

    with pytest.raises(EngineError) as caught:
        build_plan(tmp_path, before, after)

    error = caught.value
    assert error.engine == "plan" and error.exit_code == 1
    message = str(error)
    assert "project 'identity' stack 'dev'" in message and "project 'identity' stack 'prod'" in message
    assert "RuntimeError: trust policy template missing" in message
    assert "project 'network' stack 'dev'" in message
    assert "ModuleNotFoundError: No module named 'acme_netlib'" in message


def test_failures_on_both_sides_are_reported_together(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path, projects=("identity",))
    append(repo, "infra/identity/__main__.py", '\nraise RuntimeError("broken on main")\n')
    broken_base = commit_all(repo, "break main")
    edit(repo, "infra/identity/__main__.py", "broken on main", "still broken")
    broken_head = commit_all(repo, "still broken")

    with pytest.raises(EngineError) as caught:
        build_plan(tmp_path, broken_base, broken_head)

    message = str(caught.value)
    assert message.startswith("plan: project 'identity' stack 'dev' at base ")
    assert "RuntimeError: broken on main" in message and "RuntimeError: still broken" in message
    assert f"at head {broken_head[:12]}" in message


COMPONENT_PROGRAM = """import pulumi
import pulumi_aws as aws


class Store(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("acme:storage:Store", name, None, opts)
        self.bucket = aws.s3.Bucket(name, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


east = aws.Provider("east", region="us-east-1")
store = Store("logs", opts=pulumi.ResourceOptions(providers=[east]))
aws.s3.BucketPublicAccessBlock(
    "logs", bucket=store.bucket.id, block_public_acls=True, opts=pulumi.ResourceOptions(provider=east)
)
zones = aws.get_availability_zones()
aws.ec2.Subnet("a", vpc_id="vpc-1", cidr_block="10.0.0.0/24", availability_zone=zones.names[0])
"""


def test_components_providers_and_invokes(tmp_path: Path) -> None:
    before, after = one_program(tmp_path, COMPONENT_PROGRAM)

    plan = build_plan(tmp_path, before, after)

    by_urn = {r.urn.removeprefix("urn:pulumi:dev::app::"): r for r in plan.resources}
    provider = "urn:pulumi:dev::app::pulumi:providers:aws::east"
    assert sorted(by_urn) == [
        "acme:storage:Store$aws:s3/bucket:Bucket::logs",
        "acme:storage:Store::logs",
        "aws:ec2/subnet:Subnet::a",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock::logs",
        "pulumi:providers:aws::east",
    ]
    child = by_urn["acme:storage:Store$aws:s3/bucket:Bucket::logs"]
    assert child.parent == "urn:pulumi:dev::app::acme:storage:Store::logs" and child.provider == provider
    block = by_urn["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock::logs"]
    assert block.provider == provider and block.dependencies == [child.urn]
    assert block.inputs["bucket"] == "logs"  # a bucket's mock id is its name, as in AWS
    assert by_urn["aws:ec2/subnet:Subnet::a"].inputs["availabilityZone"] == "eu-central-1a"


def test_two_resources_with_one_urn_are_an_error(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path, projects=("identity",))
    before = repo.head.commit.hexsha
    append(repo, "infra/identity/__main__.py", '\naws.iam.Role("auditor", assume_role_policy="{}")\n')
    after = commit_all(repo, "a second auditor")

    with pytest.raises(
        EngineError, match=r"stack 'dev'.*duplicate resource URN urn:pulumi:dev::identity::aws:iam/role"
    ):
        build_plan(tmp_path, before, after)


def test_secrets_are_digested_and_the_environment_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_do_not_leak")
    repo = infra_repo(tmp_path, projects=())
    before = repo.head.commit.hexsha
    write(repo, "infra/probe/Pulumi.yaml", "name: probe\nruntime: python\n")
    write(
        repo,
        "infra/probe/Pulumi.dev.yaml",
        "config:\n  probe:apiKey:\n    secure: v1:AAAAciphertext\n  probe:replicas: 3\n",
    )
    write(
        repo,
        "infra/probe/__main__.py",
        """import os

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
print("programs may print; the plan's JSON stays clean")
aws.ssm.Parameter(
    "api-key",
    type="SecureString",
    value=pulumi.Output.secret("hunter2-" + str(config.require_int("replicas"))),
    description=config.require_secret("apiKey"),
    tags={"seen": ",".join(sorted(k for k in os.environ if k.startswith(("AWS", "GITHUB"))))},
)
""",
    )
    after = commit_all(repo, "probe")

    plan = build_plan(tmp_path, before, after)

    text = json.dumps(plan.model_dump(mode="json"))
    assert "hunter2" not in text and "v1:AAAAciphertext" not in text
    (parameter,) = plan.resources
    assert parameter.inputs["value"].startswith("[secret sha256:") and len(parameter.inputs["value"]) == 80
    assert parameter.inputs["description"].startswith("[secret sha256:")
    assert parameter.inputs["tags"] == {"seen": ""}


@pytest.mark.slow
def test_a_hanging_program_times_out(tmp_path: Path) -> None:
    repo = infra_repo(tmp_path, projects=("identity",))
    before = repo.head.commit.hexsha
    append(repo, "infra/identity/Pulumi.dev.yaml", "  identity:hang: true\n")
    append(repo, "infra/identity/__main__.py", '\nif config.get_bool("hang"):\n    import time\n\n    time.sleep(60)\n')
    after = commit_all(repo, "hang in dev")

    with pytest.raises(
        EngineError, match=r"project 'identity' stack 'dev' at head [0-9a-f]{12}: program did not finish"
    ):
        build_plan(tmp_path, before, after, timeout=6)


def test_bad_repository_or_ref_is_a_user_error(tmp_path: Path, history: History) -> None:
    with pytest.raises(UserError, match="not a git repository"):
        build_plan(tmp_path / "nowhere", "main", "main")
    with pytest.raises(UserError, match="'no-such-branch' does not name a commit"):
        build_plan(history.path, "no-such-branch", history.initial)
