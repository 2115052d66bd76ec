"""Multipart part sizes (pure). S3: every part but the last 5 MiB..5 GiB, at most 10,000.

Policy: the starting size for parts 1-1000, doubling every 1000 parts, capped at 5 GiB,
and the last 1000 part numbers at the 5 GiB maximum. Part boundaries are therefore fixed
archive offsets, whatever the step boundaries: a retried step re-cuts the same parts.
Capacity (`capacity`): 12.7 TiB from the default 16 MiB start, 7.3 TiB from 5 MiB,
48.8 TiB from 5 GiB (10,000 x 5 GiB). An archive past it fails
with ArchiveTooLarge as soon as the listing or the bytes prove it (`check_fits`).
"""

from __future__ import annotations

import functools

from .errors import ArchiveTooLarge
from .limits import MAX_PART_SIZE, MAX_PARTS
from .sizes import format_size

PARTS_PER_STEP = 1000
# A parallel run's segments write the numbers before this one (plan.allot_parts); the last
# PARTS_PER_STEP numbers (5 GiB parts) are the parent's own: the bytes of segments too small
# for a part of their own, then the central directory.
FIRST_TAIL_PART = MAX_PARTS - PARTS_PER_STEP + 1


def part_size(part_number: int, start_size: int) -> int:
    """Size of part `part_number` (1-based) when it is not the last part."""
    if not 1 <= part_number <= MAX_PARTS:
        raise ValueError(f"part number {part_number} is outside 1..{MAX_PARTS}")
    if part_number > MAX_PARTS - PARTS_PER_STEP:
        return MAX_PART_SIZE
    return min(MAX_PART_SIZE, start_size << ((part_number - 1) // PARTS_PER_STEP))


@functools.lru_cache(maxsize=16)
def capacity(start_size: int) -> int:
    """The largest archive this policy can upload."""
    return sum(part_size(n, start_size) for n in range(1, MAX_PARTS + 1))


def check_fits(size: int, start_size: int, what: str = "the archive") -> None:
    """Raise ArchiveTooLarge when `size` archive bytes cannot fit the policy's 10,000 parts."""
    limit = capacity(start_size)
    if size > limit:
        raise ArchiveTooLarge(
            f"{what} needs more than {format_size(size)} ({size} bytes), past the largest archive "
            f"the part policy starting at part_size {format_size(start_size)} allows: {format_size(limit)} "
            f"({limit} bytes) in {MAX_PARTS} parts; ask for a larger part_size (up to 5 GiB: "
            f"{format_size(capacity(MAX_PART_SIZE))})"
        )
