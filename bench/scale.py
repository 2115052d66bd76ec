"""Scale benchmarks of issue 9, on an in-process fake S3 (bench/fakes3.py) and the local
state store: no emulator, so the figures are the engine's own CPU, state and calls.

    python -m bench.scale objects 1000000        # per-object CPU, state bytes, Finish time
    python -m bench.scale rss 16MiB 2.2GiB       # peak RSS archiving 2.2 GiB at this part size
    python -m bench.scale all                    # rss at 16 MiB / 256 MiB / 1 GiB, then 1 M objects
    python -m bench.scale capacity               # largest archive per start size, time at 75 MB/s

Every run prints one JSON line (and `all` a table); figures go to bench/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))
sys.path.insert(0, str(ROOT))

from bench.fakes3 import FakeS3  # noqa: E402
from bucketzip import engine  # noqa: E402
from bucketzip.config import ArchiveRequest  # noqa: E402
from bucketzip.deadline import Deadline  # noqa: E402
from bucketzip.results import ArchiveResult  # noqa: E402
from bucketzip.sizes import format_size, parse_size  # noqa: E402
from bucketzip.store_local import LocalStateStore  # noqa: E402

NETWORK_BYTES_PER_S = 75e6  # one Lambda's network, as the issue states it


def _vm_hwm_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _archive(s3: FakeS3, store: LocalStateStore, state_dir: Path, **fields) -> dict:
    request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="out.zip", **fields)
    cpu0, wall0 = _cpu(), time.perf_counter()
    progress = engine.start_run(s3, store, request)
    steps = 0
    while not progress.done:
        progress = engine.run_step(s3, store, progress.run_id, Deadline(840))
        steps += 1
    cpu1, wall1 = _cpu(), time.perf_counter()
    state_bytes = _dir_bytes(state_dir)
    finish_calls = 0
    outcome = None
    while not isinstance(outcome, ArchiveResult):
        outcome = engine.finish_run(s3, store, progress.run_id, Deadline(840))
        finish_calls += 1
    cpu2, wall2 = _cpu(), time.perf_counter()
    return {
        "entries": outcome.entries,
        "archive_bytes": outcome.size,
        "parts": outcome.parts,
        "steps": steps,
        "step_cpu_s": round(cpu1 - cpu0, 2),
        "step_wall_s": round(wall1 - wall0, 2),
        "state_bytes_before_finish": state_bytes,
        "finish_calls": finish_calls,
        "finish_cpu_s": round(cpu2 - cpu1, 2),
        "finish_wall_s": round(wall2 - wall1, 2),
        "calls": dict(s3.calls),
    }


def objects(count: int, size: int = 100) -> dict:
    with tempfile.TemporaryDirectory() as work:
        state_dir = Path(work) / "state"
        s3 = FakeS3("src", "dst", count, lambda i: size)
        result = _archive(s3, LocalStateStore(state_dir), state_dir)
    n = result["entries"]
    result.update(
        mode="objects",
        object_size=size,
        step_cpu_us_per_object=round(result["step_cpu_s"] / n * 1e6, 1),
        state_bytes_per_object=round(result["state_bytes_before_finish"] / n, 1),
        finish_us_per_object=round(result["finish_wall_s"] / n * 1e6, 2),
        peak_rss_mib=round(_vm_hwm_mib(), 1),
    )
    scale = 10_000_000 / n
    result["extrapolated_10m"] = {
        "step_cpu_s": round(result["step_cpu_s"] * scale),
        "state_bytes": int(result["state_bytes_before_finish"] * scale),
        "finish_wall_s": round(result["finish_wall_s"] * scale),
        "steps": round(result["steps"] * scale),
    }
    return result


def rss(part_size: str, total: str) -> dict:
    part, want = parse_size(part_size), parse_size(total)
    per_object = 256 * 1024 * 1024
    count = -(-want // per_object)
    with tempfile.TemporaryDirectory() as work:
        os.environ.setdefault("BUCKETZIP_SPILL_DIR", work)
        state_dir = Path(work) / "state"
        s3 = FakeS3("src", "dst", count, lambda i: per_object)
        result = _archive(s3, LocalStateStore(state_dir), state_dir, part_size=part)
    result.update(mode="rss", part_size=part, peak_rss_mib=round(_vm_hwm_mib(), 1))
    return result


def capacity() -> list[dict]:
    from bucketzip.parts import capacity as cap

    rows = []
    for start in ("5MiB", "16MiB", "64MiB", "1GiB", "5GiB"):
        size = cap(parse_size(start))
        rows.append(
            {
                "start": start,
                "largest_archive": format_size(size),
                "bytes": size,
                "days_at_75MBps": round(size / NETWORK_BYTES_PER_S / 86400, 1),
            }
        )
    return rows


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.scale", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    mode = argv[0] if argv else "all"
    if mode == "objects":
        print(json.dumps(objects(int(argv[1]), int(argv[2]) if len(argv) > 2 else 100)))
    elif mode == "rss":
        print(json.dumps(rss(argv[1], argv[2] if len(argv) > 2 else "2.2GiB")))
    elif mode == "capacity":
        for row in capacity():
            print(json.dumps(row))
    else:
        for part in ("16MiB", "256MiB", "1GiB"):
            r = _child("rss", part, "2.2GiB")
            print(f"peak RSS, part size {part}: {r['peak_rss_mib']} MiB ({r['parts']} parts, {r['step_wall_s']} s)")
        r = _child("objects", argv[1] if len(argv) > 1 else "1000000")
        print(json.dumps(r, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
