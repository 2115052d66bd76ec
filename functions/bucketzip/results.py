"""What the engine reports back to its front doors (CLI, Lambda handlers)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .limits import MAX_STATE_PAYLOAD_BYTES

# A Step or Finish result travels in the Step Functions payload (limits.MAX_STATE_PAYLOAD_BYTES,
# and a States.DataLimitExceeded there cannot be caught): it carries counts and the first
# few warnings, each cut short; every skipped object is in the manifest and the logs. An
# eighth of the payload leaves the rest of the state's input to the state machine.
MAX_WARNINGS = 10
MAX_WARNING_CHARS = 400
MAX_RESULT_BYTES = MAX_STATE_PAYLOAD_BYTES // 8


def capped_warnings(first: list[str], total: int) -> list[str]:
    """The first MAX_WARNINGS of `total` warnings, each at most MAX_WARNING_CHARS, then
    one line saying how many more there were."""
    out = [w if len(w) <= MAX_WARNING_CHARS else w[: MAX_WARNING_CHARS - 1] + "…" for w in first[:MAX_WARNINGS]]
    if total > len(out):
        out.append(f"… and {total - len(out)} more (every skipped object is listed in the manifest and the logs)")
    return out


@dataclass
class Progress:
    run_id: str
    phase: str  # "archiving" | "finishing" | "complete"
    done: bool  # True when the phase needs no more steps
    objects: int  # entries written so far
    skipped: int  # objects skipped (changed, vanished, unreadable storage class)
    bytes_in: int  # source bytes read
    bytes_out: int  # archive bytes produced
    parts: int  # parts uploaded (committed)
    steps: int  # committed steps
    dest_bucket: str = ""
    dest_key: str = ""
    warnings: list[str] = dataclasses.field(default_factory=list)
    suspended: str = ""  # why the run is suspended ("" while it is not)
    shards: int = 0  # a parallel run's planned shards (0 until its plan is written)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ArchiveResult:
    run_id: str
    bucket: str
    key: str
    size: int
    entries: int
    parts: int
    skipped: int
    manifest_key: str
    etag: str
    steps: int
    duration_seconds: float

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
