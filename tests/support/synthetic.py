"""A synthetic source bucket: objects of any size generated on the fly, so tests can
archive gigabytes without storing them. Every other call goes to the real client."""

from __future__ import annotations

import hashlib
import io
import random
import re
from datetime import UTC, datetime

from isal.isal_zlib import crc32, crc32_combine

_BLOCK = random.Random(5).randbytes(1_048_573)  # prime length: no alignment with chunks/parts
_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


_WINDOW_BYTES = 16 << 20  # slices up to this long come from one precomputed window: one copy
_window: memoryview | None = None


def generate(offset: int, length: int) -> bytes:
    """Bytes [offset, offset+length) of the endless pseudo-random stream (incompressible)."""
    global _window
    start = offset % len(_BLOCK)
    if length <= _WINDOW_BYTES:
        if _window is None:  # built on first use: the block repeated to cover any start + length
            _window = memoryview(_BLOCK * (_WINDOW_BYTES // len(_BLOCK) + 2))
        return bytes(_window[start : start + length])
    return _tile(start, length)


def _tile(start: int, length: int) -> bytes:
    out = bytearray(_BLOCK[start:])
    while len(out) < length:
        out += _BLOCK
    return bytes(out[:length])


def crc32_of(size: int) -> int:
    """CRC-32 of the stream's first `size` bytes, without generating them: whole blocks are
    combined (crc32_combine), so a 4 GiB entry's expected CRC costs microseconds."""
    whole, rest = divmod(size, len(_BLOCK))
    crc, block, span = 0, crc32(_BLOCK), len(_BLOCK)
    while whole:  # square-and-multiply over block runs: O(log(size)) combines
        if whole & 1:
            crc = crc32_combine(crc, block, span)
        block, span, whole = crc32_combine(block, block, span), span * 2, whole >> 1
    return crc32_combine(crc, crc32(_BLOCK[:rest]), rest)


def sha256_of(size: int, piece: int = 64 << 20) -> str:
    digest = hashlib.sha256()
    for offset in range(0, size, piece):
        digest.update(generate(offset, min(piece, size - offset)))
    return digest.hexdigest()


class SyntheticSource:
    def __init__(self, real, bucket: str, sizes: dict[str, int], bodies: dict[str, bytes] | None = None):
        """Objects of `sizes` with generated content, or exactly `bodies` when given."""
        if bodies is not None:
            sizes = {key: len(body) for key, body in bodies.items()}
        self._real, self._bucket, self._sizes = real, bucket, dict(sorted(sizes.items()))
        self._bodies = bodies
        self._modified = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __getattr__(self, name):
        return getattr(self._real, name)

    def _etag(self, key: str) -> str:
        return '"' + hashlib.md5(f"{key}:{self._sizes[key]}".encode()).hexdigest() + '"'

    def list_objects_v2(self, **kwargs):
        if kwargs.get("Bucket") != self._bucket:
            return self._real.list_objects_v2(**kwargs)
        keys = [k for k in self._sizes if k.startswith(kwargs.get("Prefix", "")) and k > kwargs.get("StartAfter", "")]
        start = int(kwargs.get("ContinuationToken") or 0)
        end = start + kwargs.get("MaxKeys", 1000)
        page = {
            "IsTruncated": end < len(keys),
            "KeyCount": len(keys[start:end]),
            "Contents": [
                {
                    "Key": k,
                    "Size": self._sizes[k],
                    "ETag": self._etag(k),
                    "LastModified": self._modified,
                    "StorageClass": "STANDARD",
                }
                for k in keys[start:end]
            ],
        }
        if end < len(keys):
            page["NextContinuationToken"] = str(end)
        return page

    def head_object(self, **kwargs):
        if kwargs.get("Bucket") != self._bucket:
            return self._real.head_object(**kwargs)
        return self.get_object(**kwargs, Range="bytes=0-0")

    def get_object(self, **kwargs):
        if kwargs.get("Bucket") != self._bucket:
            return self._real.get_object(**kwargs)
        size = self._sizes[kwargs["Key"]]
        match = _RANGE.match(kwargs.get("Range", ""))
        first, last = (int(match.group(1)), int(match.group(2))) if match else (0, size - 1)
        length = max(0, min(last, size - 1) - first + 1)
        if self._bodies is not None:
            data = self._bodies[kwargs["Key"]][first : first + length]
        else:
            data = generate(first, length)
        return {
            "Body": io.BytesIO(data),
            "ContentLength": len(data),
            "ETag": self._etag(kwargs["Key"]),
            "ContentType": "application/octet-stream",
            "Metadata": {},
        }
