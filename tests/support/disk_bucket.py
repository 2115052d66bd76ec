"""A destination bucket on local disk, for archives of gigabytes in seconds.

`DiskBucket(real, bucket, root)` is an S3 client: calls naming `bucket` are served from
files under `root`, every other call goes to `real` (the emulator's client, or a
SyntheticSource wrapping it). Multipart parts are files; CompleteMultipartUpload joins them
into one file, `path(key)`, which the real readers then open. So a > 4 GiB archive costs
one pass of the engine and a local copy, not HTTP round trips into the emulator.

It follows S3 where the engine can tell: a part's ETag is 32 hex digits that change with
the content (CRC-32 and size here, not S3's MD5 of the part: a fraction of the CPU), a
multipart ETag is S3's MD5 of the binary part ETags plus "-N", parts but the last must be
>= 5 MiB, Complete checks the part list (and per-part CRC-32s when given), an unknown upload
is NoSuchUpload, IfNoneMatch="*" / IfMatch are refused with PreconditionFailed, user
metadata is kept, and CRC32 checksums (per part, and FULL_OBJECT for the whole) are
computed when asked for. An operation it does not implement raises NotImplementedError naming
itself, so an engine change that needs more shows here, not as a wrong answer.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError
from isal.isal_zlib import crc32, crc32_combine  # 5-10x zlib's CRC-32 here

MIN_PART = 5 * 1024 * 1024  # S3: every part but the last is at least 5 MiB
MAX_COPY_PART = 5 * 1024**3  # S3 UploadPartCopy: a copied range is at most 5 GiB
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_IMPLEMENTED = {
    "list_objects_v2",
    "get_paginator",
    "head_object",
    "get_object",
    "put_object",
    "delete_object",
    "delete_objects",
    "create_multipart_upload",
    "upload_part",
    "upload_part_copy",
    "list_parts",
    "list_multipart_uploads",
    "complete_multipart_upload",
    "abort_multipart_upload",
}


def _error(code: str, status: int, message: str, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def _etag(crc: int, size: int) -> str:
    return f'"{crc:08x}{size:024x}"'


def _multipart_etag(parts: list[_Part]) -> str:
    digest = hashlib.md5(b"".join(bytes.fromhex(part.etag.strip('"')) for part in parts), usedforsecurity=False)
    return f'"{digest.hexdigest()}-{len(parts)}"'


def _crc32_b64(crc: int) -> str:
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


@dataclass
class _Object:
    path: Path
    size: int
    etag: str
    content_type: str
    modified: datetime
    crc32: str | None = None  # base64, when a checksum was asked for
    checksum_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class _Part:
    path: Path
    size: int
    etag: str
    crc: int
    offset: int = 0  # where the part's bytes start in `path` (a copied part: a link to its source)


@dataclass
class _Upload:
    key: str
    content_type: str
    checksum: str | None
    initiated: datetime
    metadata: dict[str, str]
    parts: dict[int, _Part] = field(default_factory=dict)


class _Body:
    """A streaming body over a byte range of a file (botocore's StreamingBody subset)."""

    def __init__(self, path: Path, start: int, length: int):
        self._file, self._left = open(path, "rb"), length
        self._file.seek(start)

    def read(self, amt: int | None = None) -> bytes:
        n = self._left if amt is None or amt < 0 else min(amt, self._left)
        if n == 0:
            return b""
        data = self._file.read(n)
        self._left -= len(data)
        if self._left == 0:
            self._file.close()
        return data

    def iter_chunks(self, chunk_size: int = 1 << 20):
        while chunk := self.read(chunk_size):
            yield chunk

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Paginator:
    def __init__(self, owner: DiskBucket, name: str):
        self._owner, self._name = owner, name

    def paginate(self, **kwargs: Any):
        if kwargs.get("Bucket") != self._owner.bucket:
            yield from self._owner._real.get_paginator(self._name).paginate(**kwargs)
            return
        if self._name == "list_multipart_uploads":  # one page: tests hold a few uploads
            yield self._owner.list_multipart_uploads(**kwargs)
            return
        if self._name != "list_objects_v2":
            raise NotImplementedError(f"DiskBucket: paginator {self._name}")
        while True:
            page = self._owner.list_objects_v2(**kwargs)
            yield page
            if not page["IsTruncated"]:
                return
            kwargs = {**kwargs, "ContinuationToken": page["NextContinuationToken"]}


class DiskBucket:
    def __init__(self, real: Any, bucket: str, root: str | os.PathLike):
        self._real, self.bucket, self.root = real, bucket, Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "parts").mkdir(exist_ok=True)
        self._objects: dict[str, _Object] = {}
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()  # the engine uploads parts from a thread pool

    def path(self, key: str) -> Path:
        """The local file holding object `key` (KeyError if there is none)."""
        return self._objects[key].path

    def keys(self) -> list[str]:
        return sorted(self._objects)

    def __getattr__(self, name: str):
        real = getattr(self._real, name)
        if name.startswith("_") or not callable(real):
            return real

        def call(*args: Any, **kwargs: Any):
            if kwargs.get("Bucket") == self.bucket:
                raise NotImplementedError(f"DiskBucket does not implement {name}")
            return real(*args, **kwargs)

        return call

    # -- listing ---------------------------------------------------------------------

    def get_paginator(self, name: str) -> _Paginator:
        return _Paginator(self, name)

    def list_objects_v2(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.list_objects_v2(**kw)
        prefix, after = kw.get("Prefix", ""), max(kw.get("StartAfter", ""), kw.get("ContinuationToken", ""))
        with self._lock:
            keys = [k for k in sorted(self._objects) if k.startswith(prefix) and k > after]
            page = keys[: kw.get("MaxKeys", 1000)]
            contents = [
                {
                    "Key": k,
                    "Size": self._objects[k].size,
                    "ETag": self._objects[k].etag,
                    "LastModified": self._objects[k].modified,
                    "StorageClass": "STANDARD",
                }
                for k in page
            ]
        result: dict[str, Any] = {"IsTruncated": len(page) < len(keys), "KeyCount": len(page), "Prefix": prefix}
        if contents:
            result["Contents"] = contents
        if result["IsTruncated"]:
            result["NextContinuationToken"] = page[-1]
        return result

    # -- objects ---------------------------------------------------------------------

    def _object(self, key: str, operation: str) -> _Object:
        try:
            return self._objects[key]
        except KeyError:
            code, status = ("404", 404) if operation == "HeadObject" else ("NoSuchKey", 404)
            raise _error(code, status, f"no such key {key!r}", operation) from None

    def _check_if_match(self, obj: _Object, kw: dict, operation: str) -> None:
        if "IfMatch" in kw and kw["IfMatch"] != obj.etag:
            raise _error("PreconditionFailed", 412, "IfMatch failed", operation)

    def head_object(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.head_object(**kw)
        with self._lock:
            obj = self._object(kw["Key"], "HeadObject")
        self._check_if_match(obj, kw, "HeadObject")
        result = {
            "ContentLength": obj.size,
            "ETag": obj.etag,
            "LastModified": obj.modified,
            "ContentType": obj.content_type,
            "Metadata": dict(obj.metadata),
        }
        if kw.get("ChecksumMode") == "ENABLED" and obj.crc32:
            result.update(ChecksumCRC32=obj.crc32, ChecksumType=obj.checksum_type)
        return result

    def get_object(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.get_object(**kw)
        with self._lock:
            obj = self._object(kw["Key"], "GetObject")
        self._check_if_match(obj, kw, "GetObject")
        start, length = 0, obj.size
        result: dict[str, Any] = {}
        if kw.get("Range"):
            match = _RANGE.match(kw["Range"])
            if not match or match.group(1) == match.group(2) == "":
                raise NotImplementedError(f"DiskBucket: Range {kw['Range']!r}")
            first, end = match.groups()
            if first == "":  # the last N bytes
                start, last = max(0, obj.size - int(end)), obj.size - 1
            else:
                start, last = int(first), obj.size - 1 if end == "" else min(int(end), obj.size - 1)
                if start >= obj.size:
                    raise _error("InvalidRange", 416, "range not satisfiable", "GetObject")
            length = last - start + 1
            result["ContentRange"] = f"bytes {start}-{last}/{obj.size}"
        result.update(
            Body=_Body(obj.path, start, length),
            ContentLength=length,
            ETag=obj.etag,
            LastModified=obj.modified,
            ContentType=obj.content_type,
            Metadata=dict(obj.metadata),
        )
        return result

    def _store(self, key: str, source: Path, **fields: Any) -> _Object:
        path = self.root / "objects" / quote(key, safe="")
        os.replace(source, path)
        obj = _Object(path=path, size=path.stat().st_size, modified=datetime.now(UTC), **fields)
        self._objects[key] = obj
        return obj

    def _refuse_existing(self, key: str, kw: dict, operation: str) -> None:
        """The conditional write headers: IfNoneMatch="*" (the key must be free), IfMatch."""
        if kw.get("IfNoneMatch") == "*" and key in self._objects:
            raise _error("PreconditionFailed", 412, f"{key!r} exists (IfNoneMatch)", operation)
        if "IfMatch" in kw:
            if key not in self._objects:
                raise _error("NoSuchKey", 404, f"no such key {key!r} (IfMatch)", operation)
            if self._objects[key].etag != kw["IfMatch"]:
                raise _error("PreconditionFailed", 412, f"{key!r} has another ETag (IfMatch)", operation)

    def put_object(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.put_object(**kw)
        body = kw.get("Body", b"")
        data = body.read() if hasattr(body, "read") else body.encode() if isinstance(body, str) else bytes(body)
        scratch = self.root / "parts" / uuid.uuid4().hex
        scratch.write_bytes(data)
        crc = crc32(data)
        with self._lock:
            self._refuse_existing(kw["Key"], kw, "PutObject")
            obj = self._store(
                kw["Key"],
                scratch,
                etag=_etag(crc, len(data)),
                content_type=kw.get("ContentType", "binary/octet-stream"),
                crc32=_crc32_b64(crc) if kw.get("ChecksumAlgorithm") == "CRC32" else None,
                checksum_type="FULL_OBJECT" if kw.get("ChecksumAlgorithm") == "CRC32" else None,
                metadata=dict(kw.get("Metadata") or {}),
            )
        return {"ETag": obj.etag}

    def delete_object(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.delete_object(**kw)
        with self._lock:
            obj = self._objects.pop(kw["Key"], None)
        if obj:
            obj.path.unlink(missing_ok=True)
        return {}

    def delete_objects(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.delete_objects(**kw)
        for item in kw["Delete"]["Objects"]:
            self.delete_object(Bucket=self.bucket, Key=item["Key"])
        return {} if kw["Delete"].get("Quiet") else {"Deleted": [{"Key": i["Key"]} for i in kw["Delete"]["Objects"]]}

    # -- multipart -------------------------------------------------------------------

    def _upload(self, kw: dict, operation: str) -> _Upload:
        upload = self._uploads.get(kw["UploadId"])
        if upload is None or upload.key != kw["Key"]:
            raise _error("NoSuchUpload", 404, "the upload does not exist", operation)
        return upload

    def create_multipart_upload(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.create_multipart_upload(**kw)
        checksum = kw.get("ChecksumAlgorithm")
        if checksum not in (None, "CRC32") or kw.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
            raise NotImplementedError(f"DiskBucket: checksum {checksum} {kw.get('ChecksumType')}")
        upload_id = uuid.uuid4().hex
        with self._lock:
            self._uploads[upload_id] = _Upload(
                key=kw["Key"],
                content_type=kw.get("ContentType", "binary/octet-stream"),
                checksum=checksum,
                initiated=datetime.now(UTC),
                metadata=dict(kw.get("Metadata") or {}),
            )
        result = {"Bucket": self.bucket, "Key": kw["Key"], "UploadId": upload_id}
        if checksum:
            result.update(ChecksumAlgorithm=checksum, ChecksumType="FULL_OBJECT")
        return result

    def upload_part(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.upload_part(**kw)
        number = kw["PartNumber"]
        if not 1 <= number <= 10_000:
            raise _error("InvalidArgument", 400, f"part number {number}", "UploadPart")
        body = kw["Body"]
        data = body.read() if hasattr(body, "read") else body
        crc = crc32(data)
        if "ChecksumCRC32" in kw and kw["ChecksumCRC32"] != _crc32_b64(crc):
            raise _error("BadDigest", 400, "CRC32 does not match the part", "UploadPart")
        path = self.root / "parts" / uuid.uuid4().hex
        path.write_bytes(data)
        part = _Part(path=path, size=len(data), etag=_etag(crc, len(data)), crc=crc)
        with self._lock:
            upload = self._upload(kw, "UploadPart")
            old = upload.parts.get(number)
            upload.parts[number] = part
        if old:
            old.path.unlink(missing_ok=True)
        result = {"ETag": part.etag}
        if upload.checksum:
            result["ChecksumCRC32"] = _crc32_b64(crc)
        return result

    def upload_part_copy(self, **kw: Any) -> dict:
        """UploadPartCopy: a range of an object of this bucket becomes a part without a
        byte copied (a hard link to the object's file and an offset: the part survives the
        object's deletion, as in S3); a range of another bucket's object (the synthetic
        source) is read through the wrapped client. CopySourceIfMatch is honoured; the
        part's CRC-32 is reported when the upload has a checksum, as S3 does."""
        if kw.get("Bucket") != self.bucket:
            return self._real.upload_part_copy(**kw)
        operation, source = "UploadPartCopy", kw["CopySource"]
        number = kw["PartNumber"]
        if not 1 <= number <= 10_000:
            raise _error("InvalidArgument", 400, f"part number {number}", operation)
        match = _RANGE.match(kw.get("CopySourceRange", ""))
        if not match or "" in match.groups():
            raise NotImplementedError(f"DiskBucket: CopySourceRange {kw.get('CopySourceRange')!r}")
        first, last = int(match.group(1)), int(match.group(2))
        size = last - first + 1
        if size > MAX_COPY_PART:
            raise _error("InvalidRequest", 400, "a copied part is at most 5 GiB", operation)
        path = self.root / "parts" / uuid.uuid4().hex
        if source["Bucket"] == self.bucket:
            with self._lock:
                obj = self._object(source["Key"], operation)
            if "CopySourceIfMatch" in kw and kw["CopySourceIfMatch"] != obj.etag:
                raise _error("PreconditionFailed", 412, "CopySourceIfMatch failed", operation)
            if last >= obj.size:
                raise _error("InvalidRange", 416, "range not satisfiable", operation)
            os.link(obj.path, path)
            crc, offset = 0, first
            with open(path, "rb") as f:
                f.seek(first)
                left = size
                while left:
                    piece = f.read(min(left, 16 << 20))
                    crc, left = crc32(piece, crc), left - len(piece)
        else:
            get: dict[str, Any] = {"Bucket": source["Bucket"], "Key": source["Key"], "Range": f"bytes={first}-{last}"}
            if "CopySourceIfMatch" in kw:
                get["IfMatch"] = kw["CopySourceIfMatch"]
            body = self._real.get_object(**get)["Body"]
            crc, offset = 0, 0
            with open(path, "wb") as out:
                while piece := body.read(16 << 20):
                    out.write(piece)
                    crc = crc32(piece, crc)
            if path.stat().st_size != size:
                path.unlink()
                raise _error("InvalidRange", 416, "range not satisfiable", operation)
        part = _Part(path=path, size=size, etag=_etag(crc, size), crc=crc, offset=offset)
        with self._lock:
            try:
                upload = self._upload(kw, operation)
            except ClientError:
                path.unlink(missing_ok=True)
                raise
            old = upload.parts.get(number)
            upload.parts[number] = part
        if old:
            old.path.unlink(missing_ok=True)
        result: dict[str, Any] = {"ETag": part.etag}
        if upload.checksum:
            result["ChecksumCRC32"] = _crc32_b64(crc)
        return {"CopyPartResult": result}

    def list_parts(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.list_parts(**kw)
        marker, limit = int(kw.get("PartNumberMarker", 0)), kw.get("MaxParts", 1000)
        with self._lock:
            upload = self._upload(kw, "ListParts")
            numbers = sorted(n for n in upload.parts if n > marker)
            page = numbers[:limit]
            parts = [{"PartNumber": n, "ETag": upload.parts[n].etag, "Size": upload.parts[n].size} for n in page]
        result: dict[str, Any] = {"Parts": parts, "IsTruncated": len(page) < len(numbers)}
        if result["IsTruncated"]:
            result["NextPartNumberMarker"] = page[-1]
        return result

    def list_multipart_uploads(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.list_multipart_uploads(**kw)
        with self._lock:
            uploads = [
                {"Key": u.key, "UploadId": i, "Initiated": u.initiated}
                for i, u in sorted(self._uploads.items(), key=lambda item: item[1].key)
                if u.key.startswith(kw.get("Prefix", ""))
            ]
        return {"Bucket": self.bucket, "Uploads": uploads, "IsTruncated": False}

    def abort_multipart_upload(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.abort_multipart_upload(**kw)
        with self._lock:
            upload = self._upload(kw, "AbortMultipartUpload")
            del self._uploads[kw["UploadId"]]
        for part in upload.parts.values():
            part.path.unlink(missing_ok=True)
        return {}

    def complete_multipart_upload(self, **kw: Any) -> dict:
        if kw.get("Bucket") != self.bucket:
            return self._real.complete_multipart_upload(**kw)
        operation = "CompleteMultipartUpload"
        with self._lock:
            upload = self._upload(kw, operation)
            self._refuse_existing(kw["Key"], kw, operation)
            del self._uploads[kw["UploadId"]]  # taken: a concurrent Complete finds no upload
        try:
            chosen = self._chosen_parts(upload, kw["MultipartUpload"]["Parts"])
            scratch = self.root / "parts" / f"complete-{uuid.uuid4().hex}"
            with open(scratch, "wb") as out:
                for part in chosen:  # in the kernel: no 4 GiB through Python
                    with open(part.path, "rb") as f:
                        done = 0
                        while done < part.size:
                            done += os.copy_file_range(f.fileno(), out.fileno(), part.size - done, part.offset + done)
        except BaseException:
            with self._lock:
                self._uploads[kw["UploadId"]] = upload
            raise
        crc, size = 0, 0
        for part in chosen:
            crc, size = crc32_combine(crc, part.crc, part.size), size + part.size
        if upload.checksum and "ChecksumCRC32" in kw and kw["ChecksumCRC32"] != _crc32_b64(crc):
            scratch.unlink()
            with self._lock:
                self._uploads[kw["UploadId"]] = upload
            raise _error("BadDigest", 400, "the full-object CRC32 does not match", operation)
        with self._lock:
            self._refuse_existing(kw["Key"], kw, operation)
            obj = self._store(
                kw["Key"],
                scratch,
                etag=_multipart_etag(chosen),
                content_type=upload.content_type,
                metadata=upload.metadata,
                crc32=_crc32_b64(crc) if upload.checksum else None,
                checksum_type="FULL_OBJECT" if upload.checksum else None,
            )
        for part in upload.parts.values():
            part.path.unlink(missing_ok=True)
        result = {"Bucket": self.bucket, "Key": kw["Key"], "ETag": obj.etag}
        if obj.crc32:
            result.update(ChecksumCRC32=obj.crc32, ChecksumType="FULL_OBJECT")
        return result

    @staticmethod
    def _chosen_parts(upload: _Upload, listed: list[dict]) -> list[_Part]:
        operation = "CompleteMultipartUpload"
        numbers = [p["PartNumber"] for p in listed]
        if not numbers or numbers != sorted(set(numbers)):
            raise _error("InvalidPartOrder", 400, "parts must be listed in ascending order", operation)
        chosen = []
        for item in listed:
            part = upload.parts.get(item["PartNumber"])
            crc = item.get("ChecksumCRC32")
            if part is None or part.etag != item["ETag"] or (crc is not None and crc != _crc32_b64(part.crc)):
                raise _error("InvalidPart", 400, f"part {item['PartNumber']} is not uploaded as listed", operation)
            chosen.append(part)
        if any(part.size < MIN_PART for part in chosen[:-1]):
            raise _error("EntityTooSmall", 400, "a part but the last is under 5 MiB", operation)
        return chosen
