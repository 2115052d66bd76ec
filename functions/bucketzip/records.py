"""Zip records for one entry, encoded by zipstream-ng's ZipStreamInfo.

An entry is written as: local header, data, and (when its CRC/sizes were not known
up front) a data descriptor. Its central-directory record is made when it closes.
Only the end records (which zipstream-ng builds inside ZipStream from its own
bookkeeping) are packed here, with the stdlib's record layouts (see private_apis).
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime

from zipstream.ng import ZIP64_LIMIT, ZipStreamInfo

from .private_apis import (
    central_directory_record,
    end_of_central_directory,
    local_file_header,
    zip64_end_locator,
    zip64_end_of_central_directory,
)

STORED, DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
DATA_DESCRIPTOR_FLAG = 0x08
# Extended timestamp extra field: mtime as UTC seconds (DOS time is local and 2 s coarse).
_EXT_TIME = struct.Struct("<HHBl")
_FILE_MODE = 0o100644 << 16
_DIR_MODE = (0o40755 << 16) | 0x10
# The file comment of an entry whose source object changed or vanished while it was being
# read (non-strict runs): the entry holds only the bytes read before. It sits in the
# central-directory record, so every zip tool shows it (zipfile's ZipInfo.comment,
# `zipinfo -v`, `7z l -slt`); bucketzip's readers recognise the prefix.
TRUNCATED_MARK = "bucketzip: TRUNCATED"
_DOS_MIN, _DOS_MAX = datetime(1980, 1, 1, tzinfo=UTC), datetime(2107, 12, 31, 23, 59, 58, tzinfo=UTC)


@dataclass
class EntryMeta:
    """What the central directory needs to know about one written entry."""

    name: str
    mtime: float  # UTC epoch seconds
    method: int
    header_offset: int
    uses_descriptor: bool
    zip64: bool
    crc: int = 0
    compressed_size: int = 0
    size: int = 0


# The largest size a 32-bit local header or data descriptor field holds.
ZIP32_MAX = 0xFFFFFFFF


def deflate_bound(size: int) -> int:
    """An upper bound of an entry's compressed size: deflate's worst growth (stored blocks,
    one sync flush per chunk, the final block)."""
    return size + size // 1000 + 4096


def needs_zip64(size: int) -> bool:
    """Whether the local header and data descriptor need zip64 sizes: only when the entry
    may really pass 4 GiB. (java.util.zip.ZipInputStream picks the descriptor layout by
    the actual sizes, so a zip64 descriptor on a smaller entry breaks it; see
    `straddles_zip32` for the sizes where the bound alone cannot tell.) The central
    directory and end records follow zipstream-ng and zipfile instead: zip64 past
    ZIP64_LIMIT (2 GiB - 1) for offsets and sizes, which every reader accepts."""
    return deflate_bound(size) > ZIP32_MAX


def straddles_zip32(size: int) -> bool:
    """Objects just under 4 GiB (4,290,672,xxx to 4,294,967,295 bytes): as deflate they
    might pass 4 GiB or not, which a header written before the data cannot know. They are
    written stored, with CRC-32 and sizes in the local header (one read-only pass first),
    no data descriptor and no zip64: every reader, streaming ones too, accepts that."""
    return size <= ZIP32_MAX and needs_zip64(size)


# An empty, non-final stored deflate block: pads a byte-aligned deflate stream without
# adding data (a truncated zip64 entry is padded past 4 GiB so its zip64 descriptor holds).
EMPTY_STORED_BLOCK = b"\x00\x00\x00\xff\xff"


def _info(meta: EntryMeta) -> ZipStreamInfo:
    when = datetime.fromtimestamp(meta.mtime, tz=UTC)
    when = min(max(when, _DOS_MIN), _DOS_MAX)
    info = ZipStreamInfo(meta.name, date_time=when.timetuple()[:6])
    info.compress_type = meta.method
    info.external_attr = _DIR_MODE if meta.name.endswith("/") else _FILE_MODE
    seconds = max(-(2**31), min(2**31 - 1, int(meta.mtime)))
    info.extra = _EXT_TIME.pack(0x5455, 5, 1, seconds)
    info.header_offset = meta.header_offset
    info.CRC, info.compress_size, info.file_size = meta.crc, meta.compressed_size, meta.size
    if meta.uses_descriptor:
        info.flag_bits |= DATA_DESCRIPTOR_FLAG
    return info


def local_header(meta: EntryMeta) -> bytes:
    """With a descriptor, CRC and sizes are zero here and follow the data."""
    return local_file_header(_info(meta), meta.zip64)


def data_descriptor(meta: EntryMeta) -> bytes:
    return _info(meta).DataDescriptor(meta.zip64)


def truncated_comment(reason: str, bytes_read: int, listed_size: int) -> bytes:
    """The file comment of a truncated entry, ASCII (the key is in the manifest, not here)."""
    text = f"{TRUNCATED_MARK}: source object {reason}; this entry holds only the first {bytes_read} of {listed_size}"
    text += " bytes"
    return text.encode("ascii", "replace")[:1024]


def central_record(meta: EntryMeta, comment: bytes = b"") -> bytes:
    info = _info(meta)
    info.comment = comment
    return central_directory_record(info)


_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # the fixed 46 bytes of a central directory record
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_UTF8_FLAG = 0x800
_ZIP64_EXTRA, _EXT_TIME_EXTRA = 0x0001, 0x5455
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def rebase_central(records: bytes, base: int) -> bytes:
    """Central directory records written for a segment (offsets relative to its start)
    as they must read in the archive, where the segment starts at `base`: each record
    decoded to its EntryMeta and re-encoded (`central_record`) with the offset moved, so
    the encoder decides zip64 extras by the absolute offset, as one run would have."""
    out, at, view = bytearray(), 0, memoryview(records)
    while at < len(records):
        fields = _CENTRAL.unpack_from(records, at)
        if fields[0] != _CENTRAL_SIGNATURE:
            raise ValueError(f"no central directory record at byte {at} of a segment's directory")
        flags, method, dos_time, dos_date, crc, csize, usize, nlen, xlen, clen = fields[5:15]
        offset = fields[18]
        name_at = at + _CENTRAL.size
        raw_name = bytes(view[name_at : name_at + nlen])
        extra = bytes(view[name_at + nlen : name_at + nlen + xlen])
        comment = bytes(view[name_at + nlen + xlen : name_at + nlen + xlen + clen])
        at = name_at + nlen + xlen + clen
        seconds = None
        for tag, data in _extras(extra):
            if tag == _ZIP64_EXTRA:  # present values, in this order, for the fields saturated above
                values = iter(struct.unpack(f"<{len(data) // 8}Q", data))
                usize = next(values) if usize == ZIP32_MAX else usize
                csize = next(values) if csize == ZIP32_MAX else csize
                offset = next(values) if offset == ZIP32_MAX else offset
            elif tag == _EXT_TIME_EXTRA and len(data) >= 5:
                seconds = struct.unpack_from("<l", data, 1)[0]
        meta = EntryMeta(
            name=raw_name.decode("utf-8" if flags & _UTF8_FLAG else "cp437"),
            mtime=_mtime(seconds, dos_date, dos_time),
            method=method,
            header_offset=offset + base,
            uses_descriptor=bool(flags & DATA_DESCRIPTOR_FLAG),
            zip64=False,  # the local header's business, not the directory's
            crc=crc,
            compressed_size=csize,
            size=usize,
        )
        out += central_record(meta, comment=comment)
    return bytes(out)


def _extras(extra: bytes):
    at = 0
    while at + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, at)
        yield tag, extra[at + 4 : at + 4 + size]
        at += 4 + size


def _mtime(seconds: int | None, dos_date: int, dos_time: int) -> float:
    """An mtime that `_info` encodes to the same extended timestamp and DOS time: the
    timestamp's seconds unless they were clamped to 32 bits, else the DOS time's."""
    if seconds is not None and _INT32_MIN < seconds < _INT32_MAX:
        return float(seconds)
    if seconds == _INT32_MIN:
        return float(_INT32_MIN)  # before 1901: the DOS time is clamped to 1980 anyway
    when = datetime(
        (dos_date >> 9) + 1980,
        (dos_date >> 5) & 0xF,
        dos_date & 0x1F,
        dos_time >> 11,
        (dos_time >> 5) & 0x3F,
        (dos_time & 0x1F) * 2,
        tzinfo=UTC,
    )
    return when.timestamp()


def end_records(entries: int, cd_offset: int, cd_size: int) -> bytes:
    """End of central directory, preceded by the zip64 end record + locator when needed."""
    out = b""
    if entries >= 0xFFFF or cd_offset > ZIP64_LIMIT or cd_size > ZIP64_LIMIT:
        out += zip64_end_of_central_directory(entries, cd_size, cd_offset)
        out += zip64_end_locator(cd_offset + cd_size)
        entries, cd_size, cd_offset = min(entries, 0xFFFF), min(cd_size, 0xFFFFFFFF), min(cd_offset, 0xFFFFFFFF)
    return out + end_of_central_directory(entries, cd_size, cd_offset)
