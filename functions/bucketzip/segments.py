"""Names of a parallel run's segments (issue 10): each shard of the listing is archived by
its own resumable run, a *segment run*, straight into its range of the archive upload's
part numbers, and the parent run assembles their records (parallel.py).

Everything of a parent run P lives under `staging_prefix(P)` in the destination bucket:
its tails, its plan and its segments' tails. So one sweep of that
prefix (finish, abort) removes all of it.
"""

from __future__ import annotations

import re

from .config import STAGING_PREFIX

# A segment run's id: the parent's, then ".s" and the shard index in 5 digits.
_SEGMENT_ID = re.compile(r"^(?P<parent>.+)\.s(?P<index>\d{5})$")


def segment_run_id(parent: str, index: int) -> str:
    return f"{parent}.s{index:05d}"


def split_segment_id(run_id: str) -> tuple[str, int] | None:
    """(parent run id, shard index) of a segment run's id; None for any other run."""
    match = _SEGMENT_ID.match(run_id)
    return (match["parent"], int(match["index"])) if match else None


def staging_prefix(run_id: str) -> str:
    """Where a run keeps its staging objects; a segment run's lies under its parent's."""
    parsed = split_segment_id(run_id)
    if parsed is not None:
        parent, index = parsed
        return f"{staging_prefix(parent)}s{index:05d}/"
    return f"{STAGING_PREFIX}{run_id}/"
