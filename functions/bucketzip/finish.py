"""Finishing a run: the central directory (persisted fragments, in commit order) and the
end records go out as the last parts; the recorded part ETags are checked against what
S3 holds; the upload is completed and proven; then the manifest is written beside the
archive (its own resumable multipart upload)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .checksums import crc32_header, multipart_etag
from .deadline import Deadline
from .errors import DestinationExists, IntegrityError
from .manifest import header_line, manifest_key
from .records import end_records
from .s3errors import AWS_ERRORS, NOT_FOUND_CODES, PRECONDITION_CODES, error_code, translate
from .sink import ArchiveSink
from .state import COMPLETE, FINISHING, Fragment, RunState

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from .store import StateStore

MANIFEST_PART_BYTES = 8 * 1024 * 1024
# User metadata (x-amz-meta-bucketzip-run) naming the run that created an upload.
RUN_METADATA = "bucketzip-run"


def write_directory(s3: S3Client, store: StateStore, state: RunState, sink: ArchiveSink, deadline: Deadline) -> bool:
    """Stream directory records from `state.cd_commits_done` on; True when the end records
    and the last part are out, False when the deadline came first (after one fragment at
    least, so that every call makes progress)."""
    if state.phase != FINISHING:
        # The directory is in the archiving steps' fragments (one per committed step);
        # Finish's own commits add fragments too (their parts), never records, so the
        # count is fixed here: otherwise each call would add what the next one reads.
        state.phase, state.cd_offset, state.cd_commits_total = FINISHING, state.offset, state.steps
    for index, blob in store.iter_fragments(state.run_id, start=state.cd_commits_done):
        if index >= state.cd_commits_total:
            break
        sink.write(Fragment.from_bytes(blob).central)
        state.cd_commits_done = index + 1
        if deadline.expired() and state.cd_commits_done < state.cd_commits_total:
            return False  # at least one fragment per call: progress whatever the deadline
    sink.write(end_records(state.entries, state.cd_offset, state.offset - state.cd_offset))
    sink.write_last_part()
    return True


def recorded_parts(store: StateStore, run_id: str) -> list[list]:
    parts = []
    for _, blob in store.iter_fragments(run_id):
        parts.extend(Fragment.from_bytes(blob).parts)
    return sorted(parts)


def check_parts(s3: S3Client, state: RunState, parts: list[list]) -> None:
    """Every recorded part must be in S3 with the recorded ETag (a zombie step that
    uploaded different bytes under one of our numbers would show here)."""
    request = state.request
    held: dict[int, str] = {}
    kwargs: dict[str, Any] = {"Bucket": request.dest_bucket, "Key": state.upload_key, "UploadId": state.upload_id}
    while True:
        try:
            page = s3.list_parts(**kwargs)
        except AWS_ERRORS as exc:
            raise translate(
                exc, bucket=request.dest_bucket, role="destination", action="list parts of", key=state.upload_key
            ) from None
        held.update({p["PartNumber"]: p["ETag"] for p in page.get("Parts", [])})
        if not page.get("IsTruncated"):
            break
        kwargs["PartNumberMarker"] = page["NextPartNumberMarker"]
    numbers = [part[0] for part in parts]
    # Ascending and unique; gaps are allowed (S3 completes any ascending part numbers): a
    # parallel run's segments write ranges of numbers (plan.allot_parts) they may not fill.
    if any(later <= earlier for earlier, later in zip(numbers, numbers[1:], strict=False)):
        raise IntegrityError(f"run {state.run_id}: recorded part numbers are not ascending: {numbers[:20]}")
    bad = [part[0] for part in parts if held.get(part[0]) != part[1]]
    if bad:
        raise IntegrityError(f"run {state.run_id}: parts {bad[:10]} in S3 differ from the recorded ones")
    total = sum(part[2] for part in parts)
    if total != state.offset:
        raise IntegrityError(f"run {state.run_id}: parts add up to {total} bytes, archive is {state.offset}")


def complete_upload(s3: S3Client, state: RunState, parts: list[list]) -> None:
    """CompleteMultipartUpload, conditional so that of two runs to one key only one wins:
    IfNoneMatch="*" when the key was free at start, IfMatch on the ETag checked at start
    when the run replaces an object. A marked upload also sends the archive's CRC-32,
    which S3 verifies against the bytes (FULL_OBJECT) before it completes."""
    request = state.request
    kwargs: dict[str, Any] = {"IfMatch": state.dest_etag} if state.dest_etag else {"IfNoneMatch": "*"}
    completed: list[CompletedPartTypeDef] = []
    for part in parts:
        item: CompletedPartTypeDef = {"PartNumber": part[0], "ETag": part[1]}
        if state.marked:
            item["ChecksumCRC32"] = crc32_header(part[3])
        completed.append(item)
    if state.marked:
        kwargs.update(ChecksumCRC32=crc32_header(state.crc), ChecksumType="FULL_OBJECT")
    try:
        s3.complete_multipart_upload(
            Bucket=request.dest_bucket,
            Key=state.upload_key,
            UploadId=state.upload_id,
            MultipartUpload={"Parts": completed},
            **kwargs,
        )
    except AWS_ERRORS as exc:
        if error_code(exc) in PRECONDITION_CODES:
            raise lost_race(state) from None
        # ConditionalRequestConflict (a concurrent conditional write in flight) is transient
        raise translate(
            exc, bucket=request.dest_bucket, role="destination", action="complete upload", key=state.upload_key
        ) from None


def proven(s3: S3Client, state: RunState, parts: list[list]) -> str | None:
    """The ETag of the object at the key if it is provably this run's archive, else None."""
    etag, _ = proof(s3, state, parts)
    return etag


def proof(s3: S3Client, state: RunState, parts: list[list]) -> tuple[str | None, str]:
    """(ETag, "") if the object at the key is provably this run's archive, else (None, why
    not: "missing", "other" when another run's object is there, or "mismatch").
    Proof: the run id in its metadata (a marked upload) and the expected size, and the
    full-object CRC-32 S3 reports equals the archive's (correct for SSE-KMS too, whose
    ETags are no MD5s); where S3 reports no CRC (runs started before uploads were marked),
    the ETag must equal the one the recorded part MD5s give."""
    request = state.request
    try:
        head = s3.head_object(Bucket=request.dest_bucket, Key=state.upload_key, ChecksumMode="ENABLED")
    except AWS_ERRORS as exc:
        if error_code(exc) in NOT_FOUND_CODES:
            return None, "missing"
        raise translate(
            exc, bucket=request.dest_bucket, role="destination", action="check the archive", key=state.upload_key
        ) from None
    etag = head.get("ETag", "")
    if state.marked and (head.get("Metadata") or {}).get(RUN_METADATA) != state.run_id:
        return None, "other"
    if head.get("ContentLength") != state.offset:
        return None, "mismatch"
    reported = head.get("ChecksumCRC32") if head.get("ChecksumType") == "FULL_OBJECT" else None
    if state.marked and reported is not None:  # S3's word on the bytes decides, whatever the ETag
        return (etag, "") if reported == crc32_header(state.crc) else (None, "mismatch")
    expected = multipart_etag([part[1] for part in parts])
    return (etag, "") if expected is not None and etag == expected else (None, "mismatch")


def lost_race(state: RunState) -> DestinationExists:
    request = state.request
    return DestinationExists(
        f"run {state.run_id}: s3://{request.dest_bucket}/{state.upload_key} was written by someone else while "
        "this run was archiving (another run to the same key won); this run's archive was not stored"
    )


def write_manifest(s3: S3Client, store: StateStore, state: RunState, deadline: Deadline) -> bool:
    """Write the manifest as a multipart upload of its own, resumable: each part holds
    whole fragments' lines and is committed to the state (ManifestProgress) as it goes, so
    a manifest of tens of millions of lines spans Finish calls, and a retried call goes on
    where the last commit stopped. True when it is complete; False when the deadline came
    first (after one part at least: every call makes progress). Fragments are read once
    for the entry lines and, only when objects were skipped, once for the skipped lines."""
    progress = state.manifest
    if progress.done:
        return True
    bucket, key = state.request.dest_bucket, manifest_key(state.request.dest_key)
    try:
        # A call that completed the manifest may have died before recording it.
        if progress.upload_id is None or not _manifest_is_ours(s3, state, bucket, key):
            if progress.upload_id is None:
                _abort_manifest_uploads(s3, bucket, key)  # of a call that died before its commit
                progress.upload_id = s3.create_multipart_upload(
                    Bucket=bucket, Key=key, ContentType="application/x-ndjson", Metadata={RUN_METADATA: state.run_id}
                )["UploadId"]
                _save(store, state)
            if not _manifest_parts(s3, store, state, bucket, key, deadline):
                return False
            _complete_manifest(s3, state, bucket, key)
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=bucket, role="destination", action="write manifest", key=key) from None
    progress.done, progress.parts = True, []
    _save(store, state)
    return True


def _manifest_parts(
    s3: S3Client, store: StateStore, state: RunState, bucket: str, key: str, deadline: Deadline
) -> bool:
    """Upload the lines from the committed position on; the last part stays unfinished
    only when the deadline came (False)."""
    progress, request = state.manifest, state.request
    buffer = bytearray()
    if progress.stage == 0 and progress.index == 0 and not progress.parts:
        buffer += header_line(
            archive_bucket=request.dest_bucket,
            archive_key=request.dest_key,
            source_bucket=request.source_bucket,
            source_prefix=request.source_prefix,
            created=state.started_at,
            entries=state.entries,
            skipped=state.skipped,
        )
    stages = (0, 1) if state.skipped else (0,)
    for stage in stages:
        if stage < progress.stage:
            continue
        start = progress.index if stage == progress.stage else 0
        for index, blob in store.iter_fragments(state.run_id, start=start):
            fragment = Fragment.from_bytes(blob)
            buffer += fragment.manifest if stage == 0 else fragment.skipped
            if len(buffer) >= MANIFEST_PART_BYTES:
                _manifest_part(s3, state, bucket, key, bytes(buffer))
                buffer.clear()
                progress.stage, progress.index = stage, index + 1
                _save(store, state)
                if deadline.expired():
                    return False
        if stage + 1 in stages:
            progress.stage, progress.index = stage + 1, 0
    if buffer or not progress.parts:
        _manifest_part(s3, state, bucket, key, bytes(buffer))
    return True


def _save(store: StateStore, state: RunState) -> None:
    store.commit(state, state.version, None, 0)


def _manifest_part(s3: S3Client, state: RunState, bucket: str, key: str, body: bytes) -> None:
    progress = state.manifest
    assert progress.upload_id is not None
    number = len(progress.parts) + 1
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=progress.upload_id, PartNumber=number, Body=body)["ETag"]
    progress.parts.append([number, etag])


def _complete_manifest(s3: S3Client, state: RunState, bucket: str, key: str) -> None:
    """Complete, conditional like the archive's when the key was free at start: a manifest
    someone else wrote meanwhile is not replaced. A retried call whose first Complete
    went through finds the upload gone and this run's manifest at the key."""
    progress = state.manifest
    assert progress.upload_id is not None
    condition: dict[str, Any] = {} if state.request.overwrite else {"IfNoneMatch": "*"}
    try:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=progress.upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in progress.parts]},
            **condition,
        )
    except AWS_ERRORS as exc:
        if _manifest_is_ours(s3, state, bucket, key):
            return  # completed by an earlier attempt whose answer was lost
        if error_code(exc) in ("PreconditionFailed", "412"):
            raise DestinationExists(
                f"run {state.run_id}: s3://{bucket}/{key} was written by someone else; the archive is complete "
                "but its manifest could not be stored"
            ) from None
        raise


def _manifest_is_ours(s3: S3Client, state: RunState, bucket: str, key: str) -> bool:
    """The object at the manifest key was written by this run (its metadata says so)."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except AWS_ERRORS as exc:
        if error_code(exc) in NOT_FOUND_CODES:
            return False
        raise
    return (head.get("Metadata") or {}).get(RUN_METADATA) == state.run_id


def _abort_manifest_uploads(s3: S3Client, bucket: str, key: str) -> None:
    """Abort every upload in progress at exactly the manifest key. Only the run that won
    the archive's key (conditional Complete) writes its manifest, so an upload there is
    this run's, from a call that died between CreateMultipartUpload and the commit of its
    id, or the leftover of an earlier run of the key: neither must stay."""
    page = s3.list_multipart_uploads(Bucket=bucket, Prefix=key)
    for upload in page.get("Uploads", []):
        if upload["Key"] == key:
            try:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            except AWS_ERRORS as exc:
                if error_code(exc) not in ("NoSuchUpload", "404"):
                    raise


def abort_manifest(s3: S3Client, state: RunState) -> None:
    """Abort the manifest's upload (a run aborted while finishing). Idempotent."""
    progress = state.manifest
    if progress.done:
        return
    bucket, key = state.request.dest_bucket, manifest_key(state.request.dest_key)
    if progress.upload_id is None:
        if state.phase == COMPLETE:  # the archive is this run's: so is a manifest upload there
            try:
                _abort_manifest_uploads(s3, bucket, key)
            except AWS_ERRORS as exc:
                raise translate(exc, bucket=bucket, role="destination", action="abort manifest upload") from None
        return
    try:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=progress.upload_id)
    except AWS_ERRORS as exc:
        if error_code(exc) not in ("NoSuchUpload", "404"):
            raise translate(exc, bucket=bucket, role="destination", action="abort manifest upload", key=key) from None
