"""End records, zip64 records and the central directory, parsed defensively.

Nothing here trusts a declared size or offset: every one is checked against the
archive's real size before anything is read or allocated, and the central directory
is parsed as a stream (bounded memory whatever its size). Failures are
`CorruptArchive` / `UnsupportedArchive` with a message naming the record and offset.

Why not the stdlib's zipfile, which reads zips over any seekable file object (a ranged-GET
one included)?
- `verify` needs what zipfile does not expose: where every record is (gaps, overlaps,
  junk between entries, prepended bytes, a shifted zip64 locator) and the local headers
  compared with the central directory. That is this module plus entries.py.
- `ls`, `extract` and `restore` share this parser rather than zipfile because zipfile
  reads the whole central directory into memory, then one ZipInfo per entry: measured at
  114 MiB for 200,000 entries (about 600 bytes an entry; 5 to 6 GiB for the 10 million an
  archive of a large bucket holds), where `iter_entries` streams them in 2 MiB. zipfile
  also ignores the extended timestamp (UTC mtime) and the Info-ZIP Unicode path field,
  and would still need the overlap (zip bomb) and path checks done here.
"""

from __future__ import annotations

import stat
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import overload

from ..errors import CorruptArchive, UnsupportedArchive
from .rangereader import TAIL_SIZE, RangeReader

SIG_LOCAL = b"PK\x03\x04"
SIG_CENTRAL = b"PK\x01\x02"
SIG_END = b"PK\x05\x06"
SIG_ZIP64_END = b"PK\x06\x06"
SIG_ZIP64_LOCATOR = b"PK\x06\x07"
SIG_DESCRIPTOR = b"PK\x07\x08"

END = struct.Struct("<4s4H2LH")  # 22 bytes
ZIP64_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes
ZIP64_END = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # 46 bytes
LOCAL = struct.Struct("<4s2B4HL2L2H")  # 30 bytes

MAX_COMMENT = 0xFFFF
U16, U32 = 0xFFFF, 0xFFFFFFFF
# Deflate cannot expand data more than ~1032:1; a declared size beyond this is a lie.
MAX_DEFLATE_RATIO = 1100

METHOD_NAMES = {
    0: "store",
    8: "deflate",
    9: "deflate64",
    12: "bzip2",
    14: "lzma",
    93: "zstd",
    95: "xz",
    98: "ppmd",
    99: "aes",
}
FLAG_ENCRYPTED, FLAG_DESCRIPTOR, FLAG_STRONG, FLAG_UTF8 = 0x1, 0x8, 0x40, 0x800


@dataclass(slots=True)
class Entry:
    """One central-directory record, decoded and range-checked."""

    index: int
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    offset: int  # absolute offset of the local header
    mtime: datetime | None  # aware (UTC) when the archive recorded UTC, else naive
    external_attr: int = 0
    create_system: int = 0
    version_needed: int = 0
    extra: bytes = b""
    comment: bytes = b""
    zip64: bool = False
    record_offset: int = 0  # where this central record sits

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get(self.method, f"method-{self.method}")

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") or (self.create_system == 3 and stat.S_ISDIR(self.unix_mode))

    @property
    def unix_mode(self) -> int:
        return (self.external_attr >> 16) & 0xFFFF if self.create_system == 3 else 0

    @property
    def is_symlink(self) -> bool:
        return self.create_system == 3 and stat.S_ISLNK(self.unix_mode)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & (FLAG_ENCRYPTED | FLAG_STRONG)) or self.method == 99

    @property
    def uses_descriptor(self) -> bool:
        return bool(self.flags & FLAG_DESCRIPTOR)

    @property
    def min_end(self) -> int:
        """Least offset where this entry's data can end (local extra and descriptor unknown)."""
        return self.offset + LOCAL.size + len(self.raw_name) + self.compressed_size


@dataclass
class ArchiveInfo:
    """Where things are, from the end records (all offsets absolute)."""

    size: int
    entries: int
    cd_offset: int
    cd_size: int
    end_offset: int  # the end of central directory record
    comment: bytes = b""
    zip64_end_offset: int | None = None
    zip64_locator_offset: int | None = None
    base: int = 0  # bytes prepended before the zip (offset shift)
    trailing: int = 0  # bytes after the end record and its comment
    notes: list[str] = field(default_factory=list)

    @property
    def zip64(self) -> bool:
        return self.zip64_end_offset is not None

    @property
    def cd_end(self) -> int:
        return self.cd_offset + self.cd_size

    @property
    def records_start(self) -> int:
        """Where the end records begin (the central directory should end right there)."""
        return self.zip64_end_offset if self.zip64_end_offset is not None else self.end_offset

    @property
    def entries_end(self) -> int:
        """Entry data must lie in [base, entries_end)."""
        return self.cd_offset


def _dos_time(date: int, time: int) -> datetime | None:
    try:
        return datetime(
            1980 + (date >> 9),
            (date >> 5) & 0xF,
            date & 0x1F,
            time >> 11,
            (time >> 5) & 0x3F,
            min((time & 0x1F) * 2, 59),
        )
    except ValueError:
        return None


def _utc(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iter_extra(extra: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, payload) pairs; a malformed tail (shorter than its header says) ends the walk,
    a few trailing pad bytes (zipalign) are ignored."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if pos + 4 + length > len(extra):
            return
        yield tag, extra[pos + 4 : pos + 4 + length]
        pos += 4 + length


def decode_name(raw: bytes, flags: int, extra: bytes = b"") -> str:
    if flags & FLAG_UTF8:
        return raw.decode("utf-8", errors="replace")
    for tag, payload in iter_extra(extra):  # Info-ZIP Unicode Path extra field
        if tag == 0x7075 and len(payload) >= 5 and payload[0] == 1:
            if struct.unpack_from("<L", payload, 1)[0] == zlib.crc32(raw):
                return payload[5:].decode("utf-8", errors="replace")
    try:  # no flag: Unix tools (Info-ZIP zip) store the locale's UTF-8 bytes as they are
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def _mtime(date: int, time: int, extra: bytes) -> datetime | None:
    for tag, payload in iter_extra(extra):
        if tag == 0x5455 and len(payload) >= 5 and payload[0] & 1:
            when = _utc(struct.unpack_from("<l", payload, 1)[0])
            if when is not None:
                return when
        if tag == 0x000A and len(payload) >= 32:  # NTFS: reserved, then tag 1 = times
            attr_tag, attr_size = struct.unpack_from("<HH", payload, 4)
            if attr_tag == 1 and attr_size >= 24:
                filetime = struct.unpack_from("<Q", payload, 8)[0]
                when = _utc((filetime - 116444736000000000) / 10_000_000)
                if when is not None:
                    return when
    return _dos_time(date, time)


@overload
def apply_zip64(
    extra: bytes, size: int, csize: int, offset: int, disk: int, where: str
) -> tuple[int, int, int, int, bool]: ...
@overload
def apply_zip64(
    extra: bytes, size: int, csize: int, offset: None, disk: None, where: str
) -> tuple[int, int, None, None, bool]: ...
def apply_zip64(
    extra: bytes, size: int, csize: int, offset: int | None, disk: int | None, where: str
) -> tuple[int, int, int | None, int | None, bool]:
    """Replace 0xFFFFFFFF fields by their zip64 extra values (in the spec's order). A local
    header has no offset or disk fields (None): they stay None."""
    need = [size == U32, csize == U32, offset is not None and offset == U32, disk is not None and disk == U16]
    payload = None
    for tag, data in iter_extra(extra):
        if tag == 0x0001:
            payload = data
            break
    if payload is None:
        if any(need):
            raise CorruptArchive(f"{where}: sizes/offset are 0xFFFFFFFF but there is no zip64 extra field")
        return size, csize, offset, disk, False
    pos = 0
    values: list[int] = []
    for needed, width in zip(need, (8, 8, 8, 4), strict=True):
        if not needed:
            values.append(-1)
            continue
        if pos + width > len(payload):
            raise CorruptArchive(f"{where}: zip64 extra field is too short")
        values.append(int.from_bytes(payload[pos : pos + width], "little"))
        pos += width
    size, csize = (values[0] if need[0] else size), (values[1] if need[1] else csize)
    offset, disk = (values[2] if need[2] else offset), (values[3] if need[3] else disk)
    return size, csize, offset, disk, True


# ----------------------------------------------------------------------------------
def read_end(reader: RangeReader) -> ArchiveInfo:
    """Find and check the end records. Reads only the archive's tail."""
    size = reader.size
    if size < END.size:
        raise CorruptArchive(f"{reader.name}: not a zip archive ({size} bytes, too small)")
    tail_start = size - min(size, TAIL_SIZE)
    tail = reader.read_at(tail_start, size - tail_start)
    at = _find_end_record(tail)
    if at is None:
        raise CorruptArchive(f"{reader.name}: not a zip archive (no end of central directory record)")
    (_, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment_len) = END.unpack_from(tail, at)
    end_offset = tail_start + at
    info = ArchiveInfo(
        size=size,
        entries=n_total,
        cd_offset=cd_offset,
        cd_size=cd_size,
        end_offset=end_offset,
        comment=bytes(tail[at + END.size : at + END.size + comment_len]),
        trailing=size - (end_offset + END.size + comment_len),
    )
    zip64_disks = _read_zip64(reader, info, tail, tail_start)
    _check_single_disk(reader, zip64_disks or (disk, cd_disk, n_disk, n_total), zip64_disks is not None)
    _check_directory_bounds(reader, info)
    _locate_directory(reader, info)
    return info


def _find_end_record(tail: bytes) -> int | None:
    """Offset in `tail` of the end record: the last one whose comment ends exactly at the
    end of the archive, else the last complete one followed by junk (reported as trailing)."""
    fallback = None
    pos = len(tail)
    while (pos := tail.rfind(SIG_END, 0, pos)) >= 0:
        if pos + END.size <= len(tail):
            comment_len = struct.unpack_from("<H", tail, pos + 20)[0]
            end = pos + END.size + comment_len
            if end == len(tail):
                return pos
            if end < len(tail) and fallback is None:
                fallback = pos
        if pos == 0:
            break
    return fallback


def _read_zip64(
    reader: RangeReader, info: ArchiveInfo, tail: bytes, tail_start: int
) -> tuple[int, int, int, int] | None:
    """When a zip64 locator sits right before the end record, take the entry count and the
    directory's size and offset from the zip64 end record it points to, and return that
    record's disk fields (disk, directory disk, entries on this disk, entries); else None."""
    loc_offset = info.end_offset - ZIP64_LOCATOR.size
    if loc_offset < 0:
        return None
    rel = loc_offset - tail_start
    loc_bytes = tail[rel : rel + ZIP64_LOCATOR.size] if rel >= 0 else reader.read_at(loc_offset, ZIP64_LOCATOR.size)
    if loc_bytes[:4] != SIG_ZIP64_LOCATOR:
        return None
    _, z_disk, z_offset, z_disks = ZIP64_LOCATOR.unpack(loc_bytes)
    if z_disk != 0 or z_disks > 1:
        raise UnsupportedArchive(f"{reader.name}: spanned or split zip archives are not supported")
    z_at, record = _find_zip64_end(reader, z_offset, loc_offset)
    (_, rec_size, _, _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset) = ZIP64_END.unpack(record)
    if rec_size < ZIP64_END.size - 12 or z_at + 12 + rec_size > loc_offset:
        raise CorruptArchive(f"{reader.name}: zip64 end record at offset {z_at} has a bad size ({rec_size})")
    if z_at != z_offset:
        info.notes.append(f"zip64 locator offset {z_offset} is shifted by {z_at - z_offset} bytes")
    info.zip64_end_offset = z_at
    info.zip64_locator_offset = loc_offset
    info.entries, info.cd_size, info.cd_offset = n_total, cd_size, cd_offset
    return disk, cd_disk, n_disk, n_total


def _find_zip64_end(reader: RangeReader, z_offset: int, loc_offset: int) -> tuple[int, bytes]:
    """The zip64 end record where the locator says, or right before the locator (bytes
    prepended to the archive shift the former)."""
    expected = loc_offset - ZIP64_END.size
    for candidate in [z_offset] + ([expected] if expected != z_offset else []):
        if 0 <= candidate and candidate + ZIP64_END.size <= loc_offset:
            record = reader.read_at(candidate, ZIP64_END.size)
            if record[:4] == SIG_ZIP64_END:
                return candidate, record
    raise CorruptArchive(
        f"{reader.name}: the zip64 end-of-central-directory locator points to offset "
        f"{z_offset}, where there is no zip64 end record"
    )


def _check_single_disk(reader: RangeReader, disks: tuple[int, int, int, int], has_zip64: bool) -> None:
    """Spanned archives are refused. `disks`: the zip64 end record's disk fields when there
    is one, else the end record's; 0xFFFF there is fine when a zip64 record exists."""
    disk, cd_disk, n_disk, n_total = disks
    if (disk != 0 or cd_disk != 0) and not (disk == U16 and cd_disk == U16 and has_zip64):
        raise UnsupportedArchive(f"{reader.name}: spanned or split zip archives are not supported")
    if n_disk != n_total and not (has_zip64 and U16 in (n_disk, n_total)):
        raise UnsupportedArchive(f"{reader.name}: spanned or split zip archives are not supported")


def _check_directory_bounds(reader: RangeReader, info: ArchiveInfo) -> None:
    """The declared directory must fit in the archive before the end records, and hold
    at least as many bytes as its declared records need."""
    size, records_start = info.size, info.records_start
    if info.cd_size > size:
        raise CorruptArchive(
            f"{reader.name}: central directory size {info.cd_size} is larger than the archive ({size} bytes)"
        )
    if info.cd_offset > size:
        raise CorruptArchive(
            f"{reader.name}: central directory offset {info.cd_offset} is past the end of the archive ({size} bytes)"
        )
    if info.cd_offset + info.cd_size > records_start:
        raise CorruptArchive(
            f"{reader.name}: central directory (offset {info.cd_offset}, {info.cd_size} bytes) "
            f"overlaps the end records at offset {records_start}"
        )
    if info.entries * CENTRAL.size > info.cd_size:
        raise CorruptArchive(
            f"{reader.name}: the end record declares {info.entries} entries but the central directory "
            f"of {info.cd_size} bytes can hold at most {info.cd_size // CENTRAL.size}"
        )
    if info.entries == 0 and info.cd_size:
        # some writers leave the count at zero; let the directory parse count them
        info.notes.append("end record declares 0 entries for a non-empty central directory")


def _locate_directory(reader: RangeReader, info: ArchiveInfo) -> None:
    """Bytes prepended to the archive (self-extractors) shift every offset: find the
    directory where the end records say it ends, and record the shift as `info.base`."""
    shift = info.records_start - (info.cd_offset + info.cd_size)
    if not shift:
        return
    if not info.cd_size:
        info.base = shift
        info.cd_offset += shift
        return
    if reader.read_at(info.cd_offset + shift, 4) == SIG_CENTRAL:
        info.base = shift
        info.cd_offset += shift
        return
    at_plain = reader.read_at(info.cd_offset, 4) if info.cd_offset + 4 <= info.size else b""
    if at_plain != SIG_CENTRAL:
        raise CorruptArchive(
            f"{reader.name}: no central directory at offset {info.cd_offset} (nor {info.cd_offset + shift})"
        )
    info.notes.append(f"{shift} unexpected bytes between the central directory and the end records")


def check_entry(entry: Entry, info: ArchiveInfo) -> str | None:
    """Why this entry's recorded position/sizes are impossible, or None."""
    limit = info.entries_end
    if entry.offset < info.base:
        return f"local header offset {entry.offset} is before the start of the archive data ({info.base})"
    if entry.offset + LOCAL.size + len(entry.raw_name) > limit:
        return (
            f"local header offset {entry.offset} is past the end of the entry data "
            f"(the central directory starts at {limit})"
        )
    if entry.min_end > limit:
        return (
            f"compressed data ({entry.compressed_size} bytes at offset {entry.offset}) runs past "
            f"the end of the entry data (offset {limit})"
        )
    if entry.method == 0 and not entry.encrypted and entry.compressed_size != entry.size:
        return f"stored entry with compressed size {entry.compressed_size} != size {entry.size}"
    if entry.method == 8 and not entry.encrypted and entry.size > entry.compressed_size * MAX_DEFLATE_RATIO + 1024:
        return f"declared size {entry.size} is impossible for {entry.compressed_size} bytes of deflate data (zip bomb?)"
    return None


def iter_entries(reader: RangeReader, info: ArchiveInfo, *, strict: bool = True) -> Iterator[Entry]:
    """Stream the central directory record by record (bounded memory).

    strict: also raise on entries whose offsets/sizes are impossible (`check_entry`);
    verify passes False and reports them itself.
    """
    cd_start, cd_end = info.cd_offset, info.cd_offset + info.cd_size
    index = 0
    with reader.stream(cd_start, cd_end) as stream:
        while stream.pos < cd_end:
            at = stream.pos
            if cd_end - at < CENTRAL.size:
                raise CorruptArchive(
                    f"{reader.name}: {cd_end - at} stray bytes at the end of the central directory (offset {at})"
                )
            fixed = stream.read_exact(CENTRAL.size, "central directory record")
            (
                sig,
                _create_version,
                create_system,
                version_needed,
                _,
                flags,
                method,
                time,
                date,
                crc,
                csize,
                size,
                name_len,
                extra_len,
                comment_len,
                disk,
                _internal,
                external,
                offset,
            ) = CENTRAL.unpack(fixed)
            if sig != SIG_CENTRAL:
                raise CorruptArchive(f"{reader.name}: bad central directory record signature at offset {at}")
            variable = name_len + extra_len + comment_len
            if variable > cd_end - stream.pos:
                raise CorruptArchive(
                    f"{reader.name}: central directory record at offset {at} runs past the directory's end"
                )
            rest = stream.read_exact(variable, "central directory record")
            raw_name = rest[:name_len]
            extra = rest[name_len : name_len + extra_len]
            comment = rest[name_len + extra_len :]
            where = f"{reader.name}: entry {raw_name.decode('utf-8', 'replace')!r}"
            size, csize, offset, disk, zip64 = apply_zip64(extra, size, csize, offset, disk, where)
            if disk not in (0, None) and not (disk == U16 and zip64):
                raise UnsupportedArchive(f"{reader.name}: spanned or split zip archives are not supported")
            entry = Entry(
                index=index,
                name=decode_name(raw_name, flags, extra),
                raw_name=raw_name,
                flags=flags,
                method=method,
                crc=crc,
                compressed_size=csize,
                size=size,
                offset=offset + info.base,
                mtime=_mtime(date, time, extra),
                external_attr=external,
                create_system=create_system,
                version_needed=version_needed,
                extra=extra,
                comment=comment,
                zip64=zip64,
                record_offset=at,
            )
            if strict:
                problem = check_entry(entry, info)
                if problem:
                    raise CorruptArchive(f"{where}: {problem}")
            index += 1
            yield entry
    if info.entries and index != info.entries and not (_count_wraps(info) and index % 0x10000 == info.entries):
        raise CorruptArchive(
            f"{reader.name}: the central directory holds {index} records, the end record declares {info.entries}"
        )


def _count_wraps(info: ArchiveInfo) -> bool:
    """Old writers store the entry count modulo 65,536 and no zip64 record."""
    return not info.zip64 and info.entries < 0x10000


def read_directory(reader: RangeReader, *, strict: bool = True) -> tuple[ArchiveInfo, list[Entry]]:
    info = read_end(reader)
    return info, list(iter_entries(reader, info, strict=strict))
