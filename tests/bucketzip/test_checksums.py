"""CRC-32 arithmetic: combining CRCs of concatenated byte ranges."""

import os
import random
import zlib

from bucketzip.checksums import crc32_combine


def test_combine_matches_zlib_on_random_pieces():
    rng = random.Random(7)
    for _ in range(200):
        a, b = os.urandom(rng.randrange(0, 2000)), os.urandom(rng.randrange(0, 2000))
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_combine_over_long_runs():
    zeros = bytes(3_000_001)  # odd length: every power of the shift table is used
    assert crc32_combine(zlib.crc32(b"head"), zlib.crc32(zeros), len(zeros)) == zlib.crc32(b"head" + zeros)
    assert crc32_combine(0, 0, 0) == 0
    assert crc32_combine(zlib.crc32(b"x"), 0, 0) == zlib.crc32(b"x")
