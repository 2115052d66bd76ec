"""The verbs of a parallel run (issue 10) beside the engine's: a segment run's start and
finish (its steps are engine.run_step), and assembly. The planner (plan.py) comes before
them; engine.finish_run finishes the run after them, and engine.abort_run removes its
segments.

Every segment uploads straight into the archive's own multipart upload, into the range of
part numbers its shard was given (plan.allot_parts), so no byte is copied or read back to
assemble the archive. Local headers and entry data hold no absolute offsets, so a
segment's bytes are right wherever it starts; only the central directory holds offsets,
and assembly rebases each segment's records by the archive offset where it starts.

A segment's last part must be 5 MiB at least (a part of another segment or the directory
follows it), which the sink ensures (sink.write_last_part). A segment of fewer bytes
uploads nothing: its bytes stay its tail, and assembly appends such segments' bytes, in
shard order, after all the others (as the first bytes of the parent's own parts, from
plan.FIRST_TAIL_PART on; the directory follows). Its entries then lie later in the archive
than in one worker's archive (the directory still lists them in shard order): the only
layout that differs from one worker's.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .checksums import crc32_combine
from .deadline import Deadline
from .engine import _commit, _segment_count, progress_of
from .errors import InputError, IntegrityError, RunExists, RunNotFound, StaleState
from .limits import MIN_PART_SIZE
from .manifest import rebase_lines
from .parts import FIRST_TAIL_PART
from .plan import load_plan
from .records import rebase_central
from .results import Progress
from .s3errors import AWS_ERRORS, translate
from .segments import segment_run_id
from .sink import ArchiveSink
from .state import ARCHIVING, ASSEMBLING, COMPLETE, SEGMENTS, Cursor, Fragment, RunState, SegmentOf

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from .store import StateStore

# Assembly takes the segments' fragments over into fragments of the parent of about this
# many bytes (directory records and manifest lines): one commit each.
ASSEMBLY_FRAGMENT_BYTES = 4 * 1024 * 1024
# Segment states, and segments' fragments, read at once (DynamoDB reads) by assembly ...
LOAD_CONCURRENCY = 16
# ... the fragments of at most this many entries in memory (about 300 bytes each: records
# and manifest lines), unless one segment alone has more.
READ_AHEAD_ENTRIES = 200_000


def start_segment(s3: S3Client, store: StateStore, parent_id: str, index: int) -> Progress:
    """Record segment run `index` of the planned run `parent_id` (its shard of the listing
    and its part numbers of the archive's upload). Idempotent: a retried or repeated call
    answers the segment's progress (phase "complete" once finish_segment is through)."""
    segment_id = segment_run_id(parent_id, index)
    try:
        return progress_of(store.load(segment_id))
    except RunNotFound:
        pass
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
        upload_id=parent.upload_id,
        started_at=time.time(),
        marked=parent.marked,
        next_part=shard.first_part,
        # The last segment lists to the end of the selection: keys created after planning,
        # past the plan's last key, are archived too (those within other shards' ranges
        # are, by the segments that list those ranges).
        segment=SegmentOf(
            parent_id,
            index,
            shard.start_after,
            None if index == len(shards) - 1 else shard.last_key,
            shard.first_part,
            shard.last_part,
            shard.part_size,
        ),
        cursor=Cursor(start_after=shard.start_after),
    )
    try:
        store.create(state)
    except RunExists:  # a concurrent start of the same segment won
        state = store.load(segment_id)
    return progress_of(state)


def finish_segment(s3: S3Client, store: StateStore, segment_id: str, deadline: Deadline) -> Progress:
    """Mark a segment complete: done=True with phase "complete". Its last step uploaded
    its last part already (engine.run_step); a segment resumed from an older state may
    still have one to upload here (5 MiB at least; a segment of fewer bytes keeps them as
    its tail). Its state and fragments stay: assembly reads them."""
    state = store.load(segment_id)
    if state.segment is None:
        raise InputError(f"run {segment_id} is not a segment run")
    if state.phase == ARCHIVING:
        if not progress_of(state).done:
            raise RunNotFound(f"run {segment_id}: archiving is not done yet; run more steps before finishing")
        expected, attempt, old_tail = state.version, uuid.uuid4().hex, state.tail.staging_key
        if state.offset == state.uploaded or is_relocated(state):  # nothing left to upload
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
        # The last part's fragment is not counted in `steps` (a segment's directory records
        # are in its archiving steps' fragments), but assembly takes every fragment's parts.
        state.phase, state.finished_at = COMPLETE, time.time()
        _commit(s3, store, state, expected, attempt, fragment, old_tail)
    return progress_of(state)


def is_relocated(segment: RunState) -> bool:
    """A segment too small for a part of its own: none of its bytes are uploaded, and
    assembly appends them after the other segments'."""
    return segment.uploaded == 0 and 0 < segment.offset < MIN_PART_SIZE


def assemble_step(s3: S3Client, store: StateStore, run_id: str, deadline: Deadline) -> Progress:
    """Assemble the complete segments into the run: first (one commit) the archive's
    offset, CRC-32 and counts from the segments' (no byte is read: each segment's bytes
    are in its parts already); then the segments' parts, directory records and manifest
    lines, rebased by where each segment starts, as fragments of this run (a commit each,
    until the deadline); then the bytes of the segments too small for a part of their
    own, appended. Afterwards the run is as if one run had archived every shard, and
    finish_run finishes it as any run (done=True)."""
    state = store.load(run_id)
    if state.phase not in (SEGMENTS, ASSEMBLING):
        return progress_of(state)
    segments = _complete_segments(s3, store, state)
    bases = segment_bases(segments)
    if state.phase == SEGMENTS:
        expected = state.version
        placed = [segment for segment in segments if not is_relocated(segment)]
        state.assembly.segments = len(segments)
        state.offset = state.uploaded = sum(segment.offset for segment in placed)
        state.crc = 0
        for segment in placed:
            state.crc = crc32_combine(state.crc, segment.crc, segment.offset)
        state.entries = sum(segment.entries for segment in segments)
        state.skipped = sum(segment.skipped for segment in segments)
        state.bytes_in = sum(segment.bytes_in for segment in segments)
        state.next_part = FIRST_TAIL_PART
        state.phase = ASSEMBLING
        store.commit(state, expected, None, 0)
    progress = state.assembly
    while progress.segment < progress.segments:
        _take_fragments(s3, store, state, segments, bases)
        if deadline.expired():
            return progress_of(state)
    relocated = [segment for segment in segments if is_relocated(segment)]
    if progress.relocated < len(relocated):
        _append_relocated(s3, store, state, relocated, deadline)
        if progress.relocated < len(relocated):
            return progress_of(state)
    if not progress.done:
        expected = state.version
        progress.done = True
        store.commit(state, expected, None, 0)
    return progress_of(state)


def segment_bases(segments: list[RunState]) -> list[int]:
    """The archive offset where each segment's bytes start: the segments with parts of
    their own in shard order, then the relocated ones (is_relocated), in shard order."""
    bases, at = [0] * len(segments), 0
    for relocated in (False, True):
        for index, segment in enumerate(segments):
            if is_relocated(segment) == relocated:
                bases[index], at = at, at + segment.offset
    return bases


def _complete_segments(s3: S3Client, store: StateStore, state: RunState) -> list[RunState]:
    """Every segment's state, in shard order; each must be complete."""
    count = state.assembly.segments if state.assembly.segments >= 0 else len(load_plan(s3, state))
    ids = [segment_run_id(state.run_id, index) for index in range(count)]
    with ThreadPoolExecutor(max_workers=LOAD_CONCURRENCY, thread_name_prefix="load") as pool:
        loaded = list(pool.map(_load_or_none, [store] * count, ids))
    for index, segment in enumerate(loaded):
        if segment is None or segment.phase != COMPLETE:
            raise IntegrityError(f"run {state.run_id}: segment {index} ({ids[index]}) is not complete")
    return loaded  # type: ignore[return-value]


def _load_or_none(store: StateStore, run_id: str) -> RunState | None:
    try:
        return store.load(run_id)
    except RunNotFound:
        return None


def _take_fragments(
    s3: S3Client, store: StateStore, state: RunState, segments: list[RunState], bases: list[int]
) -> None:
    """One committed fragment of the run: the next segment fragments' parts, records and
    lines (rebased), up to ASSEMBLY_FRAGMENT_BYTES. The fragments of the next segments
    are read LOAD_CONCURRENCY segments at a time (within READ_AHEAD_ENTRIES entries)."""
    progress = state.assembly
    expected, attempt = state.version, uuid.uuid4().hex
    taken = Fragment(central=bytearray(), manifest=bytearray(), skipped=bytearray())
    with ThreadPoolExecutor(max_workers=LOAD_CONCURRENCY, thread_name_prefix="fragments") as pool:
        while progress.segment < progress.segments and _size(taken) < ASSEMBLY_FRAGMENT_BYTES:
            window, entries = [progress.segment], _entries(segments[progress.segment])
            while len(window) < LOAD_CONCURRENCY and window[-1] + 1 < progress.segments:
                entries += _entries(segments[window[-1] + 1])
                if entries > READ_AHEAD_ENTRIES:
                    break
                window.append(window[-1] + 1)
            starts = [progress.fragment] + [0] * (len(window) - 1)
            read = pool.map(_fragments_of, [store] * len(window), [state.run_id] * len(window), window, starts)
            for index, fragments in zip(window, read, strict=True):
                for number, blob in fragments:
                    written = Fragment.from_bytes(blob)
                    taken.central += rebase_central(bytes(written.central), bases[index])
                    taken.manifest += rebase_lines(bytes(written.manifest), bases[index])
                    taken.skipped += written.skipped
                    taken.parts.extend(written.parts)
                    progress.parts += len(written.parts)
                    progress.fragment = number + 1
                    if _size(taken) >= ASSEMBLY_FRAGMENT_BYTES:
                        break  # the next call goes on at this segment's next fragment
                else:
                    progress.segment, progress.fragment = index + 1, 0
                    continue
                break
    state.steps += 1  # finish_run reads the directory from the first `steps` fragments
    _commit(s3, store, state, expected, attempt, taken, state.tail.staging_key)


def _entries(segment: RunState) -> int:
    """Entries and skipped objects of a segment: what its fragments hold lines of."""
    return segment.entries + segment.skipped


def _fragments_of(store: StateStore, run_id: str, index: int, start: int) -> list[tuple[int, bytes]]:
    return list(store.iter_fragments(segment_run_id(run_id, index), start=start))


def _size(fragment: Fragment) -> int:
    return len(fragment.central) + len(fragment.manifest) + len(fragment.skipped)


def _append_relocated(
    s3: S3Client, store: StateStore, state: RunState, relocated: list[RunState], deadline: Deadline
) -> None:
    """Append the relocated segments' bytes (their tails) to the run's, in shard order;
    one commit for those appended before the deadline (one at least)."""
    progress = state.assembly
    expected, attempt, old_tail = state.version, uuid.uuid4().hex, state.tail.staging_key
    if store.current_version(state.run_id) != expected:  # fencing before the side effect
        raise StaleState(f"run {state.run_id}: another assembly step committed first")
    sink = ArchiveSink(s3, store, state, attempt)
    try:
        while progress.relocated < len(relocated):
            sink.write(_tail_bytes(s3, relocated[progress.relocated]))
            progress.relocated += 1
            if deadline.expired():
                break
        fragment = Fragment(parts=sink.wait())
        state.tail = sink.save_tail()
    finally:
        sink.close()
    state.steps += 1
    _commit(s3, store, state, expected, attempt, fragment, old_tail)


def _tail_bytes(s3: S3Client, segment: RunState) -> bytes:
    """A relocated segment's bytes (under 5 MiB): its tail, inline or staged."""
    tail, request = segment.tail, segment.request
    if tail.staging_key is None:
        data = tail.inline
    else:
        try:
            data = s3.get_object(Bucket=request.dest_bucket, Key=tail.staging_key)["Body"].read()
        except AWS_ERRORS as exc:
            raise translate(
                exc, bucket=request.dest_bucket, role="destination", action="read staged tail", key=tail.staging_key
            ) from None
    if len(data) != segment.offset:
        raise IntegrityError(f"run {segment.run_id}: its tail is {len(data)} bytes, its state says {segment.offset}")
    return data


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
