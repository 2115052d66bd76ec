"""Reading the manifest bucketzip writes beside an archive (`<key>.manifest.jsonl`;
its format is defined in bucketzip.manifest).

Line 1: {"type": "archive", "format": manifest.FORMAT, ...}; then one
{"type": "entry", ...} per entry in archive order; then {"type": "skipped", ...} lines.
Unknown fields are kept (forward compatible); unknown line types are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CorruptManifest
from ..manifest import FORMAT_FAMILY, HEADER_NAMES, manifest_key
from ..s3errors import AWS_ERRORS, NOT_FOUND_CODES, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_LINE = 1024 * 1024  # a manifest line is a few hundred bytes; refuse absurd ones


@dataclass(slots=True)
class ManifestEntry:
    name: str
    key: str
    size: int
    crc32: int
    compressed_size: int
    offset: int
    method: str
    etag: str | None = None
    version_id: str | None = None
    last_modified: str | None = None
    storage_class: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    content_language: str | None = None
    content_disposition: str | None = None
    cache_control: str | None = None
    expires: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    line: int = 0
    truncated: bool = False  # the source object changed or vanished while it was read


@dataclass
class Manifest:
    header: dict[str, Any]
    entries: list[ManifestEntry]
    skipped: list[dict[str, Any]]
    location: str = ""

    @property
    def declared_entries(self) -> int | None:
        value = self.header.get("entries")
        return value if isinstance(value, int) else None

    @property
    def source(self) -> dict[str, Any]:
        source = self.header.get("source")
        return source if isinstance(source, dict) else {}

    def by_name(self) -> dict[str, ManifestEntry]:
        return {entry.name: entry for entry in self.entries}


_REQUIRED_STR = ("name", "key", "method")
_REQUIRED_INT = ("size", "crc32", "compressed_size", "offset")
_OPTIONAL_STR = ("etag", "version_id", "last_modified", "storage_class", *HEADER_NAMES)


def _entry(obj: dict, where: str, number: int) -> ManifestEntry:
    """One entry line, type-checked (a tight loop: manifests can have millions of lines)."""
    get = obj.get
    name, key, method = get("name"), get("key"), get("method")
    size, crc, csize, offset = get("size"), get("crc32"), get("compressed_size"), get("offset")
    if not (
        type(name) is str
        and type(key) is str
        and type(method) is str
        and type(size) is int
        and type(crc) is int
        and type(csize) is int
        and type(offset) is int
    ):
        for field_name in _REQUIRED_STR + _REQUIRED_INT:
            if field_name not in obj:
                raise CorruptManifest(f"{where}: missing field {field_name!r}")
        raise CorruptManifest(
            f"{where}: fields {', '.join(_REQUIRED_STR + _REQUIRED_INT)} must be strings and integers"
        )
    optional = [get(field_name) for field_name in _OPTIONAL_STR]
    for field_name, value in zip(_OPTIONAL_STR, optional, strict=True):
        if value is not None and type(value) is not str:
            raise CorruptManifest(f"{where}: field {field_name!r} must be a string or null")
    if method not in ("store", "deflate"):
        raise CorruptManifest(f"{where}: unknown method {method!r}")
    metadata = get("metadata") or {}
    if type(metadata) is not dict or (
        metadata and not all(type(k) is str and type(v) is str for k, v in metadata.items())
    ):
        raise CorruptManifest(f"{where}: field 'metadata' must map strings to strings")
    truncated = get("truncated", False)
    if type(truncated) is not bool:
        raise CorruptManifest(f"{where}: field 'truncated' must be true or false")
    headers: dict[str, Any] = dict(zip(_OPTIONAL_STR, optional, strict=True))
    return ManifestEntry(
        name, key, size, crc, csize, offset, method, **headers, metadata=metadata, line=number, truncated=truncated
    )


def parse_manifest(lines: Iterable[bytes | str], location: str = "manifest") -> Manifest:
    header: dict[str, Any] | None = None
    entries: list[ManifestEntry] = []
    skipped: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        where = f"{location} line {number}"
        if len(line) > MAX_LINE:
            raise CorruptManifest(f"{where}: line longer than {MAX_LINE} bytes")
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                raise CorruptManifest(f"{where}: not UTF-8") from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise CorruptManifest(f"{where}: not JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise CorruptManifest(f"{where}: not a JSON object")
        kind = obj.get("type")
        if header is None:
            if kind != "archive":
                raise CorruptManifest(f"{where}: the first line must be the archive record")
            fmt = obj.get("format")
            if not isinstance(fmt, str) or not fmt.startswith(FORMAT_FAMILY):
                raise CorruptManifest(f"{where}: unknown manifest format {fmt!r}")
            header = obj
            continue
        if kind == "entry":
            entries.append(_entry(obj, where, number))
        elif kind == "skipped":
            if type(obj.get("key")) is not str:
                raise CorruptManifest(f"{where}: skipped line without a string 'key'")
            skipped.append(obj)
        elif kind == "archive":
            raise CorruptManifest(f"{where}: a second archive record")
        # other types: from a newer writer; ignored
    if header is None:
        raise CorruptManifest(f"{location}: empty manifest")
    return Manifest(header=header, entries=entries, skipped=skipped, location=location)


def load_manifest(s3: S3Client, bucket: str, archive_key: str) -> Manifest | None:
    """The manifest beside the archive, or None when there is none."""
    key = manifest_key(archive_key)
    location = f"s3://{bucket}/{key}"
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except AWS_ERRORS as exc:
        if error_code(exc) in NOT_FOUND_CODES:
            return None
        raise translate(exc, bucket=bucket, role="archive", action="read manifest", key=key) from None
    try:
        return parse_manifest(_lines(body), location)
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=bucket, role="archive", action="read manifest", key=key) from None
    finally:
        body.close()


def _lines(body, chunk: int = 1024 * 1024):
    """Lines of a streaming body, each bounded by MAX_LINE (+ one chunk)."""
    pending = b""
    while True:
        data = body.read(chunk)
        if not data:
            break
        pending += data
        *complete, pending = pending.split(b"\n")
        yield from complete
        if len(pending) > MAX_LINE:
            yield pending  # parse_manifest rejects it
            return
    if pending:
        yield pending
