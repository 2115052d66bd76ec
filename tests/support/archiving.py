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


def entry_differences(got: bytes, expected: bytes) -> str:
    """Where two archives of the same files differ, entry by entry: what a failed byte
    comparison should say (which entry, which field, and whether its data still reads back
    the same), so a rare mismatch is diagnosable from the test log alone."""
    lines = [f"sizes {len(got)} vs {len(expected)}; first byte that differs at {_first_difference(got, expected)}"]
    with zipfile.ZipFile(io.BytesIO(got)) as a, zipfile.ZipFile(io.BytesIO(expected)) as b:
        theirs = {info.filename: info for info in b.infolist()}
        for info in a.infolist():
            other = theirs.pop(info.filename, None)
            if other is None:
                lines.append(f"{info.filename!r}: only in the first")
                continue
            fields = ("header_offset", "compress_type", "CRC", "compress_size", "file_size", "flag_bits")
            changed = [f"{f} {getattr(info, f)} vs {getattr(other, f)}" for f in fields]
            changed = [c for c, f in zip(changed, fields, strict=True) if getattr(info, f) != getattr(other, f)]
            if changed:
                same = "equal" if a.read(info) == b.read(other) else "DIFFERENT"
                lines.append(f"{info.filename!r}: {', '.join(changed)}; data reads back {same}")
        lines += [f"{name!r}: only in the second" for name in theirs]
    return "\n".join(lines[:40])


def _first_difference(a: bytes, b: bytes) -> int | None:
    end = None if len(a) == len(b) else min(len(a), len(b))
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), end)
