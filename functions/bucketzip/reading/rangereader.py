"""Random access to one archive object through ranged GETs.

`S3RangeReader.open` learns the object's size and ETag from a single suffix-range
GET of the archive's tail (where the end records, and for small archives the whole
central directory, live) and caches those bytes. Afterwards:

- `read_at(offset, length)`: small reads, served from a small LRU block cache when
  possible, else one GET (at least `block_size` bytes, so neighbouring small reads
  hit the cache);
- `stream(start, end)`: a `ByteStream` over a byte range, one GET whose body is read
  in bounded chunks (re-opened from the current position if the connection drops).

Every GET after the first carries `IfMatch=<etag>`, so an archive replaced while it
is read fails with `ArchiveChanged` instead of mixing two objects' bytes.
The reader counts requests and body bytes (`stats()`), so tests can assert how little
of a large archive `ls` or a one-entry `extract` reads. It is thread-safe.

`BytesRangeReader` serves bytes held in memory through the same interface (tests,
fuzzing) and `FileRangeReader` a local file.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ArchiveNotFound, CorruptArchive, ReadFailed
from ..s3errors import AWS_ERRORS, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KiB, MiB = 1024, 1024 * 1024
# The end records are at most 22 + 65,535 (comment) + 20 (zip64 locator) + 56 (zip64
# end record) bytes from the end: one tail read always finds them.
TAIL_SIZE = 65 * KiB
DEFAULT_BLOCK = 64 * KiB
DEFAULT_CACHE_BYTES = 4 * MiB
CACHEABLE = 1 * MiB  # reads larger than this bypass the cache
STREAM_CHUNK = 1 * MiB  # body bytes pulled per read from a streaming GET
STREAM_RETRIES = 3
DRAIN_LIMIT = 64 * KiB  # read out at most this much of a response to reuse its connection

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


@dataclass(frozen=True)
class ReadStats:
    requests: int
    bytes_read: int


class RangeReader:
    """Base: cache, counters, streams. Subclasses implement `_get` and `_open_raw`."""

    name = "archive"

    def __init__(self, size: int, *, block_size: int = DEFAULT_BLOCK, cache_bytes: int = DEFAULT_CACHE_BYTES):
        if size < 0:
            raise CorruptArchive(f"{self.name}: negative size")
        self.size = size
        self.block_size = max(1, block_size)
        self._cache_limit = cache_bytes
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._requests = 0
        self._bytes = 0

    # -- subclass hooks ------------------------------------------------------------
    def _get(self, start: int, end: int) -> bytes:
        """One request for bytes [start, end)."""
        raise NotImplementedError

    def _open_raw(self, start: int, end: int):
        """One request for bytes [start, end); returns an object with read(n) and close()."""
        raise NotImplementedError

    # -- counters ------------------------------------------------------------------
    def _count(self, requests: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self._requests += requests
            self._bytes += nbytes

    def stats(self) -> ReadStats:
        with self._lock:
            return ReadStats(self._requests, self._bytes)

    @property
    def requests(self) -> int:
        return self.stats().requests

    @property
    def bytes_read(self) -> int:
        return self.stats().bytes_read

    # -- cache ---------------------------------------------------------------------
    def _remember(self, start: int, data: bytes) -> None:
        if not data or len(data) > max(CACHEABLE, TAIL_SIZE):
            return
        with self._lock:
            old = self._cache.pop(start, None)
            if old is not None:
                self._cached_bytes -= len(old)
            self._cache[start] = data
            self._cached_bytes += len(data)
            while self._cached_bytes > self._cache_limit and len(self._cache) > 1:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= len(dropped)

    def cached(self, offset: int, length: int) -> bytes | None:
        """The bytes [offset, offset+length) if one cached block holds them all."""
        with self._lock:
            for start, data in reversed(self._cache.items()):
                if start <= offset and offset + length <= start + len(data):
                    self._cache.move_to_end(start)
                    return data[offset - start : offset - start + length]
        return None

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise CorruptArchive(
                f"{self.name}: read of {length} bytes at offset {offset} is outside the archive ({self.size} bytes)"
            )

    # -- public reads --------------------------------------------------------------
    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at `offset`; CorruptArchive if that passes the end."""
        self._check_range(offset, length)
        if length == 0:
            return b""
        hit = self.cached(offset, length)
        if hit is not None:
            return hit
        end = min(self.size, offset + max(length, self.block_size))
        data = self._get(offset, end)
        if len(data) != end - offset:
            raise ReadFailed(f"{self.name}: short read at offset {offset}")
        self._remember(offset, data)
        return data[:length]

    def stream(self, start: int, end: int, *, limit: int | None = None) -> ByteStream:
        """A sequential reader over [start, end); `extend_to` may later grow it up to `limit`."""
        self._check_range(start, end - start)
        return ByteStream(self, start, end, self.size if limit is None else limit)

    def close(self) -> None:
        pass


class ByteStream:
    """Sequential, bounded-memory reads over a byte range of a RangeReader.

    One underlying request per contiguous run; served from the reader's cache when the
    whole range is cached. read(n) never returns more than n bytes and holds at most
    one chunk of the body at a time.
    """

    def __init__(self, reader: RangeReader, start: int, end: int, limit: int):
        if not (0 <= start <= end <= limit <= reader.size):
            raise CorruptArchive(
                f"{reader.name}: byte range {start}-{end} is outside the archive ({reader.size} bytes)"
            )
        self.reader = reader
        self.pos = start
        self.end = end
        self.limit = limit
        self._raw = None
        self._raw_end = start
        self._buf = b""
        self._buf_pos = 0
        self._memory = reader.cached(start, end - start)
        self._memory_start = start

    # ------------------------------------------------------------------------------
    def extend_to(self, end: int) -> None:
        if end > self.limit:
            raise CorruptArchive(
                f"{self.reader.name}: data runs to offset {end}, past the end of its region (offset {self.limit})"
            )
        self.end = max(self.end, end)

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def _memory_read(self, n: int) -> bytes | None:
        mem = self._memory
        if mem is None:
            return None
        rel = self.pos - self._memory_start
        if rel < 0 or rel >= len(mem):
            return None
        return mem[rel : rel + n]

    def read(self, n: int = STREAM_CHUNK) -> bytes:
        """Up to n bytes (fewer only at the end of the range; b'' at the end)."""
        n = min(n, self.end - self.pos)
        if n <= 0:
            return b""
        data = self._memory_read(n)
        if data:
            self.pos += len(data)
            return data
        if self._buf_pos < len(self._buf):
            data = self._buf[self._buf_pos : self._buf_pos + n]
            self._buf_pos += len(data)
            self.pos += len(data)
            return data
        self._fill(n)
        data = self._buf[:n]
        self._buf_pos = len(data)
        self.pos += len(data)
        return data

    def _fill(self, n: int) -> None:
        """Refill the buffer with the next body chunk, (re)opening a request as needed."""
        attempts = 0
        while True:
            if self._raw is None or self._raw_end <= self.pos:
                self._open_at(self.pos)
            raw = self._raw
            if raw is None:  # _open_at sets it or raises
                raise ReadFailed(f"{self.reader.name}: no response to read at offset {self.pos}")
            try:
                chunk = raw.read(min(max(n, STREAM_CHUNK), self._raw_end - self.pos))
            except _STREAM_ERRORS as exc:
                chunk = None
                failure = exc
            if chunk:
                self.reader._count(nbytes=len(chunk))
                self._buf, self._buf_pos = chunk, 0
                return
            # the connection ended early or failed: reopen at the current position
            self._close_raw()
            attempts += 1
            if attempts > STREAM_RETRIES:
                detail = f": {failure}" if chunk is None else ""
                raise ReadFailed(f"{self.reader.name}: the read at offset {self.pos} kept failing{detail}")

    def _open_at(self, pos: int) -> None:
        self._close_raw()
        # one request for everything still wanted (the range may grow: re-opened then)
        self._raw = self.reader._open_raw(pos, self.end)
        self._raw_end = self.end

    def read_exact(self, n: int, what: str = "data") -> bytes:
        if n > self.end - self.pos:
            raise CorruptArchive(f"{self.reader.name}: {what} at offset {self.pos} runs past offset {self.end}")
        if n <= len(self._buf) - self._buf_pos:
            data = self._buf[self._buf_pos : self._buf_pos + n]
            self._buf_pos += n
            self.pos += n
            return data
        parts = []
        while n > 0:
            piece = self.read(n)
            if not piece:
                raise CorruptArchive(f"{self.reader.name}: {what} at offset {self.pos} is truncated")
            parts.append(piece)
            n -= len(piece)
        return b"".join(parts)

    def unread(self, data: bytes) -> None:
        """Push back bytes just read (at most what the last reads returned)."""
        if not data:
            return
        self.pos -= len(data)
        if self._memory_read(len(data)) is not None:
            return
        n = len(data)
        if self._buf_pos >= n and self._buf[self._buf_pos - n : self._buf_pos] == data:
            self._buf_pos -= n  # still in the buffer: just step back
            return
        self._buf = bytes(data) + self._buf[self._buf_pos :]
        self._buf_pos = 0

    def seek(self, target: int) -> None:
        """Move to any offset in [start of the archive, end]; later reads re-request as needed."""
        if target >= self.pos:
            self.skip(target - self.pos)
            return
        self._buf, self._buf_pos = b"", 0
        self._close_raw()
        self.pos = max(0, target)

    def skip(self, n: int) -> None:
        """Advance n bytes (reads through short gaps; re-requests for long ones)."""
        if n <= 0:
            return
        target = min(self.end, self.pos + n)
        buffered = len(self._buf) - self._buf_pos
        if target - self.pos <= buffered:
            self._buf_pos += target - self.pos
            self.pos = target
            return
        if target - self.pos <= 4 * STREAM_CHUNK and self._memory is None:
            while self.pos < target:
                if not self.read(target - self.pos):
                    break
            return
        self._buf, self._buf_pos = b"", 0
        self._close_raw()
        self.pos = target

    def _close_raw(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            except Exception:  # noqa: BLE001 - closing a dead connection must not mask the cause
                pass
            self._raw = None

    def close(self) -> None:
        """Finish: a short unread rest of the response is read out first, so that the
        HTTP connection goes back to the pool instead of being dropped."""
        if self._raw is not None and self._memory is None:
            left = self._raw_end - (self.pos + len(self._buf) - self._buf_pos)
            if 0 < left <= DRAIN_LIMIT:
                try:
                    while left > 0:
                        chunk = self._raw.read(left)
                        if not chunk:
                            break
                        self.reader._count(nbytes=len(chunk))
                        left -= len(chunk)
                except _STREAM_ERRORS:
                    pass
        self._close_raw()
        self._buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stream_errors() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError, OSError]
    try:
        from botocore import exceptions as bexc

        kinds += [bexc.ReadTimeoutError, bexc.ConnectionError, bexc.IncompleteReadError, bexc.ResponseStreamingError]
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    try:
        from urllib3 import exceptions as uexc

        kinds += [uexc.ProtocolError, uexc.ReadTimeoutError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(kinds)


_STREAM_ERRORS = _stream_errors()


# ----------------------------------------------------------------------------------
class _MemoryRaw:
    def __init__(self, reader: BytesRangeReader, start: int, end: int):
        self._data = reader._data
        self._pos, self._end = start, end

    def read(self, n: int) -> bytes:
        n = min(n, self._end - self._pos)
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(out)
        return out

    def close(self) -> None:
        pass


class BytesRangeReader(RangeReader):
    """An archive held in memory (tests, fuzzing). Counts requests like S3 would."""

    def __init__(self, data: bytes, name: str = "memory.zip", **kwargs):
        self._data = memoryview(bytes(data))
        self.name = name
        super().__init__(len(self._data), **kwargs)

    def _get(self, start: int, end: int) -> bytes:
        self._count(1, end - start)
        return bytes(self._data[start:end])

    def _open_raw(self, start: int, end: int):
        self._count(1)
        return _MemoryRaw(self, start, end)


class _FileRaw:
    def __init__(self, path: str, start: int, end: int):
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._f.seek(start)
        self._left = end - start

    def read(self, n: int) -> bytes:
        data = self._f.read(min(n, self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()


class FileRangeReader(RangeReader):
    """A local zip file through the same interface."""

    def __init__(self, path: str | os.PathLike, **kwargs):
        self.path = os.fspath(path)
        self.name = self.path
        try:
            size = os.path.getsize(self.path)
        except OSError as exc:
            raise ArchiveNotFound(f"{self.path}: {exc.strerror or exc}") from None
        super().__init__(size, **kwargs)

    def _get(self, start: int, end: int) -> bytes:
        self._count(1, end - start)
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def _open_raw(self, start: int, end: int):
        self._count(1)
        return _FileRaw(self.path, start, end)


# ----------------------------------------------------------------------------------


class S3RangeReader(RangeReader):
    """One S3 object (optionally a version) read with ranged GETs."""

    def __init__(
        self, s3: S3Client, bucket: str, key: str, size: int, etag: str | None, version_id: str | None = None, **kwargs
    ):
        self.s3, self.bucket, self.key = s3, bucket, key
        self.etag, self.version_id = etag, version_id
        self.name = f"s3://{bucket}/{key}"
        super().__init__(size, **kwargs)

    @classmethod
    def open(
        cls, s3: S3Client, bucket: str, key: str, *, version_id: str | None = None, tail: int = TAIL_SIZE, **kwargs
    ) -> S3RangeReader:
        """One GET of the last `tail` bytes: gives size, ETag and the end records."""
        name = f"s3://{bucket}/{key}"
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes=-{tail}"}
        if version_id:
            params["VersionId"] = version_id
        requests = 1
        response: Mapping[str, Any]  # a GetObject answer, or HeadObject's for an empty object
        try:
            response = s3.get_object(**params)
            body = response["Body"]
            try:
                data = body.read()
            finally:
                body.close()
        except AWS_ERRORS as exc:
            if error_code(exc) != "InvalidRange":
                raise translate(exc, bucket=bucket, role="archive", action="read", key=key) from None
            # an empty object: S3 answers 416 to any range
            try:
                head = s3.head_object(**{k: v for k, v in params.items() if k != "Range"})
            except AWS_ERRORS as exc2:
                raise translate(exc2, bucket=bucket, role="archive", action="read", key=key) from None
            requests += 1
            response, data = head, b""
        match = _CONTENT_RANGE.match(response.get("ContentRange") or "")
        if match:
            start, size = int(match.group(1)), int(match.group(3))
        else:  # the whole object came back (it is smaller than the range, or empty)
            size = int(response.get("ContentLength", len(data)))
            start = size - len(data)
        if start != size - len(data) or start < 0:
            raise ReadFailed(f"{name}: unexpected ranged GET answer ({response.get('ContentRange')})")
        reader = cls(s3, bucket, key, size, response.get("ETag"), version_id=version_id, **kwargs)
        reader._count(requests, len(data))
        reader._remember(start, data)
        return reader

    def _params(self, start: int, end: int) -> dict[str, Any]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={start}-{end - 1}"}
        if self.version_id:
            params["VersionId"] = self.version_id
        if self.etag:
            params["IfMatch"] = self.etag
        return params

    def _get(self, start: int, end: int) -> bytes:
        self._count(1)
        try:
            body = self.s3.get_object(**self._params(start, end))["Body"]
            try:
                data = body.read()
            finally:
                body.close()
        except AWS_ERRORS as exc:
            raise translate(exc, bucket=self.bucket, role="archive", action="read", key=self.key) from None
        except _STREAM_ERRORS as exc:
            raise ReadFailed(f"{self.name}: read at offset {start} failed: {exc}") from None
        self._count(nbytes=len(data))
        return data

    def _open_raw(self, start: int, end: int):
        self._count(1)
        try:
            return self.s3.get_object(**self._params(start, end))["Body"]
        except AWS_ERRORS as exc:
            raise translate(exc, bucket=self.bucket, role="archive", action="read", key=self.key) from None
