"""The functions' IAM statements, least privilege: read-only on each configured source
bucket and prefix, writes only under the destination prefix and the staging prefix, the
state table only, KMS only for configured keys. No statement uses Resource "*"."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam

from .config import STAGING_PREFIX, Config

TABLE_ACTIONS = [  # TransactWriteItems is authorized through the item actions it contains
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
]
SOURCE_READ_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion"]
# PutObject also covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload;
# GetObject covers HeadObject (existence check of the archive key) and reading staging objects.
DEST_WRITE_ACTIONS = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"]
STAGING_ACTIONS = ["s3:DeleteObject"]


def bucket_arn(bucket: str) -> str:
    return f"arn:{Aws.PARTITION}:s3:::{bucket}"


def _list_statement(sid: str, arn: str, prefixes: list[str]) -> iam.PolicyStatement:
    """ListBucket limited to listings under the prefixes. It also decides 404 (not 403) for a
    missing key: S3 then evaluates s3:prefix as the key itself, so keys under a prefix qualify."""
    conditions = None if "" in prefixes else {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}}
    return iam.PolicyStatement(sid=sid, actions=["s3:ListBucket"], resources=[arn], conditions=conditions)


def function_statements(config: Config, *, dest_bucket_arn: str, table_arn: str) -> list[iam.PolicyStatement]:
    statements = []
    for i, (bucket, prefixes) in enumerate(config.source_prefixes().items()):
        statements.append(_list_statement(f"ListSource{i}", bucket_arn(bucket), prefixes))
        statements.append(
            iam.PolicyStatement(
                sid=f"ReadSource{i}",
                actions=SOURCE_READ_ACTIONS,
                resources=[f"{bucket_arn(bucket)}/{p}*" for p in prefixes],
            )
        )

    dest_prefixes = [config.dest_prefix, STAGING_PREFIX] if config.dest_prefix else [""]
    # The engine lists the destination only with Prefix=<archive key> or the staging prefix.
    statements.append(_list_statement("ListDestination", dest_bucket_arn, dest_prefixes))
    statements.append(
        iam.PolicyStatement(
            sid="WriteDestination",
            actions=DEST_WRITE_ACTIONS,
            resources=[f"{dest_bucket_arn}/{p}*" for p in dest_prefixes],
        )
    )
    statements.append(
        iam.PolicyStatement(
            sid="DeleteStaging", actions=STAGING_ACTIONS, resources=[f"{dest_bucket_arn}/{STAGING_PREFIX}*"]
        )
    )

    statements.append(iam.PolicyStatement(sid="StateTable", actions=TABLE_ACTIONS, resources=[table_arn]))

    if config.dest_kms_key_arn:
        statements.append(
            iam.PolicyStatement(
                sid="DestinationKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[config.dest_kms_key_arn],
            )
        )
    if config.source_kms_key_arns:
        statements.append(
            iam.PolicyStatement(
                sid="SourceKeys", actions=["kms:Decrypt"], resources=sorted(set(config.source_kms_key_arns))
            )
        )
    return statements
