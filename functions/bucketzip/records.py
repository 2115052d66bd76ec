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


def end_records(entries: int, cd_offset: int, cd_size: int) -> bytes:
    """End of central directory, preceded by the zip64 end record + locator when needed."""
    out = b""
    if entries >= 0xFFFF or cd_offset > ZIP64_LIMIT or cd_size > ZIP64_LIMIT:
        out += zip64_end_of_central_directory(entries, cd_size, cd_offset)
        out += zip64_end_locator(cd_offset + cd_size)
        entries, cd_size, cd_offset = min(entries, 0xFFFF), min(cd_size, 0xFFFFFFFF), min(cd_offset, 0xFFFFFFFF)
    return out + end_of_central_directory(entries, cd_size, cd_offset)
