"""Where archives go: a bucket the stack creates (private, TLS-only, encrypted, versioned,
with lifecycle rules for abandoned uploads and staging objects) or an existing one by name."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .config import STAGING_PREFIX, Config, ConfigError
from .nag import suppress


class Destination(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config) -> None:
        super().__init__(scope, id)
        self.created = config.create_dest_bucket
        if not self.created:
            if config.dest_bucket is None:  # load_config refuses this combination already
                raise ConfigError("dest_bucket: required when create_dest_bucket is false")
            self.bucket = s3.Bucket.from_bucket_name(self, "Bucket", config.dest_bucket)
            return
        key = kms.Key.from_key_arn(self, "Key", config.dest_kms_key_arn) if config.dest_kms_key_arn else None
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=config.dest_bucket,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.KMS if key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=key,
            bucket_key_enabled=True if key else None,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(config.abort_incomplete_upload_days),
                ),
                s3.LifecycleRule(
                    id="expire-staging-objects",
                    prefix=STAGING_PREFIX,
                    expiration=Duration.days(config.staging_expiry_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
            ],
            # Archives outlive the stack: `cdk destroy` leaves the bucket and its objects.
            removal_policy=RemovalPolicy.RETAIN,
        )
        suppress(
            self.bucket,
            "AwsSolutions-S1",
            "Server access logging needs a second bucket; the archiver's own access is traced by "
            "Step Functions, Lambda logs and CloudTrail. Enable it on the bucket if your policy asks.",
        )

    @property
    def bucket_name(self) -> str:
        return self.bucket.bucket_name

    @property
    def bucket_arn(self) -> str:
        return self.bucket.bucket_arn
