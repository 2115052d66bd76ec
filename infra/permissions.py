"""Each function's IAM statements, least privilege and one role per function: a function
gets only what its own code calls. Sources are read-only: only Step and Segment read
objects, Plan HEADs keys; writes only under the destination prefix and the staging
prefix; the state table only; KMS only for configured keys. No statement uses Resource "*".

IAM cannot separate CreateMultipartUpload from UploadPart (both are s3:PutObject), so
Start, which creates the upload, holds s3:PutObject on the destination prefix; it has no
access to staging objects nor to source objects (Start only lists the source)."""

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
# What each function does under the destination prefix (the archive and its manifest).
# s3:PutObject covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload;
# s3:GetObject covers HeadObject (Finish's completion proof).
DEST_ACTIONS = {
    "start": ["s3:AbortMultipartUpload", "s3:PutObject"],  # create the upload (abort it if the state write fails)
    "step": ["s3:PutObject"],  # upload parts
    "finish": ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
    "abort": ["s3:AbortMultipartUpload"],
    "cleanup": ["s3:AbortMultipartUpload"],
    # workers > 1: a segment uploads its parts (and UploadPartCopy parts) into the archive's
    # upload; assembly uploads the bytes of segments too small for a part of their own
    "segment": ["s3:PutObject"],
    "assemble": ["s3:PutObject"],
}
# ... and under the staging prefix (the tail carried between steps; with workers > 1 also the
# plan and the segments' tails).
STAGING_ACTIONS = {
    "step": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
    "finish": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
    "abort": ["s3:DeleteObject"],
    "cleanup": ["s3:DeleteObject"],
    "plan": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],  # plan.json and its listing's chunks
    "segment": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],  # its tail between steps
    # the tails of segments too small for a part (read), its own tail between calls
    "assemble": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
}
LISTS_SOURCE = ("start", "step", "plan", "segment")  # Start checks the source exists; the others list it
# Step and Segment read objects (GET, and UploadPartCopy of stored objects: its copy source)
READS_SOURCE = ("step", "segment")
# Plan HEADs source keys: a changed entry name must not be a selected key's own name
# (bucketzip.claims; HeadObject is authorized by s3:GetObject, it returns no bytes)
HEADS_SOURCE = ("plan",)
# SSE-KMS: new objects and parts need the key (assemble also decrypts the segments' tails)
WRITES_WITH_DEST_KEY = ("start", "step", "finish", "plan", "segment", "assemble")
LISTS_NO_DESTINATION = ("step", "segment")  # they never list it nor read a key that may be missing


def bucket_arn(bucket: str) -> str:
    return f"arn:{Aws.PARTITION}:s3:::{bucket}"


def _list_statement(sid: str, arn: str, prefixes: list[str]) -> iam.PolicyStatement:
    """ListBucket limited to listings under the prefixes. It also decides 404 (not 403) for a
    missing key: S3 then evaluates s3:prefix as the key itself, so keys under a prefix qualify."""
    conditions = None if "" in prefixes else {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}}
    return iam.PolicyStatement(sid=sid, actions=["s3:ListBucket"], resources=[arn], conditions=conditions)


def function_statements(
    config: Config, name: str, *, dest_bucket_arn: str, table_arn: str
) -> list[iam.PolicyStatement]:
    """The statements of function `name` (infra.config.FUNCTION_NAMES)."""
    statements = []
    if name in LISTS_SOURCE:
        for i, (bucket, prefixes) in enumerate(config.source_prefixes().items()):
            statements.append(_list_statement(f"ListSource{i}", bucket_arn(bucket), prefixes))
            if name in READS_SOURCE or name in HEADS_SOURCE:
                statements.append(
                    iam.PolicyStatement(
                        sid=f"ReadSource{i}" if name in READS_SOURCE else f"HeadSource{i}",
                        actions=SOURCE_READ_ACTIONS if name in READS_SOURCE else ["s3:GetObject"],
                        resources=[f"{bucket_arn(bucket)}/{p}*" for p in prefixes],
                    )
                )

    dest_prefix = config.dest_prefix  # "" is the whole bucket, staging included
    staging_prefixes = [STAGING_PREFIX] if dest_prefix else [""]
    # The engine lists the destination only with Prefix=<archive key> (Start; a HEAD's 404)
    # or the staging prefix (Finish, Abort, Cleanup sweep it).
    listed = {"start": [dest_prefix], "finish": [dest_prefix, STAGING_PREFIX]}.get(name, [STAGING_PREFIX])
    if name not in LISTS_NO_DESTINATION:
        statements.append(_list_statement("ListDestination", dest_bucket_arn, [""] if not dest_prefix else listed))
    if name not in DEST_ACTIONS:  # plan: staging objects only, never the archive
        statements.append(
            iam.PolicyStatement(
                sid="Staging", actions=STAGING_ACTIONS[name], resources=[f"{dest_bucket_arn}/{STAGING_PREFIX}*"]
            )
        )
        statements.append(iam.PolicyStatement(sid="StateTable", actions=TABLE_ACTIONS, resources=[table_arn]))
        return statements + _key_statements(config, name)
    statements.append(
        iam.PolicyStatement(
            sid="WriteDestination", actions=DEST_ACTIONS[name], resources=[f"{dest_bucket_arn}/{dest_prefix}*"]
        )
    )
    if name in STAGING_ACTIONS and dest_prefix:
        statements.append(
            iam.PolicyStatement(
                sid="Staging",
                actions=STAGING_ACTIONS[name],
                resources=[f"{dest_bucket_arn}/{p}*" for p in staging_prefixes],
            )
        )
    elif name in STAGING_ACTIONS:  # destination is the whole bucket: one statement covers both
        statements[-1] = iam.PolicyStatement(
            sid="WriteDestination",
            actions=sorted(set(DEST_ACTIONS[name]) | set(STAGING_ACTIONS[name])),
            resources=[f"{dest_bucket_arn}/*"],
        )

    statements.append(iam.PolicyStatement(sid="StateTable", actions=TABLE_ACTIONS, resources=[table_arn]))
    return statements + _key_statements(config, name)


def _key_statements(config: Config, name: str) -> list[iam.PolicyStatement]:
    statements = []
    if config.dest_kms_key_arn and name in WRITES_WITH_DEST_KEY:
        statements.append(
            iam.PolicyStatement(
                sid="DestinationKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[config.dest_kms_key_arn],
            )
        )
    if config.source_kms_key_arns and name in READS_SOURCE:
        statements.append(
            iam.PolicyStatement(
                sid="SourceKeys", actions=["kms:Decrypt"], resources=sorted(set(config.source_kms_key_arns))
            )
        )
    return statements
