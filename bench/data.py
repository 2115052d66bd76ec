"""Deterministic benchmark data: incompressible bytes and log-like text (deflate ratio ~0.2-0.3)."""

from __future__ import annotations

import random

MIB = 1024 * 1024
_WORDS = (
    "GET PUT POST DELETE api v1 v2 items users orders search health checkout cart login "
    "static assets images thumbnails report export import sync batch worker queue retry "
    "timeout cache hit miss shard replica primary session token refresh"
).split()
_LEVELS = ("INFO",) * 8 + ("DEBUG",) * 3 + ("WARN", "ERROR")
_USERS = [f"user{n:04d}" for n in range(500)]


def text_pool(seed: int = 1, lines: int = 40_000) -> list[bytes]:
    """Log lines with realistic variety: timestamps, ids, paths, numbers."""
    rng = random.Random(seed)
    pool = []
    for n in range(lines):
        path = "/".join(rng.choices(_WORDS, k=rng.randint(2, 5)))
        pool.append(
            (
                f"2024-05-{1 + n % 28:02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
                f"{rng.randrange(1000):03d}Z {rng.choice(_LEVELS)} [worker-{rng.randrange(32)}] "
                f"req={rng.getrandbits(64):016x} {rng.choice(_WORDS[:4])} /{path}/{rng.randrange(100000)} "
                f"status={rng.choice((200, 200, 200, 201, 204, 304, 404, 500))} bytes={rng.randrange(1 << 20)} "
                f"ms={rng.random() * 300:.2f} user={rng.choice(_USERS)}\n"
            ).encode()
        )
    return pool


class Generator:
    def __init__(self, seed: int, pool: list[bytes] | None = None):
        self.rng = random.Random(seed)
        self.pool = pool if pool is not None else text_pool(seed)

    def random_bytes(self, n: int) -> bytes:
        return b"".join(self.rng.randbytes(min(MIB, n - start)) for start in range(0, n, MIB))

    def text(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            want = min(MIB, n - len(out))
            block = b"".join(self.rng.choices(self.pool, k=want // 100 + 16))
            out += block[:want]
        return bytes(out)
