"""The disk bucket (support.disk_bucket) answers like the emulator where the engine can tell:
each test runs against both, so the > 4 GiB tests that use it test the engine, not the fake."""

from __future__ import annotations

import base64
import zlib

import pytest
from botocore.exceptions import ClientError

from bucketzip.checksums import multipart_etag
from support.copy_fidelity import s3_copy_fidelity
from support.disk_bucket import DiskBucket
from support.seed import list_multipart_uploads

MIB = 1024 * 1024
PART = b"a" * (5 * MIB)


@pytest.fixture(params=["emulator", "disk"])
def dest(request, s3, bucket_factory, tmp_path):
    """(client, bucket): the emulator's bucket, or the same bucket name served from disk."""
    bucket = bucket_factory("disk-contract")
    if request.param == "emulator":
        return s3, bucket
    return DiskBucket(s3, bucket, tmp_path / "disk"), bucket


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def test_multipart_round_trip(dest):
    client, bucket = dest
    upload = client.create_multipart_upload(
        Bucket=bucket, Key="a.zip", ContentType="application/zip", Metadata={"run": "r1"}
    )["UploadId"]
    assert [u["UploadId"] for u in list_multipart_uploads(client, bucket)] == [upload]
    e1 = client.upload_part(Bucket=bucket, Key="a.zip", UploadId=upload, PartNumber=1, Body=PART)["ETag"]
    e2 = client.upload_part(Bucket=bucket, Key="a.zip", UploadId=upload, PartNumber=2, Body=b"tail")["ETag"]
    assert e1 != e2 and e1.startswith('"')
    listed = client.list_parts(Bucket=bucket, Key="a.zip", UploadId=upload)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == [(1, e1, len(PART)), (2, e2, 4)]
    done = client.complete_multipart_upload(
        Bucket=bucket,
        Key="a.zip",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert done["ETag"].endswith('-2"')
    head = client.head_object(Bucket=bucket, Key="a.zip")
    assert (head["ContentLength"], head["ETag"]) == (len(PART) + 4, done["ETag"])
    assert (head["ContentType"], head["Metadata"]) == ("application/zip", {"run": "r1"})
    assert done["ETag"] == multipart_etag([e1, e2])  # S3's rule, which the engine's proof relies on
    assert client.get_object(Bucket=bucket, Key="a.zip", Range="bytes=5242878-")["Body"].read() == b"aatail"
    assert client.get_object(Bucket=bucket, Key="a.zip", Range="bytes=-3")["Body"].read() == b"ail"
    assert list_multipart_uploads(client, bucket) == []
    with pytest.raises(ClientError) as exc:  # the upload is gone
        client.list_parts(Bucket=bucket, Key="a.zip", UploadId=upload)
    assert _code(exc) == "NoSuchUpload"


def test_complete_refuses_what_s3_refuses(dest):
    client, bucket = dest
    upload = client.create_multipart_upload(Bucket=bucket, Key="b.zip")["UploadId"]
    small = client.upload_part(Bucket=bucket, Key="b.zip", UploadId=upload, PartNumber=1, Body=b"x")["ETag"]
    last = client.upload_part(Bucket=bucket, Key="b.zip", UploadId=upload, PartNumber=2, Body=b"y")["ETag"]

    def complete(parts: list[tuple[int, str]], **extra) -> str:
        with pytest.raises(ClientError) as exc:
            client.complete_multipart_upload(
                Bucket=bucket,
                Key="b.zip",
                UploadId=upload,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
                **extra,
            )
        return _code(exc)

    assert complete([(1, small), (2, last)]) == "EntityTooSmall"
    assert complete([(1, last)]) == "InvalidPart"  # another part's ETag
    client.put_object(Bucket=bucket, Key="b.zip", Body=b"taken")
    assert complete([(2, last)], IfNoneMatch="*") == "PreconditionFailed"
    client.abort_multipart_upload(Bucket=bucket, Key="b.zip", UploadId=upload)
    with pytest.raises(ClientError) as exc:
        client.list_parts(Bucket=bucket, Key="b.zip", UploadId=upload)
    assert _code(exc) == "NoSuchUpload"


def test_objects_listing_and_deletes(dest):
    client, bucket = dest
    for key in ["s/1", "s/2", "s/3", "t"]:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=bucket, Key="t", Body=b"again", IfNoneMatch="*")
    assert _code(exc) == "PreconditionFailed"
    pages = list(client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="s/", MaxKeys=2))
    assert [[o["Key"] for o in p.get("Contents", [])] for p in pages] == [["s/1", "s/2"], ["s/3"]]
    assert client.list_objects_v2(Bucket=bucket, Prefix="t", MaxKeys=1)["Contents"][0]["Size"] == 1
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="nothing")
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "s/1"}, {"Key": "s/2"}], "Quiet": True})
    client.delete_object(Bucket=bucket, Key="t")
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["s/3"]
    for call in (client.get_object, client.head_object):
        with pytest.raises(ClientError) as exc:
            call(Bucket=bucket, Key="t")
        assert _code(exc) in ("NoSuchKey", "404")


def test_full_object_crc32_checksum(dest):
    client, bucket = dest
    upload = client.create_multipart_upload(
        Bucket=bucket, Key="c.zip", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    parts = [
        client.upload_part(
            Bucket=bucket, Key="c.zip", UploadId=upload, PartNumber=n, Body=body, ChecksumAlgorithm="CRC32"
        )
        for n, body in [(1, PART), (2, b"tail")]
    ]
    assert parts[1]["ChecksumCRC32"] == base64.b64encode(zlib.crc32(b"tail").to_bytes(4, "big")).decode()
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="c.zip",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": p["ETag"]} for n, p in enumerate(parts, 1)]},
    )
    want = base64.b64encode(zlib.crc32(PART + b"tail").to_bytes(4, "big")).decode()
    head = client.head_object(Bucket=bucket, Key="c.zip", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (want, "FULL_OBJECT")


def test_other_buckets_go_to_the_real_client(s3, bucket_factory, tmp_path):
    other = bucket_factory("other")
    disk = DiskBucket(s3, "not-" + other, tmp_path / "disk")
    disk.put_object(Bucket=other, Key="k", Body=b"v")
    assert s3.get_object(Bucket=other, Key="k")["Body"].read() == b"v"
    with pytest.raises(NotImplementedError, match="copy_object"):
        disk.copy_object(Bucket="not-" + other, Key="k", CopySource="x/y")


def test_upload_part_copy_of_ranges_of_an_object(dest):
    client, bucket = dest
    source = bytes(range(256)) * (24 * 1024)  # 6 MiB
    etag = client.put_object(Bucket=bucket, Key="src", Body=source)["ETag"]
    upload = client.create_multipart_upload(
        Bucket=bucket, Key="c.zip", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    kwargs = dict(Bucket=bucket, Key="c.zip", UploadId=upload, CopySource={"Bucket": bucket, "Key": "src"})
    first = client.upload_part_copy(PartNumber=1, CopySourceRange=f"bytes=0-{5 * MIB - 1}", **kwargs)
    with s3_copy_fidelity():  # the refusal and the part CRC S3 documents (moto lacks them)
        with pytest.raises(ClientError) as refused:
            client.upload_part_copy(PartNumber=2, CopySourceRange="bytes=1-2", CopySourceIfMatch='"0"', **kwargs)
        assert _code(refused) in ("PreconditionFailed", "412")
        second = client.upload_part_copy(
            PartNumber=2, CopySourceRange=f"bytes=7-{6 * MIB - 1}", CopySourceIfMatch=etag, **kwargs
        )
    assert (
        second["CopyPartResult"]["ChecksumCRC32"]
        == base64.b64encode(zlib.crc32(source[7:]).to_bytes(4, "big")).decode()
    )
    client.delete_object(Bucket=bucket, Key="src")  # a copied part does not depend on its source
    parts = [{"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]} for n, r in ((1, first), (2, second))]
    client.complete_multipart_upload(Bucket=bucket, Key="c.zip", UploadId=upload, MultipartUpload={"Parts": parts})
    body = client.get_object(Bucket=bucket, Key="c.zip")["Body"].read()
    assert body == source[: 5 * MIB] + source[7:]
