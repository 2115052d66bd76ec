"""copy.copy_part, the one UploadPartCopy call, against the moto server: the exact byte
range lands in the part; the part's CRC-32 comes back when S3 reports it; a source that
changed (ETag or pinned version) is SourceChanged; other faults are translated naming
both objects."""

from __future__ import annotations

import os
import zlib

import pytest
from botocore.exceptions import EndpointConnectionError

from bucketzip.checksums import crc32_header
from bucketzip.copy import CopiedPart, SourceChanged, copy_part, parse_crc32
from bucketzip.errors import RetryableError
from support.archiving import fetch
from support.copy_fidelity import s3_copy_fidelity
from support.seed import HOSTILE_KEYS

MiB = 1024 * 1024


def _upload(s3, bucket: str, key: str) -> str:
    return s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")[
        "UploadId"
    ]


@pytest.mark.parametrize("reported", [False, True])
def test_copy_part_places_the_range(s3, bucket_factory, reported):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    data = os.urandom(11 * MiB)
    etag = s3.put_object(Bucket=source, Key="big.bin", Body=data)["ETag"]
    upload = _upload(s3, dest, "out")
    ranges = [(3, 5 * MiB + 2), (5 * MiB + 3, len(data) - 1)]
    parts = []
    with s3_copy_fidelity(crc=reported):
        for number, (first, last) in enumerate(ranges, 1):
            copied = copy_part(
                s3, bucket=dest, key="out", upload_id=upload, number=number, source_bucket=source,
                source_key="big.bin", first=first, last=last, if_match=etag,
            )  # fmt: skip
            assert isinstance(copied, CopiedPart)
            assert copied.crc == (zlib.crc32(data[first : last + 1]) if reported else None)
            parts.append({"PartNumber": number, "ETag": copied.etag})
    s3.complete_multipart_upload(Bucket=dest, Key="out", UploadId=upload, MultipartUpload={"Parts": parts})
    assert fetch(s3, dest, "out") == data[3:]


def test_a_changed_source_is_refused(s3, bucket_factory):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    old = s3.put_object(Bucket=source, Key="o", Body=os.urandom(6 * MiB))["ETag"]
    s3.put_object(Bucket=source, Key="o", Body=os.urandom(6 * MiB))
    upload = _upload(s3, dest, "out")
    with s3_copy_fidelity(), pytest.raises(SourceChanged) as caught:
        copy_part(
            s3, bucket=dest, key="out", upload_id=upload, number=1, source_bucket=source, source_key="o",
            first=0, last=MiB, if_match=old,
        )  # fmt: skip
    assert f"s3://{source}/o" in str(caught.value) and f"s3://{dest}/out" in str(caught.value)
    assert caught.value.reason == "changed after listing (ETag differs)"


def test_a_deleted_pinned_version_is_refused(s3, bucket_factory):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    s3.put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Enabled"})
    version = s3.put_object(Bucket=source, Key="o", Body=os.urandom(MiB))["VersionId"]
    s3.delete_object(Bucket=source, Key="o", VersionId=version)
    upload = _upload(s3, dest, "out")
    with pytest.raises(SourceChanged, match="deleted after listing"):
        copy_part(
            s3, bucket=dest, key="out", upload_id=upload, number=1, source_bucket=source, source_key="o",
            first=0, last=10, version_id=version,
        )  # fmt: skip


class Unreachable:
    def upload_part_copy(self, **kwargs):
        raise EndpointConnectionError(endpoint_url="https://injected/upload_part_copy")


def test_a_transient_fault_is_retryable_and_names_both_objects():
    with pytest.raises(RetryableError) as caught:
        copy_part(
            Unreachable(), bucket="d", key="out.zip", upload_id="u", number=7, source_bucket="s",  # type: ignore[arg-type]
            source_key="big.bin", first=0, last=99,
        )  # fmt: skip
    message = str(caught.value)
    assert "s3://s/big.bin" in message and "part 7 of s3://d/out.zip" in message and "bytes 0-99" in message


def test_parse_crc32_takes_full_object_values_only():
    assert parse_crc32(crc32_header(0x1234ABCD)) == 0x1234ABCD
    assert parse_crc32(crc32_header(0x1234ABCD) + "-3") is None  # composite
    assert parse_crc32(None) is None and parse_crc32("!!") is None


@pytest.mark.parametrize("key", [k for k in HOSTILE_KEYS if HOSTILE_KEYS[k]])
def test_hostile_source_keys_are_copied(s3, bucket_factory, key):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    body = HOSTILE_KEYS[key] * 3
    etag = s3.put_object(Bucket=source, Key=key, Body=body)["ETag"]
    upload = _upload(s3, dest, "out")
    with s3_copy_fidelity():
        copied = copy_part(
            s3, bucket=dest, key="out", upload_id=upload, number=1, source_bucket=source, source_key=key,
            first=1, last=len(body) - 1, if_match=etag,
        )  # fmt: skip
    assert copied.crc == zlib.crc32(body[1:])
    s3.complete_multipart_upload(
        Bucket=dest, Key="out", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": copied.etag}]}
    )
    assert fetch(s3, dest, "out") == body[1:]
