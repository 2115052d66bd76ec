"""Plain helpers (not fixtures) to fill and inspect buckets in tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

# S3 keys that are no safe zip entry names as they stand (each maps to another name) or
# that stress encoders and readers: small bodies, for tests that add their own objects.
HOSTILE_KEYS: dict[str, bytes] = {
    "plain.txt": b"plain",
    "unicode/ÿ-日本語-😀.txt": "unicode ✓".encode(),
    "ünï/日本.txt": "texte é".encode(),
    "spaces in name/a b.txt": b"spaces",
    "url specials/?&=+#%;,@!$'().txt": b"specials",
    "/leading/slash.txt": b"leading slash",
    "leading/slash.txt": b"no leading slash: same name after mapping",
    "dots/../escape.txt": b"dotdot",
    "dots/./here.txt": b"dot",
    "double//slash.txt": b"double slash",
    "back\\slash.txt": b"backslash",
    "control\x07char.txt": b"control",
    "folder/": b"",
    "folder/inside.txt": b"inside folder",
}


def seed_bucket(s3, bucket: str, objects: Mapping[str, bytes], **put_kwargs: Any) -> dict[str, str]:
    """put_object every key -> bytes (in dict order), with extra put_object
    arguments (ContentType=..., Metadata=..., StorageClass=...). Returns key -> ETag."""
    return {
        key: s3.put_object(Bucket=bucket, Key=key, Body=body, **put_kwargs)["ETag"] for key, body in objects.items()
    }


def list_multipart_uploads(s3, bucket: str) -> list[dict]:
    """All in-progress multipart uploads of the bucket (the 'Uploads' entries)."""
    uploads: list[dict] = []
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        uploads.extend(page.get("Uploads", []))
    return uploads


def all_keys(s3, bucket: str, prefix: str = "") -> list[str]:
    """Every key in the bucket, in S3 listing order (UTF-8 binary order)."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def download(s3, bucket: str, key: str, path: str | os.PathLike) -> str | os.PathLike:
    """Stream one object to a local file (never whole in memory); returns path."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with open(path, "wb") as f:
        shutil.copyfileobj(body, f, 1 << 20)
    return path


def empty_and_delete_bucket(s3, bucket: str) -> None:
    """Abort uploads, delete every object version and the bucket itself.

    Current objects go first, listed by ListObjectsV2, and a key with a control character
    is deleted on its own: moto cannot write such a key into ListObjectVersions' XML (a 500,
    retried for ~8 s, and the bucket was left behind) nor read it from DeleteObjects' body."""
    for upload in list_multipart_uploads(s3, bucket):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [o["Key"] for o in page.get("Contents", [])]
        for key in [k for k in keys if any(ord(c) < 32 for c in k)]:
            s3.delete_object(Bucket=bucket, Key=key)
        plain = [{"Key": k} for k in keys if all(ord(c) >= 32 for c in k)]
        if plain:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": plain, "Quiet": True})
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):  # versioned buckets
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for i in range(0, len(doomed), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[i : i + 1000], "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


def state_items(dynamodb, table: str) -> list[str]:
    """Sort keys of every item left in a state table (a finished run leaves `result`)."""
    items = dynamodb.scan(TableName=table).get("Items", [])
    return sorted(item["sk"]["S"] for item in items)
