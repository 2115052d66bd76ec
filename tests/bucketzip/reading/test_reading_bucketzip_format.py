"""Archives in bucketzip's own format: records from bucketzip.records (zip64 local extras
with zero sizes + 8-byte descriptors, sync-flushed deflate pieces), and a full archive made
by the engine -> ls / verify --against / restore round trip."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
import zlib

import pytest

from bucketzip.reading import Archive, BytesRangeReader, extract, list_archive, plan_restore, restore, verify
from bucketzip.store_local import LocalStateStore
from support.archiving import archive as archive_with_engine
from support.seed import all_keys


def bucketzip_style(files: dict[str, bytes], *, zip64: bool) -> bytes:
    """Entries as the engine writes them: local header with descriptor flag (zip64 extra
    with zero sizes when zip64), deflate in independently compressed sync-flushed pieces
    closed by an empty final block, a PK\\x07\\x08 descriptor, no padding."""
    from bucketzip.compress import FINAL_BLOCK, deflate_piece
    from bucketzip.records import (
        DEFLATED,
        STORED,
        EntryMeta,
        central_record,
        data_descriptor,
        end_records,
        local_header,
    )

    out = bytearray()
    central = bytearray()
    for name, data in files.items():
        is_dir = name.endswith("/")
        method = STORED if is_dir or len(data) < 10 else DEFLATED
        meta = EntryMeta(
            name=name,
            mtime=1_700_000_000,
            method=method,
            header_offset=len(out),
            uses_descriptor=not is_dir,
            zip64=zip64 and not is_dir,
        )
        out += local_header(meta)
        if method == DEFLATED:
            pieces = [deflate_piece(data[i : i + 1000], 1) for i in range(0, len(data), 1000)] + [FINAL_BLOCK]
            payload = b"".join(pieces)
        else:
            payload = data
        out += payload
        meta.crc, meta.compressed_size, meta.size = zlib.crc32(data), len(payload), len(data)
        if meta.uses_descriptor:
            out += data_descriptor(meta)
        central += central_record(meta)
    cd_offset = len(out)
    out += central
    out += end_records(len(files), cd_offset, len(central))
    return bytes(out)


FILES = {
    "dir/": b"",
    "dir/text.txt": b"line of text\n" * 700,
    "random.bin": os.urandom(5000),
    "tiny": b"t",
    "ünï/名前.txt": "données".encode(),
}


@pytest.mark.parametrize("zip64", [False, True], ids=["plain", "zip64-local-extras"])
def test_reads_bucketzip_records(zip64, tmp_path):
    data = bucketzip_style(FILES, zip64=zip64)
    with zipfile.ZipFile(io.BytesIO(data)) as z:  # the reference reader agrees
        assert {n: z.read(n) for n in z.namelist()} == FILES
    report, entries = verify(BytesRangeReader(data))
    assert report.ok, report.problems
    assert report.checked == len(FILES)
    archive = Archive(BytesRangeReader(data))
    assert [e.name for e in archive.entries()] == list(FILES)
    assert all(e.mtime is not None and e.mtime.tzinfo is not None for e in archive.entries())  # 0x5455: UTC
    assert extract(archive, tmp_path).ok
    assert (tmp_path / "dir/text.txt").read_bytes() == FILES["dir/text.txt"]


def test_descriptor_width_lie_is_caught():
    data = bytearray(bucketzip_style({"a.txt": b"alpha" * 100, "b": b"beta"}, zip64=True))
    # change the first entry's zip64 descriptor (8-byte sizes) compressed size
    at = data.index(b"PK\x07\x08")
    data[at + 8] ^= 0x01
    report, _ = verify(BytesRangeReader(bytes(data)))
    assert any("data descriptor compressed size" in p.message for p in report.problems), report.problems


def test_engine_archive_round_trip(s3, bucket_factory, run_cli):
    source, dest, back = bucket_factory("src"), bucket_factory("dst"), bucket_factory("back")
    objects = {
        "a/one.txt": b"hello " * 10_000,
        "a/two.bin": os.urandom(300_000),
        "folder/": b"",
        "weird//../x\\y": b"odd key",
        "ünï/ß.txt": "é".encode(),
        "zeros": bytes(2_000_000),
    }
    for key, body in objects.items():
        s3.put_object(
            Bucket=source, Key=key, Body=body, ContentType="text/x-test", Metadata={"m": "1"}, CacheControl="no-cache"
        )
    with tempfile.TemporaryDirectory() as state_dir:
        archive_with_engine(
            s3,
            LocalStateStore(state_dir),
            source_bucket=source,
            dest_bucket=dest,
            dest_key="arch.zip",
            step_bytes=100_000,
            chunk_size=65_536,
        )

    code, out, err = run_cli("verify", f"s3://{dest}/arch.zip", "--against", f"s3://{source}")
    assert code == 0, out + err
    archive = Archive.open_s3(s3, dest, "arch.zip")
    keys = {item.entry.name: item.key for item in list_archive(archive)}
    assert sorted(keys.values()) == sorted(objects)
    result = restore(s3, archive, plan_restore(archive), back)
    assert result.ok, result.failures
    assert sorted(all_keys(s3, back)) == sorted(objects)
    for key, body in objects.items():
        got = s3.get_object(Bucket=back, Key=key)
        assert got["Body"].read() == body
        assert (got["ContentType"], got["Metadata"], got["CacheControl"]) == ("text/x-test", {"m": "1"}, "no-cache")
