"""The archive byte stream of one step: bytes in, fixed-size parts out.

The carried tail (bytes of the previous step not yet uploaded) comes first. Whenever a
whole part is buffered it is uploaded on a small pool, at most `concurrency` at a time,
after a fencing check (a zombie step stops before it uploads). Part boundaries are fixed
archive offsets (parts.py), and the byte stream does not depend on where steps stop, so
a retried step uploads the very same parts.
"""

from __future__ import annotations

import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor

from .checksums import crc32_header
from .config import STAGING_PREFIX
from .errors import StaleState
from .parts import part_size
from .s3errors import AWS_ERRORS, translate
from .state import RunState, Tail

INLINE_TAIL_BYTES = 256 * 1024


def staging_prefix(run_id: str) -> str:
    return f"{STAGING_PREFIX}{run_id}/"


class ArchiveSink:
    def __init__(self, s3, store, state: RunState, attempt: str):
        self.s3, self.store, self.state, self.attempt = s3, store, state, attempt
        self.expected_version = state.version
        self.request = state.request
        self.buffer = bytearray(self._load_tail())
        self.pool = ThreadPoolExecutor(max_workers=self.request.concurrency, thread_name_prefix="upload")
        self.slots = threading.Semaphore(self.request.concurrency)
        self.futures: list[tuple[int, int, Future]] = []

    # -- tail ------------------------------------------------------------------------

    def _load_tail(self) -> bytes:
        tail = self.state.tail
        if tail.staging_key is None:
            data = tail.inline
        else:
            try:
                data = self.s3.get_object(Bucket=self.request.dest_bucket, Key=tail.staging_key)["Body"].read()
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
        if len(data) != tail.length or tail.length != self.state.offset - self.state.uploaded:
            raise StaleState(f"run {self.state.run_id}: staged tail is {len(data)} bytes, state expects {tail.length}")
        return data

    def save_tail(self) -> Tail:
        """Persist the unuploaded bytes: inline in the state when small, else staged."""
        data = bytes(self.buffer)
        if len(data) <= INLINE_TAIL_BYTES:
            return Tail(inline=data, length=len(data))
        key = f"{staging_prefix(self.state.run_id)}tail-{self.attempt}"
        try:
            self.s3.put_object(Bucket=self.request.dest_bucket, Key=key, Body=data)
        except AWS_ERRORS as exc:
            raise translate(
                exc, bucket=self.request.dest_bucket, role="destination", action="stage tail", key=key
            ) from None
        return Tail(staging_key=key, length=len(data))

    # -- writing ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.buffer += data
        self.state.offset += len(data)
        self.state.crc = zlib.crc32(data, self.state.crc)
        while len(self.buffer) >= part_size(self.state.next_part, self.request.part_size):
            self._cut(part_size(self.state.next_part, self.request.part_size))

    def write_last_part(self) -> None:
        """Upload what remains as the final part (which may be under 5 MiB)."""
        if self.buffer or self.state.next_part == 1:
            self._cut(len(self.buffer))

    def _cut(self, size: int) -> None:
        with memoryview(self.buffer) as view:  # one copy of the part, not two
            body = bytes(view[:size])
        del self.buffer[:size]
        number = self.state.next_part
        self.state.next_part += 1
        self.state.uploaded += size
        self._raise_failed()
        self.slots.acquire()
        future = self.pool.submit(self._upload, number, body)
        future.add_done_callback(lambda _: self.slots.release())
        self.futures.append((number, size, future))

    def _upload(self, number: int, body: bytes) -> tuple[str, int]:
        if self.store.current_version(self.state.run_id) != self.expected_version:
            raise StaleState(f"run {self.state.run_id}: another step committed; not uploading part {number}")
        crc = zlib.crc32(body)
        # An upload created with a CRC32 checksum wants one on every part; S3 checks it.
        checksum = {"ChecksumCRC32": crc32_header(crc)} if self.state.marked else {}
        try:
            response = self.s3.upload_part(
                Bucket=self.request.dest_bucket,
                Key=self.request.dest_key,
                UploadId=self.state.upload_id,
                PartNumber=number,
                Body=body,
                **checksum,
            )
        except AWS_ERRORS as exc:
            raise translate(
                exc,
                bucket=self.request.dest_bucket,
                role="destination",
                action=f"upload part {number} of",
                key=self.request.dest_key,
            ) from None
        return response["ETag"], crc

    def _raise_failed(self) -> None:
        for _, _, future in self.futures:
            if future.done() and future.exception():
                raise future.exception()

    def wait(self) -> list[list]:
        """Block until every part is uploaded; [[part number, ETag, size, CRC-32], ...]."""
        try:
            parts = []
            for number, size, future in self.futures:
                etag, crc = future.result()
                parts.append([number, etag, size, crc])
            return parts
        finally:
            self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
