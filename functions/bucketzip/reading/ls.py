"""`ls`: list an archive's entries from its end records and central directory only
(ranged GETs of the archive's tail: typically one or two requests)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .archive import Archive, matches, truncation
from .directory import Entry


@dataclass(frozen=True)
class Listed:
    entry: Entry
    key: str | None  # original S3 key from the manifest (None without one)
    truncated: str | None = None  # why the entry is incomplete (see archive.truncation)

    def as_dict(self) -> dict[str, Any]:
        e = self.entry
        out: dict[str, Any] = {
            "name": e.name,
            "size": e.size,
            "compressed_size": e.compressed_size,
            "method": e.method_name,
            "crc32": e.crc,
            "modified": format_time(e.mtime),
            "is_dir": e.is_dir,
            "offset": e.offset,
        }
        if e.encrypted:
            out["encrypted"] = True
        if self.key is not None:
            out["key"] = self.key
        if self.truncated is not None:
            out["truncated"] = self.truncated
        return out


def format_time(when: datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is not None:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def list_archive(archive: Archive, patterns: Sequence[str] = (), *, use_manifest: bool = True) -> Iterator[Listed]:
    """Entries in archive order, filtered by patterns (glob on name or source key).

    With a manifest, each entry carries its original key (looked up by name)."""
    manifest = archive.manifest() if use_manifest else None
    by_name = manifest.by_name() if manifest else {}
    for entry in archive.iter_entries():
        source = by_name.get(entry.name)
        key = source.key if source is not None else None
        if matches(patterns, entry.name, key):
            yield Listed(entry, key, truncation(entry, source))
