"""Smoke test of the benchmark command (bench/): tiny sizes, the whole pipeline once.

It checks that the command runs end to end (moto and the latency proxy in their own
processes, every contender, the report) and prints the ratio lines; not the figures,
which depend on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_prints_ratios(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--large-mib",
            "2",
            "--large-count",
            "2",
            "--small-count",
            "40",
            "--rss-factor",
            "2",
            "--latency-ms",
            "5",
            "--concurrency",
            "8",
            "--deflate-mib",
            "1",
            "--json-out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    for line in (
        "bucketzip/floor  (store)",
        "bucketzip/floor  (auto)",
        "baseline/bucketzip  (auto)",
        "CPU (store)",
        "peak RSS",
        "ISA-L level 1",
    ):
        assert line in text, f"{line!r} missing from:\n{text}"
    assert "FAILED" not in text
    assert text.count("PASS") + text.count("MISS") == 5, text
    result = json.loads(out.read_text())
    assert {(r["dataset"], r["contender"]) for r in result["runs"]} >= {
        ("large", "floor"),
        ("large", "bucketzip store"),
        ("large", "bucketzip auto"),
        ("large", "baseline"),
        ("small", "floor"),
        ("small", "bucketzip auto"),
        ("small", "baseline"),
        ("small x2", "bucketzip auto"),
        ("large-half", "bucketzip store"),
        ("large", "floor (auto's bytes)"),
        ("small", "floor (auto's bytes)"),
    }
    assert all(r["ok"] for r in result["runs"])
    # auto is compared with a floor that uploaded as many bytes as auto did
    runs = {(r["dataset"], r["contender"]): r for r in result["runs"]}
    for dataset in ("large", "small"):
        auto, floor = runs[(dataset, "bucketzip auto")], runs[(dataset, "floor (auto's bytes)")]
        assert abs(floor["bytes_out"] / auto["bytes_out"] - 1) < 0.02, (floor, auto)
        assert len(auto["cpus"]) == len(auto["walls"]) >= 1  # medians of the repeats, with their spread
