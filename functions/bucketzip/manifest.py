"""Manifest lines (JSON Lines beside the archive): what each entry came from, with the
headers and metadata a restore puts back, and every skipped object with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from .records import STORED, EntryMeta
from .state import Listed

# The manifest's one definition: its format name (line 1's "format"; readers accept any
# "bucketzip-manifest/N" and ignore what they do not know), where it sits beside the
# archive, and the standard headers it records. reading/manifest.py parses it.
FORMAT = "bucketzip-manifest/1"
FORMAT_FAMILY = "bucketzip-manifest/"
MANIFEST_SUFFIX = ".manifest.jsonl"
HEADER_NAMES = (
    "content_type",
    "content_encoding",
    "content_language",
    "content_disposition",
    "cache_control",
    "expires",
)


def manifest_key(archive_key: str) -> str:
    """The key of the manifest beside the archive at `archive_key`."""
    return archive_key + MANIFEST_SUFFIX


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def _line(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def entry_line(listed: Listed, meta: EntryMeta, headers: dict, truncated: bool = False) -> bytes:
    data = {
        "type": "entry",
        "name": meta.name,
        "key": listed.key,
        "version_id": listed.version_id,
        "etag": listed.etag,
        "size": meta.size,
        "last_modified": _iso(listed.last_modified),
        "storage_class": listed.storage_class,
        **{name: headers.get(name) for name in HEADER_NAMES},
        "metadata": headers.get("metadata") or {},
        "crc32": meta.crc,
        "compressed_size": meta.compressed_size,
        "offset": meta.header_offset,
        "method": "store" if meta.method == STORED else "deflate",
    }
    if truncated:
        data["truncated"] = True
    return _line(data)


def rebase_lines(lines: bytes, base: int) -> bytes:
    """Entry lines written by a segment (offsets relative to its start) as the archive's,
    where the segment starts at `base`: the same lines with `offset` moved."""
    out = bytearray()
    for line in lines.splitlines():
        data = json.loads(line)
        data["offset"] += base
        out += _line(data)
    return bytes(out)


def skipped_line(listed: Listed, reason: str) -> bytes:
    return _line({"type": "skipped", "key": listed.key, "version_id": listed.version_id, "reason": reason})


def header_line(
    *,
    archive_bucket: str,
    archive_key: str,
    source_bucket: str,
    source_prefix: str,
    created: float,
    entries: int,
    skipped: int,
) -> bytes:
    return _line(
        {
            "type": "archive",
            "format": FORMAT,
            "archive": {"bucket": archive_bucket, "key": archive_key},
            "source": {"bucket": source_bucket, "prefix": source_prefix},
            "created": _iso(created),
            "entries": entries,
            "skipped": skipped,
        }
    )
