"""Resource diff: base vs head resources of one stack into create / update / replace / delete changes.

A resource's identity across the two sides is its URN. An update lists every changed input path with its
before and after values; it becomes a predicted replace when a changed top-level input is one the
provider replaces the resource for (a small table of well-known types; the provider decides for real).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.plan.model import PropertyChange, Resource, ResourceChange
from bot.records import ChangeAction

# Inputs that force replacement, from the Terraform AWS provider's ForceNew attributes (pulumi-aws is bridged
# from it). Only types glassbox's estates use, plus a few common ones.
REPLACE_ON: dict[str, frozenset[str]] = {
    "aws:s3/bucket:Bucket": frozenset({"bucket", "bucketPrefix", "objectLockEnabled"}),
    "aws:s3/bucketV2:BucketV2": frozenset({"bucket", "bucketPrefix", "objectLockEnabled"}),
    "aws:s3/bucketVersioning:BucketVersioning": frozenset({"bucket", "expectedBucketOwner"}),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": frozenset({"bucket"}),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": frozenset(
        {"bucket", "expectedBucketOwner"}
    ),
    "aws:s3/bucketLogging:BucketLogging": frozenset({"bucket", "expectedBucketOwner"}),
    "aws:rds/instance:Instance": frozenset(
        {
            "engine",
            "identifier",
            "identifierPrefix",
            "storageEncrypted",
            "kmsKeyId",
            "availabilityZone",
            "dbName",
            "username",
            "characterSetName",
            "timezone",
            "snapshotIdentifier",
            "replicateSourceDb",
        }
    ),
    "aws:rds/subnetGroup:SubnetGroup": frozenset({"name", "namePrefix"}),
    "aws:ec2/vpc:Vpc": frozenset({"cidrBlock", "instanceTenancy", "ipv4IpamPoolId"}),
    "aws:ec2/subnet:Subnet": frozenset({"cidrBlock", "vpcId", "availabilityZone", "availabilityZoneId"}),
    "aws:ec2/securityGroup:SecurityGroup": frozenset({"name", "namePrefix", "vpcId", "description"}),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": frozenset({"vpcId"}),
    "aws:ec2/eip:Eip": frozenset({"domain", "publicIpv4Pool", "address", "customerOwnedIpv4Pool"}),
    "aws:ec2/natGateway:NatGateway": frozenset(
        {"allocationId", "subnetId", "connectivityType", "privateIp", "availabilityMode"}
    ),
    "aws:ec2/flowLog:FlowLog": frozenset(
        {
            "vpcId",
            "subnetId",
            "eniId",
            "logDestination",
            "logDestinationType",
            "trafficType",
            "iamRoleArn",
            "logFormat",
            "maxAggregationInterval",
            "destinationOptions",
        }
    ),
    "aws:ec2/instance:Instance": frozenset({"ami", "availabilityZone", "subnetId", "keyName", "tenancy"}),
    "aws:cloudwatch/logGroup:LogGroup": frozenset({"name", "namePrefix", "logGroupClass"}),
    "aws:kms/key:Key": frozenset({"customerMasterKeySpec", "keyUsage", "multiRegion", "xksKeyId"}),
    "aws:kms/alias:Alias": frozenset({"name", "namePrefix"}),
    "aws:iam/role:Role": frozenset({"name", "namePrefix", "path"}),
    "aws:iam/policy:Policy": frozenset({"name", "namePrefix", "path"}),
    "aws:iam/rolePolicy:RolePolicy": frozenset({"name", "namePrefix", "role"}),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": frozenset({"role", "policyArn"}),
    "aws:dynamodb/table:Table": frozenset({"name", "hashKey", "rangeKey"}),
    "aws:lambda/function:Function": frozenset({"name"}),
    "aws:sqs/queue:Queue": frozenset({"name", "namePrefix", "fifoQueue"}),
}


def property_changes(before: Any, after: Any, path: str = "") -> list[PropertyChange]:
    """Every leaf that differs; lists of equal length compare item by item, otherwise as a whole."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[PropertyChange] = []
        for key in sorted(set(before) | set(after)):
            child = f"{path}.{key}" if path else str(key)
            out.extend(property_changes(before.get(key), after.get(key), child))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            out.extend(property_changes(b, a, f"{path}[{index}]"))
        return out
    if before == after and type(before) is type(after):
        return []
    return [PropertyChange(path=path, before=before, after=after)]


def _top_level(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def diff_stack(base: Iterable[Resource], head: Iterable[Resource]) -> list[ResourceChange]:
    """The changes that turn ``base`` into ``head`` (one project and stack), sorted by URN."""
    before = {r.urn: r for r in base}
    after = {r.urn: r for r in head}
    changes: list[ResourceChange] = []
    for urn in sorted(set(before) | set(after)):
        old, new = before.get(urn), after.get(urn)
        if old is None and new is not None:
            changes.append(_change(new, ChangeAction.CREATE, [], None, new.inputs))
        elif new is None and old is not None:
            changes.append(_change(old, ChangeAction.DELETE, [], old.inputs, None))
        elif old is not None and new is not None:
            changed = property_changes(old.inputs, new.inputs)
            if not changed:
                continue
            forcing = REPLACE_ON.get(new.type, frozenset())
            replace = any(_top_level(c.path) in forcing for c in changed)
            action = ChangeAction.REPLACE if replace else ChangeAction.UPDATE
            changes.append(_change(new, action, changed, old.inputs, new.inputs, replace_predicted=replace))
    return changes


def _change(
    resource: Resource,
    action: ChangeAction,
    changed: list[PropertyChange],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    replace_predicted: bool = False,
) -> ResourceChange:
    return ResourceChange(
        project=resource.project,
        stack=resource.stack,
        environment=resource.environment,
        urn=resource.urn,
        type=resource.type,
        name=resource.name,
        action=action,
        replace_predicted=replace_predicted,
        changed=changed,
        before=before,
        after=after,
    )
