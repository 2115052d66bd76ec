"""`restore` against the moto server: original keys, headers and metadata back,
multipart for large entries, dry run, refusal to overwrite, nothing half-written."""

from __future__ import annotations

import os
import zlib
from datetime import UTC, datetime

import pytest
import zipstream
from reading_helpers import (
    have,
    manifest_lines_for,
    raw_zip,
    upload_zip,
    zip_with_7z,
    zip_with_infozip,
    zip_with_python,
    zip_with_zipstream,
)

from support.seed import all_keys, list_multipart_uploads

MiB = 1024 * 1024

SOURCE = {
    "docs/report.pdf": (
        b"%PDF-1.4 report" * 300,
        {
            "ContentType": "application/pdf",
            "Metadata": {"owner": "alice", "project": "x"},
            "CacheControl": "max-age=3600",
            "ContentDisposition": 'attachment; filename="r.pdf"',
            "ContentLanguage": "en",
            "Expires": datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        },
    ),
    "data/table.csv.gz": (os.urandom(5000), {"ContentType": "text/csv", "ContentEncoding": "gzip"}),
    "folder/": (b"", {}),
    "weird//double/../dots\\back": (b"odd key", {"ContentType": "text/plain"}),
    "ünï/日本.txt": ("texte é".encode(), {"ContentType": "text/plain; charset=utf-8", "Metadata": {"note": "unicode"}}),
}
NAMES = {"weird//double/../dots\\back": "weird/double/__/dots_back"}  # bucketzip's safe names


def archive_source(s3, source_bucket: str, archive_bucket: str, key: str) -> bytes:
    """Seed the source, build a zip of it (names like bucketzip's), upload with a manifest
    that records every object's headers as bucketzip would."""
    for k, (body, params) in SOURCE.items():
        s3.put_object(Bucket=source_bucket, Key=k, Body=body, **params)
    files = {NAMES.get(k, k): body for k, (body, _) in SOURCE.items()}
    data = zip_with_zipstream(files)
    headers, keys = {}, {}
    for k in SOURCE:
        head = s3.head_object(Bucket=source_bucket, Key=k)
        name = NAMES.get(k, k)
        keys[name] = k
        headers[name] = {
            "etag": head["ETag"],
            "content_type": head.get("ContentType"),
            "content_encoding": head.get("ContentEncoding"),
            "content_language": head.get("ContentLanguage"),
            "content_disposition": head.get("ContentDisposition"),
            "cache_control": head.get("CacheControl"),
            "expires": head["Expires"].isoformat() if head.get("Expires") else None,
            "metadata": head.get("Metadata", {}),
        }
    upload_zip(
        s3,
        archive_bucket,
        key,
        data,
        manifest_lines_for(
            data, bucket=archive_bucket, key=key, source_bucket=source_bucket, keys=keys, headers=headers
        ),
    )
    return data


HEADERS = (
    "ContentType",
    "ContentEncoding",
    "ContentLanguage",
    "ContentDisposition",
    "CacheControl",
    "Metadata",
    "Expires",
)


def test_restore_round_trip_with_manifest(s3, bucket_factory, run_cli):
    source, archives, dest = bucket_factory("src"), bucket_factory("arc"), bucket_factory("dst")
    archive_source(s3, source, archives, "a.zip")
    code, out, err = run_cli("restore", f"s3://{archives}/a.zip", f"s3://{dest}/restored", "-j", "4")
    assert code == 0, err
    assert out.startswith(f"restored {len(SOURCE)} of {len(SOURCE)} objects")
    assert sorted(all_keys(s3, dest)) == sorted(f"restored/{k}" for k in SOURCE)
    for k, (body, _) in SOURCE.items():
        original = s3.get_object(Bucket=source, Key=k)
        restored = s3.get_object(Bucket=dest, Key=f"restored/{k}")
        assert restored["Body"].read() == body
        for header in HEADERS:
            assert restored.get(header) == original.get(header), (k, header)

    # into the bucket root, under the original keys exactly
    code, _, err = run_cli("restore", f"s3://{archives}/a.zip", f"s3://{dest}", "docs/*")
    assert code == 0, err
    got = s3.get_object(Bucket=dest, Key="docs/report.pdf")
    assert got["Metadata"] == {"owner": "alice", "project": "x"} and got["ContentType"] == "application/pdf"


def test_dry_run_writes_nothing(s3, bucket_factory, run_cli):
    source, archives, dest = bucket_factory("src"), bucket_factory("arc"), bucket_factory("dst")
    archive_source(s3, source, archives, "a.zip")
    code, out, err = run_cli("restore", "--dry-run", f"s3://{archives}/a.zip", f"s3://{dest}/p/")
    assert code == 0, err
    lines = out.splitlines()
    assert f"would write s3://{dest}/p/weird//double/../dots\\back (7 bytes)" in lines
    assert lines[-1].startswith(f"{len(SOURCE)} objects") and "nothing written" in lines[-1]
    assert all_keys(s3, dest) == []


def test_refuses_to_overwrite(s3, bucket_factory, run_cli):
    source, archives = bucket_factory("src"), bucket_factory("arc")
    archive_source(s3, source, archives, "a.zip")
    s3.put_object(Bucket=source, Key="docs/report.pdf", Body=b"changed since")
    code, out, err = run_cli("restore", f"s3://{archives}/a.zip", f"s3://{source}")
    assert code == 1
    assert "docs/report.pdf exists (use --overwrite)" in err
    assert s3.get_object(Bucket=source, Key="docs/report.pdf")["Body"].read() == b"changed since"
    code, _, err = run_cli("restore", "--overwrite", f"s3://{archives}/a.zip", f"s3://{source}")
    assert code == 0, err
    assert s3.get_object(Bucket=source, Key="docs/report.pdf")["Body"].read() == SOURCE["docs/report.pdf"][0]


def test_large_entries_use_multipart(s3, bucket_factory, run_cli):
    archives, dest = bucket_factory("arc"), bucket_factory("dst")
    big = os.urandom(12 * MiB + 123)
    files = {"big.bin": big, "small.txt": b"small"}
    upload_zip(s3, archives, "big.zip", zip_with_zipstream(files, zipstream.ZIP_STORED))
    code, out, err = run_cli("restore", f"s3://{archives}/big.zip", f"s3://{dest}", "--part-size", "5MiB", "-q")
    assert code == 0, err
    got = s3.get_object(Bucket=dest, Key="big.bin")
    assert got["Body"].read() == big
    assert got["ETag"].endswith('-3"')  # 5 + 5 + 2 MiB parts
    assert got["ContentType"] == "application/octet-stream"  # guessed: no manifest
    assert s3.get_object(Bucket=dest, Key="small.txt")["ContentType"] == "text/plain"


def test_corrupt_entries_leave_no_object_and_no_upload(s3, bucket_factory, run_cli):
    archives, dest = bucket_factory("arc"), bucket_factory("dst")
    big = os.urandom(11 * MiB)
    small = b"small data" * 10
    data = raw_zip(
        [
            (b"big.bin", big, {"crc": zlib.crc32(big) ^ 1}),
            (b"small.bin", small, {"crc": zlib.crc32(small) ^ 1}),
            (b"fine.txt", b"fine", {}),
        ]
    )
    upload_zip(s3, archives, "bad.zip", data)
    code, out, err = run_cli("restore", f"s3://{archives}/bad.zip", f"s3://{dest}", "--part-size", "5MiB")
    assert code == 1
    assert "big.bin: CRC-32" in err and "small.bin: CRC-32" in err
    assert all_keys(s3, dest) == ["fine.txt"]
    assert list_multipart_uploads(s3, dest) == []
    assert "restored 1 of 3 objects" in out and "2 failed" in out


def test_restore_without_manifest_uses_entry_names(s3, bucket_factory, run_cli):
    archives, dest = bucket_factory("arc"), bucket_factory("dst")
    upload_zip(s3, archives, "plain.zip", zip_with_zipstream({"a/b.json": b"{}", "c/": b""}))
    code, _, err = run_cli("restore", f"s3://{archives}/plain.zip", f"s3://{dest}/x")
    assert code == 0, err
    assert "no manifest" in err
    assert sorted(all_keys(s3, dest)) == ["x/a/b.json", "x/c/"]
    assert s3.get_object(Bucket=dest, Key="x/a/b.json")["ContentType"] == "application/json"


def test_restore_usage_errors(s3, bucket_factory, run_cli):
    archives = bucket_factory("arc")
    upload_zip(s3, archives, "plain.zip", zip_with_zipstream({"a": b"a"}))
    assert run_cli("restore", f"s3://{archives}/plain.zip", "dest-without-scheme")[0] == 2
    assert run_cli("restore", f"s3://{archives}/plain.zip", f"s3://{archives}", "--part-size", "lots")[0] == 2
    code, _, err = run_cli("restore", f"s3://{archives}/plain.zip", "s3://no-such-bucket-zz9")
    assert code == 1 and "no-such-bucket-zz9" in err


@pytest.mark.parametrize(
    "maker",
    [
        pytest.param(zip_with_python, id="python-zipfile"),
        pytest.param(zip_with_infozip, id="info-zip", marks=pytest.mark.skipif(not have("zip"), reason="no zip")),
        pytest.param(zip_with_7z, id="7-zip", marks=pytest.mark.skipif(not have("7z"), reason="no 7z")),
    ],
)
def test_restore_foreign_archives(maker, s3, bucket_factory, run_cli):
    archives, dest = bucket_factory("arc"), bucket_factory("dst")
    files = {"top.txt": b"top" * 1000, "sub/inner.bin": os.urandom(70_000), "sub/ünï.txt": b"u"}
    upload_zip(s3, archives, "f.zip", maker(files))
    code, _, err = run_cli("restore", f"s3://{archives}/f.zip", f"s3://{dest}/r/")
    assert code == 0, err
    for name, body in files.items():
        assert s3.get_object(Bucket=dest, Key=f"r/{name}")["Body"].read() == body
