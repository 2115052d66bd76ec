"""Streaming decode of one entry: local header, then its data, decompressed in
bounded chunks, with CRC and size checked.

Memory stays bounded whatever an archive declares: compressed input is read in
`IN_CHUNK` pieces, each decompressor call is capped at `OUT_CHUNK` bytes of output
(`max_length`), and decoding stops with `EntryCorrupt` as soon as the output passes
the declared size (zip bombs), a deflate stream ends early or late, or the CRC differs.
Consumers must treat data yielded before an exception as garbage (extract writes to a
temporary file; restore aborts its upload).
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from ..errors import CorruptArchive, EntryCorrupt, UnsupportedArchive
from ..private_apis import lzma1_filter
from .directory import (
    FLAG_DESCRIPTOR,
    FLAG_ENCRYPTED,
    FLAG_STRONG,
    LOCAL,
    SIG_DESCRIPTOR,
    SIG_LOCAL,
    U32,
    ArchiveInfo,
    Entry,
    apply_zip64,
    check_entry,
)
from .rangereader import ByteStream, RangeReader

KiB, MiB = 1024, 1024 * 1024
IN_CHUNK = 1 * MiB
OUT_CHUNK = 1 * MiB
SUPPORTED_METHODS = (0, 8, 12, 14)
# Slack read beyond the expected local header so one GET usually covers header + data.
HEADER_SLACK = 128


@dataclass
class LocalHeader:
    offset: int
    version_needed: int
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    raw_name: bytes
    extra: bytes
    zip64: bool

    @property
    def length(self) -> int:
        return LOCAL.size + len(self.raw_name) + len(self.extra)

    @property
    def data_offset(self) -> int:
        return self.offset + self.length


def read_local_header(stream: ByteStream, label: str) -> LocalHeader:
    offset = stream.pos
    fixed = stream.read_exact(LOCAL.size, "local header")
    (sig, version, _, flags, method, _time, _date, crc, csize, size, name_len, extra_len) = LOCAL.unpack(fixed)
    if sig != SIG_LOCAL:
        raise CorruptArchive(f"{label}: no local header at offset {offset}")
    rest = stream.read_exact(name_len + extra_len, "local header")
    raw_name, extra = rest[:name_len], rest[name_len:]
    size, csize, _, _, zip64 = apply_zip64(extra, size, csize, None, None, label)
    return LocalHeader(offset, version, flags, method, crc, csize, size, raw_name, extra, zip64)


def local_mismatches(local: LocalHeader, entry: Entry) -> list[str]:
    """Where the local header disagrees with the central directory record."""
    problems = []
    if local.raw_name != entry.raw_name:
        problems.append(
            f"local header name {local.raw_name.decode('utf-8', 'replace')!r} differs from the central directory's"
        )
    if local.method != entry.method:
        problems.append(f"local header method {local.method} differs from the central directory's {entry.method}")
    if (local.flags ^ entry.flags) & (FLAG_ENCRYPTED | FLAG_STRONG | FLAG_DESCRIPTOR):
        problems.append(f"local header flags {local.flags:#06x} differ from the central directory's {entry.flags:#06x}")
    if local.flags & FLAG_DESCRIPTOR:
        for what, value, expected in (
            ("CRC", local.crc, entry.crc),
            ("compressed size", local.compressed_size, entry.compressed_size),
            ("size", local.size, entry.size),
        ):
            if value not in (0, expected):
                problems.append(f"local header {what} {value} differs from the central directory's {expected}")
    else:
        for what, value, expected in (
            ("CRC", local.crc, entry.crc),
            ("compressed size", local.compressed_size, entry.compressed_size),
            ("size", local.size, entry.size),
        ):
            if value != expected:
                problems.append(f"local header {what} {value} differs from the central directory's {expected}")
    return problems


def check_supported(entry: Entry, label: str) -> None:
    if entry.encrypted:
        raise UnsupportedArchive(f"{label}: entry is encrypted (not supported)")
    if entry.method not in SUPPORTED_METHODS:
        raise UnsupportedArchive(f"{label}: compression method {entry.method_name} is not supported")


# ----------------------------------------------------------------------------------
class _Stored:
    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def finish(self) -> Iterator[bytes]:
        return iter(())


class _Inflate:
    def __init__(self) -> None:
        self._d = zlib.decompressobj(-15)

    def feed(self, data: bytes) -> Iterator[bytes]:
        d = self._d
        while True:
            if d.eof:
                if data or d.unused_data:
                    raise EntryCorrupt("data continues after the end of the deflate stream")
                return
            out = d.decompress(data, OUT_CHUNK)
            if out:
                yield out
            data = d.unconsumed_tail
            if not data and len(out) < OUT_CHUNK:
                return

    def finish(self) -> Iterator[bytes]:
        yield from self.feed(b"")
        if not self._d.eof:
            raise EntryCorrupt("the deflate stream is truncated (no final block)")
        if self._d.unused_data:
            raise EntryCorrupt("data continues after the end of the deflate stream")


class _Bounded:
    """bz2 / lzma decompressors (needs_input protocol)."""

    def __init__(self, make) -> None:
        self._d = make()

    def feed(self, data: bytes) -> Iterator[bytes]:
        d = self._d
        if d.eof:
            if data:
                raise EntryCorrupt("data continues after the end of the compressed stream")
            return
        out = d.decompress(data, OUT_CHUNK)
        if out:
            yield out
        while not d.eof and not d.needs_input:
            out = d.decompress(b"", OUT_CHUNK)
            if out:
                yield out
            elif not d.needs_input:  # pragma: no cover - defensive: no progress
                break
        if d.eof and d.unused_data:
            raise EntryCorrupt("data continues after the end of the compressed stream")

    def finish(self) -> Iterator[bytes]:
        if not self._d.eof:
            raise EntryCorrupt("the compressed stream is truncated")
        return iter(())


class _Lzma(_Bounded):
    """Zip's LZMA: 2-byte version, 2-byte properties size, properties, raw LZMA1 data."""

    def __init__(self) -> None:
        self._d = None
        self._head = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._d is None:
            self._head += data
            if len(self._head) < 4:
                return
            props_size = struct.unpack_from("<H", self._head, 2)[0]
            if len(self._head) < 4 + props_size:
                if len(self._head) > 4 + 0xFFFF:  # pragma: no cover
                    raise EntryCorrupt("bad LZMA header")
                return
            try:
                filters = [lzma1_filter(self._head[4 : 4 + props_size])]
                self._d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
            except (lzma.LZMAError, ValueError, MemoryError) as exc:
                raise EntryCorrupt(f"bad LZMA properties: {exc}") from None
            data, self._head = self._head[4 + props_size :], b""
        yield from super().feed(data)

    def finish(self) -> Iterator[bytes]:
        if self._d is None:
            raise EntryCorrupt("the LZMA stream is truncated")
        return iter(())


def _decoder(entry: Entry):
    if entry.method == 0:
        return _Stored()
    if entry.method == 8:
        return _Inflate()
    if entry.method == 12:
        return _Bounded(bz2.BZ2Decompressor)
    if entry.method == 14:
        return _Lzma()
    raise UnsupportedArchive(f"compression method {entry.method_name} is not supported")


_CODEC_ERRORS = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError, MemoryError)


def decode(stream: ByteStream, entry: Entry, label: str) -> Iterator[bytes]:
    """Decompress exactly `entry.compressed_size` bytes from the stream; check size and CRC.

    Yields decompressed chunks of at most OUT_CHUNK (IN_CHUNK for stored) bytes."""
    decoder = _decoder(entry)
    remaining = entry.compressed_size
    crc = 0
    total = 0
    declared = entry.size

    def account(out: bytes) -> bytes:
        nonlocal crc, total
        total += len(out)
        if total > declared:
            raise EntryCorrupt(
                f"{label}: data expands beyond its declared size of {declared} bytes (corrupt, or a zip bomb)"
            )
        crc = zlib.crc32(out, crc)
        return out

    try:
        while remaining:
            chunk = stream.read(min(IN_CHUNK, remaining))
            if not chunk:
                raise EntryCorrupt(f"{label}: compressed data is truncated")
            remaining -= len(chunk)
            for out in decoder.feed(chunk):
                yield account(out)
        for out in decoder.finish():
            yield account(out)
    except EntryCorrupt as exc:
        if str(exc).startswith(label):
            raise
        raise EntryCorrupt(f"{label}: {exc}") from None
    except _CODEC_ERRORS as exc:
        raise EntryCorrupt(f"{label}: compressed data is corrupt ({exc})") from None
    if total != declared:
        raise EntryCorrupt(f"{label}: size is {total} bytes, the directory says {declared}")
    if crc != entry.crc:
        raise EntryCorrupt(f"{label}: CRC-32 is {crc:08x}, the directory says {entry.crc:08x}")


def entry_label(reader: RangeReader, entry: Entry) -> str:
    return f"{reader.name}: {entry.name}"


def iter_entry_data(reader: RangeReader, info: ArchiveInfo, entry: Entry) -> Generator[bytes, None, None]:
    """Ranged GET (usually one) of the entry, decoded and checked, in bounded chunks.

    Raises CorruptArchive/EntryCorrupt/UnsupportedArchive; data yielded before an error
    must be discarded."""
    label = entry_label(reader, entry)
    problem = check_entry(entry, info)
    if problem:
        raise CorruptArchive(f"{label}: {problem}")
    check_supported(entry, label)
    limit = info.entries_end
    guess = LOCAL.size + len(entry.raw_name) + len(entry.extra) + HEADER_SLACK
    end = min(limit, entry.offset + guess + entry.compressed_size)
    stream = reader.stream(entry.offset, end, limit=limit)
    try:
        local = read_local_header(stream, label)
        mismatches = local_mismatches(local, entry)
        if mismatches:
            raise EntryCorrupt(f"{label}: {mismatches[0]}")
        data_end = local.data_offset + entry.compressed_size
        stream.extend_to(data_end)
        yield from decode(stream, entry, label)
    finally:
        stream.close()


def read_entry(reader: RangeReader, info: ArchiveInfo, entry: Entry, max_size: int = 64 * MiB) -> bytes:
    """A whole (small) entry in memory; refuses entries declared larger than max_size."""
    if entry.size > max_size:
        raise UnsupportedArchive(f"{entry_label(reader, entry)}: {entry.size} bytes is too large to hold in memory")
    return b"".join(iter_entry_data(reader, info, entry))


# ----------------------------------------------------------------------------------
def descriptor_layouts(local: LocalHeader, entry: Entry) -> list[tuple[bool, int]]:
    """Possible (has_signature, size_width) data-descriptor layouts, most likely first."""
    wide_first = local.zip64 or entry.compressed_size >= U32 or entry.size >= U32
    widths = (8, 4) if wide_first else (4, 8)
    return [(True, widths[0]), (False, widths[0]), (True, widths[1]), (False, widths[1])]


def descriptor_length(signature: bool, width: int) -> int:
    return (4 if signature else 0) + 4 + 2 * width


def parse_descriptor(data: bytes, signature: bool, width: int) -> tuple[int, int, int] | None:
    """(crc, compressed_size, size) from descriptor bytes, or None if they don't fit the layout."""
    if len(data) != descriptor_length(signature, width):
        return None
    pos = 0
    if signature:
        if data[:4] != SIG_DESCRIPTOR:
            return None
        pos = 4
    crc = struct.unpack_from("<L", data, pos)[0]
    fmt = "<QQ" if width == 8 else "<LL"
    csize, size = struct.unpack_from(fmt, data, pos + 4)
    return crc, csize, size
