"""Server-side copy of a byte range of an object into a part of a multipart upload: the
one UploadPartCopy call of bucketzip. The bytes never pass through the worker.

Used for large stored entries (writer.py), by a single-worker run and by each segment of
a parallel one (into its own part numbers of the archive's upload). S3 (API Reference,
UploadPartCopy): a part copied this way obeys the multipart part limits (limits.py);
`CopySourceIfMatch` / a pinned VersionId make S3 refuse a source that changed since it
was listed; when the upload was created with the CRC32 checksum algorithm, CopyPartResult
carries the part's CRC-32 (emulators may omit it: the caller then knows the CRC some
other way).
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .checksums import crc32_combine
from .errors import ObjectChanged
from .limits import MiB
from .s3errors import AWS_ERRORS, GONE_CODES, PRECONDITION_CODES, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef

# Stored objects from this size on are placed by UploadPartCopy instead of streamed. Why
# this size: the part before a copied entry is topped up with the object's first bytes and
# its last bytes (under one part) are read too, so up to two parts of each copied object
# still pass through the worker; at the default 16 MiB parts an object of 64 MiB (4 parts)
# or more keeps at least half its bytes in S3, and the HeadObject and per-part requests
# the copy adds cost less than the bytes saved. Below it, streaming is as cheap.
COPY_MIN_BYTES = 64 * MiB
# ... and at least this many of the run's (starting) part size: a smaller object may fill no
# whole part at all (the top-up takes up to one part, the remainder is under one), and would
# then only be read by the writer alone instead of by the prefetcher's parallel GETs.
COPY_MIN_PARTS = 2
# `auto` copies an already-compressed object whose CRC-32 S3 does not report only when the
# read-only pass that computes it fits well inside one step (the pass is not resumable):
# 16 GiB at one Lambda's ~75 MB/s is about 230 s of its 15 minutes. Larger ones stream.
PASS_MAX_BYTES = 16 * 1024 * MiB
# Bytes per ranged GET of a read-only pass (and per read of the bytes a copy leaves over).
READ_PIECE_BYTES = 8 * MiB


@dataclass(frozen=True)
class CopiedPart:
    etag: str
    crc: int | None  # from CopyPartResult.ChecksumCRC32 when S3 gives one


class SourceChanged(ObjectChanged):
    """The copy's source is no longer the object that was listed (its ETag differs, the
    pinned version or the object is gone): the caller treats it like a streamed read that
    found the object changed (strict: fail; else truncate the entry and report it)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason  # short, for the manifest's skipped line


def _source_gone(exc: BaseException, where: str) -> SourceChanged | None:
    """The source is not the listed object any more (or cannot be read as it is): what a
    streamed read reports as the object's skip or truncation reason (fetch._reason)."""
    code = error_code(exc)
    if code in PRECONDITION_CODES:
        reason = "changed after listing (ETag differs)"
    elif code == "InvalidObjectState":
        reason = "archived storage class (GLACIER/DEEP_ARCHIVE) not restored"
    elif code in GONE_CODES:
        reason = "deleted after listing"
    else:
        return None
    return SourceChanged(f"{where}: {reason} ({code})", reason)


def parse_crc32(value: str | None) -> int | None:
    """A full CRC-32 header value (base64 of 4 big-endian bytes); None for anything else
    (absent, or a composite "...-N" checksum)."""
    if not value or "-" in value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return int.from_bytes(raw, "big") if len(raw) == 4 else None


def copy_part(
    s3: S3Client,
    *,
    bucket: str,
    key: str,
    upload_id: str,
    number: int,
    source_bucket: str,
    source_key: str,
    first: int,
    last: int,
    version_id: str | None = None,
    if_match: str | None = None,
) -> CopiedPart:
    """Copy bytes `first`..`last` (inclusive) of the source object into part `number` of
    the upload. `version_id` and `if_match` (the ETag listed) pin the source: a source
    that is not that object any more raises SourceChanged; other failures are translated
    (s3errors) with a message naming both objects."""
    source: CopySourceTypeDef = {"Bucket": source_bucket, "Key": source_key}
    if version_id:
        source["VersionId"] = version_id
    kwargs: dict[str, Any] = {"CopySourceIfMatch": if_match} if if_match else {}
    try:
        response = s3.upload_part_copy(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource=source,
            CopySourceRange=f"bytes={first}-{last}",
            **kwargs,
        )
    except AWS_ERRORS as exc:
        where = f"s3://{source_bucket}/{source_key}"
        into = f"part {number} of s3://{bucket}/{key}"
        gone = _source_gone(exc, f"{where} (copying into {into})")
        if gone is not None:
            raise gone from None
        if error_code(exc) == "NoSuchUpload":
            raise translate(
                exc,
                bucket=bucket,
                role="destination",
                action=f"copy {where} bytes {first}-{last} into part {number} of",
                key=key,
            ) from None
        raise translate(
            exc,
            bucket=source_bucket,
            role="source",
            action=f"copy bytes {first}-{last} into {into} from",
            key=source_key,
        ) from None
    result = response["CopyPartResult"]
    return CopiedPart(etag=result["ETag"], crc=parse_crc32(result.get("ChecksumCRC32")))


def full_object_crc(head: Mapping[str, Any]) -> int | None:
    """The object's CRC-32 from a HeadObject(ChecksumMode=ENABLED) answer when S3 keeps a
    full-object one; None otherwise. A composite checksum (the CRC of the parts' CRCs of a
    multipart upload) is no CRC of the bytes and does not count. Where S3 does not say the
    type (older objects, emulators), only a single-part object's (ETag without "-N") counts."""
    kind = head.get("ChecksumType")
    if kind == "FULL_OBJECT" or (kind is None and "-" not in str(head.get("ETag", ""))):
        return parse_crc32(head.get("ChecksumCRC32"))
    return None


def read_range(
    s3: S3Client,
    *,
    bucket: str,
    key: str,
    first: int,
    last: int,
    version_id: str | None = None,
    if_match: str | None = None,
    piece: int = MiB,
) -> Iterator[bytes]:
    """Bytes `first`..`last` of the object, streamed in pieces of at most `piece`, pinned
    like copy_part; a source that is not the listed object any more raises SourceChanged."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes={first}-{last}"}
    if version_id:
        kwargs["VersionId"] = version_id
    if if_match:
        kwargs["IfMatch"] = if_match
    where, got = f"s3://{bucket}/{key}", 0
    try:
        body = s3.get_object(**kwargs)["Body"]
        while data := body.read(piece):
            got += len(data)
            yield data
    except AWS_ERRORS + (OSError,) as exc:
        gone = _source_gone(exc, where)
        if gone is not None:
            raise gone from None
        raise translate(exc, bucket=bucket, role="source", action=f"read bytes {first}-{last} of", key=key) from None
    if got != last - first + 1:
        reason = f"changed after listing: read {got} bytes of range {first}-{last}"
        raise SourceChanged(f"{where} {reason}", reason)


def range_crc(s3: S3Client, **source: Any) -> int:
    """CRC-32 of a byte range (read_range's arguments), read once and dropped."""
    crc = 0
    for data in read_range(s3, **source):
        crc = zlib.crc32(data, crc)
    return crc


def object_crc(s3: S3Client, *, size: int, concurrency: int, **source: Any) -> int:
    """CRC-32 of a whole object from one read-only pass in parallel ranges, combined with
    crc32_combine: every byte read once, none kept or uploaded."""
    if size == 0:
        return 0
    step = max(READ_PIECE_BYTES, -(-size // (4 * concurrency)))
    ranges = [(start, min(size, start + step) - 1) for start in range(0, size, step)]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(ranges)), thread_name_prefix="crc-pass") as pool:
        crcs = list(pool.map(lambda r: range_crc(s3, first=r[0], last=r[1], **source), ranges))
    crc = 0
    for (first, last), part in zip(ranges, crcs, strict=True):
        crc = crc32_combine(crc, part, last - first + 1)
    return crc
