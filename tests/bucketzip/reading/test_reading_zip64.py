"""An archive with more than 65,535 entries (zip64 end records), made by bucketzip in many
steps: ls, extract, restore, verify straight from S3."""

from __future__ import annotations

import json

import pytest

from bucketzip.reading import Archive, extract, list_archive
from support.many_entries import COUNT, name
from support.seed import all_keys


@pytest.fixture
def zip64_archive(many_entries_archive):
    assert many_entries_archive.steps > 2
    return many_entries_archive.bucket, many_entries_archive.key, many_entries_archive.size


def test_ls_zip64(zip64_archive, s3):
    bucket, key, size = zip64_archive
    archive = Archive.open_s3(s3, bucket, key)
    assert archive.info.zip64 and archive.info.entries == COUNT
    listed = list(list_archive(archive))
    assert len(listed) == COUNT
    assert listed[-1].entry.name == name(COUNT - 1) and listed[-1].key == name(COUNT - 1)  # from the manifest
    stats = archive.reader.stats()
    assert stats.requests <= 2
    assert stats.bytes_read < archive.info.cd_size + 128 * 1024 < size


def test_cli_ls_json_zip64(zip64_archive, run_cli):
    bucket, key, _ = zip64_archive
    code, out, err = run_cli("ls", "--json", f"s3://{bucket}/{key}", "d69/*")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in records] == [name(i) for i in range(69_000, COUNT)]


def test_extract_one_entry_from_zip64(zip64_archive, s3, tmp_path):
    bucket, key, size = zip64_archive
    archive = Archive.open_s3(s3, bucket, key)
    before = archive.reader.stats()
    entries = archive.entries()
    after_directory = archive.reader.stats()
    result = extract(archive, tmp_path, [name(66_666)])
    assert result.ok and result.files == 1
    assert (tmp_path / name(66_666)).read_bytes() == b"66666\n"
    stats = archive.reader.stats()
    assert len(entries) == COUNT
    assert after_directory.requests - before.requests <= 1
    assert stats.requests - after_directory.requests == 1  # the manifest GET is not counted here
    assert stats.bytes_read - after_directory.bytes_read < 64 * 1024


def test_restore_some_of_zip64(zip64_archive, s3, bucket_factory, run_cli):
    bucket, key, _ = zip64_archive
    dest = bucket_factory("zip64-restore")
    code, out, err = run_cli("restore", f"s3://{bucket}/{key}", f"s3://{dest}", "d65/f6553?.txt")
    assert code == 0, err
    assert sorted(all_keys(s3, dest)) == [f"d65/f6553{i}.txt" for i in range(10)]
    assert s3.get_object(Bucket=dest, Key="d65/f65535.txt")["Body"].read() == b"65535\n"


def test_verify_zip64(zip64_archive, run_cli):
    bucket, key, _ = zip64_archive
    code, out, err = run_cli("verify", f"s3://{bucket}/{key}")
    assert code == 0, out + err
    assert out.splitlines()[-1].startswith(f"OK s3://{bucket}/{key}: {COUNT} entries")
