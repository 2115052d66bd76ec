"""Smoke test of issue 10's benchmarks (bench/parallel.py, bench/meter.py): tiny sizes, the
whole pipeline once (moto and the metering proxies in their own processes, the CLI archives,
the report, the model table), so that they do not rot. Not the figures: they depend on the
machine and on which parts of issue 10 have landed. Plus the meter's pure parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.meter import PARENT, Meter, Plan, TokenBucket, operation

ROOT = Path(__file__).resolve().parents[2]


def test_quick_parallel_benchmark_prints_every_figure(tmp_path):
    out = tmp_path / "parallel.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.parallel",
            "--quick",
            "--large-mib",
            "6",
            "--large-count",
            "1",
            "--medium-kib",
            "64",
            "--medium-count",
            "8",
            "--speed-mib",
            "1",
            "--speed-object-kib",
            "128",
            "--cap-mbps",
            "8",
            "--json-out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    for line in (
        "1. bytes through the worker per archive byte",
        "large stored, CRC32",
        "large stored, no checksum",
        "medium auto (half text)",
        "medium text, auto (deflate)",
        "2. parallel speed-up",
        "3. projection model",
        "15 GB / 3,000 objects",
        "1 TB / 1 M objects",
        "--workers 4 >= 3x faster than --workers 1",
    ):
        assert line in text, f"{line!r} missing from:\n{text}"
    assert "FAILED" not in text
    result = json.loads(out.read_text())
    assert [r["label"] for r in result["through"]] == [
        "large stored, CRC32",
        "large stored, no checksum",
        "large auto (.gz), CRC32",
        "large auto (.gz), no checksum",
        "medium stored",
        "medium auto (half text)",
        "medium text, auto (deflate)",
    ] + (["medium stored, 4 workers"] if result["config"]["has_workers"] else [])
    for run in result["through"]:
        assert not run["error"] and run["size"] > 0
        # every object is read at least once, as GET bodies or server-side copies
        assert run["read_per_archive_byte"] + run["copied_per_archive_byte"] >= 0.5, run
    assert result["speedup"]["1"][0]["wall"] > 0
    check = result["config"]["cap_check"]  # the per-Lambda cap: each read Lambda had its own bucket
    assert check["lambdas_seen"] == check["objects"] == 4, check
    if result["config"]["has_workers"]:  # the CLI's --workers (issue 10): calls charged to 4 segments
        parallel = result["speedup"]["4"][0]
        assert not parallel["error"], parallel
        assert {f"segment {n}" for n in range(4)} <= set(parallel["stats"]), parallel["stats"]
        assert "transfer phase" in text
    assert set(result["model_inputs"]["traffic"]) == {"stored", "deflate on text", "stored, segments"}
    assert len(result["model"]) == 12


def test_operations_are_named_from_method_key_and_query():
    no_headers: dict[str, str] = {}
    copy = {"x-amz-copy-source": "b/k"}
    assert operation("GET", "k", {}, no_headers) == "GetObject"
    assert operation("GET", "", {"list-type": ["2"]}, no_headers) == "ListObjectsV2"
    assert operation("PUT", "k", {"partNumber": ["1"], "uploadId": ["u"]}, no_headers) == "UploadPart"
    assert operation("PUT", "k", {"partNumber": ["1"], "uploadId": ["u"]}, copy) == "UploadPartCopy"
    assert operation("POST", "k", {"uploadId": ["u"]}, no_headers) == "CompleteMultipartUpload"
    assert operation("DELETE", "k", {"uploadId": ["u"]}, no_headers) == "AbortMultipartUpload"


def test_calls_are_charged_to_the_segment_whose_shard_part_numbers_or_staging_key_they_touch():
    meter = Meter(None, "src")
    plan = [
        {"run_id": "P", "index": 0, "start_after": None, "last_key": "b", "first_part": 1, "last_part": 4},
        {"run_id": "P", "index": 1, "start_after": "b", "last_key": "d", "first_part": 5, "last_part": 9000},
    ]
    assert meter.lambda_of("GET", "src", "a") == PARENT  # before the plan: one worker
    meter.plan.learn(json.dumps(plan).encode())
    # the last segment lists to the end of the selection (keys written after planning)
    assert [meter.lambda_of("GET", "src", k) for k in ("a", "b", "c", "d", "e")] == [
        "segment 0",
        "segment 0",
        "segment 1",
        "segment 1",
        "segment 1",
    ]
    # parts of the archive's upload by their number: each segment writes its own range
    parts = [meter.lambda_of("PUT", "dst", "out.zip", n) for n in (1, 4, 5, 9000, 9001)]
    assert parts == ["segment 0", "segment 0", "segment 1", "segment 1", PARENT]
    assert meter.lambda_of("PUT", "dst", "out.zip.manifest.jsonl", 1) == PARENT  # the manifest's own upload
    assert meter.lambda_of("PUT", "dst", ".bucketzip/staging/P/s00002/tail-0") == "segment 2"  # its staging
    assert meter.lambda_of("PUT", "dst", ".bucketzip/staging/P.s00004/tail-0") == "segment 4"  # its run id
    assert meter.lambda_of("PUT", "dst", "out.zip") == PARENT  # Complete, the directory's part
    Plan().learn(b"not json")  # ignored, not raised


def test_token_bucket_paces_a_lambdas_bytes_at_its_rate():
    bucket = TokenBucket(1_000_000, burst_s=0.0)
    waits = [bucket.take(250_000) for _ in range(4)]  # 1 MB at 1 MB/s, reserved back to back
    assert waits == pytest.approx([0.25, 0.5, 0.75, 1.0], abs=0.02)


def test_token_bucket_lets_an_idle_lambda_burst_its_allowance_once():
    bucket = TokenBucket(1_000_000, burst_s=0.1)
    assert bucket.take(100_000) == pytest.approx(0.0, abs=0.01)  # the idle link's 0.1 s allowance
    assert bucket.take(100_000) == pytest.approx(0.1, abs=0.02)  # then the rate
