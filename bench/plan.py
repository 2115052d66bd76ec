"""Planning benchmark of issue 10 (plan.py), on the in-process fake S3 (bench/fakes3.py)
and the local state store: no emulator, so the figures are the planner's own CPU, state
and calls; a real listing adds S3's time per ListObjectsV2 page (1,000 keys).

    python -m bench.plan 1000000      # plan_step over 1 M listed objects, then grouping at 10 M

Prints one JSON line; figures go to bench/README.md.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))
sys.path.insert(0, str(ROOT))

from bench.fakes3 import FakeS3  # noqa: E402
from bucketzip import engine, plan  # noqa: E402
from bucketzip.config import ArchiveRequest  # noqa: E402
from bucketzip.deadline import Deadline  # noqa: E402
from bucketzip.listing import iter_objects  # noqa: E402
from bucketzip.state import Cursor  # noqa: E402
from bucketzip.store_local import LocalStateStore  # noqa: E402


def _size_of(i: int) -> int:
    """Mostly small objects (0-200 KB), every 5,000th one of 1 GiB."""
    return 1 << 30 if i % 5000 == 4999 else (i * 7919) % 200_000


def _vm_hwm_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def plan_objects(count: int, workers: int = 100) -> dict:
    """plan_step over `count` fake objects in calls of about 2 s (resumed at page ends)."""
    s3 = FakeS3("src", "dst", count, _size_of)
    with tempfile.TemporaryDirectory() as state_dir:
        store = LocalStateStore(state_dir)
        request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip", workers=workers)
        run_id = engine.start_run(s3, store, request).run_id  # type: ignore[arg-type]
        wall, cpu, calls = time.perf_counter(), time.process_time(), 0
        while True:
            calls += 1
            if plan.plan_step(s3, store, run_id, Deadline(2.0)).done:  # type: ignore[arg-type]
                break
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        state = store.load(run_id)
        shards = plan.load_plan(s3, state)  # type: ignore[arg-type]
    # The same listing alone (the fake's pages and the listing's parsing): the floor.
    listing_cpu = time.process_time()
    for _ in iter_objects(s3, request, Cursor()):  # type: ignore[arg-type]
        pass
    listing_cpu = time.process_time() - listing_cpu
    sizes = [s.bytes for s in shards]
    return {
        "objects": count,
        "listed_bytes": state.plan.bytes,
        "calls": calls,
        "commits": state.plan.commits,
        "chunk_puts": s3.calls["put_object"] - 1,  # all but plan.json
        "shards": len(shards),
        "target_bytes": state.plan.shard_bytes,
        "shard_bytes_min_max": [min(sizes), max(sizes)] if sizes else [],
        "cpu_ms_per_1000_objects": round(cpu * 1e6 / count, 1),
        "listing_alone_cpu_ms_per_1000_objects": round(listing_cpu * 1e6 / count, 1),
        "wall_s": round(wall, 2),
        "state_bytes": len(state.to_bytes()),
    }


def group_ten_million() -> dict:
    """choose_target + group over synthetic runs of 10 M objects (as in the unit test)."""
    rnd = random.Random(10)
    runs = [
        (f"key/{i:09d}", 1, rnd.randint(1 << 30, 8 << 30))
        if i % 997 == 0
        else (f"key/{i:09d}", 50, rnd.randint(50, 32 << 20))
        for i in range(200_000)
    ]
    total = sum(r[2] for r in runs)
    cpu = time.process_time()
    target = plan.choose_target(lambda: runs, total, 1000, None)
    shards = sum(1 for _ in plan.group(runs, target))
    return {
        "objects": sum(r[1] for r in runs),
        "runs": len(runs),
        "shards": shards,
        "group_cpu_s": round(time.process_time() - cpu, 3),
    }


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 1_000_000
    result = {"plan": plan_objects(count), "group_10M": group_ten_million(), "peak_rss_mib": round(_vm_hwm_mib())}
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
