"""Stateless, resumable deflate: every source chunk is compressed on its own into a
raw-deflate piece that ends with a sync flush (byte-aligned, no final block), and an
entry ends with one empty final block. Concatenated, the pieces are one standard
deflate stream. So no compressor state ever needs persisting, a step may stop between
any two chunks, and chunks compress in parallel on the fetch threads.

Backends, one per level so an entry's bytes never depend on where it is compressed
(measured in bench/, 16-32 MiB of JSON/log text, one thread):
  level 0    stored deflate blocks written here directly (one copy; zlib level 0 cost
             ~20% of a step's CPU on random data for the same bytes);
  levels 1-3 ISA-L's levels 1-3 (~4x zlib level 1, ratio between zlib 1 and zlib 6);
  levels 4-9 zlib-ng (1.5-3x zlib at the same level, the same ratio within 2%).
zlib is the fallback when a backend cannot be imported (standard deflate either way).
"""

from __future__ import annotations

import struct
import zlib
from types import ModuleType
from typing import Protocol


def _isal() -> ModuleType | None:
    try:  # the fast path; zlib stays the fallback so the engine runs anywhere
        from isal import isal_zlib
    except ImportError:  # pragma: no cover
        return None
    return isal_zlib


_fast = _isal()


class _Compressor(Protocol):
    """What zlib's and isal_zlib's compressobj() both return."""

    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self, mode: int = ..., /) -> bytes: ...


def _zlib_ng() -> ModuleType | None:
    try:
        from zlib_ng import zlib_ng
    except ImportError:  # pragma: no cover
        return None
    return zlib_ng


_ng = _zlib_ng()

# An empty fixed-Huffman block with BFINAL set: closes a stream of sync-flushed pieces.
FINAL_BLOCK = b"\x03\x00"
DEFAULT_LEVEL = 1
# Names whose content is compressed already: deflating them is wasted CPU.
_COMPRESSED_EXTENSIONS = frozenset(
    """
    7z apk avif br bz2 deb docx epub flac gif gz heic jar jpeg jpg lz lz4 lzma m4a m4v mkv mov mp3
    mp4 odt ogg opus parquet pdf png pptx rar rpm tbz tgz txz webm webp whl xlsx xz zip zst
""".split()
)
_COMPRESSED_TYPES = (
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "video/",
    "audio/",
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/x-7z",
    "application/x-bzip2",
    "application/x-xz",
    "application/zstd",
    "application/x-rar",
)
# A sample that deflates to more than this fraction of its size is stored instead.
INCOMPRESSIBLE_RATIO = 0.97


def backend_name(level: int = DEFAULT_LEVEL) -> str:
    """The backend that compresses pieces at `level`."""
    if level == 0:
        return "stored-blocks"
    if level <= 3:
        return "isal" if _fast is not None else "zlib"
    return "zlib-ng" if _ng is not None else "zlib"


# A stored deflate block holds at most this many bytes (RFC 1951, LEN is 16 bits).
_STORED_BLOCK_MAX = 0xFFFF
_STORED_HEADER = struct.Struct("<BHH")  # BFINAL=0 BTYPE=00 (byte-aligned), LEN, NLEN


def stored_piece(data: bytes | memoryview) -> bytes:
    """`data` as non-final stored deflate blocks: byte-aligned, so it ends a piece like a
    sync flush does, with no compressor in the way (one copy of the bytes)."""
    view = memoryview(data)
    out: list[bytes | memoryview] = []
    for start in range(0, len(view), _STORED_BLOCK_MAX):
        block = view[start : start + _STORED_BLOCK_MAX]
        out.append(_STORED_HEADER.pack(0, len(block), len(block) ^ 0xFFFF))
        out.append(block)
    return b"".join(out)


def deflate_piece(data: bytes, level: int) -> bytes:
    """Compress one chunk into a sync-flushed (byte-aligned, non-final) raw-deflate piece."""
    compressor: _Compressor
    if level == 0:
        return stored_piece(data)
    if level <= 3 and _fast is not None:
        compressor = _fast.compressobj(level, zlib.DEFLATED, -15)
    elif level >= 4 and _ng is not None:
        compressor = _ng.compressobj(level, zlib.DEFLATED, -15, 9)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def looks_compressed(key: str, content_type: str | None) -> bool:
    """Cheap guess from the name and type, before any byte is read."""
    last = key.rsplit("/", 1)[-1]
    ext = last.rsplit(".", 1)[-1].lower() if "." in last else ""
    if ext in _COMPRESSED_EXTENSIONS:
        return True
    ctype = (content_type or "").lower()
    return any(ctype.startswith(t) for t in _COMPRESSED_TYPES)


def is_incompressible(raw_len: int, compressed_len: int) -> bool:
    return raw_len > 0 and compressed_len > raw_len * INCOMPRESSIBLE_RATIO
