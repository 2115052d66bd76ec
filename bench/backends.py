"""Deflate backends side by side, the way the engine uses them: each 8 MiB chunk
compressed on its own into a raw, sync-flushed deflate piece
(functions/bucketzip/compress.py). Single thread; the median of `repeat` timings.
Text levels run on the text sample; level 0 (auto mode's stored blocks for incompressible
data) on random bytes, where it compares zlib level 0 with the engine's direct blocks."""

from __future__ import annotations

import os
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

CHUNK = 8 * 1024 * 1024
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))


def _module_piece(module, level: int) -> Callable[[bytes], bytes]:
    def piece(data: bytes) -> bytes:
        compressor = module.compressobj(level, zlib.DEFLATED, -15)
        return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)

    return piece


def _candidates() -> list[tuple[str, str, Callable[[bytes], bytes] | None]]:
    """(name, sample kind, piece function or None when not importable)."""
    from bucketzip import compress

    found: list[tuple[str, str, Callable[[bytes], bytes] | None]] = [
        ("zlib level 6", "text", _module_piece(zlib, 6)),
        ("zlib level 1", "text", _module_piece(zlib, 1)),
    ]
    try:
        from isal import isal_zlib

        found += [("ISA-L level 1", "text", _module_piece(isal_zlib, 1))]
        found += [("ISA-L level 3", "text", _module_piece(isal_zlib, 3))]
    except ImportError:
        found += [("ISA-L level 1", "text", None)]
    try:
        from zlib_ng import zlib_ng

        found += [("zlib-ng level 1", "text", _module_piece(zlib_ng, 1))]
        found += [("zlib-ng level 6", "text", _module_piece(zlib_ng, 6))]
    except ImportError:
        found += [("zlib-ng level 6", "text", None)]
    found += [
        (f"engine level 1 ({compress.backend_name(1)})", "text", lambda d: compress.deflate_piece(d, 1)),
        (f"engine level 6 ({compress.backend_name(6)})", "text", lambda d: compress.deflate_piece(d, 6)),
        ("zlib level 0 (random data)", "random", _module_piece(zlib, 0)),
        ("engine level 0: stored blocks (random data)", "random", lambda d: compress.deflate_piece(d, 0)),
    ]
    return found


def compare(sample: bytes, repeat: int = 3) -> list[dict]:
    rows = []
    samples = {"text": sample, "random": os.urandom(len(sample))}
    for name, kind, piece in _candidates():
        if piece is None:
            rows.append({"backend": name, "available": False})
            continue
        data, times = samples[kind], []
        for _ in range(repeat):
            started = time.perf_counter()
            pieces = [piece(data[start : start + CHUNK]) for start in range(0, len(data), CHUNK)]
            times.append(time.perf_counter() - started)
        stream = b"".join(pieces) + b"\x03\x00"  # the engine's final empty block
        if zlib.decompress(stream, -15) != data:
            raise AssertionError(f"{name}: round trip failed")
        median = statistics.median(times)
        rows.append(
            {
                "backend": name,
                "available": True,
                "seconds": round(median, 4),
                "spread_s": round(max(times) - min(times), 4),
                "mb_per_s": round(len(data) / median / 1e6, 1),
                "ratio": round(len(stream) / len(data), 4),
            }
        )
    return rows


if __name__ == "__main__":  # python -m bench.backends: this table alone
    from bench.data import Generator

    for row in compare(Generator(seed=7).text(32 * 1024 * 1024), repeat=int(os.environ.get("REPEAT", "3"))):
        print(row)
