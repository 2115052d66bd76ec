"""Finishing a run: the central directory (persisted fragments, in commit order) and the
end records go out as the last parts; the recorded part ETags are checked against what
S3 holds; the upload is completed; then the manifest is written beside the archive."""

from __future__ import annotations

from botocore.exceptions import ClientError

from .config import MANIFEST_SUFFIX
from .deadline import Deadline
from .errors import IntegrityError
from .manifest import header_line
from .records import end_records
from .s3errors import error_code, translate
from .sink import ArchiveSink
from .state import FINISHING, Fragment, RunState

MANIFEST_PART_BYTES = 8 * 1024 * 1024


def write_directory(s3, store, state: RunState, sink: ArchiveSink, deadline: Deadline) -> bool:
    """Stream directory records from `state.cd_commits_done` on; True when the end records
    and the last part are out, False when the deadline came first."""
    if state.phase != FINISHING:
        state.phase, state.cd_offset = FINISHING, state.offset
    for index, blob in store.iter_fragments(state.run_id, start=state.cd_commits_done):
        sink.write(Fragment.from_bytes(blob).central)
        state.cd_commits_done = index + 1
        if deadline.expired():
            return False
    sink.write(end_records(state.entries, state.cd_offset, state.offset - state.cd_offset))
    sink.write_last_part()
    return True


def recorded_parts(store, run_id: str) -> list[list]:
    parts = []
    for _, blob in store.iter_fragments(run_id):
        parts.extend(Fragment.from_bytes(blob).parts)
    return sorted(parts)


def check_parts(s3, state: RunState, parts: list[list]) -> None:
    """Every recorded part must be in S3 with the recorded ETag (a zombie step that
    uploaded different bytes under one of our numbers would show here)."""
    request = state.request
    held, kwargs = {}, {"Bucket": request.dest_bucket, "Key": request.dest_key, "UploadId": state.upload_id}
    while True:
        page = s3.list_parts(**kwargs)
        held.update({p["PartNumber"]: p["ETag"] for p in page.get("Parts", [])})
        if not page.get("IsTruncated"):
            break
        kwargs["PartNumberMarker"] = page["NextPartNumberMarker"]
    numbers = [number for number, _, _ in parts]
    if numbers != list(range(1, len(parts) + 1)):
        raise IntegrityError(f"run {state.run_id}: recorded parts are not 1..{len(parts)}")
    bad = [number for number, etag, _ in parts if held.get(number) != etag]
    if bad:
        raise IntegrityError(f"run {state.run_id}: parts {bad[:10]} in S3 differ from the recorded ones")
    if sum(size for _, _, size in parts) != state.offset:
        raise IntegrityError(
            f"run {state.run_id}: parts add up to {sum(s for *_, s in parts)} bytes, archive is {state.offset}"
        )


def complete_upload(s3, state: RunState, parts: list[list]) -> str:
    request = state.request
    try:
        response = s3.complete_multipart_upload(
            Bucket=request.dest_bucket,
            Key=request.dest_key,
            UploadId=state.upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag, _ in parts]},
        )
    except ClientError as exc:
        raise translate(exc, bucket=request.dest_bucket, role="destination", action="complete upload") from None
    return response.get("ETag", "")


def manifest_lines(store, state: RunState):
    request = state.request
    yield header_line(
        archive_bucket=request.dest_bucket,
        archive_key=request.dest_key,
        source_bucket=request.source_bucket,
        source_prefix=request.source_prefix,
        created=state.started_at,
        entries=state.entries,
        skipped=state.skipped,
    )
    for name in ("manifest", "skipped"):
        for _, blob in store.iter_fragments(state.run_id):
            data = getattr(Fragment.from_bytes(blob), name)
            if data:
                yield data


def write_manifest(s3, store, state: RunState) -> str:
    """Stream the manifest: one PUT when small, a multipart upload otherwise."""
    bucket, key = state.request.dest_bucket, state.request.dest_key + MANIFEST_SUFFIX
    buffer, upload_id, parts = bytearray(), None, []
    try:
        for data in manifest_lines(store, state):
            buffer += data
            while len(buffer) >= MANIFEST_PART_BYTES:
                if upload_id is None:
                    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-ndjson")[
                        "UploadId"
                    ]
                body = bytes(buffer[:MANIFEST_PART_BYTES])
                del buffer[:MANIFEST_PART_BYTES]
                etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=body)[
                    "ETag"
                ]
                parts.append({"PartNumber": len(parts) + 1, "ETag": etag})
        if upload_id is None:
            s3.put_object(Bucket=bucket, Key=key, Body=bytes(buffer), ContentType="application/x-ndjson")
            return key
        if buffer:
            etag = s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=bytes(buffer)
            )["ETag"]
            parts.append({"PartNumber": len(parts) + 1, "ETag": etag})
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        return key
    except BaseException as exc:
        if upload_id is not None:
            try:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except ClientError:
                pass
        if isinstance(exc, ClientError):
            raise translate(exc, bucket=bucket, role="destination", action="write manifest") from None
        raise


def already_completed(s3, state: RunState) -> str | None:
    """After a crash between CompleteMultipartUpload and the state commit: the ETag of the
    archive if it is there with the expected size, else None."""
    request = state.request
    try:
        head = s3.head_object(Bucket=request.dest_bucket, Key=request.dest_key)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return head["ETag"] if head["ContentLength"] == state.offset else None
