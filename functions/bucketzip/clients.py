"""boto3 clients with standard configuration (AWS_ENDPOINT_URL, profile, region apply)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:  # the stubs are a dev dependency: the Lambda does not need them
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client


def s3_client(endpoint_url: str | None = None, concurrency: int = 8) -> S3Client:
    config = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=max(10, 2 * concurrency + 4))
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=config)


def dynamodb_client(endpoint_url: str | None = None) -> DynamoDBClient:
    config = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=20)
    return boto3.client("dynamodb", endpoint_url=endpoint_url or None, config=config)
