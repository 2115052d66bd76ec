"""The > 65,535-entry archive shared by the engine and reading tests (zip64 end records)."""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass

from bucketzip.store_local import LocalStateStore
from support.archiving import archive
from support.synthetic import SyntheticSource

COUNT = 70_000


def name(i: int) -> str:
    return f"d{i // 1000:02d}/f{i:05d}.txt"


def body(i: int) -> bytes:
    return b"%d\n" % i


@dataclass(frozen=True)
class ManyEntries:
    bucket: str
    key: str
    size: int
    steps: int


def make(s3) -> ManyEntries:
    """Archive COUNT tiny entries into a new bucket, in several steps. The source is
    synthetic (70,000 GETs through the emulator would take minutes; listing and reading
    over HTTP are proven by the other tests); the archive goes to the emulator."""
    bucket = f"zip64-many-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    source = SyntheticSource(s3, "synthetic-many", {}, bodies={name(i): body(i) for i in range(COUNT)})
    with tempfile.TemporaryDirectory() as state_dir:
        result, steps = archive(
            source,
            LocalStateStore(state_dir),
            source_bucket="synthetic-many",
            dest_bucket=bucket,
            dest_key="many.zip",
            step_bytes=2_000_000,
        )
    assert result.entries == COUNT
    return ManyEntries(bucket=bucket, key="many.zip", size=result.size, steps=steps)
