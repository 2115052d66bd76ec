"""The range reader (cache, counters, retries, changed objects) and CLI odds and ends."""

from __future__ import annotations

import os

import pytest
from reading_helpers import raw_zip, upload_zip, zip_with_python, zip_with_zipstream

from bucketzip.cli.read import printable
from bucketzip.reading import (
    Archive,
    ArchiveChanged,
    BytesRangeReader,
    CorruptArchive,
    FileRangeReader,
    ReadFailed,
    S3RangeReader,
)
from bucketzip.reading.rangereader import _MemoryRaw


def test_read_at_cache_and_counters():
    data = os.urandom(300_000)
    reader = BytesRangeReader(data, block_size=64 * 1024)
    assert reader.read_at(1000, 10) == data[1000:1010]
    assert reader.stats().requests == 1 and reader.stats().bytes_read == 64 * 1024
    assert reader.read_at(2000, 100) == data[2000:2100]  # same block: cached
    assert reader.requests == 1
    with pytest.raises(CorruptArchive, match="outside the archive"):
        reader.read_at(299_990, 20)
    with reader.stream(10, 250_000) as stream:
        got = b"".join(iter(lambda: stream.read(70_000), b""))
    assert got == data[10:250_000]
    assert reader.requests == 2


class FlakyReader(BytesRangeReader):
    """Connections that die after `cut` bytes, `failures` times."""

    def __init__(self, data, cut, failures):
        super().__init__(data)
        self.cut, self.failures = cut, failures

    def _open_raw(self, start, end):
        self._count(1)
        reader = self

        class Raw(_MemoryRaw):
            served = 0

            def read(self, n):
                if reader.failures and self.served >= reader.cut:
                    reader.failures -= 1
                    raise ConnectionResetError("connection reset by peer")
                out = super().read(min(n, 4096))
                self.served += len(out)
                return out

        return Raw(self, start, end)


def test_streams_resume_after_dropped_connections():
    data = zip_with_zipstream({"big.bin": os.urandom(200_000), "x": b"x"})
    reader = FlakyReader(data, cut=50_000, failures=2)
    archive = Archive(reader)
    entry = archive.entries()[0]
    assert len(b"".join(archive.open_entry(entry))) == 200_000
    reader = FlakyReader(data, cut=0, failures=100)  # no progress at all: give up
    archive = Archive(reader)
    with pytest.raises(ReadFailed, match="kept failing"):
        b"".join(archive.open_entry(archive.entries()[0]))


def test_file_reader(tmp_path):
    path = tmp_path / "f.zip"
    path.write_bytes(zip_with_python({"a": b"alpha"}))
    archive = Archive(FileRangeReader(path))
    assert b"".join(archive.open_entry(archive.entries()[0])) == b"alpha"


def test_archive_replaced_while_reading(s3, bucket_factory):
    bucket = bucket_factory("changed")
    upload_zip(s3, bucket, "a.zip", zip_with_python({"a": os.urandom(100_000)}))
    archive = Archive.open_s3(s3, bucket, "a.zip", tail=1024)
    entry = archive.entries()[0]
    upload_zip(s3, bucket, "a.zip", zip_with_python({"a": os.urandom(100_000)}))
    with pytest.raises(ArchiveChanged, match="changed while it was being read"):
        b"".join(archive.open_entry(entry))


def test_small_and_empty_objects(s3, bucket_factory):
    bucket = bucket_factory("small")
    data = zip_with_python({"a": b"a"})
    upload_zip(s3, bucket, "tiny.zip", data)
    reader = S3RangeReader.open(s3, bucket, "tiny.zip")
    assert reader.size == len(data) and reader.requests == 1 and reader.bytes_read == len(data)
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert S3RangeReader.open(s3, bucket, "empty").size == 0


def test_hostile_names_do_not_reach_the_terminal(s3, bucket_factory, run_cli):
    bucket = bucket_factory("names")
    upload_zip(s3, bucket, "n.zip", raw_zip([(b"evil\x1b[2J\rname\n.txt", b"x", {})]))
    code, out, _ = run_cli("ls", f"s3://{bucket}/n.zip")
    assert code == 0
    assert "\x1b" not in out and "\r" not in out and "evil\\x1b[2J\\x0dname\\x0a.txt" in out
    assert printable("ok/ünï.txt") == "ok/ünï.txt"


def test_ls_with_corrupt_manifest_still_lists(s3, bucket_factory, run_cli):
    bucket = bucket_factory("names")
    upload_zip(s3, bucket, "m.zip", zip_with_python({"a": b"a"}), ["garbage"])
    code, out, err = run_cli("ls", f"s3://{bucket}/m.zip")
    assert code == 0 and "warning" in err and "listing without source keys" in err
    assert out.splitlines()[1].endswith(" a")
