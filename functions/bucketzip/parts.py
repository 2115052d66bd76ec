"""Multipart part sizes (pure). S3: every part but the last 5 MiB..5 GiB, at most 10,000.

Policy: the starting size for parts 1-1000, doubling every 1000 parts, capped at 5 GiB,
and the last 1000 part numbers at the 5 GiB maximum. Part boundaries are therefore fixed
archive offsets, whatever the step boundaries: a retried step re-cuts the same parts.
Capacity with the smallest start (5 MiB): 9000 growing parts + 1000 x 5 GiB > 5 TiB,
the largest object S3 accepts.
"""

from __future__ import annotations

from .limits import MAX_PART_SIZE, MAX_PARTS

PARTS_PER_STEP = 1000


def part_size(part_number: int, start_size: int) -> int:
    """Size of part `part_number` (1-based) when it is not the last part."""
    if not 1 <= part_number <= MAX_PARTS:
        raise ValueError(f"part number {part_number} is outside 1..{MAX_PARTS}")
    if part_number > MAX_PARTS - PARTS_PER_STEP:
        return MAX_PART_SIZE
    return min(MAX_PART_SIZE, start_size << ((part_number - 1) // PARTS_PER_STEP))


def capacity(start_size: int) -> int:
    """The largest archive this policy can upload."""
    return sum(part_size(n, start_size) for n in range(1, MAX_PARTS + 1))
