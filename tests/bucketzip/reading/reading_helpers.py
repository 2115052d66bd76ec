"""Plain helpers (not fixtures) for the reading tests, reusable by other tests:

    import sys; sys.path.insert(0, "tests/bucketzip/reading")   # or rely on this dir's conftest
    from reading_helpers import upload_zip, manifest_lines_for, zip_with_python, ...

- archives made by several writers: Python zipfile, zipstream-ng, Info-ZIP `zip`, 7-Zip;
- upload_zip(s3, bucket, key, path_or_bytes, manifest_lines=None): put the archive (and
  its manifest beside it, as bucketzip does);
- manifest_lines_for(...): a bucketzip-manifest/1 for any archive, from its directory;
- hand-made hostile archives (zip slip names, bombs, broken directories).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import zipstream

from bucketzip.manifest import manifest_key


# ---------------------------------------------------------------------------------- upload
def upload_zip(
    s3,
    bucket: str,
    key: str,
    path_or_bytes,
    manifest_lines: Iterable[dict | str | bytes] | None = None,
    multipart_threshold: int = 64 * 1024 * 1024,
) -> int:
    """Upload an archive (bytes or a file path); with manifest_lines, also its manifest at
    `<key>.manifest.jsonl` (dicts are JSON-encoded, one per line). Returns the archive size."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        size = len(data)
    else:
        from boto3.s3.transfer import TransferConfig

        size = os.path.getsize(path_or_bytes)
        s3.upload_file(str(path_or_bytes), bucket, key, Config=TransferConfig(multipart_threshold=multipart_threshold))
    if manifest_lines is not None:
        s3.put_object(Bucket=bucket, Key=manifest_key(key), Body=encode_manifest(manifest_lines))
    return size


def encode_manifest(lines: Iterable[dict | str | bytes]) -> bytes:
    out = []
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        if isinstance(line, str):
            line = line.encode("utf-8")
        out.append(line.rstrip(b"\n") + b"\n")
    return b"".join(out)


def manifest_lines_for(
    archive: bytes,
    *,
    bucket: str,
    key: str,
    source_bucket: str = "source",
    source_prefix: str = "",
    keys: Mapping[str, str] | None = None,
    headers: Mapping[str, Mapping] | None = None,
    skipped: Iterable[dict] = (),
) -> list[dict]:
    """A bucketzip-manifest/1 (list of line dicts) describing `archive` (any zip).

    keys: entry name -> original S3 key (default: the name); headers: entry name ->
    {"content_type": ..., "metadata": {...}, "etag": ..., "storage_class": ...}."""
    keys = keys or {}
    headers = headers or {}
    skipped = list(skipped)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        infos = z.infolist()
    lines: list[dict] = [
        {
            "type": "archive",
            "format": "bucketzip-manifest/1",
            "archive": {"bucket": bucket, "key": key},
            "source": {"bucket": source_bucket, "prefix": source_prefix},
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "entries": len(infos),
            "skipped": len(skipped),
        }
    ]
    for info in infos:
        if not info.flag_bits & 0x800:  # read names as bucketzip.reading does (UTF-8 if valid)
            try:
                info.filename = info.orig_filename.encode("cp437").decode("utf-8")
            except UnicodeError:
                pass
        extra = dict(headers.get(info.filename, {}))
        line = {
            "type": "entry",
            "name": info.filename,
            "key": keys.get(info.filename, info.filename),
            "version_id": None,
            "etag": extra.pop("etag", '"0123456789abcdef0123456789abcdef"'),
            "size": info.file_size,
            "last_modified": "2024-05-06T07:08:09Z",
            "storage_class": extra.pop("storage_class", "STANDARD"),
            "content_type": None,
            "content_encoding": None,
            "content_language": None,
            "content_disposition": None,
            "cache_control": None,
            "expires": None,
            "metadata": {},
            "crc32": info.CRC,
            "compressed_size": info.compress_size,
            "offset": info.header_offset,
            "method": "deflate" if info.compress_type == zipfile.ZIP_DEFLATED else "store",
        }
        line.update(extra)
        lines.append(line)
    for item in skipped:
        lines.append({"type": "skipped", "version_id": None, **item})
    return lines


# ---------------------------------------------------------------------------------- writers
def zip_with_python(files: Mapping[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def zip_with_zipstream(files: Mapping[str, bytes], compression: int = zipstream.ZIP_DEFLATED) -> bytes:
    """Streamed like bucketzip: data descriptors (flag bit 3), 0x5455 extras, UTF-8 flag."""
    zs = zipstream.ZipStream(compress_type=compression, compress_level=1 if compression else None)
    for name, data in files.items():
        if name.endswith("/"):
            zs.mkdir(name)
        else:
            zs.add(data, name)
    return bytes(zs)


def _materialize(files: Mapping[str, bytes], root: Path) -> None:
    for name, data in files.items():
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def zip_with_infozip(files: Mapping[str, bytes], options: tuple[str, ...] = ()) -> bytes:
    """Info-ZIP `zip -r` over the files written to a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        root.mkdir()
        _materialize(files, root)
        out = Path(tmp) / "out.zip"
        subprocess.run(["zip", "-q", "-r", *options, str(out), "."], cwd=root, check=True)
        return out.read_bytes()


def zip_with_7z(files: Mapping[str, bytes], options: tuple[str, ...] = ()) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        root.mkdir()
        _materialize(files, root)
        out = Path(tmp) / "out.zip"
        subprocess.run(
            ["7z", "a", "-tzip", "-bd", "-bso0", "-bsp0", *options, str(out), "."],
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return out.read_bytes()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


# ---------------------------------------------------------------------------------- hand-made
def raw_zip(entries: Iterable[tuple[bytes, bytes, dict]], *, comment: bytes = b"") -> bytes:
    """A zip from (raw name, stored data, overrides) with any lie in it: overrides may set
    'size', 'compressed_size', 'crc', 'method', 'offset' (central record), 'flags',
    'data' (raw payload written instead), 'external_attr', 'create_system', 'gap_before'
    (junk bytes written before the local header)."""
    out = bytearray()
    central = bytearray()
    count = 0
    for name, data, o in entries:
        payload = o.get("data", data)
        crc = o.get("crc", zlib.crc32(data))
        method = o.get("method", 0)
        csize = o.get("compressed_size", len(payload))
        size = o.get("size", len(data))
        flags = o.get("flags", 0)
        out += o.get("gap_before", b"")
        offset = len(out)
        out += (
            struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, flags, method, 0, 0x21, crc, csize, size, len(name), 0)
            + name
            + payload
        )
        central += (
            struct.pack(
                "<4s4B4HL2L5H2L",
                b"PK\x01\x02",
                20,
                o.get("create_system", 3),
                20,
                0,
                flags,
                method,
                0,
                0x21,
                crc,
                csize,
                size,
                len(name),
                0,
                0,
                0,
                0,
                o.get("external_attr", 0o100644 << 16),
                o.get("offset", offset),
            )
            + name
        )
        count += 1
    cd_offset = len(out)
    out += central
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), cd_offset, len(comment))
    out += comment
    return bytes(out)


def deflate_raw(data: bytes, level: int = 9) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def bomb_zip(real_size: int = 50 * 1024 * 1024, declared_size: int | None = None, name: bytes = b"bomb.bin") -> bytes:
    """One deflate entry of `real_size` zero bytes that declares `declared_size`."""
    data_crc = 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    pieces = []
    block = bytes(1024 * 1024)
    left = real_size
    while left:
        n = min(left, len(block))
        pieces.append(compressor.compress(block[:n]))
        data_crc = zlib.crc32(block[:n], data_crc)
        left -= n
    pieces.append(compressor.flush())
    payload = b"".join(pieces)
    declared = real_size if declared_size is None else declared_size
    return raw_zip(
        [
            (
                name,
                b"",
                {"data": payload, "method": 8, "size": declared, "crc": data_crc, "compressed_size": len(payload)},
            )
        ]
    )
