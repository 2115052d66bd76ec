"""Run the engine end to end in tests, step by step, like the CLI or the workflow does."""

from __future__ import annotations

import io
import json
import zipfile

from bucketzip import engine
from bucketzip.config import ArchiveRequest
from bucketzip.driver import run_to_completion
from bucketzip.results import ArchiveResult


def archive(s3, store, *, max_steps: int = 100_000, **fields) -> tuple[ArchiveResult, int]:
    """Archive with `ArchiveRequest.create(**fields)`; returns (result, archiving steps)."""
    request = ArchiveRequest.create(**fields)
    started: list[str] = []
    try:
        completed = run_to_completion(
            s3, store, request, on_started=lambda p: started.append(p.run_id), max_steps=max_steps
        )
    except BaseException:
        if started:
            engine.abort_run(s3, store, started[0])
        raise
    return completed.result, completed.archiving_steps


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
