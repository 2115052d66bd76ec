"""What the engine reports back to its front doors (CLI, Lambda handlers)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


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
