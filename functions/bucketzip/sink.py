"""The archive byte stream of one step: bytes in, fixed-size parts out.

Bounded memory whatever the part size (issue 9, req. 1): the part being built is spilled
to a file on local disk (Lambda's /tmp), not held in memory, and each finished part is
uploaded from its file. Memory therefore depends only on the write-buffer size, never on
the part size the policy has reached (16 MiB or 5 GiB alike); local disk holds at most
the part being built plus the parts being uploaded, limited by a disk budget
($BUCKETZIP_SPILL_BYTES; a part larger than the budget is still uploaded, alone).
Why a spill file and not a part streamed straight into its PUT: a streamed body cannot
be re-sent when the request fails (botocore retries rewind the body), and a step that
stops inside a part would have to upload the part's first bytes somewhere anyway.

A segment of a parallel run (state.segment) writes parts of the archive's own upload, its
numbers `first_part`..`last_part` at its fixed `part_size`, and the part after its last one
is another segment's: so its last part must be 5 MiB at least (S3's minimum for every part
but the upload's last). The sink therefore holds a segment's latest cut part back until
MIN_PART_SIZE more bytes follow it; at the segment's end, fewer than that join the held
part (write_last_part). A segment of under 5 MiB in all uploads nothing: its bytes stay its
tail, and assembly appends them near the archive's end (parallel.py).

The carried tail (bytes of the previous step not yet uploaded: < one part, or for a
segment a held part and what follows it) comes first, read back into the spill file.
Whenever a whole part is written it is uploaded on a small pool, at most `concurrency` at
a time, after a fencing check (a zombie step stops before it uploads). Part boundaries
are fixed archive offsets (parts.py; a segment's: multiples of its part size), and the byte
stream does not depend on where steps stop, so a retried step uploads the very same parts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .checksums import crc32_combine, crc32_header
from .copy import copy_part, range_crc
from .errors import ArchiveTooLarge, StaleState
from .limits import MAX_PARTS, MIN_PART_SIZE
from .parts import check_fits, part_size
from .s3errors import AWS_ERRORS, translate
from .segments import staging_prefix
from .sizes import format_size
from .state import CopyPlan, RunState, Tail

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from .store import StateStore

INLINE_TAIL_BYTES = 256 * 1024
# Writes reach the spill file through a buffer of this size (the sink's only memory).
WRITE_BUFFER_BYTES = 1024 * 1024
# Local disk for spilled parts when $BUCKETZIP_SPILL_BYTES is not set (the CLI's case).
DEFAULT_SPILL_BYTES = 2 * 1024**3
SPILL_DIR_PREFIX = "bucketzip-spill-"
_COPY_BYTES = 1024 * 1024


def spill_budget() -> int:
    """Bytes of local disk the parts of one sink may use ($BUCKETZIP_SPILL_BYTES)."""
    raw = os.environ.get("BUCKETZIP_SPILL_BYTES")
    return int(raw) if raw else DEFAULT_SPILL_BYTES


def spill_root() -> str:
    return os.environ.get("BUCKETZIP_SPILL_DIR") or tempfile.gettempdir()


def _sweep_stale(root: str) -> None:
    """Remove spill directories left by a process that died (a Lambda invocation that
    timed out leaves its /tmp to the next one in the same sandbox)."""
    live = set(_live)  # the caller holds _live_lock
    for path in Path(root).glob(f"{SPILL_DIR_PREFIX}*"):
        try:
            pid = int(path.name[len(SPILL_DIR_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if str(path) in live:
            continue
        if pid == os.getpid() or not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)


_live_lock = threading.Lock()
_live: set[str] = set()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _DiskBudget:
    """Bytes of local disk held by spilled parts: those waiting for (or in) their upload,
    plus the part being built, counted at its full size before its first byte."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()

    def reserve(self, n: int, failed) -> None:
        """Wait until `n` more bytes fit; when nothing else is held they always do, so a
        part larger than the budget is built and uploaded alone."""
        with self.cond:
            while self.used and self.used + n > self.limit and not failed():
                self.cond.wait(timeout=1.0)
            self.used += n

    def release(self, n: int) -> None:
        with self.cond:
            self.used -= n
            self.cond.notify_all()


@dataclass
class _Held:
    """A segment's cut part, not uploaded until MIN_PART_SIZE bytes follow it."""

    number: int
    file: BinaryIO
    size: int
    path: str
    crc: int
    reserved: int


class ArchiveSink:
    def __init__(self, s3: S3Client, store: StateStore, state: RunState, attempt: str, spill_bytes: int | None = None):
        self.s3, self.store, self.state, self.attempt = s3, store, state, attempt
        self.expected_version = state.version
        self.request = state.request
        root = spill_root()
        with _live_lock:  # no other sink of this process sweeps between mkdtemp and add
            _sweep_stale(root)
            self.dir = tempfile.mkdtemp(prefix=f"{SPILL_DIR_PREFIX}{os.getpid()}-", dir=root)
            _live.add(self.dir)
        self.budget = _DiskBudget(spill_budget() if spill_bytes is None else spill_bytes)
        self.pool = ThreadPoolExecutor(max_workers=self.request.concurrency, thread_name_prefix="upload")
        self.slots = threading.Semaphore(self.request.concurrency)
        self.futures: list[tuple[int, int, Future]] = []
        self.file: BinaryIO | None = None
        self.path = ""
        self.reserved = 0  # disk budget held by the part being built
        self.length = 0  # bytes in the part file being built
        self.closed = False
        segment = state.segment
        # Part numbers this sink may use, and the bytes held back after a cut (a segment's).
        self.last_number = segment.last_part if segment is not None else MAX_PARTS
        self.hold = MIN_PART_SIZE if segment is not None else 0
        self.held: _Held | None = None
        self._open_part()
        self._load_tail()

    # -- the part being built ---------------------------------------------------------

    def _open_part(self) -> None:
        """Start the next part's file once its full size fits the disk budget."""
        number = self.state.next_part
        self.reserved = self._current_part_size()
        self.budget.reserve(self.reserved, self._any_failed)
        self._raise_failed()
        self.path = os.path.join(self.dir, f"part-{number}")
        self.file = open(self.path, "w+b", buffering=WRITE_BUFFER_BYTES)  # noqa: SIM115 - closed in _cut/close
        self.length = 0
        self.part_crc = 0  # CRC-32 of the part's bytes so far

    def _current_part_size(self) -> int:
        """0 past the last part number: no byte more fits the upload."""
        return self._size_of(self.state.next_part)

    def _size_of(self, number: int) -> int:
        segment = self.state.segment
        if number > self.last_number:
            return 0
        if segment is not None:
            return segment.part_size
        return part_size(number, self.request.part_size)

    def _check_fits(self, size: int) -> None:
        segment = self.state.segment
        if segment is None:
            check_fits(size, self.request.part_size)
            return
        room = (segment.last_part - segment.first_part + 1) * segment.part_size
        if size > room:
            raise ArchiveTooLarge(
                f"segment {segment.index} of run {segment.parent} needs more than {format_size(room)} "
                f"({room} bytes), the {segment.last_part - segment.first_part + 1} parts of "
                f"{format_size(segment.part_size)} its plan gave it: its shard's objects grew after planning; "
                "start a new run (it plans again)"
            )

    # -- tail ------------------------------------------------------------------------

    def _load_tail(self) -> None:
        tail = self.state.tail
        expected = self.state.offset - self.state.uploaded
        if tail.staging_key is None:
            self._put(memoryview(tail.inline))
            loaded = len(tail.inline)
        else:
            try:
                body = self.s3.get_object(Bucket=self.request.dest_bucket, Key=tail.staging_key)["Body"]
                loaded = 0
                while piece := body.read(_COPY_BYTES):  # streamed: a tail may be GiBs
                    self._put(memoryview(piece))
                    loaded += len(piece)
            except AWS_ERRORS as exc:
                if self.store.current_version(self.state.run_id) != self.expected_version:
                    # The step that replaced this state removed its tail: we are a zombie.
                    raise StaleState(f"run {self.state.run_id}: another step committed first") from None
                raise translate(
                    exc,
                    bucket=self.request.dest_bucket,
                    role="destination",
                    action="read staged tail",
                    key=tail.staging_key,
                ) from None
        if loaded != tail.length or tail.length != expected:
            raise StaleState(f"run {self.state.run_id}: staged tail is {loaded} bytes, state expects {tail.length}")

    def save_tail(self) -> Tail:
        """Persist the unuploaded bytes: inline in the state when small, else staged
        (one PUT from the spill file; a tail is under one part, or a held part and less
        than 5 MiB after it, so under 5 GiB). A held part goes back into the tail: the
        state then says it was never cut."""
        if self.held is not None:
            held, self.held = self.held, None
            self.state.next_part, self.state.uploaded = held.number, self.state.uploaded - held.size
            self._append_current(held)
            self.file, self.path, self.length = held.file, held.path, held.size
            self.budget.release(self.reserved)
            self.reserved = held.reserved
        file, length = self.file, self.length
        assert file is not None
        file.flush()
        file.seek(0)
        if length <= INLINE_TAIL_BYTES:
            return Tail(inline=file.read(length), length=length)
        key = f"{staging_prefix(self.state.run_id)}tail-{self.attempt}"
        try:
            self.s3.put_object(Bucket=self.request.dest_bucket, Key=key, Body=file, ContentLength=length)
        except AWS_ERRORS as exc:
            raise translate(
                exc, bucket=self.request.dest_bucket, role="destination", action="stage tail", key=key
            ) from None
        return Tail(staging_key=key, length=length)

    # -- writing ---------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self._check_fits(self.state.offset + view.nbytes)
        self.state.offset += view.nbytes
        self.state.crc = zlib.crc32(view, self.state.crc)
        self._put(view)

    def _put(self, view: memoryview) -> None:
        """Bytes into the part being built, cutting it whenever it is full."""
        while view.nbytes:
            room = self._current_part_size() - self.length
            if room <= 0:  # _check_fits refuses first; a tail past the last part is corrupt
                raise StaleState(f"run {self.state.run_id}: bytes past part {self.last_number}")
            piece = view[:room]
            assert self.file is not None
            self.file.write(piece)
            self.length += piece.nbytes
            self.part_crc = zlib.crc32(piece, self.part_crc)
            view = view[piece.nbytes :]
            if self.held is not None and self.length >= self.hold:
                self._release()
            if self.length == self._current_part_size():
                self._cut()

    def room(self) -> int:
        """Bytes the part being built still takes (its full size at a part boundary)."""
        return self._current_part_size() - self.length

    def whole_parts(self, available: int, most: int) -> list[int]:
        """Sizes of the next parts (at most `most`) that `available` bytes fill whole,
        from a part boundary; [] when not at one."""
        sizes: list[int] = []
        number = self.state.next_part
        available -= self.hold  # a segment streams its last 5 MiB: its final part may be the next
        while self.length == 0 and len(sizes) < most and number <= self.last_number:
            size = self._size_of(number)
            if size > available:
                break
            sizes.append(size)
            available -= size
            number += 1
        return sizes

    def copy_parts(
        self, bucket: str, key: str, plan: CopyPlan, first: int, sizes: list[int], on_part: Callable[[int, int], None]
    ) -> None:
        """Place bytes `first`.. of the source object as the next whole parts (`sizes`, from
        whole_parts) by UploadPartCopy, concurrently; the archive goes on after them.
        `on_part(size, crc)` hears of each part counted, in order, with its CRC-32 (S3's,
        else read once from the source). A part that fails raises after the parts before
        it are counted (S3 replaces the numbers after it when they are written again)."""
        if self.length or not sizes:
            raise ValueError("copy_parts starts at a part boundary, with at least one part")
        if self.held is not None:  # the copied parts follow it: it is not the last
            self._release()
        self._raise_failed()
        futures: list[tuple[int, int, Future]] = []
        number, start = self.state.next_part, first
        for size in sizes:
            futures.append((number, size, self.pool.submit(self._copy, number, bucket, key, plan, start, size)))
            number, start = number + 1, start + size
        for _, _, future in futures:  # every copy ends before any later part is written
            future.exception()
        counted = 0
        try:
            for number, size, future in futures:
                _, crc = future.result()  # raises the first failure, in part order
                self.futures.append((number, size, future))
                self.state.next_part = number + 1
                self.state.uploaded += size
                self.state.offset += size
                self.state.crc = crc32_combine(self.state.crc, crc, size)
                counted += 1
                on_part(size, crc)
        finally:
            if counted:
                # The (empty) file opened for the part after the last cut is reopened for
                # the part after the copied ones: its name and reserved size follow the number.
                self.budget.release(self.reserved)
                self.reserved = 0
                if self.file is not None:
                    self.file.close()
                    os.unlink(self.path)
                self._open_part()

    def _copy(self, number: int, bucket: str, key: str, plan: CopyPlan, first: int, size: int) -> tuple[str, int]:
        if self.store.current_version(self.state.run_id) != self.expected_version:
            raise StaleState(f"run {self.state.run_id}: another committed step; not copying part {number}")
        source: dict[str, Any] = {"version_id": plan.version_id, "if_match": plan.etag or None}
        copied = copy_part(
            self.s3,
            bucket=self.request.dest_bucket,
            key=self.state.upload_key,
            upload_id=self.state.upload_id,
            number=number,
            source_bucket=bucket,
            source_key=key,
            first=first,
            last=first + size - 1,
            **source,
        )
        if copied.crc is not None:
            return copied.etag, copied.crc
        # S3 reports a copied part's CRC-32 when the upload has the CRC32 algorithm; without
        # it (older unmarked runs, emulators) the range is read once, here, for its CRC.
        return copied.etag, range_crc(self.s3, bucket=bucket, key=key, first=first, last=first + size - 1, **source)

    def write_last_part(self) -> None:
        """Upload what remains as the final part (which may be under 5 MiB). A segment's
        final part is 5 MiB at least: fewer bytes join its held part; a segment that never
        reached 5 MiB uploads nothing and keeps its bytes as its tail."""
        if not self.hold:
            if self.length or self.state.next_part == 1:
                self._cut()
            return
        if self.held is not None and self.length < self.hold:
            held, self.held = self.held, None
            self._append_current(held)
            self.state.uploaded += self.length
            self.file, self.length = None, 0
            os.unlink(self.path)
            self.budget.release(self.reserved)
            self.reserved = 0
            self._submit(held.number, held.file, held.size, held.path, held.crc, held.reserved)
            self._open_part()
            return
        if self.held is not None:
            self._release()
        if self.length >= self.hold:
            self._cut(last=True)

    def _append_current(self, held: _Held) -> None:
        """Append the part being built to the held part's file (and CRC, size)."""
        file = self.file
        assert file is not None
        file.flush()
        file.seek(0)
        held.file.seek(0, os.SEEK_END)
        shutil.copyfileobj(file, held.file, _COPY_BYTES)
        held.file.flush()
        held.crc = crc32_combine(held.crc, self.part_crc, self.length)
        held.size += self.length
        file.close()

    def _cut(self, last: bool = False) -> None:
        file, size, path, crc = self.file, self.length, self.path, self.part_crc
        assert file is not None
        file.flush()
        number = self.state.next_part
        self.state.next_part += 1
        self.state.uploaded += size
        self.file = None
        self._raise_failed()
        reserved, self.reserved = self.reserved, 0  # the upload holds the part's budget now
        if self.hold and not last:
            self.held = _Held(number, file, size, path, crc, reserved)
        else:
            self._submit(number, file, size, path, crc, reserved)
        self._open_part()

    def _release(self) -> None:
        """Upload the held part: enough bytes follow it for a part of their own."""
        held, self.held = self.held, None
        assert held is not None
        self._submit(held.number, held.file, held.size, held.path, held.crc, held.reserved)

    def _submit(self, number: int, file: BinaryIO, size: int, path: str, crc: int, reserved: int) -> None:
        self.slots.acquire()
        future = self.pool.submit(self._upload, number, file, size, path, crc)
        future.add_done_callback(lambda _: self._uploaded(reserved))
        self.futures.append((number, size, future))

    def _uploaded(self, reserved: int) -> None:
        self.budget.release(reserved)
        self.slots.release()

    def _upload(self, number: int, file: BinaryIO, size: int, path: str, crc: int) -> tuple[str, int]:
        try:
            if self.store.current_version(self.state.run_id) != self.expected_version:
                raise StaleState(f"run {self.state.run_id}: another committed step; not uploading part {number}")
            file.seek(0)
            # An upload created with a CRC32 checksum wants one on every part; S3 checks it.
            checksum: dict[str, Any] = {"ChecksumCRC32": crc32_header(crc)} if self.state.marked else {}
            try:
                response = self.s3.upload_part(
                    Bucket=self.request.dest_bucket,
                    Key=self.state.upload_key,
                    UploadId=self.state.upload_id,
                    PartNumber=number,
                    Body=file,
                    ContentLength=size,
                    **checksum,
                )
            except AWS_ERRORS as exc:
                raise translate(
                    exc,
                    bucket=self.request.dest_bucket,
                    role="destination",
                    action=f"upload part {number} of",
                    key=self.state.upload_key,
                ) from None
            return response["ETag"], crc
        finally:
            file.close()
            try:
                os.unlink(path)
            except OSError:
                pass

    def _any_failed(self) -> bool:
        return any(future.done() and future.exception() for _, _, future in self.futures)

    def _raise_failed(self) -> None:
        for _, _, future in self.futures:
            if future.done():
                error = future.exception()
                if error is not None:
                    raise error

    def wait(self) -> list[list[Any]]:
        """Block until every part is uploaded; [[part number, ETag, size, CRC-32], ...]."""
        parts = []
        for number, size, future in self.futures:
            etag, crc = future.result()
            parts.append([number, etag, size, crc])
        return parts

    def close(self) -> None:
        """Stop the uploads and remove the spill files (the tail is saved before this)."""
        if self.closed:
            return
        self.closed = True
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.held is not None:
            self.held.file.close()
            self.budget.release(self.held.reserved)
            self.held = None
        self.budget.release(self.reserved)
        self.reserved = 0
        shutil.rmtree(self.dir, ignore_errors=True)
        with _live_lock:
            _live.discard(self.dir)
