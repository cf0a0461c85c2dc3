"""The mock cloud's identities: the ids, ARNs and computed outputs it hands to programs, and how to read them back.

Under the Pulumi SDK's mock runtime nothing is created; glassbox plays the cloud provider. Every value it
returns is a pure function of the resource's URN and inputs (never of time or randomness), so the same
commit always yields the same plan. Ids look like ``<logical-name>-<10 hex of sha256(urn)>`` so that an
input holding another resource's id or ARN can be mapped back to that resource (Terraform-plan
references). As in AWS, an S3 bucket's id is its name: the ``bucket`` input, else the logical name
(policy-pack/lib/s3.rego matches companions to buckets on exactly that).

This module imports nothing from Pulumi: the Terraform translation uses it on the parent side.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MOCK_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
UNKNOWN_MARK = "[unknown]"

_SLUG = re.compile(r"[^a-z0-9]+")
# Services whose ARNs carry no region (and, for S3, no account).
_GLOBAL_SERVICES = {"iam", "s3", "route53", "cloudfront"}


def urn_name(urn: str) -> str:
    """The logical name at the end of a URN."""
    return urn.split("::")[-1]


def urn_type(urn: str) -> str:
    """The resource's own type token (the last element of a parent-qualified type)."""
    return urn.split("::")[2].split("$")[-1]


BUCKET_TYPES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})


def mock_id(urn: str, type_token: str = "", inputs: Mapping[str, Any] | None = None) -> str:
    if type_token in BUCKET_TYPES:
        name = (inputs or {}).get("bucket")
        return name if isinstance(name, str) and name else urn_name(urn)
    slug = _SLUG.sub("-", urn_name(urn).lower()).strip("-")[:40] or "resource"
    return f"{slug}-{hashlib.sha256(urn.encode('utf-8')).hexdigest()[:10]}"


# Where the Pulumi module is not the ARN's service namespace, or the resource kind is spelled differently.
_ARN_PARTS = {
    "aws:cloudwatch/logGroup:LogGroup": ("logs", "log-group"),
    "aws:rds/instance:Instance": ("rds", "db"),
    "aws:rds/subnetGroup:SubnetGroup": ("rds", "subgrp"),
    "aws:ec2/securityGroup:SecurityGroup": ("ec2", "security-group"),
    "aws:ec2/natGateway:NatGateway": ("ec2", "natgateway"),
    "aws:ec2/internetGateway:InternetGateway": ("ec2", "internet-gateway"),
    "aws:ec2/eip:Eip": ("ec2", "elastic-ip"),
    "aws:ec2/flowLog:FlowLog": ("ec2", "vpc-flow-log"),
}


def mock_arn(type_token: str, urn: str, inputs: Mapping[str, Any], region: str = DEFAULT_REGION) -> str:
    rid = mock_id(urn, type_token, inputs)
    service = type_token.split(":")[1].split("/")[0] if type_token.count(":") >= 2 else "mock"
    kind = type_token.rsplit(":", 1)[-1].lower()
    service, kind = _ARN_PARTS.get(type_token, (service, kind))
    if service == "s3":
        return f"arn:aws:s3:::{rid}"
    if service in _GLOBAL_SERVICES:
        return f"arn:aws:{service}::{MOCK_ACCOUNT}:{kind}/{rid}"
    return f"arn:aws:{service}:{region}:{MOCK_ACCOUNT}:{kind}/{rid}"


def mock_outputs(type_token: str, urn: str, inputs: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The outputs the mock cloud returns: the inputs, plus computed values programs commonly read."""
    rid = mock_id(urn, type_token, inputs)
    state: dict[str, Any] = dict(inputs)
    state.setdefault("arn", mock_arn(type_token, urn, inputs, region))
    state.setdefault("name", rid)
    state.setdefault("tagsAll", inputs.get("tags", {}))
    extra = _EXTRA_OUTPUTS.get(type_token)
    if extra is not None:
        for key, value in extra(rid, inputs, region).items():
            state.setdefault(key, value)
    return state


def _bucket(rid: str, inputs: Mapping[str, Any], region: str) -> dict[str, Any]:
    name = inputs.get("bucket") or rid
    return {
        "bucket": name,
        "bucketDomainName": f"{name}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
        "region": region,
    }


def _db_instance(rid: str, inputs: Mapping[str, Any], region: str) -> dict[str, Any]:
    host = f"{inputs.get('identifier') or rid}.mock.{region}.rds.amazonaws.com"
    return {"address": host, "endpoint": f"{host}:5432", "port": 5432, "resourceId": f"db-{rid}"}


def _kms_key(rid: str, inputs: Mapping[str, Any], region: str) -> dict[str, Any]:
    return {"keyId": rid}


def _role(rid: str, inputs: Mapping[str, Any], region: str) -> dict[str, Any]:
    return {"uniqueId": f"AROA{rid.upper()[-10:]}"}


def _vpc(rid: str, inputs: Mapping[str, Any], region: str) -> dict[str, Any]:
    return {"defaultSecurityGroupId": f"sg-default-{rid}", "mainRouteTableId": f"rtb-main-{rid}"}


_EXTRA_OUTPUTS: dict[str, Callable[[str, Mapping[str, Any], str], dict[str, Any]]] = {
    "aws:s3/bucket:Bucket": _bucket,
    "aws:s3/bucketV2:BucketV2": _bucket,
    "aws:kms/key:Key": _kms_key,
    "aws:rds/instance:Instance": _db_instance,
    "aws:iam/role:Role": _role,
    "aws:ec2/vpc:Vpc": _vpc,
}


def call_result(function: str, args: Mapping[str, Any], region: str) -> dict[str, Any]:
    """Results of the provider functions programs commonly invoke; anything else returns nothing (unknown)."""
    if function == "aws:index/getAvailabilityZones:getAvailabilityZones":
        names = [f"{region}{suffix}" for suffix in "abc"]
        return {"names": names, "zoneIds": [f"mock-az{i}" for i in range(1, 4)], "id": region}
    if function == "aws:index/getCallerIdentity:getCallerIdentity":
        return {
            "accountId": MOCK_ACCOUNT,
            "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/glassbox-plan",
            "userId": "AIDAMOCK",
            "id": MOCK_ACCOUNT,
        }
    if function in ("aws:index/getRegion:getRegion", "aws:index/region:getRegion"):
        return {"name": region, "region": region, "id": region, "endpoint": f"ec2.{region}.amazonaws.com"}
    if function == "aws:index/getPartition:getPartition":
        return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
    return {}


class IdIndex:
    """Maps mock ids and ARNs found in inputs back to the URN of the resource that owns them."""

    def __init__(self, resources: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
        """``resources``: (urn, type token, inputs) of every resource that may be referred to."""
        self._by_id: dict[str, list[str]] = {}
        for urn, type_token, inputs in resources:
            self._by_id.setdefault(mock_id(urn, type_token, inputs), []).append(urn)

    def owner(self, value: Any, dependencies: Iterable[str] = ()) -> str | None:
        """The URN whose id or ARN ``value`` is, if any.

        Bucket ids are names and may repeat across stacks; then the owner is the one among the referring
        resource's ``dependencies`` (a Pulumi input that carries another resource's id depends on it).
        """
        if not isinstance(value, str) or not value:
            return None
        candidates = self._by_id.get(value)
        if candidates is None and value.startswith("arn:"):
            tail = value.rsplit("/", 1)[-1] if "/" in value else value.rsplit(":", 1)[-1]
            candidates = self._by_id.get(tail)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        among = set(dependencies)
        chosen = [urn for urn in candidates if urn in among]
        return chosen[0] if len(chosen) == 1 else None
