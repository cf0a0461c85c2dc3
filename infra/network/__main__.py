"""Network estate: one VPC per environment with public/private subnets, NAT egress, flow logs and a bastion.

Nothing here opens SSH, RDP or a database port to the internet: the app tier takes HTTPS from inside the
VPC only, the database tier takes PostgreSQL from the app tier's security group only, the bastion has no
inbound rule at all (operators reach it through SSM Session Manager), and the VPC's default security
group is emptied so nothing can fall back to it.
"""

import json

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
environment = pulumi.Config("glassbox").require("environment")
vpc_cidr = config.require("vpcCidr")
zones: list[str] = config.require_object("availabilityZones")
retention_days = config.require_int("flowLogRetentionDays")
traffic_type = config.get("flowLogTrafficType") or "ALL"
bastion_size = config.require("bastionSize")
bastion_ami = config.require("bastionAmi")

tags = {"Owner": "platform-network", "CostCenter": "cc-1001", "Environment": environment}


def named(name: str) -> dict[str, str]:
    return {**tags, "Name": f"{environment}-{name}"}


vpc = aws.ec2.Vpc(
    "main",
    cidr_block=vpc_cidr,
    enable_dns_hostnames=True,
    enable_dns_support=True,
    tags=named("main"),
)

# Managing the default security group with no rules strips AWS's allow-all-within-group default.
aws.ec2.DefaultSecurityGroup("default", vpc_id=vpc.id, tags=named("default-deny"))

gateway = aws.ec2.InternetGateway("main", vpc_id=vpc.id, tags=named("igw"))

# /16 split: 10.x.0.0/24 public (NAT only), 10.x.10.0/24 + 10.x.11.0/24 private.
octets = vpc_cidr.split(".")
prefix = f"{octets[0]}.{octets[1]}"

public = aws.ec2.Subnet(
    "public-a",
    vpc_id=vpc.id,
    cidr_block=f"{prefix}.0.0/24",
    availability_zone=zones[0],
    map_public_ip_on_launch=False,
    tags={**named("public-a"), "Tier": "public"},
)

private = [
    aws.ec2.Subnet(
        f"private-{zone[-1]}",
        vpc_id=vpc.id,
        cidr_block=f"{prefix}.{10 + index}.0/24",
        availability_zone=zone,
        map_public_ip_on_launch=False,
        tags={**named(f"private-{zone[-1]}"), "Tier": "private"},
    )
    for index, zone in enumerate(zones[:2])
]

nat_ip = aws.ec2.Eip("nat", domain="vpc", tags=named("nat"))

nat = aws.ec2.NatGateway(
    "main",
    allocation_id=nat_ip.id,
    subnet_id=public.id,
    connectivity_type="public",
    tags=named("nat"),
    opts=pulumi.ResourceOptions(depends_on=[gateway]),
)

app = aws.ec2.SecurityGroup(
    "app",
    name=f"{environment}-app",
    description="Application tier: HTTPS from inside the VPC only",
    vpc_id=vpc.id,
    ingress=[
        aws.ec2.SecurityGroupIngressArgs(
            description="HTTPS from the VPC",
            protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_blocks=[vpc_cidr],
        )
    ],
    egress=[
        aws.ec2.SecurityGroupEgressArgs(
            description="HTTPS to AWS APIs through the NAT gateway",
            protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_blocks=["0.0.0.0/0"],
        )
    ],
    tags=named("app"),
)

database = aws.ec2.SecurityGroup(
    "db",
    name=f"{environment}-db",
    description="Database tier: PostgreSQL from the application tier only",
    vpc_id=vpc.id,
    ingress=[
        aws.ec2.SecurityGroupIngressArgs(
            description="PostgreSQL from the app tier",
            protocol="tcp",
            from_port=5432,
            to_port=5432,
            security_groups=[app.id],
        )
    ],
    tags=named("db"),
)

# The bastion sits in a private subnet and uses the app tier's group: HTTPS out (SSM), nothing in from outside.
aws.ec2.Instance(
    "bastion",
    ami=bastion_ami,
    instance_type=bastion_size,
    subnet_id=private[0].id,
    vpc_security_group_ids=[app.id],
    associate_public_ip_address=False,
    monitoring=True,
    ebs_optimized=True,
    metadata_options=aws.ec2.InstanceMetadataOptionsArgs(http_tokens="required", http_endpoint="enabled"),
    root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(encrypted=True, volume_size=20, volume_type="gp3"),
    tags=named("bastion"),
)

flow_logs = aws.cloudwatch.LogGroup(
    "vpc-flow-logs",
    name=f"/{environment}/vpc/flow-logs",
    retention_in_days=retention_days,
    tags=named("flow-logs"),
)

flow_role = aws.iam.Role(
    "vpc-flow-logs",
    name=f"{environment}-vpc-flow-logs",
    description="Lets the VPC flow logs service write to its log group",
    assume_role_policy=json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    ),
    tags=named("vpc-flow-logs"),
)

aws.iam.RolePolicy(
    "vpc-flow-logs",
    role=flow_role.id,
    policy=flow_logs.arn.apply(
        lambda arn: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                        "Resource": [arn],
                    }
                ],
            }
        )
    ),
)

aws.ec2.FlowLog(
    "main",
    vpc_id=vpc.id,
    traffic_type=traffic_type,
    log_destination_type="cloud-watch-logs",
    log_destination=flow_logs.arn,
    iam_role_arn=flow_role.arn,
    tags=named("flow-log"),
)

pulumi.export("vpc_id", vpc.id)
pulumi.export("private_subnet_ids", [subnet.id for subnet in private])
pulumi.export("app_security_group_id", app.id)
pulumi.export("db_security_group_id", database.id)
pulumi.export("nat_gateway_id", nat.id)
