"""Ordered, bounded, concurrent prefetch of source chunks.

A planner thread walks the work (the open entry's remainder, then the listing) and
submits one task per chunk (a ranged GET plus its compression) to a thread pool, in
archive order, while a byte budget bounds the data fetched ahead of the writer. The
writer takes the results strictly in order. Deflate runs on the pool threads (zlib and
ISA-L release the GIL), so large objects download and compress in parallel.
"""

from __future__ import annotations

import queue
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import compress, records
from . import copy as server_copy
from .config import ArchiveRequest
from .s3errors import AWS_ERRORS, GONE_CODES, error_code, is_transient, translate
from .state import CopyPlan, Cursor, Listed

# What a GET and the read of its body can raise: AWS errors, and a socket error that
# reaches us unwrapped.
_READ_ERRORS: tuple[type[Exception], ...] = (*AWS_ERRORS, OSError)
# Reads of one chunk whose body broke mid-stream before the step gives up (RetryableError).
BODY_ATTEMPTS = 4

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

_HEADER_FIELDS = {
    "ContentType": "content_type",
    "ContentEncoding": "content_encoding",
    "ContentLanguage": "content_language",
    "ContentDisposition": "content_disposition",
    "CacheControl": "cache_control",
    "ExpiresString": "expires",
}


@dataclass
class ObjectPlan:
    """How one object's bytes become entry data. `level` None: stored (method 0)."""

    listed: Listed
    start: int  # first byte to read (non-zero when resuming inside it)
    cursor_after: Cursor | None  # listing position after it (None: the resumed open entry)
    level: int | None = None
    decided: threading.Event = field(default_factory=threading.Event)
    resumed: bool = False
    start_crc: int = 0  # CRC-32 of the bytes before `start` (a resumed entry's)


@dataclass
class Chunk:
    plan: ObjectPlan
    start: int
    data: bytes = b""
    piece: bytes | None = None  # deflate piece of `data` (None when stored)
    first: bool = False
    last: bool = False
    skip_reason: str | None = None  # the object could not be read as listed
    headers: dict = field(default_factory=dict)
    version_id: str | None = None
    size: int = 0  # bytes read (`data` itself is dropped once compressed)
    crc: int = 0  # CRC-32 of the object's bytes up to the end of this chunk
    previous: Chunk | None = field(default=None, repr=False)
    crc_ready: threading.Event = field(default_factory=threading.Event, repr=False)
    # The object's data is to be copied server-side by the writer (no bytes fetched here):
    # this lone chunk carries what HeadObject said (headers, version, CRC-32).
    copy: CopyPlan | None = None


# Each GET queued ahead of the writer counts as at least this many bytes against the
# prefetch budget, so empty and tiny objects cannot queue unbounded work (13,405 GETs
# ahead of 1,144 written entries were measured without it, ~9 KB of memory each, and
# listing pages far ahead that the next step lists again): at the default budget
# (8 x 8 MiB) at most 256 GETs, under one listing page, run ahead.
GET_FLOOR_BYTES = 256 * 1024
# Storage classes whose objects cannot be read (nor copied) until restored.
ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
# `auto` judges an object's compressibility by deflating this many of its first bytes.
SAMPLE_BYTES = 256 * 1024


class _Budget:
    """A counting semaphore over bytes; one item larger than the budget still passes alone."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()
        self.closed = False

    def acquire(self, n: int) -> bool:
        n = min(n, self.limit)
        with self.cond:
            while self.used + n > self.limit and not self.closed:
                self.cond.wait()
            if self.closed:
                return False
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self.cond:
            self.used -= min(n, self.limit)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class Prefetcher:
    """Iterate `chunks()`; call `close()` when stopping early (or done)."""

    def __init__(
        self,
        s3: S3Client,
        request: ArchiveRequest,
        open_plan: ObjectPlan | None,
        listing: Iterator[tuple[Listed | None, Cursor]],
    ):
        self.s3, self.request = s3, request
        self.open_plan, self.listing = open_plan, listing
        self.budget = _Budget(request.effective_prefetch_bytes)
        self.pool = ThreadPoolExecutor(max_workers=request.concurrency, thread_name_prefix="fetch")
        self.ordered: queue.Queue = queue.Queue()
        self.final_cursor: Cursor | None = None
        self.stopping = threading.Event()
        self.planner = threading.Thread(target=self._plan, name="planner", daemon=True)
        self.planner.start()

    # -- planning (planner thread) ---------------------------------------------------

    def _plans(self) -> Iterator[ObjectPlan]:
        if self.open_plan is not None:
            yield self.open_plan
        for listed, cursor in self.listing:
            if listed is None:
                self.final_cursor = cursor
                return
            yield ObjectPlan(listed, 0, cursor)

    def _plan(self) -> None:
        try:
            for plan in self._plans():
                probed = self._probe(plan) if self._copy_candidate(plan) else None
                if probed is not None:
                    if self.stopping.is_set() or not self.budget.acquire(GET_FLOOR_BYTES):
                        return
                    ready: Future = Future()
                    ready.set_result(probed)
                    self.ordered.put((ready, GET_FLOOR_BYTES))
                    continue
                size, step = plan.listed.size, self.request.chunk_size
                starts = range(plan.start, size, step) or range(plan.start, plan.start + 1)
                previous = None
                for index, start in enumerate(starts):
                    length = min(step, size - start)
                    charge = max(length, GET_FLOOR_BYTES)
                    if self.stopping.is_set() or not self.budget.acquire(charge):
                        return
                    chunk = Chunk(plan, start, first=(index == 0), last=(index == len(starts) - 1), previous=previous)
                    self.ordered.put((self.pool.submit(self._fetch, chunk, length), charge))
                    previous = chunk
        except BaseException as exc:  # noqa: BLE001 - handed to the writer, raised there
            failed: Future = Future()
            failed.set_exception(exc)
            self.ordered.put((failed, 0))
            return
        finally:
            self.ordered.put(None)

    # -- server-side copy (planner thread) ---------------------------------------------

    def _copy_candidate(self, plan: ObjectPlan) -> bool:
        """Large objects that may be stored: `store`, or `auto` (already compressed ones)."""
        return (
            not plan.resumed
            and plan.listed.storage_class not in ARCHIVED_CLASSES  # streamed: skipped with the reason
            and self.request.compression != "deflate"
            and plan.listed.size >= server_copy.COPY_MIN_BYTES
            and plan.listed.size >= server_copy.COPY_MIN_PARTS * self.request.part_size
        )

    def _probe(self, plan: ObjectPlan) -> Chunk | None:
        """HeadObject (pinned to the listed ETag, with its checksum) decides whether the
        object is copied: the copy chunk, a skip chunk when it changed or vanished, or
        None to stream it as before (`auto`: not compressed by its name or type, or its
        CRC unknown and the read-only pass too long for a step)."""
        listed, request = plan.listed, self.request
        kwargs: dict[str, Any] = {"Bucket": request.source_bucket, "Key": listed.key, "ChecksumMode": "ENABLED"}
        if listed.etag:
            kwargs["IfMatch"] = listed.etag
        try:
            head = self.s3.head_object(**kwargs)
        except AWS_ERRORS as exc:
            if error_code(exc) not in GONE_CODES:
                raise translate(
                    exc, bucket=request.source_bucket, role="source", action="head object", key=listed.key
                ) from None
            plan.decided.set()
            return Chunk(plan, 0, first=True, last=True, skip_reason=_reason(exc))
        if head.get("ArchiveStatus"):  # an Intelligent-Tiering archive tier: streamed, i.e. skipped
            return None
        copy = CopyPlan(
            etag=head.get("ETag") or listed.etag,
            version_id=head.get("VersionId"),
            crc=server_copy.full_object_crc(head),
        )
        headers = _headers(head)
        if request.compression == "auto":
            # Already compressed by its name or type: the cheap guess the streamed path
            # starts from too. (Its sample of the first chunk is not repeated here: an
            # object that only samples as incompressible is streamed, deflate level 0.)
            if not compress.looks_compressed(listed.key, headers.get("content_type")):
                return None
            if copy.crc is None and listed.size > server_copy.PASS_MAX_BYTES:
                return None
        plan.decided.set()
        return Chunk(plan, 0, first=True, last=True, headers=headers, version_id=copy.version_id, copy=copy)

    # -- fetching (pool threads) -----------------------------------------------------

    def _fetch(self, chunk: Chunk, length: int) -> Chunk:
        try:
            self._read(chunk, length)
        finally:
            if chunk.first:  # however the first read ended, the object's later chunks may go on
                chunk.plan.decided.set()
            self._chain_crc(chunk)
        return chunk

    @staticmethod
    def _chain_crc(chunk: Chunk) -> None:
        """Continue the object's CRC-32 from the previous chunk's, here on the pool rather
        than on the writer, then drop the raw bytes a deflate piece replaces: the budget
        counts raw bytes, so holding both would double the memory of compressed reads."""
        previous = chunk.previous
        if previous is None:
            base = chunk.plan.start_crc
        else:
            previous.crc_ready.wait()
            base = previous.crc
        chunk.previous = None  # no chain of finished chunks kept alive
        chunk.size = len(chunk.data) if chunk.skip_reason is None else 0
        chunk.crc = zlib.crc32(chunk.data, base) if chunk.size else base
        if chunk.piece is not None:
            chunk.data = b""
        chunk.crc_ready.set()

    def _read(self, chunk: Chunk, length: int) -> None:
        plan, request = chunk.plan, self.request
        kwargs: dict[str, Any] = {"Bucket": request.source_bucket, "Key": plan.listed.key}
        if plan.listed.etag:
            kwargs["IfMatch"] = plan.listed.etag
        if plan.listed.version_id:
            kwargs["VersionId"] = plan.listed.version_id
        whole = chunk.start == 0 and length == plan.listed.size
        if not whole:
            kwargs["Range"] = f"bytes={chunk.start}-{chunk.start + length - 1}"
        response: GetObjectOutputTypeDef | None = None
        for attempt in range(1, BODY_ATTEMPTS + 1):
            try:
                response = self.s3.get_object(**kwargs)
                chunk.data = response["Body"].read()
                break
            except _READ_ERRORS as exc:  # a body that breaks mid-read too (ResponseStreamingError)
                if error_code(exc) in GONE_CODES:
                    chunk.skip_reason = _reason(exc)
                    return
                if not is_transient(exc) or attempt == BODY_ATTEMPTS:
                    raise translate(
                        exc, bucket=request.source_bucket, role="source", action="get object", key=plan.listed.key
                    ) from None
                # The SDK retries a failed request, not a body that breaks once it is
                # streaming (ResponseStreamingError, ReadTimeout, reset): read the chunk
                # again here, within this step, ranged and pinned to the version seen.
                if length:
                    kwargs["Range"] = f"bytes={chunk.start}-{chunk.start + length - 1}"
                if response is not None and response.get("VersionId") and "VersionId" not in kwargs:
                    kwargs["VersionId"] = response["VersionId"]
                response = None
                time.sleep(min(2.0, 0.1 * 2**attempt))
        assert response is not None  # the loop ends with a response, or returned or raised
        if len(chunk.data) != length:
            chunk.skip_reason = f"changed after listing: read {len(chunk.data)} bytes, expected {length}"
            return
        if chunk.first:
            chunk.version_id = response.get("VersionId")
            chunk.headers = _headers(response)
            if not plan.resumed:
                self._decide(plan, chunk)
                plan.decided.set()
        plan.decided.wait()
        if plan.level is not None:
            chunk.piece = compress.deflate_piece(chunk.data, plan.level)

    def _decide(self, plan: ObjectPlan, chunk: Chunk) -> None:
        """Pick store or deflate (and the level) for a new object from its first chunk
        The caller sets plan.decided (on a failure too: see `_fetch`)."""
        request = self.request
        level = request.level if request.level is not None else compress.DEFAULT_LEVEL
        if (
            request.compression == "store"
            or (plan.listed.key.endswith("/") and plan.listed.size == 0)
            or records.straddles_zip32(plan.listed.size)  # stored with known sizes: see records
        ):
            plan.level = None  # explicit store, or a directory entry (no data)
        elif request.compression == "deflate":
            plan.level = level
        else:
            single = chunk.last
            compressed = compress.looks_compressed(plan.listed.key, chunk.headers.get("content_type"))
            if not compressed and chunk.data:
                sample = compress.deflate_piece(chunk.data[:SAMPLE_BYTES], level)
                compressed = compress.is_incompressible(min(len(chunk.data), SAMPLE_BYTES), len(sample))
            # Stored entries of more than one chunk would need a data descriptor, which
            # streaming readers (java.util.zip.ZipInputStream) refuse for method 0, so
            # those become deflate with stored blocks (level 0): same bytes, ~0.01% more.
            plan.level = (None if single else 0) if compressed else level

    # -- consuming (writer thread) ---------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        while True:
            item = self.ordered.get()
            if item is None:
                return
            future, charge = item
            try:
                yield future.result()
            finally:
                self.budget.release(charge)

    def close(self) -> None:
        self.stopping.set()
        self.budget.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.planner.join(timeout=60)


def _headers(response: Mapping[str, Any]) -> dict:
    """The standard headers and user metadata of a GetObject or HeadObject answer, for
    the manifest (both name them alike)."""
    headers = {name: response[field_] for field_, name in _HEADER_FIELDS.items() if response.get(field_)}
    headers["metadata"] = response.get("Metadata") or {}
    return headers


def _reason(exc: BaseException) -> str:
    code = error_code(exc)
    if code == "InvalidObjectState":
        return "archived storage class (GLACIER/DEEP_ARCHIVE) not restored"
    if code in ("PreconditionFailed", "412"):
        return "changed after listing (ETag differs)"
    return "deleted after listing"
