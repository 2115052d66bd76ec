"""One archiving step: chunks in archive order -> zip entries -> the archive sink.

A step stops only between chunks. Every deflate piece ends byte-aligned (compress.py),
so stopping needs no flush and leaves nothing but the open entry's progress to save.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .checksums import crc32_combine
from .claims import claim_entry_name
from .compress import FINAL_BLOCK
from .config import ArchiveRequest
from .copy import SourceChanged, object_crc, read_range
from .deadline import Deadline
from .errors import IntegrityError, ObjectChanged
from .fetch import Chunk, ObjectPlan, Prefetcher
from .listing import iter_objects
from .manifest import entry_line, skipped_line
from .parts import check_fits
from .records import (
    DEFLATED,
    EMPTY_STORED_BLOCK,
    STORED,
    ZIP32_MAX,
    EntryMeta,
    central_record,
    data_descriptor,
    local_header,
    needs_zip64,
    straddles_zip32,
    truncated_comment,
)
from .results import MAX_WARNINGS
from .s3errors import AWS_ERRORS, GONE_CODES, error_code, translate
from .sink import ArchiveSink
from .state import CopyPlan, Fragment, Listed, OpenEntry, RunState

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from .store import StateStore

log = logging.getLogger(__name__)

# A conservative read rate of one S3 GET stream, to judge whether an object that needs a
# CRC pass (read twice) still fits in a step.
CRC_PASS_BYTES_PER_SECOND = 40e6

# A step's directory records and manifest lines wait in memory until its commit: ending
# the step at this size keeps memory independent of how many objects a bucket holds.
FRAGMENT_BYTES = 4 * 1024 * 1024


class StepWriter:
    def __init__(
        self, s3: S3Client, store: StateStore, state: RunState, sink: ArchiveSink, deadline: Deadline, observer=None
    ):
        self.s3, self.store, self.state, self.sink, self.deadline = s3, store, state, sink, deadline
        self.observer = observer  # called with (source bytes, entries) after each chunk
        self.request: ArchiveRequest = state.request
        # bytearrays: a step may append hundreds of thousands of records
        self.fragment = Fragment(central=bytearray(), manifest=bytearray(), skipped=bytearray())
        self.start_offset = state.offset
        self.skipping: ObjectPlan | None = None
        self.warnings: list[str] = []  # the first MAX_WARNINGS; the rest are counted and logged
        self.warning_count = 0
        self.deferred = False  # stopped before an object it had no time for
        self.paused = False  # stopped inside an entry whose data is being copied

    def run(self) -> None:
        """Write entries until the listing ends (state.cursor.exhausted) or it is time to stop."""
        state = self.state
        open_plan = None
        if state.open_entry is not None and state.open_entry.copy is not None:
            if not self._place(state.open_entry) or self._should_stop():
                return  # the copied entry goes on in the next step
        elif state.open_entry is not None:
            entry = state.open_entry
            open_plan = ObjectPlan(
                entry.listed,
                entry.bytes_read,
                None,
                resumed=True,
                level=None if entry.meta.method == STORED else entry.level,
                start_crc=entry.meta.crc,
            )
            open_plan.decided.set()
        last_key = state.segment.last_key if state.segment is not None else None  # a segment's shard ends there
        listing = iter_objects(self.s3, self.request, state.cursor, last_key)
        prefetcher = Prefetcher(self.s3, self.request, open_plan, listing)
        try:
            for chunk in prefetcher.chunks():
                entries = state.entries
                self._write_chunk(chunk)
                if self.deferred or self.paused:
                    return
                if self.observer is not None:
                    self.observer(chunk.size, state.entries - entries)
                if self._should_stop():
                    return
            if prefetcher.final_cursor is not None:
                state.cursor = prefetcher.final_cursor
        finally:
            prefetcher.close()

    def _should_stop(self) -> bool:
        fragment = self.fragment
        if len(fragment.central) + len(fragment.manifest) + len(fragment.skipped) >= FRAGMENT_BYTES:
            return True
        step_bytes = self.request.step_bytes
        if step_bytes is not None and self.state.offset - self.start_offset >= step_bytes:
            return True
        return self.deadline.expired()

    # -- entries -----------------------------------------------------------------------

    def _write_chunk(self, chunk: Chunk) -> None:
        plan, state = chunk.plan, self.state
        if plan is self.skipping:
            return
        if chunk.first and not plan.resumed and self._defer(chunk):
            self.deferred = True  # the cursor stays before it: the next step starts with it
            return
        if plan.cursor_after is not None:
            state.cursor = plan.cursor_after
        if chunk.first and not plan.resumed:
            if chunk.skip_reason:
                self._skip(plan.listed, chunk.skip_reason)
                self.skipping = plan
                return
            if chunk.copy is not None:
                copied = self._open_copy(chunk)
                if copied is not None and not self._place(copied):
                    self.paused = True
                return
            opened = self._open(chunk)
            if opened is None:  # written whole, or skipped
                return
            entry = opened
        else:
            entry = self._continued(chunk)
            if chunk.skip_reason:
                self._truncate(entry, chunk, chunk.skip_reason)
                return
        body = chunk.piece if chunk.piece is not None else chunk.data
        entry.meta.crc = chunk.crc
        entry.meta.size += chunk.size
        entry.meta.compressed_size += len(body)
        entry.bytes_read += chunk.size
        state.bytes_in += chunk.size
        self.sink.write(body)
        if chunk.last:
            self._close(entry)

    def _continued(self, chunk: Chunk) -> OpenEntry:
        """The entry a later chunk of an object (or of the resumed object) continues."""
        entry = self.state.open_entry
        if entry is None or entry.listed.key != chunk.plan.listed.key:
            # the prefetcher hands out an object's chunks in order, after its first one
            raise IntegrityError(
                f"run {self.state.run_id}: chunk at {chunk.start} of {chunk.plan.listed.key!r} has no open entry"
            )
        return entry

    def _open(self, chunk: Chunk) -> OpenEntry | None:
        """Start a new entry and return it, for the chunk's data to follow; None when there
        is nothing more to write: the object fit in this chunk and is written whole, or it
        changed before its header went out and is skipped."""
        plan, state = chunk.plan, self.state
        listed = plan.listed
        if plan.level in (None, 0):  # stored bytes: the listed size proves an overflow before its bytes
            check_fits(state.offset + listed.size, self.request.part_size, f"the archive with {listed.key!r}")
        listed.version_id = chunk.version_id
        is_dir = listed.key.endswith("/") and listed.size == 0
        name = self._name(listed)
        method = STORED if plan.level is None else DEFLATED
        known_sizes = not is_dir and method == STORED and straddles_zip32(listed.size)
        meta = EntryMeta(
            name=name,
            mtime=listed.last_modified,
            method=method,
            header_offset=state.offset,
            uses_descriptor=not chunk.last and not known_sizes,
            zip64=not is_dir and not known_sizes and needs_zip64(listed.size),
        )
        if known_sizes and not chunk.last:
            crc = self._crc_pass(listed)
            if crc is None:
                self.skipping = plan
                return None
            entry = OpenEntry(listed=listed, meta=meta, level=0, headers=chunk.headers)
            state.open_entry = entry
            header = dataclasses.replace(meta, crc=crc, size=listed.size, compressed_size=listed.size)
            self.sink.write(local_header(header))
            return entry
        entry = OpenEntry(listed=listed, meta=meta, level=plan.level or 0, headers=chunk.headers)
        state.open_entry = entry
        if meta.uses_descriptor:
            self.sink.write(local_header(meta))
            return entry
        # The whole object is in this chunk: CRC and sizes go in the local header, no descriptor.
        if is_dir:
            body = b""
        elif method == STORED:
            body = chunk.data
        elif chunk.piece is None:  # the fetcher deflates every chunk of a deflated object
            raise IntegrityError(f"run {state.run_id}: no deflate piece for {listed.key!r}")
        else:
            body = chunk.piece + FINAL_BLOCK
        meta.crc, meta.size, meta.compressed_size = chunk.crc, chunk.size, len(body)
        state.bytes_in += chunk.size
        self.sink.write(local_header(meta) + body)
        self._finish_entry(entry)
        return None

    def _close(self, entry: OpenEntry, truncated: bytes = b"") -> None:
        meta = entry.meta
        if truncated and not meta.uses_descriptor:
            self._fill(entry)
        if truncated and meta.zip64 and meta.method == DEFLATED:
            self._pad_past_zip32(meta)
        if meta.method == DEFLATED:
            self.sink.write(FINAL_BLOCK)
            meta.compressed_size += len(FINAL_BLOCK)
        if meta.uses_descriptor:
            self.sink.write(data_descriptor(meta))
        self._finish_entry(entry, truncated)

    def _defer(self, chunk: Chunk) -> bool:
        """An object that needs a CRC pass first (straddles_zip32, or a copied entry with
        its CRC in the local header that S3 does not report) is left to the next step when
        this one has written something and may not have time to read it (twice, streamed)."""
        listed = chunk.plan.listed
        if chunk.copy is not None:
            needs_pass = chunk.copy.crc is None and self._copy_known_sizes(listed.size)
        else:
            needs_pass = straddles_zip32(listed.size)
        if not needs_pass or self.state.offset == self.start_offset:
            return False
        return self.deadline.remaining() < 2 * listed.size / CRC_PASS_BYTES_PER_SECOND

    def _crc_pass(self, listed: Listed) -> int | None:
        """CRC-32 of an object read once, streamed (for a header with known sizes); None
        when the object changed or vanished (it is then skipped, nothing written)."""
        kwargs: dict[str, Any] = {"Bucket": self.request.source_bucket, "Key": listed.key}
        if listed.etag:
            kwargs["IfMatch"] = listed.etag
        if listed.version_id:
            kwargs["VersionId"] = listed.version_id
        crc, size = 0, 0
        try:
            body = self.s3.get_object(**kwargs)["Body"]
            while piece := body.read(1024 * 1024):  # streamed: the object is ~4 GiB
                crc, size = zlib.crc32(piece, crc), size + len(piece)
        except AWS_ERRORS as exc:
            if error_code(exc) not in GONE_CODES:
                raise translate(
                    exc, bucket=self.request.source_bucket, role="source", action="read object", key=listed.key
                ) from None
            self._skip(listed, "changed or deleted after listing")
            return None
        if size != listed.size:
            self._skip(listed, f"changed after listing: read {size} bytes, expected {listed.size}")
            return None
        return crc

    # -- server-side copy ----------------------------------------------------------------

    def _copy_known_sizes(self, size: int) -> bool:
        """Whether a copied entry carries its CRC and sizes in the local header (no data
        descriptor). `store` keeps the descriptor the streamed path writes, so the archive
        is the same byte for byte whether an object is copied or streamed; only objects
        just under 4 GiB (straddles_zip32) have known sizes there, streamed or copied.
        `auto` streams such objects as deflate with stored blocks (a stored entry with a
        descriptor is refused by streaming readers); copied, they are stored with their
        CRC known up front, which every reader accepts."""
        return self.request.compression == "auto" or straddles_zip32(size)

    def _open_copy(self, chunk: Chunk) -> OpenEntry | None:
        """Write the local header of an entry whose data is copied (fetch's copy chunk);
        None when the object changed before it (skipped, nothing written)."""
        plan, state, copy = chunk.plan, self.state, chunk.copy
        assert copy is not None
        listed = plan.listed
        check_fits(state.offset + listed.size, self.request.part_size, f"the archive with {listed.key!r}")
        listed.version_id = chunk.version_id
        known = self._copy_known_sizes(listed.size)
        if known and copy.crc is None:
            try:
                copy.crc = object_crc(
                    self.s3,
                    size=listed.size,
                    concurrency=self.request.concurrency,
                    **self._copy_source(listed, copy),
                )
            except SourceChanged as exc:
                self._skip(listed, exc.reason)
                self.skipping = plan
                return None
        name = self._name(listed)
        meta = EntryMeta(
            name=name,
            mtime=listed.last_modified,
            method=STORED,
            header_offset=state.offset,
            uses_descriptor=not known,
            zip64=listed.size > ZIP32_MAX if known else needs_zip64(listed.size),
        )
        entry = OpenEntry(listed=listed, meta=meta, level=0, headers=chunk.headers, copy=copy)
        state.open_entry = entry
        if known:
            assert copy.crc is not None
            meta = dataclasses.replace(meta, crc=copy.crc, size=listed.size, compressed_size=listed.size)
        self.sink.write(local_header(meta))
        return entry

    def _copy_source(self, listed: Listed, copy: CopyPlan) -> dict[str, Any]:
        return {
            "bucket": self.request.source_bucket,
            "key": listed.key,
            "version_id": copy.version_id,
            "if_match": copy.etag or None,
        }

    def _place(self, entry: OpenEntry) -> bool:
        """Place the open copied entry's data from `bytes_read` on: whole parts by
        UploadPartCopy (the sink's part boundaries are fixed archive offsets, so these are
        exactly the parts the streamed bytes would fill), the rest (the top-up to the next
        part boundary, the last bytes under one part) read and written. True when the entry
        is closed; False when it is time to stop (the next step resumes here)."""
        copy, listed, request = entry.copy, entry.listed, self.request
        assert copy is not None
        source = self._copy_source(listed, copy)

        def placed(size: int, crc: int) -> None:
            meta = entry.meta
            meta.crc = crc32_combine(meta.crc, crc, size)
            meta.size += size
            meta.compressed_size += size
            entry.bytes_read += size
            self.state.bytes_in += size
            if self.observer is not None:
                self.observer(size, 0)

        try:
            while entry.bytes_read < listed.size:
                left = listed.size - entry.bytes_read
                sizes = self.sink.whole_parts(left, request.concurrency)
                if sizes:
                    self.sink.copy_parts(request.source_bucket, listed.key, copy, entry.bytes_read, sizes, placed)
                elif not self._read_span(entry, entry.bytes_read + min(left, self.sink.room()), source, placed):
                    return False
                if entry.bytes_read < listed.size and self._should_stop():
                    return False
        except SourceChanged as exc:
            if request.strict:
                raise
            read = entry.bytes_read
            self._close(entry, truncated=truncated_comment(exc.reason, read, listed.size))
            self._skip(listed, f"{exc.reason}; its entry holds only the first {read} bytes")
            return True
        if copy.crc is not None and entry.meta.crc != copy.crc:
            raise IntegrityError(
                f"run {self.state.run_id}: the bytes placed for {listed.key!r} have CRC-32 {entry.meta.crc:08x}, "
                f"the object's is {copy.crc:08x}"
            )
        self._close(entry)
        return True

    def _read_span(
        self, entry: OpenEntry, end: int, source: dict[str, Any], placed: Callable[[int, int], None]
    ) -> bool:
        """Read the copied entry's bytes from `bytes_read` up to `end` (the top-up to a part
        boundary, or the last bytes) and write them: ranged GETs of chunk_size, up to
        `concurrency` at a time within the prefetch budget, written in order. False when it
        is time to stop (between two chunks, like the streamed path)."""
        request, step = self.request, self.request.chunk_size
        starts = iter(range(entry.bytes_read, end, step))
        window = max(1, min(request.concurrency, request.effective_prefetch_bytes // step))

        def fetch(first: int) -> bytes:
            return b"".join(read_range(self.s3, first=first, last=min(end, first + step) - 1, **source))

        with ThreadPoolExecutor(max_workers=window, thread_name_prefix="copy-read") as pool:
            pending = deque(pool.submit(fetch, first) for first in itertools.islice(starts, window))
            try:
                while pending:
                    data = pending.popleft().result()
                    self.sink.write(data)
                    placed(len(data), zlib.crc32(data))
                    if entry.bytes_read < entry.listed.size and self._should_stop():
                        return False
                    following = next(starts, None)
                    if following is not None:
                        pending.append(pool.submit(fetch, following))
            finally:
                for future in pending:
                    future.cancel()
        return True

    def _fill(self, entry: OpenEntry) -> None:
        """A truncated entry whose local header promised the listed size gets zeros up to
        it, so every record stays consistent (its CRC then tells readers it is damaged)."""
        meta, left = entry.meta, entry.listed.size - entry.meta.size
        zeros = bytes(min(left, 1024 * 1024))
        while left > 0:
            piece = zeros[: min(left, len(zeros))]
            self.sink.write(piece)
            meta.crc = zlib.crc32(piece, meta.crc)
            meta.size += len(piece)
            meta.compressed_size += len(piece)
            left -= len(piece)

    def _pad_past_zip32(self, meta: EntryMeta) -> None:
        """A zip64 entry cut short under 4 GiB would have a zip64 descriptor that streaming
        readers (they pick the layout by the actual sizes) misread: pad its deflate stream
        with empty stored blocks (no data) until the compressed size passes 4 GiB."""
        if meta.size > ZIP32_MAX or meta.compressed_size > ZIP32_MAX:
            return
        blocks = (ZIP32_MAX - meta.compressed_size) // len(EMPTY_STORED_BLOCK) + 1
        run = EMPTY_STORED_BLOCK * (1024 * 1024)
        while blocks > 0:
            piece = run[: min(blocks, 1024 * 1024) * len(EMPTY_STORED_BLOCK)]
            self.sink.write(piece)
            meta.compressed_size += len(piece)
            blocks -= len(piece) // len(EMPTY_STORED_BLOCK)

    def _finish_entry(self, entry: OpenEntry, truncated: bytes = b"") -> None:
        """`truncated`: the file comment of an entry cut short (records.truncated_comment)."""
        self.fragment.central += central_record(entry.meta, comment=truncated)
        self.fragment.manifest += entry_line(entry.listed, entry.meta, entry.headers, bool(truncated))
        self.state.entries += 1
        self.state.open_entry = None

    def _truncate(self, entry: OpenEntry, chunk: Chunk, reason: str) -> None:
        """The object changed or vanished while we were inside it: its local header is
        already out, so the entry closes with the bytes read and is reported."""
        listed = chunk.plan.listed
        if self.request.strict:
            raise ObjectChanged(f"object {listed.key!r} {reason} (--strict)")
        self.skipping = chunk.plan
        read = entry.bytes_read
        self._close(entry, truncated=truncated_comment(reason, read, listed.size))
        self._skip(listed, f"{reason}; its entry holds only the first {read} bytes")

    def _skip(self, listed: Listed, reason: str) -> None:
        if self.request.strict:
            raise ObjectChanged(f"object {listed.key!r}: {reason} (--strict)")
        self.state.skipped += 1
        self.fragment.skipped += skipped_line(listed, reason)
        warning = f"skipped {listed.key!r}: {reason}"
        self.warning_count += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(warning)
        log.warning(warning, extra={"key": listed.key, "reason": reason})

    # -- names -------------------------------------------------------------------------

    def _name(self, listed: Listed) -> str:
        return claim_entry_name(self.s3, self.store, self.request, self.state.name_scope, listed.key, listed.size)
