"""Data estate: KMS-encrypted private buckets with access logging, and the orders PostgreSQL database.

Every bucket has server-side encryption with the estate's KMS key, a public access block with all four
switches on, and versioning as the stack config says (on in prod). The database is private, encrypted
with the same key, and takes its backup window, size and deletion protection from the stack config.
"""

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
environment = pulumi.Config("glassbox").require("environment")

tags = {"Owner": "data-platform", "CostCenter": "cc-2002", "Environment": environment}

key = aws.kms.Key(
    "data",
    description=f"{environment} data estate: S3 and RDS encryption",
    enable_key_rotation=True,
    deletion_window_in_days=30,
    tags=tags,
)

aws.kms.Alias("data", name=f"alias/{environment}-data", target_key_id=key.key_id)


def private_bucket(name: str) -> aws.s3.Bucket:
    """A bucket with versioning, KMS encryption and every public-access switch on."""
    bucket = aws.s3.Bucket(name, bucket=f"acme-{environment}-{name}", force_destroy=False, tags=tags)
    aws.s3.BucketVersioning(
        name,
        bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
            status=config.require("bucketVersioning"),
        ),
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        name,
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms",
                    kms_master_key_id=key.arn,
                ),
                bucket_key_enabled=True,
            )
        ],
    )
    aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    return bucket


access_logs = private_bucket("access-logs")
artifacts = private_bucket("artifacts")

aws.s3.BucketLogging(
    "artifacts",
    bucket=artifacts.id,
    target_bucket=access_logs.id,
    target_prefix="artifacts/",
)

subnets = aws.rds.SubnetGroup(
    "orders",
    name=f"{environment}-orders",
    description="Private subnets for the orders database",
    subnet_ids=config.require_object("privateSubnetIds"),
    tags=tags,
)

deletion_protection = config.require_bool("dbDeletionProtection")

aws.rds.Instance(
    "orders",
    identifier=f"{environment}-orders",
    engine="postgres",
    engine_version="16.4",
    instance_class=config.require("dbInstanceClass"),
    allocated_storage=config.require_int("dbAllocatedStorage"),
    storage_type="gp3",
    storage_encrypted=True,
    kms_key_id=key.arn,
    db_name="orders",
    username="orders_admin",
    manage_master_user_password=True,
    iam_database_authentication_enabled=True,
    db_subnet_group_name=subnets.name,
    vpc_security_group_ids=config.require_object("dbSecurityGroupIds"),
    publicly_accessible=False,
    multi_az=config.require_bool("dbMultiAz"),
    backup_retention_period=config.require_int("dbBackupRetentionDays"),
    deletion_protection=deletion_protection,
    skip_final_snapshot=not deletion_protection,
    final_snapshot_identifier=f"{environment}-orders-final" if deletion_protection else None,
    copy_tags_to_snapshot=True,
    auto_minor_version_upgrade=True,
    tags=tags,
    opts=pulumi.ResourceOptions(protect=deletion_protection),
)

pulumi.export("artifacts_bucket", artifacts.bucket)
pulumi.export("kms_key_arn", key.arn)
