"""Zip format corners (issue 9, req. 6), each through the reader matrix."""

from __future__ import annotations

import os
import struct

import pytest

from bucketzip.records import STORED, EntryMeta, central_record, end_records
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, fetch, manifest
from support.readers import ALL_READERS, check_archive
from support.seed import seed_bucket

KIB = 1024


def test_folder_marker_with_multi_chunk_content_is_not_a_stored_descriptor_entry(s3, bucket_factory, tmp_path):
    # Auto mode once wrote this as method 0 with a data descriptor, which
    # java.util.zip.ZipInputStream refuses ("only DEFLATED entries can have EXT descriptor").
    source, dest = bucket_factory("src"), bucket_factory("dst")
    body = os.urandom(200 * KIB)  # incompressible, > 3 chunks of 64 KiB
    objects = {"photos/": body, "docs/a.txt": b"a" * 100, "empty/": b""}
    seed_bucket(s3, source, objects)
    archive(
        s3,
        LocalStateStore(tmp_path / "state"),
        source_bucket=source,
        dest_bucket=dest,
        dest_key="folders.zip",
        chunk_size="64KiB",
    )
    lines = {line["key"]: line for line in manifest(s3, dest, "folders.zip") if line["type"] == "entry"}
    assert lines["photos/"]["name"] == "photos" and lines["photos/"]["method"] == "deflate"
    path = tmp_path / "folders.zip"
    path.write_bytes(fetch(s3, dest, "folders.zip"))
    check_archive(path, {"photos": body, "docs/a.txt": b"a" * 100}, readers=ALL_READERS, directories={"empty/"})


# -- the zip64 line ------------------------------------------------------------------------
# bucketzip follows zipfile and zipstream-ng: the central directory and the end records
# switch to zip64 past ZIP64_LIMIT = 2**31 - 1 (readers that read the 32-bit fields as
# signed stay correct); local headers and data descriptors only when the entry's own
# sizes may pass 4 GiB (what java.util.zip.ZipInputStream expects).
LINE = 2**31 - 1


def _meta(offset: int, size: int = 10) -> EntryMeta:
    return EntryMeta("a.bin", 1.7e9, STORED, offset, False, False, crc=1, compressed_size=size, size=size)


def test_central_record_zip64_starts_past_2_gib_minus_1():
    below, above = central_record(_meta(LINE)), central_record(_meta(LINE + 1))
    assert struct.unpack_from("<L", below, 42)[0] == LINE and b"\x01\x00\x08\x00" not in below
    assert struct.unpack_from("<L", above, 42)[0] == 0xFFFFFFFF
    assert struct.pack("<HHQ", 1, 8, LINE + 1) in above  # zip64 extra field with the offset
    assert struct.unpack_from("<H", below, 6)[0] < 45
    assert struct.unpack_from("<H", above, 6)[0] == 45  # version needed: 4.5 (zip64)


def test_end_records_zip64_starts_past_2_gib_minus_1():
    assert not end_records(3, LINE, 100).startswith(b"PK\x06\x06")
    assert end_records(3, LINE + 1, 100).startswith(b"PK\x06\x06")
    assert not end_records(3, 100, LINE).startswith(b"PK\x06\x06")
    assert end_records(3, 100, LINE + 1).startswith(b"PK\x06\x06")
    assert not end_records(65_534, 100, 100).startswith(b"PK\x06\x06")
    assert end_records(65_535, 100, 100).startswith(b"PK\x06\x06")


# -- objects just under 4 GiB ----------------------------------------------------------
# 4,292,000,000 bytes once got a zip64 local header (deflate might pass 4 GiB), and Java's
# ZipInputStream, which picks the descriptor layout by the actual sizes, failed with
# "invalid entry size". Such objects are now stored with CRC and sizes in the local header
# (a read-only CRC pass first). Shown here at a scaled-down 32-bit limit (3 MiB), so the
# mechanics (CRC pass, multi-chunk known-size entry, resume inside it) run in seconds.


def test_objects_straddling_the_32_bit_limit_get_known_sizes_and_no_descriptor(
    s3, bucket_factory, tmp_path, monkeypatch
):
    import bucketzip.records as records

    assert records.straddles_zip32(4_292_000_000) and not records.straddles_zip32(4_290_000_000)
    assert records.straddles_zip32(2**32 - 1) and not records.straddles_zip32(2**32)
    limit = 3 * 1024 * KIB
    monkeypatch.setattr(records, "ZIP32_MAX", limit)
    size = limit - 1000
    assert records.straddles_zip32(size) and not records.straddles_zip32(limit + 1)
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = {"a.log": b"compressible line\n" * (size // 18) + b"x" * (size % 18), "b.txt": b"small"}
    assert len(objects["a.log"]) == size
    seed_bucket(s3, source, objects)
    _, steps = archive(
        s3,
        LocalStateStore(tmp_path / "state"),
        source_bucket=source,
        dest_bucket=dest,
        dest_key="edge.zip",
        compression="deflate",
        chunk_size="1MiB",
        step_bytes=1024 * KIB,
    )
    assert steps >= 3  # the entry spans steps
    lines = {line["key"]: line for line in manifest(s3, dest, "edge.zip") if line["type"] == "entry"}
    assert lines["a.log"]["method"] == "store" and lines["b.txt"]["method"] == "deflate"
    data = fetch(s3, dest, "edge.zip")
    flags, method, crc, csize, usize = struct.unpack_from("<HHxxxxLLL", data, 6)
    assert flags & 0x08 == 0 and method == 0 and (csize, usize) == (size, size)
    assert crc == __import__("zlib").crc32(objects["a.log"])
    path = tmp_path / "edge.zip"
    path.write_bytes(data)
    check_archive(path, objects, readers=ALL_READERS)


# -- the same corners at their real sizes (minutes: `-m big`) -----------------------------

_EDGE = 4_292_000_000  # listed just under 4 GiB: once a zip64 header Java refused
_CUT_AFTER = 64 * 1024 * KIB


class _ChangingSource:
    """cut.bin (over 4 GiB) changes after its first 64 MiB are read: later GETs of it
    are refused (PreconditionFailed), so its entry is cut short, far under 4 GiB."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def get_object(self, **kwargs):
        first = int(kwargs.get("Range", "bytes=0-").split("=")[1].split("-")[0])
        if kwargs["Key"] == "cut.bin" and first >= _CUT_AFTER:
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "PreconditionFailed"}, "ResponseMetadata": {"HTTPStatusCode": 412}}, "GetObject"
            )
        return self._inner.get_object(**kwargs)


@pytest.mark.big
@pytest.mark.timeout(3600)
def test_just_under_4_gib_and_a_truncated_zip64_entry_at_real_size(tmp_path):
    """Java's ZipInputStream failed both with "invalid entry size": a zip64 local header on
    an object listed at 4,292,000,000 bytes, and a zip64 entry truncated under 4 GiB."""
    import zipfile

    from support.disk_bucket import DiskBucket
    from support.readers import check_listing
    from support.synthetic import SyntheticSource, generate

    class Nowhere:
        def __getattr__(self, name):
            raise AssertionError(f"unexpected S3 call {name}")

    sizes = {"cut.bin": 4 * 1024**3 + 100, "edge.bin": _EDGE, "tail.txt": 1000}
    source = _ChangingSource(SyntheticSource(Nowhere(), "synthetic", sizes))
    s3 = DiskBucket(source, "dest", tmp_path / "dest")
    result, _ = archive(
        s3,
        LocalStateStore(tmp_path / "state"),
        source_bucket="synthetic",
        dest_bucket="dest",
        dest_key="edges.zip",
        part_size="64MiB",
        concurrency=2,
    )
    assert result.entries == 3 and result.skipped == 1
    path = s3.path("edges.zip")
    with zipfile.ZipFile(path) as zf:
        edge, cut = zf.getinfo("edge.bin"), zf.getinfo("cut.bin")
        assert edge.compress_type == zipfile.ZIP_STORED and edge.flag_bits & 0x08 == 0
        assert edge.file_size == edge.compress_size == _EDGE
        assert cut.file_size == _CUT_AFTER and cut.compress_size > 0xFFFFFFFF  # padded past 4 GiB
        assert zf.read("tail.txt") == generate(0, 1000)
    # every reader lists it; the streaming one (Java ZipInputStream) reads every entry
    check_listing(
        path,
        {"cut.bin": _CUT_AFTER, "edge.bin": _EDGE, "tail.txt": 1000},
        {"tail.txt": generate(0, 1000)},
        test=False,
    )


def test_an_object_needing_a_crc_pass_waits_for_a_step_with_time_for_it(s3, bucket_factory, tmp_path, monkeypatch):
    import bucketzip.records as records
    import bucketzip.writer as writer
    from bucketzip import engine
    from bucketzip.config import ArchiveRequest
    from bucketzip.deadline import Deadline

    monkeypatch.setattr(records, "ZIP32_MAX", 3 * 1024 * KIB)
    monkeypatch.setattr(writer, "CRC_PASS_BYTES_PER_SECOND", 1.0)  # never time enough in a used step
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = {"0.txt": b"first", "a.bin": os.urandom(3 * 1024 * KIB - 1000), "b.txt": b"last"}
    seed_bucket(s3, source, objects)
    store = LocalStateStore(tmp_path / "state")
    request = ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key="w.zip", chunk_size="1MiB")
    progress = engine.start_run(s3, store, request)
    progress = engine.run_step(s3, store, progress.run_id, Deadline(600))
    assert progress.objects == 1 and not progress.done  # stopped before a.bin, not inside it
    progress = engine.run_step(s3, store, progress.run_id, Deadline(600))
    assert progress.objects == 3 and progress.done  # a fresh step takes it
