"""Identity estate: the roles workloads and people assume, each trusting one principal, each policy naming
its actions and resources (no wildcard action or resource anywhere).
"""

import json

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
environment = pulumi.Config("glassbox").require("environment")
region = pulumi.Config("aws").require("region")
account = config.require("accountId")
repository = config.require("githubRepository")
artifacts_bucket = config.require("artifactsBucket")
orders_db = config.require("ordersDbResourceId")
session_seconds = config.require_int("maxSessionHours") * 3600

tags = {"Owner": "platform-identity", "CostCenter": "cc-3003", "Environment": environment}


def document(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


# CI deploys through GitHub OIDC, pinned to the repository's environment of the same name.
deployer = aws.iam.Role(
    "deployer",
    name=f"{environment}-deployer",
    description="Assumed by the deploy workflow through GitHub OIDC",
    max_session_duration=session_seconds,
    assume_role_policy=document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                    "token.actions.githubusercontent.com:sub": f"repo:{repository}:environment:{environment}",
                }
            },
        }
    ),
    tags=tags,
)

app_runtime = aws.iam.Role(
    "app-runtime",
    name=f"{environment}-app-runtime",
    description="Task role of the orders service",
    assume_role_policy=document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        }
    ),
    tags=tags,
)

auditor = aws.iam.Role(
    "auditor",
    name=f"{environment}-auditor",
    description="Read-only security audit, people only, with MFA",
    max_session_duration=session_seconds,
    assume_role_policy=document(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        }
    ),
    tags=tags,
)

artifacts_read = aws.iam.Policy(
    "artifacts-read",
    name=f"{environment}-artifacts-read",
    description="Read the build artifacts bucket",
    policy=document(
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{artifacts_bucket}"],
        },
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": [f"arn:aws:s3:::{artifacts_bucket}/releases/latest.json"],
        },
    ),
    tags=tags,
)

orders_connect = aws.iam.Policy(
    "orders-db-connect",
    name=f"{environment}-orders-db-connect",
    description="IAM authentication to the orders database as orders_app",
    policy=document(
        {
            "Effect": "Allow",
            "Action": ["rds-db:connect"],
            "Resource": [f"arn:aws:rds-db:{region}:{account}:dbuser:{orders_db}/orders_app"],
        }
    ),
    tags=tags,
)

deploy_state = aws.iam.Policy(
    "deploy-state",
    name=f"{environment}-deploy-state",
    description="Read and write the deploy state object of this environment",
    policy=document(
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": [f"arn:aws:s3:::acme-{environment}-deploy-state/{environment}/state.json"],
        }
    ),
    tags=tags,
)

aws.iam.RolePolicyAttachment("app-runtime-artifacts", role=app_runtime.name, policy_arn=artifacts_read.arn)
aws.iam.RolePolicyAttachment("app-runtime-orders", role=app_runtime.name, policy_arn=orders_connect.arn)
aws.iam.RolePolicyAttachment("deployer-state", role=deployer.name, policy_arn=deploy_state.arn)
aws.iam.RolePolicyAttachment(
    "auditor-security-audit", role=auditor.name, policy_arn="arn:aws:iam::aws:policy/SecurityAudit"
)
