"""An in-process S3 client for the scale benchmarks: a synthetic source of any number of
objects and a destination that keeps only what the engine reads back (staged tails, the
manifest's size, the archive's size, CRC and ETag), so a million objects or a GiB part
cost CPU, never the emulator. It counts every call by operation.

Source objects: `sizes` (key -> size), content from a repeating random block (so auto
mode stores it with stored blocks) or log-like text. Destination: multipart uploads whose
parts are read through (as botocore streams a file) and reduced to size, CRC-32 and an
ETag; Complete combines them the way S3 does (FULL_OBJECT CRC-32, multipart ETag).
"""

from __future__ import annotations

import hashlib
import io
import random
import tempfile
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from isal.isal_zlib import crc32_combine

from bucketzip.checksums import crc32_header, multipart_etag

_BLOCK = random.Random(5).randbytes(1024 * 1024 + 3)  # incompressible; + 3: no alignment with chunks


def random_bytes(offset: int, length: int) -> bytes:
    start = offset % len(_BLOCK)
    out = bytearray()
    while len(out) < length:
        out += _BLOCK[start : start + length - len(out)]
        start = 0
    return bytes(out)


def _missing(operation: str, key: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "NoSuchKey", "Message": key}, "ResponseMetadata": {"HTTPStatusCode": 404}}, operation
    )


class FakeS3:
    def __init__(self, source: str, dest: str, count: int, size_of: Callable[[int], int], key_of=None):
        self.source, self.dest, self.count, self.size_of = source, dest, count, size_of
        self.key_of = key_of or (lambda i: f"d{i % 1000:03d}/object-{i:09d}.json")
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.objects: dict[str, dict[str, Any]] = {}  # destination objects (small ones keep bytes)
        self.uploads: dict[str, dict[str, Any]] = {}
        self.modified = datetime(2026, 1, 2, tzinfo=UTC)
        self.bytes_uploaded = 0

    def _count(self, operation: str) -> None:
        with self.lock:
            self.calls[operation] += 1

    # -- source ------------------------------------------------------------------------

    def list_objects_v2(self, **kw: Any) -> dict[str, Any]:
        self._count("list_objects_v2")
        if kw["Bucket"] != self.source:
            contents = [{"Key": k, "Size": v["ContentLength"]} for k, v in sorted(self.objects.items())]
            contents = [c for c in contents if c["Key"].startswith(kw.get("Prefix", ""))][: kw.get("MaxKeys", 1000)]
            return {"IsTruncated": False, "Contents": contents, "KeyCount": len(contents)}
        start = int(kw.get("ContinuationToken") or 0)
        if kw.get("StartAfter"):  # keys are ordered by index
            start = int(kw["StartAfter"].rsplit("-", 1)[1].split(".")[0]) + 1
        end = min(self.count, start + kw.get("MaxKeys", 1000))
        page: dict[str, Any] = {
            "IsTruncated": end < self.count,
            "KeyCount": end - start,
            "Contents": [
                {
                    "Key": self.key_of(i),
                    "Size": self.size_of(i),
                    "ETag": f'"{i:032x}"',
                    "LastModified": self.modified,
                    "StorageClass": "STANDARD",
                }
                for i in range(start, end)
            ],
        }
        if end < self.count:
            page["NextContinuationToken"] = str(end)
        return page

    def _index(self, key: str) -> int:
        return int(key.rsplit("-", 1)[1].split(".")[0])

    def get_object(self, **kw: Any) -> dict[str, Any]:
        self._count("get_object")
        key = kw["Key"]
        if kw["Bucket"] != self.source:
            held = self.objects.get(key)
            if held is None or "body" not in held:
                raise _missing("GetObject", key)
            held["body"].seek(0)
            return {"Body": held["body"], "ContentLength": held["ContentLength"]}
        size = self.size_of(self._index(key))
        first, last = 0, size - 1
        if "Range" in kw:
            first, last = (int(x) for x in kw["Range"][6:].split("-"))
        data = random_bytes(first, max(0, min(last, size - 1) - first + 1))
        return {"Body": _Body(data), "ContentLength": len(data), "ContentType": "application/json", "Metadata": {}}

    def head_object(self, **kw: Any) -> dict[str, Any]:
        self._count("head_object")
        held = self.objects.get(kw["Key"]) if kw["Bucket"] == self.dest else None
        if held is None:
            raise _missing("HeadObject", kw["Key"])
        return {k: v for k, v in held.items() if k != "body"}

    # -- destination -------------------------------------------------------------------

    def create_multipart_upload(self, **kw: Any) -> dict[str, Any]:
        self._count("create_multipart_upload")
        upload_id = f"upload-{len(self.uploads)}"
        self.uploads[upload_id] = {
            "key": kw["Key"],
            "metadata": kw.get("Metadata") or {},
            "parts": {},
            "initiated": datetime.now(UTC),
        }
        return {"UploadId": upload_id}

    def list_multipart_uploads(self, **kw: Any) -> dict[str, Any]:
        self._count("list_multipart_uploads")
        uploads = [
            {"Key": u["key"], "UploadId": upload_id, "Initiated": u["initiated"]}
            for upload_id, u in self.uploads.items()
            if u["key"].startswith(kw.get("Prefix", ""))
        ]
        return {"Uploads": uploads, "IsTruncated": False}

    def upload_part(self, **kw: Any) -> dict[str, Any]:
        self._count("upload_part")
        crc, size = _consume(kw["Body"])
        etag = '"' + hashlib.md5(f"{kw['PartNumber']}:{size}:{crc}".encode()).hexdigest() + '"'
        with self.lock:
            self.uploads[kw["UploadId"]]["parts"][kw["PartNumber"]] = (etag, size, crc)
            self.bytes_uploaded += size
        return {"ETag": etag}

    def list_parts(self, **kw: Any) -> dict[str, Any]:
        self._count("list_parts")
        parts = sorted(self.uploads[kw["UploadId"]]["parts"].items())
        start = int(kw.get("PartNumberMarker") or 0)
        page = [p for p in parts if p[0] > start][:1000]
        truncated = bool(page) and page[-1][0] < parts[-1][0]
        out: dict[str, Any] = {
            "Parts": [{"PartNumber": n, "ETag": e, "Size": s} for n, (e, s, _) in page],
            "IsTruncated": truncated,
        }
        if truncated:
            out["NextPartNumberMarker"] = page[-1][0]
        return out

    def complete_multipart_upload(self, **kw: Any) -> dict[str, Any]:
        self._count("complete_multipart_upload")
        upload = self.uploads.pop(kw["UploadId"])
        crc, size, etags = 0, 0, []
        for part in kw["MultipartUpload"]["Parts"]:
            etag, part_size, part_crc = upload["parts"][part["PartNumber"]]
            crc, size = crc32_combine(crc, part_crc, part_size), size + part_size
            etags.append(etag)
        etag = multipart_etag(etags)
        self.objects[upload["key"]] = {
            "ContentLength": size,
            "ETag": etag,
            "Metadata": upload["metadata"],
            "ChecksumCRC32": crc32_header(crc),
            "ChecksumType": "FULL_OBJECT",
        }
        return {"ETag": etag}

    def abort_multipart_upload(self, **kw: Any) -> dict[str, Any]:
        self._count("abort_multipart_upload")
        self.uploads.pop(kw["UploadId"], None)
        return {}

    def put_object(self, **kw: Any) -> dict[str, Any]:
        self._count("put_object")
        body = kw.get("Body", b"")
        if isinstance(body, bytes | bytearray):
            body = io.BytesIO(body)
        # Streamed to a file, as S3 would take it: a staged tail may be GiBs, and holding
        # it here would charge the engine's peak RSS with the fake's memory.
        spill = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the held object
        digest, size = hashlib.md5(), 0
        while piece := body.read(1 << 20):
            spill.write(piece)
            digest.update(piece)
            size += len(piece)
        self.bytes_uploaded += size
        held: dict[str, Any] = {"ContentLength": size, "ETag": '"' + digest.hexdigest() + '"'}
        if not kw["Key"].endswith(".manifest.jsonl"):
            held["body"] = spill  # staged tails are read back
        self.objects[kw["Key"]] = held
        return {"ETag": held["ETag"]}

    def delete_object(self, **kw: Any) -> dict[str, Any]:
        self._count("delete_object")
        self.objects.pop(kw["Key"], None)
        return {}

    def delete_objects(self, **kw: Any) -> dict[str, Any]:
        self._count("delete_objects")
        for item in kw["Delete"]["Objects"]:
            self.objects.pop(item["Key"], None)
        return {}

    def get_paginator(self, name: str) -> _Paginator:
        return _Paginator(self, name)


class _Paginator:
    def __init__(self, s3: FakeS3, name: str):
        self.s3, self.name = s3, name

    def paginate(self, **kw: Any):
        yield self.s3.list_objects_v2(**kw)


class _Body(io.BytesIO):
    def iter_chunks(self, chunk_size: int = 1 << 20):
        while piece := self.read(chunk_size):
            yield piece


def _consume(body: Any) -> tuple[int, int]:
    """CRC-32 and size of a part body, read in 1 MiB pieces like botocore streams a file."""
    if isinstance(body, bytes | bytearray):
        return zlib.crc32(body), len(body)
    crc = size = 0
    while piece := body.read(1 << 20):
        crc, size = zlib.crc32(piece, crc), size + len(piece)
    return crc, size
