"""An opened archive: a range reader, its end records, its entries, its manifest.

archive = Archive.open_s3(s3, "bucket", "backups/2024.zip")
for entry in archive.iter_entries(): ...          # streams the central directory
data = b"".join(archive.open_entry(entry))         # one ranged GET, checked
"""

from __future__ import annotations

import fnmatch
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from ..errors import CorruptArchive
from ..records import TRUNCATED_MARK
from .directory import ArchiveInfo, Entry, iter_entries, read_end
from .entries import iter_entry_data
from .manifest import Manifest, ManifestEntry, load_manifest
from .rangereader import RangeReader, S3RangeReader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class Archive:
    def __init__(
        self, reader: RangeReader, *, s3: S3Client | None = None, bucket: str | None = None, key: str | None = None
    ):
        self.reader = reader
        self.s3, self.bucket, self.key = s3, bucket, key
        self.info: ArchiveInfo = read_end(reader)
        self._entries: list[Entry] | None = None
        self._manifest: Manifest | None = None
        self._manifest_loaded = False

    @classmethod
    def open_s3(cls, s3: S3Client, bucket: str, key: str, **reader_options) -> Archive:
        return cls(S3RangeReader.open(s3, bucket, key, **reader_options), s3=s3, bucket=bucket, key=key)

    @property
    def name(self) -> str:
        return self.reader.name

    def iter_entries(self, *, strict: bool = True) -> Iterator[Entry]:
        if self._entries is not None:
            return iter(self._entries)
        return iter_entries(self.reader, self.info, strict=strict)

    def entries(self) -> list[Entry]:
        if self._entries is None:
            self._entries = list(iter_entries(self.reader, self.info))
        return self._entries

    def open_entry(self, entry: Entry) -> Generator[bytes, None, None]:
        """The entry's bytes, decoded and checked; close() it when stopping early."""
        return iter_entry_data(self.reader, self.info, entry)

    def manifest(self) -> Manifest | None:
        """The manifest beside the archive (S3 archives only), loaded once."""
        if not self._manifest_loaded:
            if self.s3 is not None and self.bucket and self.key:
                self._manifest = load_manifest(self.s3, self.bucket, self.key)
            self._manifest_loaded = True
        return self._manifest

    def set_manifest(self, manifest: Manifest | None) -> None:
        self._manifest, self._manifest_loaded = manifest, True


def truncation(entry: Entry, source: ManifestEntry | None = None) -> str | None:
    """Why the entry holds less than its source object (its source changed or vanished
    while it was archived), from the entry's file comment or the manifest; None if whole."""
    mark = TRUNCATED_MARK.encode("ascii")
    if entry.comment.startswith(mark):
        return entry.comment[:1024].decode("ascii", "replace")
    if source is not None and source.truncated:
        return f"{TRUNCATED_MARK}: the manifest says the source object changed while it was read"
    return None


def matches(patterns: Sequence[str], name: str, key: str | None = None) -> bool:
    """No patterns: everything. A pattern matches an entry name or its source key as a
    shell glob (`*` crosses '/'), or names a directory whose contents it selects."""
    if not patterns:
        return True
    for pattern in patterns:
        for candidate in (name, key) if key is not None and key != name else (name,):
            if fnmatch.fnmatchcase(candidate, pattern):
                return True
            prefix = pattern.rstrip("/") + "/"
            if prefix != "/" and candidate.startswith(prefix) and not any(c in pattern for c in "*?["):
                return True
    return False


def select(
    entries: Iterable[Entry], patterns: Sequence[str], names_to_keys: dict[str, ManifestEntry] | None = None
) -> Iterator[Entry]:
    for entry in entries:
        source = names_to_keys.get(entry.name) if names_to_keys else None
        if matches(patterns, entry.name, source.key if source else None):
            yield entry


def check_no_overlaps(entries: Sequence[Entry], info: ArchiveInfo, label: str) -> None:
    """Refuse archives whose entries share bytes (overlapping-entry zip bombs)."""
    ordered = sorted(entries, key=lambda e: e.offset)
    for previous, current in zip(ordered, ordered[1:], strict=False):
        if current.offset < previous.min_end:
            raise CorruptArchive(
                f"{label}: entries {previous.name!r} and {current.name!r} overlap (offsets "
                f"{previous.offset} and {current.offset}): corrupt archive or zip bomb"
            )
