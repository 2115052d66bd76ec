"""Run the engine end to end in tests, step by step, like the CLI or the workflow does."""

from __future__ import annotations

import io
import json
import zipfile

from bucketzip import engine
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.results import ArchiveResult


def archive(s3, store, *, max_steps: int = 100_000, **fields) -> tuple[ArchiveResult, int]:
    """Archive with `ArchiveRequest.create(**fields)`; returns (result, archiving steps)."""
    request = ArchiveRequest.create(**fields)
    progress = engine.start_run(s3, store, request)
    steps = 0
    try:
        while not progress.done:
            progress = engine.run_step(s3, store, progress.run_id, Deadline(None))
            steps += 1
            assert steps <= max_steps, "too many steps"
        outcome = engine.finish_run(s3, store, progress.run_id, Deadline(None))
        while not isinstance(outcome, ArchiveResult):
            outcome = engine.finish_run(s3, store, progress.run_id, Deadline(None))
    except BaseException:
        engine.abort_run(s3, store, progress.run_id)
        raise
    return outcome, steps


def fetch(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def manifest(s3, bucket: str, key: str) -> list[dict]:
    return [json.loads(line) for line in fetch(s3, bucket, key + ".manifest.jsonl").splitlines()]


def contents_by_key(s3, bucket: str, key: str) -> dict[str, bytes]:
    """Source key -> extracted bytes, through the manifest's name mapping."""
    data = fetch(s3, bucket, key)
    names = {line["name"]: line["key"] for line in manifest(s3, bucket, key) if line["type"] == "entry"}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {names[info.filename]: zf.read(info) for info in zf.infolist()}
