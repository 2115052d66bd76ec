"""The verbs of a parallel run (issue 10) beside the engine's: a segment run's start and
finish (its steps are engine.run_step), and assembly, which places the complete segments
into the archive's upload (assembly.py holds the pieces' layout and copies). The planner
(plan.py) comes before them; engine.finish_run finishes the run after them, and
engine.abort_run removes its segments.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from . import assembly, finish
from .deadline import Deadline
from .engine import _abort_upload, _commit, _complete, _create_upload, _phase_done, _segment_count, progress_of
from .errors import InputError, IntegrityError, RunExists, RunNotFound, StaleState
from .manifest import rebase_lines
from .plan import load_plan
from .records import rebase_central
from .results import Progress
from .segments import segment_object_key, segment_run_id
from .sink import ArchiveSink
from .state import ARCHIVING, ASSEMBLING, COMPLETE, COMPLETING, SEGMENTS, Cursor, Fragment, RunState, SegmentOf

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from .store import StateStore


def start_segment(s3: S3Client, store: StateStore, parent_id: str, index: int) -> Progress:
    """Record segment run `index` of the planned run `parent_id` (its shard of the listing)
    and create its staging upload. Idempotent: a retried or repeated call answers the
    segment's progress (phase "complete" once finish_segment is through)."""
    segment_id = segment_run_id(parent_id, index)
    try:
        state = store.load(segment_id)
    except RunNotFound:
        pass
    else:
        if not state.upload_id and state.phase == ARCHIVING:
            _create_upload(s3, store, state)
        return progress_of(state)
    parent = store.load(parent_id)
    if parent.phase != SEGMENTS:
        raise RunNotFound(f"run {parent_id} is in phase {parent.phase!r}, not segments: no segment to start")
    shards = load_plan(s3, parent)
    if not 0 <= index < len(shards):
        raise InputError(f"run {parent_id}: no shard {index} (the plan has {len(shards)})")
    shard = shards[index]
    state = RunState(
        run_id=segment_id,
        request=parent.request,
        upload_id="",
        started_at=time.time(),
        marked=True,
        segment=SegmentOf(parent_id, index, shard.start_after, shard.last_key, segment_object_key(parent_id, index)),
        cursor=Cursor(start_after=shard.start_after),
    )
    try:
        store.create(state)
    except RunExists:  # a concurrent start of the same segment won
        state = store.load(segment_id)
        if state.upload_id or state.phase != ARCHIVING:
            return progress_of(state)
    _create_upload(s3, store, state)
    return progress_of(state)


def finish_segment(s3: S3Client, store: StateStore, segment_id: str, deadline: Deadline) -> Progress:
    """Upload a segment's last part and complete its staging object, conditionally and
    proven like an archive (the run id in its metadata, size and CRC-32); done=True with
    phase "complete". Its state and fragments stay: assembly reads them. A segment that
    holds no bytes (every object of its shard vanished) completes with no object."""
    state = store.load(segment_id)
    if state.segment is None:
        raise InputError(f"run {segment_id} is not a segment run")
    if state.phase == ARCHIVING:
        if not _phase_done(state):
            raise RunNotFound(f"run {segment_id}: archiving is not done yet; run more steps before finishing")
        expected, attempt, old_tail = state.version, uuid.uuid4().hex, state.tail.staging_key
        if state.offset == 0:
            _abort_upload(s3, state)
            state.phase, state.finished_at = COMPLETE, time.time()
            store.commit(state, expected, None, 0)
            return progress_of(state)
        sink = ArchiveSink(s3, store, state, attempt)
        try:
            sink.write_last_part()
            fragment = Fragment(parts=sink.wait())
            state.tail = sink.save_tail()
        finally:
            sink.close()
        # Not counted in `steps`: assembly takes the directory records of the first
        # `steps` fragments, the archiving steps'.
        state.phase = COMPLETING
        _commit(s3, store, state, expected, attempt, fragment, old_tail)
    if state.phase == COMPLETING:
        expected = state.version
        state.etag = _complete(s3, state, finish.recorded_parts(store, segment_id))
        state.phase, state.finished_at = COMPLETE, time.time()
        store.commit(state, expected, None, 0)
    return progress_of(state)


def assemble_step(s3: S3Client, store: StateStore, run_id: str, deadline: Deadline) -> Progress:
    """Place the complete segments into the archive's upload, one committed piece at a
    time until the deadline (after one at least): their bytes (assembly.place), then each
    segment fragment's directory records and manifest lines rebased by the segment's
    offset, committed as one fragment of this run. Afterwards the run's offset, CRC,
    counts, parts and tail are those one run archiving every shard would have, and
    finish_run finishes it as any run (done=True)."""
    state = store.load(run_id)
    if state.phase == SEGMENTS:
        expected = state.version
        state.assembly.segments = len(load_plan(s3, state))
        state.phase = ASSEMBLING
        store.commit(state, expected, None, 0)
    if state.phase != ASSEMBLING:
        return progress_of(state)
    copier = assembly.Copier(s3, state, state.request.concurrency)
    segments: dict[int, tuple[RunState, list[list]] | None] = {}
    try:
        while not state.assembly.done:
            _copy_ahead(store, state, copier, segments)
            _assemble_piece(s3, store, state, copier, segments)
            if deadline.expired():
                break
    finally:
        copier.close()
    return progress_of(state)


# Segments whose pieces assembly looks at ahead of the one it places (Copier).
COPY_AHEAD_SEGMENTS = 64


def _segment_of(
    store: StateStore, state: RunState, index: int, loaded: dict[int, tuple[RunState, list[list]] | None]
) -> tuple[RunState, list[list]] | None:
    """Segment `index` of the run with its recorded parts, once complete (else None),
    loaded once per assemble_step call."""
    if loaded.get(index) is None:
        segment_id = segment_run_id(state.run_id, index)
        try:
            segment = store.load(segment_id)
        except RunNotFound:
            return None
        if segment.phase != COMPLETE:
            return None
        loaded[index] = (segment, finish.recorded_parts(store, segment_id) if segment.offset else [])
    return loaded[index]


def _copy_ahead(
    store: StateStore,
    state: RunState,
    copier: assembly.Copier,
    loaded: dict[int, tuple[RunState, list[list]] | None],
) -> None:
    """Start the copies of the pieces ahead (of complete segments, in order). Segments are
    loaded (state and recorded parts) only until enough copies are in view."""
    progress, window = state.assembly, []
    pieces: list[tuple[RunState, assembly.Piece, int]] = []
    for index in range(progress.segment, min(progress.segments, progress.segment + COPY_AHEAD_SEGMENTS)):
        segment = _segment_of(store, state, index, loaded)
        if segment is None:
            break
        window.append(segment)
        sizes = [(segment.offset, assembly.boundaries(parts)) for segment, parts in window]
        laid = assembly.layout(progress.placed, state.offset - state.uploaded, state.next_part, sizes)
        pieces = [(window[position][0], piece, number) for position, piece, number in laid]
        if sum(piece.kind == assembly.COPY for _, piece, _ in pieces) > copier.ahead:
            break
    copier.plan(pieces)


def _assemble_piece(
    s3: S3Client,
    store: StateStore,
    state: RunState,
    copier: assembly.Copier,
    loaded: dict[int, tuple[RunState, list[list]] | None],
) -> None:
    """One committed piece of assembly (see assemble_step)."""
    progress = state.assembly
    expected, attempt, old_tail = state.version, uuid.uuid4().hex, state.tail.staging_key
    if progress.segment >= progress.segments:
        progress.done = True
        store.commit(state, expected, None, 0)
        return
    segment_id = segment_run_id(state.run_id, progress.segment)
    found = _segment_of(store, state, progress.segment, loaded)
    if found is None:
        raise IntegrityError(f"run {state.run_id}: segment {progress.segment} ({segment_id}) is not complete")
    segment, parts = found
    if progress.placed < segment.offset:
        if store.current_version(state.run_id) != expected:  # fencing before the side effect
            raise StaleState(f"run {state.run_id}: another assembly step committed first")
        fragment = Fragment(parts=assembly.place(s3, state, segment, parts, attempt, copier))
    elif progress.fragment < segment.steps:
        _, blob = next(store.iter_fragments(segment_id, start=progress.fragment))
        written = Fragment.from_bytes(blob)
        fragment = Fragment(
            central=rebase_central(bytes(written.central), progress.base),
            manifest=rebase_lines(bytes(written.manifest), progress.base),
            skipped=written.skipped,
        )
        progress.fragment += 1
    else:
        if progress.placed_crc != segment.crc:
            raise IntegrityError(f"run {state.run_id}: segment {progress.segment} placed with another CRC-32")
        state.entries += segment.entries
        state.skipped += segment.skipped
        state.bytes_in += segment.bytes_in
        progress.segment += 1
        progress.base += segment.offset
        progress.placed = progress.placed_crc = progress.fragment = 0
        store.commit(state, expected, None, 0)
        return
    state.steps += 1  # finish_run reads the directory from the first `steps` fragments
    _commit(s3, store, state, expected, attempt, fragment, old_tail)


def segment_progress(store: StateStore, parent_id: str) -> list[Progress]:
    """Progress of each segment run of a parallel run that has state (for watch)."""
    parent = store.load(parent_id)
    out = []
    for index in range(_segment_count(parent)):
        try:
            out.append(progress_of(store.load(segment_run_id(parent_id, index))))
        except RunNotFound:
            continue
    return out


__all__ = ["start_segment", "finish_segment", "assemble_step", "segment_progress"]
