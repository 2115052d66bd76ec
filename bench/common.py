"""Small helpers shared by the benchmark's own contenders (floor, baseline) and runner."""

from __future__ import annotations

import json
import sys

MIB = 1024 * 1024
PART_SIZE = 16 * MIB
CHUNK_SIZE = 8 * MIB

# Fake credentials and no user config: nothing but the emulator is ever reachable.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise SystemExit(f"not an s3:// URL: {url}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def s3_client(endpoint_url: str, concurrency: int = 1):
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=max(10, 2 * concurrency + 4))
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def report(**fields) -> None:
    """A contender's last stdout line: one JSON object."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()
