"""Pure pieces of the engine: names, part sizes, sizes, key templates, deflate pieces, records."""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bucketzip.claims import base_name, name_changes
from bucketzip.compress import FINAL_BLOCK, deflate_piece, is_incompressible, looks_compressed
from bucketzip.config import ArchiveRequest
from bucketzip.errors import InputError
from bucketzip.keys import render_key
from bucketzip.limits import MAX_PARTS
from bucketzip.names import entry_name, with_suffix
from bucketzip.parts import capacity, part_size
from bucketzip.records import (
    DEFLATED,
    STORED,
    EntryMeta,
    central_record,
    data_descriptor,
    end_records,
    local_header,
    needs_zip64,
)
from bucketzip.sizes import parse_size

MIB, GIB, TIB = 1 << 20, 1 << 30, 1 << 40


@pytest.mark.parametrize(
    "key,name",
    [
        ("a/b.txt", "a/b.txt"),
        ("/a/b", "a/b"),
        ("a//b", "a/b"),
        ("a/./b", "a/b"),
        ("a/../b", "a/__/b"),
        ("..", "__"),
        ("a\\b", "a_b"),
        ("a\x00\x1fb\x7f", "a__b_"),
        ("dir/", "dir/"),
        ("/", "_/"),
        ("", "_"),
        ("é/ü.txt", "é/ü.txt"),
    ],
)
def test_entry_names_are_safe(key, name):
    assert entry_name(key) == name


def test_long_segments_are_shortened_stably_with_their_extension():
    long_name = "x" * 300 + ".jpeg"
    first, second = entry_name("d/" + long_name), entry_name("d/" + long_name)
    assert first == second and first.endswith(".jpeg") and len(first.split("/")[1].encode()) <= 255
    assert entry_name("d/" + "y" * 300 + ".jpeg") != first
    assert len(entry_name("é" * 200).encode()) <= 255  # cut on a character boundary


# Keys made of the characters entry_name cares about, and segments long enough to be cut.
_KEY_PARTS = st.one_of(
    st.sampled_from(["/", ".", "..", "\\", "\x00", "\x1f", "\x7f", "a", "é", "日", "😀", "~", "\xa0", "\x85"]),
    st.sampled_from(["x" * 63, "é" * 64, "😀" * 63, "😀" * 64, "y" * 256]),
)


@given(st.lists(_KEY_PARTS, max_size=12).map("".join), st.sampled_from([0, 1]))
def test_the_planners_fast_check_agrees_with_the_names_built(key, size):
    """name_changes runs on every listed key of a parallel run: it must say exactly
    whether base_name changes the key (a miss would skip a claim the writer makes)."""
    assert name_changes(key, size) == (base_name(key, size) != key)


def test_suffixes_keep_extensions_and_folders():
    assert with_suffix("a/b.txt", 2) == "a/b~2.txt"
    assert with_suffix("a/dir/", 1) == "a/dir~1/"
    assert with_suffix("noext", 3) == "noext~3"


def test_part_policy_fits_s3_limits():
    for start in (5 * MIB, 16 * MIB, 5 * GIB):
        sizes = [part_size(n, start) for n in range(1, MAX_PARTS + 1)]
        assert all(5 * MIB <= s <= 5 * GIB for s in sizes)
        assert sizes == sorted(sizes)
        assert capacity(start) > 5 * TIB
    assert part_size(1000, 8 * MIB) == 8 * MIB and part_size(1001, 8 * MIB) == 16 * MIB
    with pytest.raises(ValueError):
        part_size(10_001, 8 * MIB)


@pytest.mark.parametrize(
    "text,value", [("8MiB", 8 * MIB), ("64MB", 64_000_000), ("1048576", MIB), ("1.5GiB", 3 * GIB // 2), (123, 123)]
)
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("bad", ["lots", "-1", "5 parsecs", ""])
def test_bad_sizes_name_the_field(bad):
    with pytest.raises(InputError, match="part_size"):
        parse_size(bad, "part_size")


def test_request_validation_names_the_field():
    good = dict(source_bucket="src", dest_bucket="dst", dest_key="a.zip")
    for field, value, needle in [
        ("source_bucket", "Bad_Bucket!", "source_bucket"),
        ("dest_key", "dir/", "dest_key"),
        ("compression", "zstd", "compression"),
        ("level", 12, "level"),
        ("concurrency", 0, "concurrency"),
        ("include", ["[x"], "include"),
        ("dest_key", ".bucketzip-staging/x.zip", "reserved"),
    ]:
        with pytest.raises(InputError, match=needle):
            ArchiveRequest.create(**{**good, field: value})
    with pytest.raises(InputError, match="unknown field"):
        ArchiveRequest.create(**good, colour="red")


def test_key_templates():
    now = datetime(2026, 11, 25, 3, 4, 5, tzinfo=UTC)
    assert (
        render_key("backups/{source_bucket}/{date:%Y-%m-%d}.zip", source_bucket="photos", now=now)
        == "backups/photos/2026-11-25.zip"
    )
    assert render_key("/{source_prefix}/x.zip", source_bucket="b", source_prefix="logs/", now=now) == "logs/x.zip"
    with pytest.raises(InputError, match=r"unknown placeholder\(s\) \{bucket\}"):
        render_key("{bucket}.zip", source_bucket="b")
    with pytest.raises(InputError, match="not an object key"):
        render_key("{source_prefix}", source_bucket="b", source_prefix="")


def test_sync_flushed_pieces_concatenate_into_one_deflate_stream():
    data = b"".join(b"row %d\n" % i for i in range(100_000)) + os.urandom(200_000)
    for level in (0, 1, 6, 9):
        pieces = [deflate_piece(data[i : i + 65536], level) for i in range(0, len(data), 65536)]
        inflater = zlib.decompressobj(-15)
        assert inflater.decompress(b"".join(pieces) + FINAL_BLOCK) == data and inflater.eof


def test_compressed_content_detection():
    assert looks_compressed("a/b.JPG", None) and looks_compressed("x", "video/mp4")
    assert not looks_compressed("notes.txt", "text/plain")
    assert is_incompressible(1000, 990) and not is_incompressible(1000, 500)


def test_zip64_only_when_an_entry_may_pass_4_gib():
    assert not needs_zip64(4 * GIB - 100 * MIB) and needs_zip64(4 * GIB)


def test_records_make_a_zip_python_reads():
    body = b"hello " * 1000
    piece = deflate_piece(body, 1) + FINAL_BLOCK
    meta = EntryMeta(
        "dir/é.txt",
        1_700_000_000,
        DEFLATED,
        0,
        uses_descriptor=False,
        zip64=False,
        crc=zlib.crc32(body),
        compressed_size=len(piece),
        size=len(body),
    )
    stored = EntryMeta("s.bin", 1_700_000_000, STORED, 0, uses_descriptor=True, zip64=False)
    first = local_header(meta) + piece
    stored.header_offset = len(first)
    second = local_header(stored) + body
    stored.crc, stored.size, stored.compressed_size = zlib.crc32(body), len(body), len(body)
    archive = first + second + data_descriptor(stored)
    directory = central_record(meta) + central_record(stored)
    archive += directory + end_records(2, len(archive), len(directory))
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None
        assert zf.read("dir/é.txt") == body and zf.read("s.bin") == body
        info = zf.getinfo("dir/é.txt")
        assert info.flag_bits & 0x800 and info.date_time[:3] == (2023, 11, 14)


def test_deflate_backends_one_per_level_and_stored_blocks_without_zlib(monkeypatch):
    """Issue 9 req. 7: level 0 writes stored blocks itself (zlib level 0 copied every byte
    through a compressor); levels >= 4 use zlib-ng (same ratio, 1.5-3x faster than zlib)."""
    from bucketzip import compress

    assert [compress.backend_name(n) for n in (0, 1, 3, 4, 9)] == [
        "stored-blocks",
        "isal",
        "isal",
        "zlib-ng",
        "zlib-ng",
    ]
    data = os.urandom(200_000)

    def no_zlib(*args, **kwargs):
        raise AssertionError("level 0 went through zlib")

    monkeypatch.setattr(zlib, "compressobj", no_zlib)
    piece = deflate_piece(data, 0)
    assert len(piece) == len(data) + 5 * 4  # four stored blocks of <= 65,535 bytes
    assert zlib.decompress(piece + FINAL_BLOCK, -15) == data
    assert deflate_piece(b"", 0) + FINAL_BLOCK == FINAL_BLOCK
    monkeypatch.undo()
    text = b"".join(b"row %d\n" % i for i in range(50_000))
    assert deflate_piece(text, 6) == deflate_piece(text, 6)  # deterministic: retries re-make the same bytes


def test_fragments_round_trip_and_read_the_previous_json_layout():
    import base64
    import json as json_module

    from bucketzip.state import Fragment

    fragment = Fragment(central=b"PK\x01\x02" * 3, manifest=b'{"a":1}\n', skipped=b"", parts=[[1, '"e"', 5, 7]])
    assert Fragment.from_bytes(fragment.to_bytes()) == fragment
    old = {name: base64.b64encode(getattr(fragment, name)).decode() for name in ("central", "manifest", "skipped")}
    blob = zlib.compress(json_module.dumps({**old, "parts": fragment.parts}).encode())
    assert Fragment.from_bytes(blob) == fragment  # a run committed before the binary layout
