"""Deflate backends side by side on one text sample, the way the engine uses them:
each 8 MiB chunk compressed on its own into a raw, sync-flushed deflate piece
(functions/bucketzip/compress.py). Single thread; best of `repeat` timings."""

from __future__ import annotations

import time
import zlib

CHUNK = 8 * 1024 * 1024


def _candidates() -> list[tuple[str, object, int]]:
    found: list[tuple[str, object, int]] = [("zlib level 6", zlib, 6), ("zlib level 1", zlib, 1)]
    try:
        from isal import isal_zlib

        found.append(("ISA-L level 1 (isal_zlib)", isal_zlib, 1))
    except ImportError:
        found.append(("ISA-L level 1 (isal_zlib)", None, 1))
    try:
        from zlib_ng import zlib_ng

        found.append(("zlib-ng level 1", zlib_ng, 1))
    except ImportError:
        found.append(("zlib-ng level 1", None, 1))
    return found


def _compress(module, level: int, data: bytes) -> list[bytes]:
    pieces = []
    for start in range(0, len(data), CHUNK):
        compressor = module.compressobj(level, zlib.DEFLATED, -15)
        pieces.append(compressor.compress(data[start : start + CHUNK]) + compressor.flush(zlib.Z_SYNC_FLUSH))
    return pieces


def compare(sample: bytes, repeat: int = 3) -> list[dict]:
    rows = []
    for name, module, level in _candidates():
        if module is None:
            rows.append({"backend": name, "available": False})
            continue
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            pieces = _compress(module, level, sample)
            best = min(best, time.perf_counter() - started)
        stream = b"".join(pieces) + b"\x03\x00"  # the engine's final empty block
        if zlib.decompress(stream, -15) != sample:
            raise AssertionError(f"{name}: round trip failed")
        rows.append(
            {
                "backend": name,
                "available": True,
                "seconds": round(best, 4),
                "mb_per_s": round(len(sample) / best / 1e6, 1),
                "ratio": round(len(stream) / len(sample), 4),
            }
        )
    return rows
