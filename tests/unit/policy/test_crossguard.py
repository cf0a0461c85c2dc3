"""The CrossGuard pack (policy-pack/crossguard): its validators give `glassbox check`'s answers for the same resources.

Resources come from `bot.plan.build_plan` on a small git repository whose base has no infrastructure and whose head
adds the sample estate (so every stack is planned), then are wrapped in pulumi-policy's own args types the way its
analyzer wraps what the engine sends (props through a protobuf Struct, deserialised, behind the unknown-checking
proxy). The validators are called directly, and once more over gRPC against the pack process started from
`__main__.py`, as `pulumi preview --policy-pack` would start it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import git
import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, unknown_checking_proxy

from bot.check.evaluate import CheckRequest, CheckResult, run_check
from bot.errors import EngineError
from bot.plan import Plan, Resource, build_plan
from bot.policy.checkov import CheckovWorker
from bot.policy.pack import load_pack
from bot.records import FindingStatus, canonical_json, sha256_hex
from tests.flow_helpers import governed_source

ROOT = Path(__file__).resolve().parents[3]
CROSSGUARD = ROOT / "policy-pack" / "crossguard"
RULE_ID = re.compile(r"^(GB-[A-Z]+-\d{3}|GB-ENGINE) ")
DEFAULT_PROVIDER = "default_7_51_1"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("glassbox_crossguard", CROSSGUARD / "glassbox_crossguard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("glassbox_crossguard", module)
    spec.loader.exec_module(module)
    return module


cg = _load()


# --------------------------------------------------------------------------------------------------
# wrapping plan resources the way pulumi-policy's analyzer wraps what the engine sends


def _props(inputs: dict[str, Any]) -> Any:
    struct = struct_pb2.Struct()
    struct.update(inputs)  # numbers become floats here, as on the wire
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def _opts(protect: bool = False, parent: str | None = None, secret: list[str] | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), secret or [], parent)


def _stack_urn(project: str, stack: str) -> str:
    return f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"


def _provider(project: str, stack: str, urn: str | None) -> PolicyProviderResource:
    if urn is None:  # the engine's default provider, which every resource without an explicit one gets
        urn = f"urn:pulumi:{stack}::{project}::pulumi:providers:aws::{DEFAULT_PROVIDER}"
    return PolicyProviderResource(urn.split("::")[2], {}, urn, urn.split("::")[-1])


def policy_resources(resources: list[Resource]) -> list[PolicyResource]:
    """One stack's resources as AnalyzeStack hands them over, with the root stack and the default provider."""
    project, stack = resources[0].project, resources[0].stack
    root = PolicyResource(
        "pulumi:pulumi:Stack", _props({}), _stack_urn(project, stack), "x", _opts(), None, None, [], {}
    )
    default = _provider(project, stack, None)
    provider = PolicyResource(default.resource_type, _props({}), default.urn, default.name, _opts(), None, None, [], {})
    out = [root, provider]
    for r in resources:
        parent = r.parent or root.urn
        out.append(
            PolicyResource(
                r.type,
                _props(r.inputs),
                r.urn,
                r.name,
                _opts(r.protect, parent),
                _provider(project, stack, r.provider),
                None,
                [],
                {},
            )
        )
    by_urn = {p.urn: p for p in out}
    for r, p in zip(resources, out[2:], strict=True):
        p.parent = by_urn.get(r.parent or root.urn)
        p.dependencies = [by_urn[d] for d in r.dependencies if d in by_urn]
    return out


@dataclass(frozen=True)
class Reported:
    policy: str
    rule_id: str
    status: str  # deny (mandatory) | warn (advisory)
    urn: str | None


def run_policies(policies: list[Policy], resources: list[Resource]) -> set[Reported]:
    """Every violation the pack reports, stack by stack, as CrossGuard would call it."""
    found: set[Reported] = set()
    stacks: dict[tuple[str, str], list[Resource]] = {}
    for r in resources:
        stacks.setdefault((r.project, r.stack), []).append(r)
    for members in stacks.values():
        wrapped = policy_resources(members)
        for policy in policies:
            status = "deny" if policy.enforcement_level is EnforcementLevel.MANDATORY else "warn"

            def report(msg: str, urn: str | None = None, *, name: str = policy.name, status: str = status) -> None:
                match = RULE_ID.match(msg)
                assert match, msg
                found.add(Reported(name, match.group(1), status, urn))

            if isinstance(policy, StackValidationPolicy):
                policy.validate(StackValidationArgs(wrapped), report)
            else:
                assert isinstance(policy, ResourceValidationPolicy)
                for p in wrapped:
                    args = ResourceValidationArgs(p.resource_type, p.props, p.urn, p.name, p.opts, p.provider)
                    # CrossGuard pins a resource validation's violations to the resource
                    policy.validate(args, lambda msg, _urn=None, urn=p.urn: report(msg, urn))
    return found


def triples(reported: set[Reported]) -> set[tuple[str, str, str | None]]:
    return {(r.rule_id, r.status, r.urn) for r in reported}


RESOURCE_AREAS = set(cg.PER_RESOURCE_RULES)


def rego_resource_findings(result: CheckResult) -> set[tuple[str, str, str | None]]:
    """`glassbox check`'s Rego findings of the resource areas (network, data, identity)."""
    pack = load_pack(ROOT / "policy-pack")
    out = set()
    for f in result.verdict.findings:
        rule = pack.rule_for_id(f.rule_id) if f.engine == "rego" else None
        if rule is not None and rule.package.split(".")[1] in RESOURCE_AREAS:
            assert f.status is not FindingStatus.WAIVED
            out.add((f.rule_id, f.status.value, f.resource))
    return out


# --------------------------------------------------------------------------------------------------
# mapping and pack shape (fast)


def test_a_crossguard_resource_maps_to_the_plans_record() -> None:
    urn = "urn:pulumi:prod::data::aws:rds/instance:Instance::orders"
    props = _props({"port": 5432, "tags": {"Owner": "data"}, "engineVersion": "16.4"})
    props["__target"]["password"] = Secret("hunter2")  # as the analyzer marks secrets in remediations
    props["__target"]["masterUserSecretKmsKeyId"] = UNKNOWN_NUMBER_VALUE
    resource = PolicyResource(
        "aws:rds/instance:Instance",
        props,
        urn,
        "orders",
        _opts(True, _stack_urn("data", "prod"), ["username"]),
        _provider("data", "prod", None),
        None,
        [],
        {},
    )
    props["__target"]["username"] = "orders_admin"
    rec = cg.record_of_resource(resource)
    secret = f"[secret sha256:{sha256_hex(canonical_json('hunter2'))}]"
    assert rec == {
        "urn": urn,
        "project": "data",
        "stack": "prod",
        "environment": "prod",
        "type": "aws:rds/instance:Instance",
        "name": "orders",
        "parent": None,
        "provider": None,
        "protect": True,
        "dependencies": [],
        "inputs": {
            "port": 5432,
            "tags": {"Owner": "data"},
            "engineVersion": "16.4",
            "password": secret,
            "masterUserSecretKmsKeyId": "[unknown]",
            "username": f"[secret sha256:{sha256_hex(canonical_json('orders_admin'))}]",
        },
    }
    Resource.model_validate(rec)  # the plan's own record type accepts it


def test_an_unknown_bucket_reference_resolves_to_the_bucket_it_depends_on() -> None:
    def res(t: str, name: str, inputs: dict[str, Any]) -> PolicyResource:
        urn = f"urn:pulumi:prod::data::{t}::{name}"
        return PolicyResource(t, _props(inputs), urn, name, _opts(), None, None, [], {})

    bucket = res("aws:s3/bucket:Bucket", "logs", {"bucket": "acme-logs"})
    pab = res(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "logs",
        {"bucket": "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "blockPublicAcls": True},
    )
    pab.property_dependencies = {"bucket": [bucket]}
    records = [cg.record_of_resource(r) for r in (bucket, pab)]
    assert records[1]["inputs"]["bucket"] == "[unknown]"
    cg.resolve_bucket_references(records, [bucket, pab])
    assert records[1]["inputs"]["bucket"] == "acme-logs"


def test_every_rule_is_either_a_resource_rule_or_named_as_unable_to_fire() -> None:
    pack = load_pack(ROOT / "policy-pack")
    areas = {rule.package.split(".")[1] for rule in pack.rules.values()}
    assert areas <= RESOURCE_AREAS | set(cg.GLASSBOX_ONLY_AREAS)
    for area, ids in cg.PER_RESOURCE_RULES.items():
        for rule_id in ids:
            rule = pack.rule_for_id(rule_id)
            assert rule is not None and rule.package.split(".")[1] == area, rule_id
    for prefix in ("GB-CHG", "GB-SCOPE", "GB-EVD", "GB-GOV"):
        assert prefix in cg.DESCRIPTION and prefix in (CROSSGUARD / "PulumiPolicy.yaml").read_text()
    names = {p.name: p for p in cg.policies()}
    assert set(names) == {
        "glassbox-network",
        "glassbox-network-advisory",
        "glassbox-data",
        "glassbox-identity",
        "glassbox-stack",
        "glassbox-stack-advisory",
    }
    assert "cannot fire" in names["glassbox-stack"].description
    assert not list(CROSSGUARD.rglob("*.rego"))  # the pack contract test scans policy-pack/ for Rego


class _Broken:
    name = "broken"

    def evaluate(self, input: Any) -> Any:
        raise EngineError("data.glassbox is undefined", engine="rego")


def test_an_engine_failure_is_a_mandatory_violation() -> None:
    policies = cg.policies(cg.Evaluator(engine=lambda pack: _Broken()))
    resource = Resource(
        urn="urn:pulumi:dev::network::aws:ec2/securityGroup:SecurityGroup::web",
        project="network",
        stack="dev",
        environment="dev",
        type="aws:ec2/securityGroup:SecurityGroup",
        name="web",
    )
    found = run_policies(policies, [resource])
    assert {(r.policy, r.rule_id, r.status) for r in found} == {
        ("glassbox-network", "GB-ENGINE", "deny"),
        ("glassbox-data", "GB-ENGINE", "deny"),
        ("glassbox-identity", "GB-ENGINE", "deny"),
        ("glassbox-stack", "GB-ENGINE", "deny"),
    }


# --------------------------------------------------------------------------------------------------
# the sample estate and a violating variant, against `glassbox check` (slow: plans, checkov)


@dataclass
class Estate:
    root: Path
    base: str
    sample: str
    violating: str


def _commit(repo: git.Repo, message: str) -> str:
    repo.git.add("-A")
    who = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    repo.git.commit("--no-gpg-sign", "-m", message, env=who)
    return repo.head.commit.hexsha


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Estate:
    src = governed_source(tmp_path_factory.mktemp("crossguard"))
    infra = src.parent / "infra-aside"
    shutil.move(src / "infra", infra)
    repo = git.Repo.init(src, initial_branch="main")
    base = _commit(repo, "trust anchors, no infrastructure")
    shutil.move(infra, src / "infra")
    sample = _commit(repo, "the sample estate")
    _edit(
        src / "infra/network/__main__.py",
        "cidr_blocks=[vpc_cidr],",
        "cidr_blocks=[vpc_cidr],\n        ),\n        aws.ec2.SecurityGroupIngressArgs(\n"
        '            protocol="tcp", from_port=22, to_port=22, cidr_blocks=["0.0.0.0/0"],\n        ),\n'
        "        aws.ec2.SecurityGroupIngressArgs(\n"
        '            protocol="tcp", from_port=443, to_port=443, cidr_blocks=["0.0.0.0/0"],',
    )
    _edit(src / "infra/data/__main__.py", "block_public_acls=True", "block_public_acls=False")
    with (src / "infra/data/__main__.py").open("a") as main:  # a bare bucket: no companions at all
        main.write('\naws.s3.Bucket("scratch", bucket=f"acme-{environment}-scratch", tags=tags)\n')
    _edit(
        src / "infra/data/__main__.py",
        "    return bucket\n",
        '    aws.s3.BucketAcl(name, bucket=bucket.id, acl="public-read")\n    return bucket\n',
    )
    _edit(src / "infra/identity/__main__.py", '"Action": ["s3:ListBucket"]', '"Action": "*"')
    violating = _commit(repo, "world-open ssh, a public bucket, a wildcard policy")
    repo.close()
    return Estate(src, base, sample, violating)


@pytest.fixture(scope="module")
def worker() -> Iterator[CheckovWorker]:
    with CheckovWorker() as w:
        yield w


@pytest.fixture(scope="module")
def policies() -> list[Policy]:
    return list(cg.policies())


def _check(estate: Estate, head: str, worker: CheckovWorker) -> CheckResult:
    request = CheckRequest(
        repo_path=estate.root, base=estate.base, head=head, repo="acme/infra", pr=1, author="carol", checkov=worker
    )
    result = run_check(request)
    assert not result.verdict.errors, result.verdict.errors
    return result


def _plan(estate: Estate, head: str, result: CheckResult) -> Plan:
    plan = build_plan(estate.root, estate.base, head)
    assert result.plan is not None and plan.digest == result.plan.digest  # the very resources check judged
    assert {s.stack for s in plan.stacks} == {"dev", "prod"} and len(plan.stacks) == 6
    return plan


@pytest.mark.slow
def test_the_sample_estate_gets_checks_answers(estate: Estate, worker: CheckovWorker, policies: list[Policy]) -> None:
    result = _check(estate, estate.sample, worker)
    plan = _plan(estate, estate.sample, result)
    found = run_policies(policies, plan.resources)
    assert triples(found) == rego_resource_findings(result)
    assert not any(r.status == "deny" for r in found)  # the sample estate is compliant


@pytest.mark.slow
def test_a_violating_estate_gets_checks_answers(estate: Estate, worker: CheckovWorker, policies: list[Policy]) -> None:
    result = _check(estate, estate.violating, worker)
    plan = _plan(estate, estate.violating, result)
    found = run_policies(policies, plan.resources)
    assert triples(found) == rego_resource_findings(result)
    denied = {(r.policy, r.rule_id) for r in found if r.status == "deny"}
    # per-resource rules from the area validators, the cross-resource one from the stack validator
    assert {
        ("glassbox-network", "GB-NET-001"),
        ("glassbox-data", "GB-DATA-001"),
        ("glassbox-identity", "GB-IAM-001"),
        ("glassbox-stack", "GB-DATA-003"),
        ("glassbox-stack", "GB-DATA-004"),  # the bare bucket in prod
        ("glassbox-stack", "GB-DATA-005"),
    } <= denied
    warned = {(r.policy, r.rule_id) for r in found if r.status == "warn"}
    assert {
        ("glassbox-network-advisory", "GB-NET-005"),  # 443 from the world
        ("glassbox-stack-advisory", "GB-DATA-003"),  # the bare bucket in dev
        ("glassbox-stack-advisory", "GB-DATA-004"),
    } <= warned
    # the glassbox-only rules check reported cannot come out of CrossGuard
    only = {
        f.rule_id for f in result.verdict.findings if f.rule_id.startswith(("GB-CHG", "GB-SCOPE", "GB-EVD", "GB-GOV"))
    }
    assert not {r.rule_id for r in found} & only


# --------------------------------------------------------------------------------------------------
# over gRPC, against the pack process `__main__.py` starts


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


@pytest.fixture(scope="module")
def analyzer() -> Iterator[Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    process = subprocess.Popen(
        [sys.executable, "-u", str(CROSSGUARD)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.isdigit(), process.stderr.read() if process.stderr else ""
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.kill()
        process.communicate()


@pytest.mark.slow
def test_the_pack_process_answers_over_grpc_as_the_direct_calls_do(
    analyzer: Any, estate: Estate, policies: list[Policy]
) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "glassbox-crossguard" and "cannot fire" in info.description
    assert {p.name for p in info.policies} == {p.name for p in policies}

    plan = build_plan(estate.root, estate.base, estate.violating)
    found: set[tuple[str, str, str | None]] = set()
    stacks: dict[tuple[str, str], list[Resource]] = {}
    for r in plan.resources:
        stacks.setdefault((r.project, r.stack), []).append(r)
    for (project, stack), members in stacks.items():
        provider = _provider(project, stack, None)
        wire_provider = analyzer_pb2.AnalyzerProviderResource(
            type=provider.resource_type, urn=provider.urn, name=provider.name
        )
        answers = []
        resources = []
        for r in members:
            options = analyzer_pb2.AnalyzerResourceOptions(protect=r.protect, parent=r.parent or "")
            props = _struct(json.loads(json.dumps(r.inputs)))
            answers.append(
                analyzer.Analyze(
                    analyzer_pb2.AnalyzeRequest(
                        type=r.type, properties=props, urn=r.urn, name=r.name, options=options, provider=wire_provider
                    )
                )
            )
            resources.append(
                analyzer_pb2.AnalyzerResource(
                    type=r.type,
                    properties=props,
                    urn=r.urn,
                    name=r.name,
                    options=options,
                    provider=wire_provider,
                    parent=r.parent or "",
                    dependencies=r.dependencies,
                )
            )
        answers.append(analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources)))
        for answer, urn in zip(answers, [r.urn for r in members] + [None], strict=True):
            for d in answer.diagnostics:
                rule = RULE_ID.match(d.message.split("\n", 1)[1])
                assert rule, d.message
                status = "deny" if d.enforcementLevel == analyzer_pb2.MANDATORY else "warn"
                found.add((rule.group(1), status, urn or d.urn or None))
    assert found == triples(run_policies(policies, plan.resources))
