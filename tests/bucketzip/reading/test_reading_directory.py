"""End records, zip64, central directory parsing and entry decoding, in memory."""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
import zipfile
import zlib

import pytest
import zipstream
from reading_helpers import bomb_zip, deflate_raw, raw_zip, zip_with_python, zip_with_zipstream

from bucketzip.reading import (
    Archive,
    BytesRangeReader,
    CorruptArchive,
    EntryCorrupt,
    UnsupportedArchive,
    read_directory,
)
from bucketzip.reading.entries import read_entry
from support.fresh_process import call_in_fresh_process

FILES = {
    "a.txt": b"hello world\n" * 500,
    "dir/": b"",
    "dir/b.bin": os.urandom(3000),
    "ünï/日本.txt": "é".encode() * 10,
    "empty": b"",
}


def contents(data: bytes) -> dict[str, bytes]:
    archive = Archive(BytesRangeReader(data))
    return {e.name: b"".join(archive.open_entry(e)) for e in archive.entries()}


@pytest.mark.parametrize("maker", [zip_with_python, zip_with_zipstream])
def test_reads_what_writers_wrote(maker):
    data = maker(FILES)
    got = contents(data)
    assert got == FILES
    info, entries = read_directory(BytesRangeReader(data))
    assert [e.name for e in entries] == list(FILES)
    assert entries[1].is_dir and not entries[0].is_dir
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for e, zi in zip(entries, z.infolist(), strict=True):
            assert (e.crc, e.size, e.compressed_size, e.offset) == (
                zi.CRC,
                zi.file_size,
                zi.compress_size,
                zi.header_offset,
            )


def test_extended_timestamp_is_utc():
    zs = zipstream.ZipStream()
    zs.add(b"x", "x")
    entry = read_directory(BytesRangeReader(bytes(zs)))[1][0]
    assert entry.mtime is not None  # zipstream-ng writes a DOS time; tz-aware only with 0x5455
    data = zip_with_python({"x": b"x"})
    assert read_directory(BytesRangeReader(data))[1][0].mtime.tzinfo is None


def test_archive_comment_and_prefix_data():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.txt", b"payload")
        z.comment = b"PK\x05\x06 looks like an end record" + b"c" * 300
    data = b"#!/bin/sh\necho self-extractor stub\n" * 10 + buf.getvalue()
    info, entries = read_directory(BytesRangeReader(data))
    assert info.base == 350
    assert contents(data) == {"x.txt": b"payload"}


def test_zip64_end_records_by_python_zipfile():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", allowZip64=True) as z:
        with z.open("big", "w", force_zip64=True) as f:
            f.write(b"abc")
    # force the zip64 end record too: rewrite the end records as zip64
    data = buf.getvalue()
    end = data.rfind(b"PK\x05\x06")
    _, _, _, n, total, cd_size, cd_offset, clen = struct.unpack_from("<4s4H2LH", data, end)
    z64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, total, cd_size, cd_offset)
    loc = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    data = data[:end] + z64 + loc + eocd
    info, entries = read_directory(BytesRangeReader(data))
    assert info.zip64 and info.zip64_end_offset == end
    assert contents(data) == {"big": b"abc"}
    with zipfile.ZipFile(io.BytesIO(data)) as z:  # the reference agrees it is valid
        assert z.read("big") == b"abc"


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_bzip2_and_lzma_entries(method):
    data = zip_with_python({"t.txt": b"text " * 10000, "e": b""}, method)
    assert contents(data) == {"t.txt": b"text " * 10000, "e": b""}


# ---------------------------------------------------------------------------------- hostile
def _cd_field(data: bytes, fmt: str, at: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def test_not_a_zip_and_tiny_files():
    for data in (b"", b"PK", b"hello world" * 100, os.urandom(70000)):
        with pytest.raises(CorruptArchive, match="not a zip"):
            read_directory(BytesRangeReader(data))


def test_central_directory_larger_than_the_file():
    data = zip_with_python({"a": b"a"})
    end = data.rfind(b"PK\x05\x06")
    bad = _cd_field(data, "<L", end + 12, 10**9)
    with pytest.raises(CorruptArchive, match="larger than the archive"):
        read_directory(BytesRangeReader(bad))


def test_offsets_past_the_end():
    data = zip_with_python({"a": b"a"})
    end = data.rfind(b"PK\x05\x06")
    with pytest.raises(CorruptArchive, match="past the end"):
        read_directory(BytesRangeReader(_cd_field(data, "<L", end + 16, 10**9)))
    # an entry's local header offset past the entries
    bad = raw_zip([(b"a", b"data", {"offset": 5000})])
    with pytest.raises(CorruptArchive, match="local header offset 5000"):
        read_directory(BytesRangeReader(bad))


def test_entry_count_lies():
    data = zip_with_python({"a": b"a", "b": b"b"})
    end = data.rfind(b"PK\x05\x06")
    bad = _cd_field(_cd_field(data, "<H", end + 8, 3), "<H", end + 10, 3)
    with pytest.raises(CorruptArchive, match="declares 3"):
        read_directory(BytesRangeReader(bad))
    bad = _cd_field(_cd_field(data, "<H", end + 8, 60000), "<H", end + 10, 60000)
    with pytest.raises(CorruptArchive, match="can hold at most"):
        read_directory(BytesRangeReader(bad))


def test_zip64_locator_pointing_nowhere():
    data = zip_with_python({"a": b"a"})
    end = data.rfind(b"PK\x05\x06")
    loc = struct.pack("<4sLQL", b"PK\x06\x07", 0, 2**40, 1)
    bad = data[:end] + loc + data[end:]
    with pytest.raises(CorruptArchive, match="locator points to offset 1099511627776"):
        read_directory(BytesRangeReader(bad))


def test_spanned_archives_are_refused():
    data = zip_with_python({"a": b"a"})
    end = data.rfind(b"PK\x05\x06")
    with pytest.raises(UnsupportedArchive, match="spanned"):
        read_directory(BytesRangeReader(_cd_field(data, "<H", end + 4, 1)))


def test_bad_central_signature():
    data = zip_with_python({"a": b"a"})
    cd = data.find(b"PK\x01\x02")
    bad = data[:cd] + b"XX\x01\x02" + data[cd + 4 :]
    with pytest.raises(CorruptArchive):
        read_directory(BytesRangeReader(bad))


def test_zip64_extra_missing():
    data = raw_zip([(b"a", b"abc", {"size": 0xFFFFFFFF})])
    with pytest.raises(CorruptArchive, match="no zip64 extra"):
        read_directory(BytesRangeReader(data))


def peak_reading_a_bomb() -> int:
    """50 MB of zeros that declares 1 KB: the peak of traced memory while it is refused."""
    data = bomb_zip(real_size=50 * 1024 * 1024, declared_size=1024)
    archive = Archive(BytesRangeReader(data))
    tracemalloc.start()
    try:
        with pytest.raises(EntryCorrupt, match="beyond its declared size of 1024"):
            for _ in archive.open_entry(archive.entries()[0]):
                pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bomb_declared_small_stops_early():
    """It stops right after 1 KB, and memory stays small (measured in a fresh process)."""
    assert call_in_fresh_process(__file__, "peak_reading_a_bomb") < 8 * 1024 * 1024


def test_bomb_declared_huge_is_impossible():
    data = bomb_zip(real_size=1024, declared_size=2**32 - 2)
    with pytest.raises(CorruptArchive, match="impossible"):
        read_directory(BytesRangeReader(data))


def peak_reading_a_large_entry() -> list[int]:
    """An honest 64 MiB entry: its decoded size, and the peak of traced memory."""
    data = bomb_zip(real_size=64 * 1024 * 1024)
    archive = Archive(BytesRangeReader(data))
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in archive.open_entry(archive.entries()[0]))
        return [total, tracemalloc.get_traced_memory()[1]]
    finally:
        tracemalloc.stop()


def test_honest_large_entry_decodes_in_bounded_memory():
    total, peak = call_in_fresh_process(__file__, "peak_reading_a_large_entry")
    assert total == 64 * 1024 * 1024
    assert peak < 8 * 1024 * 1024


def test_crc_size_and_stream_errors():
    good = b"some data" * 100
    cases = [
        ({"crc": zlib.crc32(good) ^ 1}, "CRC-32"),
        ({"size": len(good) + 5, "method": 8, "data": deflate_raw(good)}, "size is"),
        ({"method": 8, "data": deflate_raw(good)[:-3]}, "truncated|corrupt"),
        ({"method": 8, "data": deflate_raw(good) + b"junk"}, "after the end"),
        ({"method": 8, "data": b"\xff" * 40}, "corrupt"),
    ]
    for overrides, message in cases:
        data = raw_zip([(b"x", good, overrides)])
        archive = Archive(BytesRangeReader(data))
        with pytest.raises(EntryCorrupt, match=message):
            read_entry(archive.reader, archive.info, archive.entries()[0])


def test_encrypted_and_unknown_methods_are_unsupported():
    for overrides, message in (({"flags": 1}, "encrypted"), ({"method": 93}, "zstd")):
        data = raw_zip([(b"x", b"abc", overrides)])
        archive = Archive(BytesRangeReader(data))
        with pytest.raises(UnsupportedArchive, match=message):
            b"".join(archive.open_entry(archive.entries()[0]))


def test_local_header_must_agree():
    data = bytearray(raw_zip([(b"abc", b"data", {})]))
    data[30:33] = b"xyz"  # the local header's copy of the name
    archive = Archive(BytesRangeReader(bytes(data)))
    with pytest.raises(EntryCorrupt, match="name"):
        b"".join(archive.open_entry(archive.entries()[0]))
