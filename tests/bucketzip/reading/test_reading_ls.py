"""`ls` (and one-entry extract) against the moto server: few ranged GETs, little data."""

from __future__ import annotations

import json
import os
import uuid

import boto3
import pytest
import zipstream
from reading_helpers import (
    have,
    manifest_lines_for,
    upload_zip,
    zip_with_7z,
    zip_with_infozip,
    zip_with_python,
    zip_with_zipstream,
)

from bucketzip.reading import Archive, extract, list_archive
from support.seed import empty_and_delete_bucket

ENTRIES = 1000
ENTRY_SIZE = 50 * 1024  # 1000 x 50 KiB of random (stored) data: a ~50 MB archive


@pytest.fixture(scope="module")
def big_archive(s3):
    """(bucket, key, size, files) of a 50 MB, 1000-entry archive with a manifest."""
    bucket = f"reading-ls-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    files = {f"photos/{i // 100:02d}/img-{i:04d}.jpg": os.urandom(ENTRY_SIZE) for i in range(ENTRIES)}
    data = zip_with_zipstream(files, zipstream.ZIP_STORED)
    key = "backups/photos.zip"
    keys = {name: f"original/{name}" for name in files}
    upload_zip(s3, bucket, key, data, manifest_lines_for(data, bucket=bucket, key=key, keys=keys))
    yield bucket, key, len(data), files
    empty_and_delete_bucket(s3, bucket)


class GetCounter:
    """Counts GetObject requests per key at the HTTP level (what S3 would bill)."""

    def __init__(self):
        self.client = boto3.client("s3")  # AWS_ENDPOINT_URL from the moto fixture
        self.gets: list[str] = []
        self.client.meta.events.register("before-call.s3.GetObject", self._count)

    def _count(self, params, **_):
        self.gets.append(params.get("url_path", ""))

    def archive_gets(self, key: str) -> int:
        return sum(1 for path in self.gets if path.endswith(key))


def test_ls_reads_only_the_directory(big_archive, moto_server):
    bucket, key, size, files = big_archive
    assert size > 50 * 1000 * 1000
    counter = GetCounter()
    archive = Archive.open_s3(counter.client, bucket, key)
    listed = list(list_archive(archive))
    assert [item.entry.name for item in listed] == list(files)
    assert listed[0].key == "original/" + listed[0].entry.name
    stats = archive.reader.stats()
    assert stats.requests <= 2, stats
    assert stats.bytes_read < 1024 * 1024, stats
    assert counter.archive_gets(key) == stats.requests


def test_single_entry_extract_reads_little(big_archive, tmp_path):
    bucket, key, size, files = big_archive
    counter = GetCounter()
    archive = Archive.open_s3(counter.client, bucket, key)
    name = "photos/05/img-0555.jpg"
    before = archive.reader.stats()
    result = extract(archive, tmp_path, [name])
    assert result.ok and result.files == 1
    assert (tmp_path / name).read_bytes() == files[name]
    stats = archive.reader.stats()
    # directory (tail + central directory) then one GET for the entry
    assert stats.requests <= before.requests + 2 + 1, stats
    assert stats.bytes_read < ENTRY_SIZE + 1024 * 1024, stats
    assert stats.bytes_read < size / 20


def test_cli_ls_text_and_json(big_archive, run_cli):
    bucket, key, _, files = big_archive
    code, out, err = run_cli("ls", f"s3://{bucket}/{key}", "photos/01/*")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["Size", "Compressed", "Method", "CRC-32", "Modified", "Name"]
    assert "source key" in lines[0]
    assert len(lines) == 1 + 100 + 1
    first = lines[1].split()
    assert first[0] == str(ENTRY_SIZE) and first[2] == "store"
    assert first[-3:] == ["photos/01/img-0100.jpg", "<-", "original/photos/01/img-0100.jpg"]
    assert lines[-1].startswith("100 entries, 5120000 bytes")

    code, out, _ = run_cli("ls", "--json", f"s3://{bucket}/{key}", "original/photos/09/img-099?.jpg")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in records] == [f"photos/09/img-{i:04d}.jpg" for i in range(990, 1000)]
    r = records[0]
    assert set(r) >= {"name", "size", "compressed_size", "method", "crc32", "modified", "key", "offset"}
    assert r["key"] == "original/photos/09/img-0990.jpg" and r["size"] == ENTRY_SIZE

    code, out, _ = run_cli("ls", "--no-manifest", f"s3://{bucket}/{key}", "photos/00/img-0000.jpg")
    assert code == 0 and "<-" not in out and "source key" not in out


def test_cli_ls_errors(s3, bucket_factory, run_cli):
    bucket = bucket_factory("ls-errors")
    code, _, err = run_cli("ls", f"s3://{bucket}/missing.zip")
    assert code == 1 and err.startswith("bucketzip: error: ") and "no such object" in err
    code, _, err = run_cli("ls", f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x.zip")
    assert code == 1 and "no such bucket" in err
    code, _, err = run_cli("ls", "/local/file.zip")
    assert code == 2 and "s3://" in err
    s3.put_object(Bucket=bucket, Key="text.zip", Body=b"not a zip at all\n" * 100)
    code, _, err = run_cli("ls", f"s3://{bucket}/text.zip")
    assert code == 1 and "not a zip archive" in err
    s3.put_object(Bucket=bucket, Key="empty.zip", Body=b"")
    code, _, err = run_cli("ls", f"s3://{bucket}/empty.zip")
    assert code == 1 and "not a zip archive" in err


FOREIGN = {
    "readme.txt": b"read me\n" * 100,
    "src/main.py": b"print('hi')\n",
    "src/data.bin": os.urandom(2000),
    "ünï/ß.txt": b"unicode",
}

WRITERS = [
    pytest.param(zip_with_python, id="python-zipfile"),
    pytest.param(zip_with_zipstream, id="zipstream-ng"),
    pytest.param(zip_with_infozip, id="info-zip", marks=pytest.mark.skipif(not have("zip"), reason="no zip")),
    pytest.param(zip_with_7z, id="7-zip", marks=pytest.mark.skipif(not have("7z"), reason="no 7z")),
]


@pytest.mark.parametrize("maker", WRITERS)
def test_ls_foreign_archives(maker, s3, bucket_factory, run_cli):
    bucket = bucket_factory("ls-foreign")
    upload_zip(s3, bucket, "f.zip", maker(FOREIGN))
    code, out, err = run_cli("ls", "--json", f"s3://{bucket}/f.zip")
    assert code == 0, err
    records = {r["name"]: r for r in map(json.loads, out.splitlines())}
    for name, data in FOREIGN.items():
        assert records[name]["size"] == len(data)
        assert "key" not in records[name]


def test_through_bucketzip_main(big_archive, moto_server, capsys):
    cli = pytest.importorskip("bucketzip.cli")
    bucket, key, _, _ = big_archive
    assert cli.main(["--endpoint-url", moto_server, "ls", "--json", f"s3://{bucket}/{key}", "photos/00/*"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 100
    assert cli.main(["ls", f"s3://{bucket}/nothing.zip"]) == 1
    assert capsys.readouterr().err.startswith("bucketzip: error: ")
