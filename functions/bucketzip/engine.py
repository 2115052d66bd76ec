"""The engine's verbs. Front doors (CLI, Lambda handlers) call only these (and, for a
parallel run, the planner's plan_step and parallel.py's segment and assembly verbs).

Each takes a boto3 S3 client, a StateStore and (for the looping verbs) a Deadline;
nothing Lambda-specific. The loop over them (start -> steps -> finish) is written once,
in driver.run_to_completion; the workflow runs the same verbs as separate Lambda calls.
On an exception the caller decides what becomes of the run (abort_run, or keep it to
resume).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from . import finish
from .config import ArchiveRequest
from .deadline import Deadline
from .errors import DestinationExists, InputError, IntegrityError, RunExists, RunNotFound, StaleState
from .manifest import manifest_key
from .parts import FIRST_TAIL_PART
from .results import ArchiveResult, Progress, capped_warnings
from .s3errors import AWS_ERRORS, error_code, translate
from .segments import segment_run_id
from .sink import ArchiveSink, staging_prefix
from .state import (
    ARCHIVING,
    ASSEMBLING,
    COMPLETE,
    COMPLETING,
    FINISHING,
    PLANNING,
    SEGMENTS,
    Fragment,
    RunState,
)
from .writer import StepWriter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

    from .store import StateStore


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:12]


def _phase_done(state: RunState) -> bool:
    """Whether the loop of the run's phase has nothing more to do. Past archiving (and
    assembly) no step has work: done, so that no Step loop (CLI, workflow) spins on a run
    resumed in finishing or completing. A parallel run is done planning once its phase
    is SEGMENTS (its segments are runs of their own)."""
    if state.phase == ARCHIVING:
        return state.cursor.exhausted and state.open_entry is None
    if state.phase == PLANNING:
        return False
    if state.phase == ASSEMBLING:
        return state.assembly.done
    return True


def part_count(state: RunState) -> int:
    """Parts the run has cut so far: a segment counts from its first part number; an
    assembled parallel run has its segments' parts and its own from FIRST_TAIL_PART."""
    if state.segment is not None:
        return state.next_part - state.segment.first_part
    if state.phase in (PLANNING, SEGMENTS):
        return 0
    if state.request.workers > 1:
        return state.assembly.parts + state.next_part - FIRST_TAIL_PART
    return state.next_part - 1


def progress_of(state: RunState, warnings: list[str] | None = None, warning_count: int = 0) -> Progress:
    return Progress(
        run_id=state.run_id,
        phase=state.phase,
        done=_phase_done(state),
        objects=state.entries,
        skipped=state.skipped,
        bytes_in=state.bytes_in,
        bytes_out=state.offset,
        parts=part_count(state),
        steps=state.steps,
        dest_bucket=state.request.dest_bucket,
        dest_key=state.request.dest_key,
        warnings=capped_warnings(warnings or [], max(warning_count, len(warnings or []))),
        suspended=state.suspended,
        shards=state.plan.shards,
    )


def start_run(s3: S3Client, store: StateStore, request: ArchiveRequest, run_id: str | None = None) -> Progress:
    """Check buckets and the destination key, record the run, create the multipart upload.
    With the run id of a run that has state already, returns its progress (a retried
    Start), after creating its upload if the first attempt died before recording it."""
    if run_id is not None:
        try:
            state = store.load(run_id)
        except RunNotFound:
            pass
        else:
            if not state.upload_id:
                _create_upload(s3, store, state)
            return progress_of(state)
    run_id = run_id or new_run_id()
    _check_source(s3, request)
    dest_etag = _check_destination(s3, request)
    # Intent first: the run is on record before its upload exists, so whatever dies
    # between the two, Start's retry, a resume or an abort finds the upload (see
    # _unrecorded_uploads) instead of leaving it to the lifecycle rule.
    state = RunState(
        run_id=run_id,
        request=request,
        upload_id="",
        started_at=time.time(),
        dest_etag=dest_etag,
        marked=True,
        # A parallel run plans its shards first (plan.plan_step); its archive's upload is
        # created now all the same, so that its key is taken and abort finds everything.
        phase=PLANNING if request.workers > 1 else ARCHIVING,
    )
    try:
        store.create(state)
    except RunExists:  # a concurrent Start of the same run won
        state = store.load(run_id)
        if not state.upload_id:
            _create_upload(s3, store, state)
        return progress_of(state)
    _create_upload(s3, store, state)
    return progress_of(state)


# Uploads at the run's key initiated this long after its intent was recorded may be its
# own, created by an attempt that died before recording the id (Start's retries end well
# within it); the lower bound allows for clock skew between us and S3.
UNRECORDED_UPLOAD_WINDOW = (-300.0, 900.0)


def _create_upload(s3: S3Client, store: StateStore, state: RunState) -> None:
    request = state.request
    _abort_unrecorded_uploads(s3, state)
    try:
        state.upload_id = s3.create_multipart_upload(
            Bucket=request.dest_bucket,
            Key=state.upload_key,
            ContentType="application/zip",
            # S3 checks the archive's CRC-32 at Complete; the run id proves whose it is.
            ChecksumAlgorithm="CRC32",
            ChecksumType="FULL_OBJECT",
            Metadata={finish.RUN_METADATA: state.run_id},
        )["UploadId"]
    except AWS_ERRORS as exc:
        raise translate(
            exc, bucket=request.dest_bucket, role="destination", action="create upload", key=state.upload_key
        ) from None
    try:
        store.commit(state, state.version, None, 0)
    except BaseException:
        # A commit can fail after its write landed (a timeout on DynamoDB's answer, Ctrl-C
        # just after): the upload is then the run's, and aborting it would kill the run.
        if not _upload_recorded(store, state):
            _abort_upload(s3, state)
        raise


def _upload_recorded(store: StateStore, state: RunState) -> bool:
    """Whether the stored state names `state.upload_id`; when the store cannot say, the
    upload is kept (a retried Start or an abort finds it: _abort_unrecorded_uploads)."""
    try:
        return store.load(state.run_id).upload_id == state.upload_id
    except Exception:  # noqa: BLE001 - unknown is "keep": the cheap mistake is an orphan
        return True


def _abort_unrecorded_uploads(s3: S3Client, state: RunState) -> None:
    """Abort the uploads at the run's key that an attempt of this run may have created
    without recording them: initiated within UNRECORDED_UPLOAD_WINDOW of the run's intent.
    (ListMultipartUploads shows no metadata; the time window is what ties them to the run.
    Another run to the same key started within minutes of this one could lose its upload:
    of two such runs only one could win the key anyway.)"""
    request = state.request
    low, high = (state.started_at + d for d in UNRECORDED_UPLOAD_WINDOW)
    try:
        page = s3.list_multipart_uploads(Bucket=request.dest_bucket, Prefix=state.upload_key)
        for upload in page.get("Uploads", []):
            initiated = upload["Initiated"].timestamp()
            if upload["Key"] == state.upload_key and low <= initiated <= high:
                _abort_upload(s3, state, upload["UploadId"])
    except AWS_ERRORS as exc:
        raise translate(
            exc, bucket=request.dest_bucket, role="destination", action="list uploads", key=state.upload_key
        ) from None


def _check_source(s3: S3Client, request: ArchiveRequest) -> None:
    try:
        s3.list_objects_v2(Bucket=request.source_bucket, Prefix=request.source_prefix, MaxKeys=1)
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=request.source_bucket, role="source", action="list objects") from None


def _check_destination(s3: S3Client, request: ArchiveRequest) -> str | None:
    """One listing under the destination key answers both "does the bucket exist" and
    "is the key taken", and needs only a prefix-scoped s3:ListBucket (no HeadBucket).
    Returns the ETag of the object an overwrite replaces (the condition of Complete)."""
    try:
        page = s3.list_objects_v2(Bucket=request.dest_bucket, Prefix=request.dest_key, MaxKeys=1)
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=request.dest_bucket, role="destination", action="list objects") from None
    taken = [item["ETag"] for item in page.get("Contents", []) if item["Key"] == request.dest_key]
    if taken and not request.overwrite:
        raise DestinationExists(
            f"destination s3://{request.dest_bucket}/{request.dest_key} exists "
            '(ask for overwrite: --overwrite, or "overwrite": true)'
        )
    if not request.overwrite:
        # The manifest is written with If-None-Match too: one left from an archive that
        # was deleted would fail the run at its very end, so it is refused here.
        beside = manifest_key(request.dest_key)
        try:
            page = s3.list_objects_v2(Bucket=request.dest_bucket, Prefix=beside, MaxKeys=1)
        except AWS_ERRORS as exc:
            raise translate(exc, bucket=request.dest_bucket, role="destination", action="list objects") from None
        if any(item["Key"] == beside for item in page.get("Contents", [])):
            raise DestinationExists(
                f"destination s3://{request.dest_bucket}/{beside} (the manifest's key) exists "
                '(ask for overwrite: --overwrite, or "overwrite": true)'
            )
    return taken[0] if taken else None


def run_step(s3: S3Client, store: StateStore, run_id: str, deadline: Deadline, observer=None) -> Progress:
    """Archive until the deadline or step budget; commit; report progress (done=True at end
    of listing). `observer(source_bytes, entries)`, if given, hears of each chunk written."""
    state = store.load(run_id)
    if state.phase != ARCHIVING or progress_of(state).done:
        return progress_of(state)
    expected, attempt, old_tail = state.version, uuid.uuid4().hex, state.tail.staging_key
    sink = ArchiveSink(s3, store, state, attempt)
    writer = StepWriter(s3, store, state, sink, deadline, observer)
    try:
        writer.run()
        if state.segment is not None and _phase_done(state):
            # A segment's last part goes out now, not staged as a tail for finish_segment
            # to read back: that would move up to a part and 5 MiB more through the worker.
            sink.write_last_part()
        writer.fragment.parts = sink.wait()
        state.tail = sink.save_tail()
    finally:
        sink.close()
    state.steps += 1
    _commit(s3, store, state, expected, attempt, writer.fragment, old_tail)
    return progress_of(state, writer.warnings, writer.warning_count)


def _commit(
    s3: S3Client,
    store: StateStore,
    state: RunState,
    expected: int,
    attempt: str,
    fragment: Fragment,
    old_tail: str | None,
) -> None:
    try:
        pieces = store.put_fragment(state.run_id, attempt, fragment.to_bytes())
        store.commit(state, expected, attempt, pieces)
    except (StaleState, RunNotFound):
        # A zombie step (another committed first, or the run was aborted meanwhile): the
        # tail it staged is nobody's; an abort that swept the staging prefix before it
        # was written would leave it behind.
        new_tail = state.tail.staging_key
        if new_tail and new_tail != old_tail:
            try:
                s3.delete_object(Bucket=state.request.dest_bucket, Key=new_tail)
            except AWS_ERRORS:
                pass
        if store.current_version(state.run_id) is None:  # aborted: its fragment pieces too
            store.delete_run(state.run_id)
        raise
    if old_tail and old_tail != state.tail.staging_key:
        try:  # best effort: finish and abort sweep the staging prefix anyway
            s3.delete_object(Bucket=state.request.dest_bucket, Key=old_tail)
        except AWS_ERRORS:
            pass


def finish_run(s3: S3Client, store: StateStore, run_id: str, deadline: Deadline) -> ArchiveResult | Progress:
    """Write central directory + end records, complete the upload, write the manifest,
    delete state. Returns Progress(phase="finishing", done=False) when it must be called again.
    A retried call after success (its answer was lost) returns the same result."""
    try:
        state = store.load(run_id)
    except RunNotFound:
        recorded = store.load_result(run_id)
        if recorded is None:
            raise
        return ArchiveResult(**recorded)
    if state.segment is not None:
        raise InputError(f"run {run_id} is a segment of run {state.segment.parent}: finish_segment finishes it")
    if state.phase in (ARCHIVING, PLANNING, SEGMENTS, ASSEMBLING) and not (
        state.phase in (ARCHIVING, ASSEMBLING) and _phase_done(state)
    ):
        raise RunNotFound(f"run {run_id}: {state.phase} is not done yet; run more steps before finishing")
    if state.phase in (ARCHIVING, ASSEMBLING, FINISHING):
        expected, attempt, old_tail = state.version, uuid.uuid4().hex, state.tail.staging_key
        sink = ArchiveSink(s3, store, state, attempt)
        try:
            written = finish.write_directory(s3, store, state, sink, deadline)
            fragment = Fragment(parts=sink.wait())
            state.tail = sink.save_tail()
        finally:
            sink.close()
        state.steps += 1
        if written:
            state.phase = COMPLETING  # every part is out: a retry only has to complete
        _commit(s3, store, state, expected, attempt, fragment, old_tail)
        if not written:
            return progress_of(state)
    if state.phase == COMPLETING:
        expected = state.version
        state.etag = _complete(s3, state, finish.recorded_parts(store, run_id))
        state.phase, state.finished_at = COMPLETE, time.time()
        store.commit(state, expected, None, 0)
    if not state.manifest.done:
        # The archive is there: the result is recorded first (again on a retry: a put),
        # so that whichever later write dies (manifest, deletes), a retry answers it.
        store.record_result(run_id, _result(state).to_json())
    if not finish.write_manifest(s3, store, state, deadline):
        return progress_of(state)
    _delete_staging(s3, state)  # the segments' tails too: they lie under the run's prefix
    _delete_segments(store, state)
    store.delete_run(run_id)  # the state item last (and the recorded result stays)
    return _result(state)


def _result(state: RunState) -> ArchiveResult:
    request = state.request
    return ArchiveResult(
        run_id=state.run_id,
        bucket=request.dest_bucket,
        key=request.dest_key,
        size=state.offset,
        entries=state.entries,
        parts=part_count(state),
        skipped=state.skipped,
        manifest_key=manifest_key(request.dest_key),
        etag=state.etag,
        steps=state.steps,
        duration_seconds=round((state.finished_at or time.time()) - state.started_at, 3),
    )


def _complete(s3: S3Client, state: RunState, parts: list[list]) -> str:
    """Check the parts, complete the upload, prove the object at the key is this run's
    archive. When checking or completing fails, the proof alone decides: an earlier call
    may have completed it (its answer lost, the upload gone). Without proof, no success."""
    try:
        finish.check_parts(s3, state, parts)
        finish.complete_upload(s3, state, parts)
    except Exception:
        etag = finish.proven(s3, state, parts)
        if etag is None:
            raise
        return etag
    etag, why = finish.proof(s3, state, parts)
    if why == "other":  # a racing Complete of another run landed after ours
        raise finish.lost_race(state)
    if etag is None:
        request = state.request
        raise IntegrityError(
            f"run {state.run_id}: s3://{request.dest_bucket}/{state.upload_key} was completed but is not "
            "this run's archive (size, CRC-32 or ETag differ)"
        )
    return etag


def abort_run(s3: S3Client, store: StateStore, run_id: str) -> None:
    """Abort the upload, delete staging objects and state. Idempotent. A run whose
    archive was already completed keeps it: only its leftovers are removed."""
    try:
        state = store.load(run_id)
    except RunNotFound:
        store.delete_run(run_id)  # orphan fragments of a run whose state is gone
        return
    if not state.upload_id:  # died between recording the run and recording its upload
        _abort_unrecorded_uploads(s3, state)
    elif state.phase != COMPLETE:
        _abort_upload(s3, state)  # after a completed upload this is a harmless NoSuchUpload
    finish.abort_manifest(s3, state)
    _delete_segments(store, state)
    _delete_staging(s3, state)
    store.delete_run(run_id)


def _abort_upload(s3: S3Client, state: RunState, upload_id: str | None = None) -> None:
    request = state.request
    try:
        s3.abort_multipart_upload(
            Bucket=request.dest_bucket, Key=state.upload_key, UploadId=upload_id or state.upload_id
        )
    except AWS_ERRORS as exc:
        if error_code(exc) not in ("NoSuchUpload", "404"):
            raise translate(
                exc, bucket=request.dest_bucket, role="destination", action="abort upload", key=state.upload_key
            ) from None


def _delete_staging(s3: S3Client, state: RunState) -> None:
    bucket, prefix = state.request.dest_bucket, staging_prefix(state.run_id)
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            keys: list[ObjectIdentifierTypeDef] = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=bucket, role="destination", action="delete staging objects") from None


# -- parallel runs: what finish and abort clean up (the verbs are in parallel.py) ---------


def _segment_count(state: RunState) -> int:
    """Shards of a parallel run: from its assembly, else from its plan's progress."""
    if state.segment is not None or state.request.workers <= 1:
        return 0
    if state.assembly.segments >= 0:
        return state.assembly.segments
    plan = getattr(state, "plan", None)  # plan.PlanProgress (the planner's)
    return int(getattr(plan, "shards", 0) or 0)


def _delete_segments(store: StateStore, state: RunState) -> None:
    """Remove a parallel run's segment runs (their states and fragments). Their parts are
    the run's upload's, and their tails lie under its staging prefix: both go with the run."""
    if state.segment is not None or state.request.workers <= 1:
        return
    for index in range(_segment_count(state)):
        store.delete_run(segment_run_id(state.run_id, index))


def suspend_run(store: StateStore, run_id: str, reason: str) -> Progress | None:
    """Mark the run suspended (transient faults outlasted the retries) and keep everything:
    state, upload, staging. None when the run has no state (nothing to keep)."""
    for _ in range(5):  # a zombie step may commit meanwhile: mark the newest state
        try:
            state = store.load(run_id)
        except RunNotFound:
            return None
        state.suspended = reason or "suspended"
        try:
            store.commit(state, state.version, None, 0)
        except StaleState:
            continue
        return progress_of(state)
    return progress_of(store.load(run_id))


def resume_run(s3: S3Client, store: StateStore, run_id: str) -> Progress:
    """Progress of a run to continue; a suspended run is marked active again."""
    state = store.load(run_id)
    if state.suspended:
        state.suspended = ""
        store.commit(state, state.version, None, 0)
    if not state.upload_id:  # its start died between recording the run and the upload
        _create_upload(s3, store, state)
    return progress_of(state)


def get_progress(store: StateStore, run_id: str) -> Progress:
    """Progress from persisted state (for `bucketzip watch`)."""
    return progress_of(store.load(run_id))


__all__ = [
    "start_run",
    "run_step",
    "finish_run",
    "abort_run",
    "suspend_run",
    "resume_run",
    "get_progress",
    "new_run_id",
]
