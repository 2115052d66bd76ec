"""Errors of the reading side (ls / extract / restore / verify).

All subclass BucketzipError, so the CLI prints them as one line and exits 1.
Hostile or broken archives always surface as one of these, never as a traceback.
"""

from __future__ import annotations

from ..errors import BucketzipError


class ArchiveNotFound(BucketzipError):
    """The archive object (or its bucket) does not exist."""


class ArchiveChanged(BucketzipError):
    """The archive object was replaced while it was being read (its ETag changed)."""


class ReadFailed(BucketzipError):
    """S3 refused or failed a read, after retries."""


class CorruptArchive(BucketzipError):
    """The bytes are not a sound zip archive: bad records, offsets past the end, ..."""


class EntryCorrupt(CorruptArchive):
    """One entry's data is bad: CRC or size mismatch, broken deflate stream, bomb."""


class UnsupportedArchive(BucketzipError):
    """A valid zip that this reader does not handle: encrypted, spanned, unknown method."""


class UnsafePath(BucketzipError):
    """An entry name would write outside the destination (absolute, '..', links)."""


class DestinationExists(BucketzipError):
    """A file or object to be written exists and --overwrite was not given."""


class CorruptManifest(BucketzipError):
    """The manifest beside the archive cannot be parsed."""
