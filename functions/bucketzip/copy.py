"""Server-side copy of a byte range of an object into a part of a multipart upload: the
one UploadPartCopy call of bucketzip. The bytes never pass through the worker.

Used by the single-worker path for large stored entries (writer.py) and by assembly of
parallel segments. S3 (API Reference, UploadPartCopy): a part copied this way obeys the
multipart part limits (limits.py); `CopySourceIfMatch` / a pinned VersionId make S3 refuse
a source that changed since it was listed; when the upload was created with the CRC32
checksum algorithm, CopyPartResult carries the part's CRC-32 (emulators may omit it: the
caller then knows the CRC some other way).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ObjectChanged
from .s3errors import AWS_ERRORS, GONE_CODES, PRECONDITION_CODES, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef


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
        code = error_code(exc)
        where = f"s3://{source_bucket}/{source_key}"
        into = f"part {number} of s3://{bucket}/{key}"
        if code in PRECONDITION_CODES:
            raise SourceChanged(
                f"{where} changed after listing (ETag differs); copying into {into}",
                "changed after listing (ETag differs)",
            ) from None
        if code in GONE_CODES and code != "InvalidObjectState":
            raise SourceChanged(
                f"{where} was deleted after listing ({code}); copying into {into}", "deleted after listing"
            ) from None
        if code in ("NoSuchUpload",):
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
