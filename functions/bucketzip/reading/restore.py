"""`restore`: entries back to S3 objects under their original keys.

Each entry streams from one ranged GET of the archive through the checked decoder
into a PutObject (small) or a multipart upload (larger than one part), so memory per
worker is about one part. The object appears only after the entry's CRC and size
checked out: a single put is sent after the whole entry was decoded, and a multipart
upload is completed only then (aborted on any failure).

With a manifest, keys come from it, and Content-Type, Content-Encoding,
Content-Language, Content-Disposition, Cache-Control, Expires and the user metadata
are put back (the storage class too with keep_storage_class); without one, entry names
are the keys and Content-Type is guessed from the name.

Keys: a bucketzip archive's manifest holds each entry's original S3 key, written back
exactly (whatever it contains: it was a key). An entry name with no manifest line (a
foreign archive) becomes a key only when it is a safe relative path, as `extract` asks:
no '..' segment, not absolute, no backslash, no NUL; otherwise nothing is restored.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from ..errors import AccessDenied, BucketzipError, DestinationExists, UnsafePath
from ..limits import MAX_KEY_BYTES, MAX_PARTS, MIN_PART_SIZE
from ..s3errors import AWS_ERRORS, NOT_FOUND_CODES, error_code, translate
from .archive import Archive, check_no_overlaps, select, truncation
from .directory import Entry
from .extract import safe_parts
from .manifest import ManifestEntry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MiB
Progress = Callable[[int, int], None]


@dataclass
class RestoreItem:
    entry: Entry
    key: str  # destination key
    source: ManifestEntry | None  # manifest line (None without a manifest)
    truncated: str | None = None  # why the entry holds less than its object (archive.truncation)

    @property
    def size(self) -> int:
        return self.entry.size


@dataclass
class Failure:
    name: str
    message: str


@dataclass
class RestoreResult:
    planned: int = 0
    objects: int = 0
    bytes: int = 0
    multipart: int = 0
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def join_key(prefix: str, key: str) -> str:
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix + key


def plan_restore(archive: Archive, dest_prefix: str = "", patterns: Sequence[str] = ()) -> list[RestoreItem]:
    """What would be written: one item per selected entry, in archive order."""
    entries = archive.entries()
    check_no_overlaps(entries, archive.info, archive.name)
    manifest = archive.manifest()
    by_name = manifest.by_name() if manifest else {}
    items, unsafe = [], []
    for entry in select(entries, patterns, by_name):
        source = by_name.get(entry.name)
        if source is None:
            try:
                check_foreign_name(entry.name)
            except UnsafePath as exc:
                unsafe.append(str(exc))
                continue
        original = source.key if source else entry.name
        items.append(RestoreItem(entry, join_key(dest_prefix, original), source, truncation(entry, source)))
    if unsafe:
        more = f" (and {len(unsafe) - 3} more)" if len(unsafe) > 3 else ""
        raise UnsafePath(f"refusing to restore: {'; '.join(unsafe[:3])}{more}")
    return items


def check_foreign_name(name: str) -> None:
    """An entry name that is not in a manifest may become a key only if extract would
    write it (relative, no '..', no NUL) and it has no backslash (a separator to some
    tools, part of the key to S3: either way not what the archive's author meant)."""
    safe_parts(name)
    if "\\" in name:
        raise UnsafePath(f"{name!r}: entry name contains a backslash")


def _expires(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


def object_params(item: RestoreItem, keep_storage_class: bool = False) -> dict[str, Any]:
    """PutObject / CreateMultipartUpload parameters that restore the object's headers."""
    params: dict[str, Any] = {}
    source = item.source
    if source is None:
        guessed = mimetypes.guess_type(item.key)[0]
        if guessed and not item.key.endswith("/"):
            params["ContentType"] = guessed
        return params
    for attr, param in (
        ("content_type", "ContentType"),
        ("content_encoding", "ContentEncoding"),
        ("content_language", "ContentLanguage"),
        ("content_disposition", "ContentDisposition"),
        ("cache_control", "CacheControl"),
    ):
        value = getattr(source, attr)
        if value:
            params[param] = value
    expires = _expires(source.expires)
    if expires is not None:
        params["Expires"] = expires
    if source.metadata:
        params["Metadata"] = dict(source.metadata)
    if keep_storage_class and source.storage_class and source.storage_class != "STANDARD":
        params["StorageClass"] = source.storage_class
    return params


def part_size_for(size: int, part_size: int) -> int:
    """At least `part_size`, large enough that `size` bytes fit in 10,000 parts."""
    part_size = max(part_size, MIN_PART_SIZE)
    needed = -(-size // (MAX_PARTS - 1))
    if needed > part_size:
        part_size = -(-needed // MiB) * MiB
    return part_size


class _Writer:
    def __init__(
        self,
        s3: S3Client,
        archive: Archive,
        bucket: str,
        *,
        overwrite: bool,
        part_size: int,
        keep_storage_class: bool,
        progress: Progress | None,
    ):
        self.s3, self.archive, self.bucket = s3, archive, bucket
        self.overwrite, self.part_size = overwrite, part_size
        self.keep_storage_class = keep_storage_class
        self.progress = progress
        self.multipart = 0
        self._lock = threading.Lock()

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except AWS_ERRORS as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return False
            raise translate(exc, bucket=self.bucket, role="destination", action="head", key=key) from None

    def write(self, item: RestoreItem) -> int:
        key = item.key
        where = self._where(key)
        if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise BucketzipError(f"{where}: not a valid S3 key (empty or longer than {MAX_KEY_BYTES} bytes)")
        if not self.overwrite and self._exists(key):
            raise DestinationExists(f"{where} exists (use --overwrite)")
        params = object_params(item, self.keep_storage_class)
        guard: dict[str, Any] = {} if self.overwrite else {"IfNoneMatch": "*"}
        part_size = part_size_for(item.entry.size, self.part_size)
        data = self.archive.open_entry(item.entry)
        buffer = bytearray()
        try:
            for chunk in data:
                buffer += chunk
                if len(buffer) > part_size:
                    return self._multipart(key, params, guard, part_size, buffer, data)
        finally:
            data.close()
        # the generator finished: size and CRC checked; one PutObject
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=bytes(buffer), **params, **guard)
        except AWS_ERRORS as exc:
            raise translate(exc, bucket=self.bucket, role="destination", action="write", key=key) from None
        if self.progress:
            self.progress(len(buffer), 1)
        return len(buffer)

    def _multipart(self, key, params, guard, part_size, buffer: bytearray, data) -> int:
        where = self._where(key)
        try:
            upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, **params)["UploadId"]
        except AWS_ERRORS as exc:
            raise translate(exc, bucket=self.bucket, role="destination", action="write", key=key) from None
        parts: list[CompletedPartTypeDef] = []
        total = 0

        def send(body: bytes) -> None:
            nonlocal total
            number = len(parts) + 1
            if number > MAX_PARTS:
                raise BucketzipError(f"{where}: entry needs more than {MAX_PARTS} parts (bigger than declared)")
            response = self.s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
            parts.append({"PartNumber": number, "ETag": response["ETag"]})
            total += len(body)
            if self.progress:
                self.progress(len(body), 0)

        try:
            while True:
                while len(buffer) >= part_size:
                    send(bytes(buffer[:part_size]))
                    del buffer[:part_size]
                chunk = next(data, None)
                if chunk is None:
                    break
                buffer += chunk
            if buffer or not parts:
                send(bytes(buffer))
                buffer.clear()
            # the decoder finished without error: size and CRC are right
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **guard
            )
        except BaseException as exc:
            data.close()
            try:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except AWS_ERRORS:
                pass
            if isinstance(exc, AWS_ERRORS):
                raise translate(exc, bucket=self.bucket, role="destination", action="write", key=key) from None
            raise
        with self._lock:
            self.multipart += 1
        if self.progress:
            self.progress(0, 1)
        return total


def _jobs(items: Sequence[RestoreItem], bucket: str, accept: bool, result: RestoreResult) -> list[RestoreItem]:
    """The items to write: truncated ones only when accepted, and of two items with one
    key the later; the others are reported in `result`."""
    eligible = []
    for item in items:
        if item.truncated is None or accept:
            eligible.append(item)
            continue
        message = f"s3://{bucket}/{item.key}: not restored: {item.truncated} (--accept-truncated restores it anyway)"
        result.failures.append(Failure(item.entry.name, message))
    last_for = {item.key: i for i, item in enumerate(eligible)}
    jobs = []
    for i, item in enumerate(eligible):
        if last_for[item.key] != i:
            message = f"s3://{bucket}/{item.key}: two entries restore to this key; the later one was written"
            result.failures.append(Failure(item.entry.name, message))
            continue
        if item.truncated is not None:
            result.warnings.append(f"s3://{bucket}/{item.key}: restored although truncated ({item.truncated})")
        jobs.append(item)
    return jobs


def restore(
    s3: S3Client,
    archive: Archive,
    items: Sequence[RestoreItem],
    bucket: str,
    *,
    overwrite: bool = False,
    workers: int = 8,
    part_size: int = DEFAULT_PART_SIZE,
    keep_storage_class: bool = False,
    progress: Progress | None = None,
    accept_truncated: bool = False,
) -> RestoreResult:
    """Write the planned items to `bucket`, `workers` at a time. Per-item failures are
    collected in the result (nothing is left half-written). Truncated entries are not
    written (a failure each) unless `accept_truncated`."""
    result = RestoreResult(planned=len(items))
    try:
        s3.head_bucket(Bucket=bucket)
    except AWS_ERRORS as exc:
        error = translate(exc, bucket=bucket, role="destination", action="check")
        if not isinstance(error, AccessDenied):  # may write without listing rights: let puts tell
            raise error from None
    writer = _Writer(
        s3,
        archive,
        bucket,
        overwrite=overwrite,
        part_size=part_size,
        keep_storage_class=keep_storage_class,
        progress=progress,
    )
    jobs = _jobs(items, bucket, accept_truncated, result)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(writer.write, item): item for item in jobs}
        for future in as_completed(futures):
            item = futures[future]
            try:
                result.bytes += future.result()
                result.objects += 1
            except BucketzipError as exc:
                result.failures.append(Failure(item.entry.name, str(exc)))
    result.multipart = writer.multipart
    order = {item.entry.name: item.entry.index for item in items}
    result.failures.sort(key=lambda f: order.get(f.name, 0))
    return result
