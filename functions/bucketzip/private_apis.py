"""Every private or undocumented API of a dependency that bucketzip relies on, wrapped
here and nowhere else, so that an upgrade that moves one breaks this module (and
tests/bucketzip/test_private_apis.py), not the engine or the readers.

- zipfile's end-record layouts (`structEndArchive*`/`stringEndArchive*`: module globals,
  not in its documented API nor in typeshed);
- zipfile.ZipInfo.FileHeader (undocumented; zipstream-ng's ZipStreamInfo builds on it);
- zipstream-ng's ZipStreamInfo._central_directory_header_data (it builds the central
  record inside ZipStream; bucketzip writes the directory itself, step by step);
- lzma._decode_filter_properties (the stdlib's only parser of LZMA1 properties, which
  zip entries of method 14 carry in their own header).
"""

from __future__ import annotations

import lzma
import struct
import zipfile
from typing import Any

from zipstream.ng import ZipStreamInfo

# The end-record layouts (APPNOTE.TXT 4.3.14-4.3.16): (struct format, signature).
END_ARCHIVE = (zipfile.structEndArchive, zipfile.stringEndArchive)  # type: ignore[attr-defined]  # not in typeshed
END_ARCHIVE64 = (zipfile.structEndArchive64, zipfile.stringEndArchive64)  # type: ignore[attr-defined]  # not in typeshed
END_ARCHIVE64_LOCATOR = (
    zipfile.structEndArchive64Locator,  # type: ignore[attr-defined]  # not in typeshed
    zipfile.stringEndArchive64Locator,  # type: ignore[attr-defined]  # not in typeshed
)


def end_of_central_directory(entries: int, cd_size: int, cd_offset: int) -> bytes:
    """The classic end record (22 bytes, no comment); values already capped by the caller."""
    layout, signature = END_ARCHIVE
    return struct.pack(layout, signature, 0, 0, entries, entries, cd_size, cd_offset, 0)


def zip64_end_of_central_directory(entries: int, cd_size: int, cd_offset: int) -> bytes:
    """The zip64 end record (56 bytes): made by / needed version 4.5, one disk."""
    layout, signature = END_ARCHIVE64
    return struct.pack(layout, signature, 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset)


def zip64_end_locator(zip64_end_offset: int) -> bytes:
    """The zip64 end locator (20 bytes): where the zip64 end record is, one disk."""
    layout, signature = END_ARCHIVE64_LOCATOR
    return struct.pack(layout, signature, 0, zip64_end_offset, 1)


def local_file_header(info: ZipStreamInfo, zip64: bool) -> bytes:
    return info.FileHeader(zip64)


def central_directory_record(info: ZipStreamInfo) -> bytes:
    return info._central_directory_header_data()


def lzma1_filter(properties: bytes) -> dict[str, Any]:
    """The LZMA1 filter spec for raw decompression from a zip entry's properties bytes.
    Raises lzma.LZMAError or ValueError when they are malformed."""
    return lzma._decode_filter_properties(lzma.FILTER_LZMA1, properties)  # type: ignore[attr-defined]  # private
