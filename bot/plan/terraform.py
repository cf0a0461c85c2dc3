"""Terraform-plan JSON from Pulumi resources, so that checkov's ``terraform_plan`` framework can scan them.

pulumi-aws is bridged from the Terraform AWS provider, so a Pulumi resource maps onto a Terraform one:
the type through an explicit table (the naive ``aws_<module>_<name>`` rule is wrong for many types, e.g.
``aws:ec2/securityGroup:SecurityGroup`` is ``aws_security_group``), property names camelCase → snake_case,
single nested objects → one-item lists (Terraform blocks), and a few list blocks Pulumi pluralises back to
Terraform's singular block name (``rules`` → ``rule``).

References: where an input holds another resource's mock id or ARN (see :mod:`bot.plan.mockcloud`), or
the name of a resource it depends on, the attribute gets ``configuration...expressions.<attr>.references``
naming that resource's address, as Terraform writes them; without these checkov's cross-resource checks
(public access block, versioning, flow logs) report false positives. Like Terraform for a resource not yet
created, an id or ARN reference is left out of ``values`` (it is unknown until apply).

:func:`address_map` maps every Terraform address back to its Pulumi URN so findings can be attributed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from bot.plan.mockcloud import IdIndex
from bot.plan.model import Resource

FORMAT_VERSION = "1.2"
# The Terraform release whose plan format this imitates; checkov only requires the key to be present.
TERRAFORM_VERSION = "1.9.8"
PROVIDER_NAME = "registry.terraform.io/hashicorp/aws"

TERRAFORM_TYPES: dict[str, str] = {
    # network
    "aws:ec2/vpc:Vpc": "aws_vpc",
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:ec2/securityGroupRule:SecurityGroupRule": "aws_security_group_rule",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "aws_default_security_group",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "aws_vpc_security_group_ingress_rule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "aws_vpc_security_group_egress_rule",
    "aws:ec2/internetGateway:InternetGateway": "aws_internet_gateway",
    "aws:ec2/eip:Eip": "aws_eip",
    "aws:ec2/natGateway:NatGateway": "aws_nat_gateway",
    "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    "aws:ec2/routeTable:RouteTable": "aws_route_table",
    "aws:ec2/route:Route": "aws_route",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
    "aws:ec2/networkAcl:NetworkAcl": "aws_network_acl",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
    "aws:ec2/instance:Instance": "aws_instance",
    "aws:ec2/launchTemplate:LaunchTemplate": "aws_launch_template",
    "aws:ebs/volume:Volume": "aws_ebs_volume",
    "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
    # storage and keys
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    "aws:s3/bucketV2:BucketV2": "aws_s3_bucket",
    "aws:s3/bucketVersioning:BucketVersioning": "aws_s3_bucket_versioning",
    "aws:s3/bucketVersioningV2:BucketVersioningV2": "aws_s3_bucket_versioning",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "aws_s3_bucket_server_side_encryption_configuration"
    ),
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2": (
        "aws_s3_bucket_server_side_encryption_configuration"
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "aws_s3_bucket_public_access_block",
    "aws:s3/bucketLogging:BucketLogging": "aws_s3_bucket_logging",
    "aws:s3/bucketLoggingV2:BucketLoggingV2": "aws_s3_bucket_logging",
    "aws:s3/bucketPolicy:BucketPolicy": "aws_s3_bucket_policy",
    "aws:s3/bucketAcl:BucketAcl": "aws_s3_bucket_acl",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "aws_s3_bucket_lifecycle_configuration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
    "aws:kms/key:Key": "aws_kms_key",
    "aws:kms/alias:Alias": "aws_kms_alias",
    "aws:rds/instance:Instance": "aws_db_instance",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
    "aws:rds/parameterGroup:ParameterGroup": "aws_db_parameter_group",
    "aws:rds/cluster:Cluster": "aws_rds_cluster",
    "aws:dynamodb/table:Table": "aws_dynamodb_table",
    "aws:sqs/queue:Queue": "aws_sqs_queue",
    "aws:sns/topic:Topic": "aws_sns_topic",
    "aws:ecr/repository:Repository": "aws_ecr_repository",
    "aws:secretsmanager/secret:Secret": "aws_secretsmanager_secret",
    "aws:lambda/function:Function": "aws_lambda_function",
    # identity
    "aws:iam/role:Role": "aws_iam_role",
    "aws:iam/policy:Policy": "aws_iam_policy",
    "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    "aws:iam/user:User": "aws_iam_user",
    "aws:iam/userPolicy:UserPolicy": "aws_iam_user_policy",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": "aws_iam_user_policy_attachment",
    "aws:iam/group:Group": "aws_iam_group",
    "aws:iam/groupPolicy:GroupPolicy": "aws_iam_group_policy",
    "aws:iam/instanceProfile:InstanceProfile": "aws_iam_instance_profile",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "aws_iam_openid_connect_provider",
}

# List blocks Pulumi names in the plural where Terraform's block name is singular.
BLOCK_NAMES: dict[str, dict[str, str]] = {
    "aws_s3_bucket_server_side_encryption_configuration": {"rules": "rule"},
    "aws_s3_bucket_lifecycle_configuration": {"rules": "rule"},
    "aws_route_table": {"routes": "route"},
    "aws_db_parameter_group": {"parameters": "parameter"},
    "aws_dynamodb_table": {"attributes": "attribute"},
    "aws_iam_role": {"inlinePolicies": "inline_policy"},
}

# Inputs that are maps of user keys, not blocks: keys kept verbatim, not wrapped in a list.
MAP_PROPERTIES = frozenset({"tags", "tagsAll", "variables", "metadata", "triggers"})

# Attributes whose value is another resource's name (not its id), for the references of known values.
_NAME_ATTRIBUTES = ("name", "bucket", "identifier")
_OWN_NAMES = frozenset(
    {"name", "namePrefix", "identifier", "identifierPrefix", "description", "finalSnapshotIdentifier"}
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ADDRESS_NAME = re.compile(r"[^A-Za-z0-9_-]+")


@functools.lru_cache(maxsize=4096)  # the same few hundred property names, over and over; bounded for any others
def snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def terraform_type(type_token: str) -> str | None:
    """The Terraform resource type of a Pulumi type token, or None when glassbox does not know it."""
    return TERRAFORM_TYPES.get(type_token)


def _addresses(resources: Sequence[Resource]) -> dict[str, str]:
    """URN → Terraform address, unique and deterministic (one plan may hold several projects and stacks)."""
    mapped = sorted((r for r in resources if r.type in TERRAFORM_TYPES), key=lambda r: r.urn)
    several = len({(r.project, r.stack) for r in mapped}) > 1
    taken: set[str] = set()
    out: dict[str, str] = {}
    for resource in mapped:
        stem = f"{resource.project}_{resource.stack}_{resource.name}" if several else resource.name
        base = _ADDRESS_NAME.sub("_", stem).strip("_") or "resource"
        if base[0].isdigit():
            base = f"r_{base}"
        tf_type = TERRAFORM_TYPES[resource.type]
        name, n = base, 1
        while f"{tf_type}.{name}" in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(f"{tf_type}.{name}")
        out[resource.urn] = f"{tf_type}.{name}"
    return out


def address_map(resources: Sequence[Resource]) -> dict[str, str]:
    """Terraform address → Pulumi URN for every resource :func:`to_terraform_plan` emits."""
    return {address: urn for urn, address in _addresses(resources).items()}


class _Referencer:
    """Finds which resource an input value refers to, for one resource's inputs."""

    def __init__(self, resources: Sequence[Resource], addresses: dict[str, str]) -> None:
        self._ids = IdIndex((r.urn, r.type, r.inputs) for r in resources if r.urn in addresses)
        self._addresses = addresses
        self._names: dict[str, dict[str, str]] = {}
        for r in resources:
            if r.urn not in addresses:
                continue
            for key in _NAME_ATTRIBUTES:
                value = r.inputs.get(key)
                if isinstance(value, str) and value:
                    self._names.setdefault(r.urn, {})[value] = key

    def of(self, value: Any, key: str, dependencies: Sequence[str]) -> tuple[list[str], bool] | None:
        """(references, unknown-at-plan) for a scalar value that refers to a resource, else None."""
        owner = self._ids.owner(value, dependencies)
        # Pulumi records a dependency for every input that carries another resource's output, so a value
        # that only looks like an id (or is the resource's own bucket name) is not a reference.
        if owner is not None and owner in self._addresses and owner in dependencies:
            address = self._addresses[owner]
            kind = "arn" if str(value).startswith("arn:") else "id"
            return [f"{address}.{kind}", address], True
        # A resource's own name is not a reference, even when it equals the name of something it uses.
        if isinstance(value, str) and key not in _OWN_NAMES:
            for urn in dependencies:
                attribute = self._names.get(urn, {}).get(value)
                if attribute is not None:
                    address = self._addresses[urn]
                    return [f"{address}.{attribute}", address], False
        return None


def _convert(value: Any, tf_type: str, key: str, deps: Sequence[str], ref: _Referencer) -> tuple[Any, Any, bool]:
    """(terraform value, expression, omit) for one input value.

    ``expression`` mirrors the value's structure with ``{"references": [...]}`` leaves, or None.
    ``omit`` says the value is unknown at plan time (an id or ARN of another resource) and is left out.
    """
    if isinstance(value, dict):
        if key in MAP_PROPERTIES:
            return dict(value), None, False
        values, expressions = _convert_object(value, tf_type, deps, ref)
        return [values], ([expressions] if expressions else None), False
    if isinstance(value, list):
        items: list[Any] = []
        references: list[str] = []
        nested: list[Any] = []
        for item in value:
            if isinstance(item, dict):
                v, e = _convert_object(item, tf_type, deps, ref)
                items.append(v)
                nested.append(e or {})
                continue
            found = ref.of(item, key, deps)
            if found is not None:
                references.extend(found[0])
                items.append(None if found[1] else item)
            else:
                items.append(item)
        if references:
            if all(item is None for item in items):
                return None, {"references": references}, True
            return items, {"references": references}, False
        return items, (nested if any(nested) else None), False
    found = ref.of(value, key, deps)
    if found is not None:
        return value, {"references": found[0]}, found[1]
    return value, None, False


def _convert_object(
    obj: dict[str, Any], tf_type: str, deps: Sequence[str], ref: _Referencer, top: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    values: dict[str, Any] = {}
    expressions: dict[str, Any] = {}
    renames = BLOCK_NAMES.get(tf_type, {})
    for key in sorted(obj):
        name = (renames.get(key) if top else None) or snake(key)
        converted, expression, omit = _convert(obj[key], tf_type, key, deps, ref)
        if not omit:
            values[name] = converted
        if expression:
            expressions[name] = expression
    return values, expressions


def to_terraform_plan(resources: Sequence[Resource]) -> dict[str, Any]:
    """Terraform plan JSON (format 1.x) for the resources glassbox can map; other types are left out."""
    addresses = _addresses(resources)
    referencer = _Referencer(resources, addresses)
    planned: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    configuration: list[dict[str, Any]] = []
    for resource in sorted(resources, key=lambda r: r.urn):
        address = addresses.get(resource.urn)
        if address is None:
            continue
        tf_type, name = address.split(".", 1)
        values, expressions = _convert_object(resource.inputs, tf_type, resource.dependencies, referencer, top=True)
        unknown = {key: True for key in expressions if key not in values}
        planned.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "provider_name": PROVIDER_NAME,
                "schema_version": 0,
                "values": values,
            }
        )
        changes.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "provider_name": PROVIDER_NAME,
                "change": {"actions": ["create"], "before": None, "after": values, "after_unknown": unknown},
            }
        )
        configuration.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "provider_config_key": "aws",
                "expressions": expressions,
            }
        )
    return {
        "format_version": FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": {"aws": {"name": "aws", "full_name": PROVIDER_NAME}},
            "root_module": {"resources": configuration},
        },
    }
