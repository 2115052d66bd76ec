"""Issue 10's benchmarks, side by side in one run: bytes through the worker per archive
byte, the parallel speed-up under a per-Lambda bandwidth cap, and the projection model.

    python -m bench.parallel [--quick] [--cap-mbps 2] [--workers 4] [--repeat 3] [--json-out PATH]

moto runs in a process of its own behind metering proxies (bench/meter.py), which count
every call's requests and body bytes by operation and by Lambda (segment or parent), and
serve the unchanging source bucket's GETs from memory. Each archive is made by the CLI
(`python -m bucketzip.cli archive`, this checkout's engine) in a subprocess of its own.

1. Bytes through the worker (meter without a cap), once per dataset (the counts are
   exact, not timed): large objects with S3 CRC32 checksums and the same without, stored
   and in auto mode (named .gz: auto takes them for compressed); medium objects (half log
   text, half random) stored and in auto mode, and their text half alone in auto mode
   (deflate). read/B = GET body bytes per archive byte; up/B = UploadPart + PutObject body
   bytes per archive byte; sum/B = both (the engine before server-side copies: ~2.0);
   copied/B = bytes placed by UploadPartCopy (server-side, not through the worker).
   Targets (issue 10): <= 0.05 read and uploaded with checksums; <= 1.05 read and <= 0.05
   uploaded without.
2. Speed-up: the speed dataset (objects alternately log text and random) in auto mode
   through a meter that caps each Lambda at --cap-mbps MB/s per direction, `--workers 1`
   against `--workers N` (one shard per worker when the CLI takes --shard-bytes), round
   robin, --repeat times: medians and spreads of the wall time, and when each Lambda was
   busy. Target: N=4 >= 3x faster.
3. The projection model (bench/model.py) fed with what 1 and 2 measured, and the deflate
   throughput of the engine's level-1 backend on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python bench/parallel.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import backends, model  # noqa: E402
from bench.common import MIB  # noqa: E402
from bench.data import Generator  # noqa: E402
from bench.meter import PARENT, RESET_PATH, STATS_PATH  # noqa: E402
from bench.run import DEST, ROOT, SOURCE, Services, child_env, measure, s3_direct  # noqa: E402

TARGET_COPY_CRC = 0.05  # read and uploaded per archive byte, sources with CRC32 checksums
TARGET_COPY_READ, TARGET_COPY_UP = 1.05, 0.05  # sources without checksums
TARGET_SPEEDUP = 3.0  # 4 workers against 1, each Lambda capped
UPLOADS = ("UploadPart", "PutObject")

QUICK = {
    "large_mib": 12,
    "large_count": 2,
    "medium_kib": 256,
    "medium_count": 16,
    "speed_mib": 4,
    "speed_object_kib": 256,
}
# Large objects must be large for the copy path's fixed costs to vanish: each copied object
# still moves its head (the part before it topped up to the part size) and its last bytes
# (< 5 MiB) through the worker, and each run its final tail: at 5 MiB parts up to ~10 MiB
# per object, so 0.05 per archive byte needs objects of some 200 MiB and more.
# The speed-up's shards (64 MiB per worker at 4 workers) are 4x the speed-up's prefetch
# window (--speed-concurrency), as a 256 MiB shard (plan.MIN_SHARD_BYTES) is 4x the
# default window on AWS; and large beside what the assembler may read back per segment.
DEFAULT = {
    "large_mib": 256,
    "large_count": 2,
    "medium_kib": 1024,
    "medium_count": 64,
    "speed_mib": 256,
    "speed_object_kib": 4096,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.parallel",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes (the smoke test): {QUICK}")
    parser.add_argument("--large-mib", type=int, help=f"MiB per large object (default {DEFAULT['large_mib']})")
    parser.add_argument("--large-count", type=int, help=f"large objects per dataset (default {DEFAULT['large_count']})")
    parser.add_argument("--medium-kib", type=int, help=f"KiB per medium object (default {DEFAULT['medium_kib']})")
    parser.add_argument("--medium-count", type=int, help=f"medium objects (default {DEFAULT['medium_count']})")
    parser.add_argument("--speed-mib", type=int, help=f"the speed-up's dataset (default {DEFAULT['speed_mib']})")
    parser.add_argument(
        "--speed-object-kib", type=int, help=f"... in objects of (default {DEFAULT['speed_object_kib']}), half text"
    )
    parser.add_argument("--cap-mbps", type=float, default=4.0, help="MB/s per Lambda and direction (default 4)")
    parser.add_argument("--workers", type=int, default=4, help="the parallel run's --workers (default 4)")
    parser.add_argument("--repeat", type=int, default=1, help="speed-up runs per worker count, round robin")
    parser.add_argument("--concurrency", type=int, default=8, help="the CLI's --concurrency (default 8)")
    parser.add_argument(
        "--speed-concurrency",
        type=int,
        default=2,
        help="the CLI's --concurrency in the speed-up (default 2: its prefetch window, concurrency x 8 MiB "
        "chunks, stands to a bench-sized shard as the default window (64 MiB) to a 256 MiB shard on AWS)",
    )
    parser.add_argument("--part-size", default="5MiB", help="the CLI's --part-size (default 5MiB, S3's least)")
    parser.add_argument("--skip", action="append", default=[], choices=("through", "speedup", "model"))
    parser.add_argument("--json-out", metavar="PATH", help="also write every figure as JSON to PATH")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per archive run")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULT).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.large_mib, args.large_count, args.medium_kib, args.medium_count, args.speed_mib) < 1:
        parser.error("sizes and counts must be positive")
    if min(args.speed_object_kib, args.workers, args.repeat) < 1:
        parser.error("sizes, counts, --workers and --repeat must be positive")
    return args


@dataclass(frozen=True)
class Dataset:
    name: str
    prefix: str
    objects: int
    bytes: int
    text_bytes: int = 0


def seed(moto_url: str, args) -> dict[str, Dataset]:
    """Large random objects twice (with S3 CRC32 checksums, and without: boto3 adds CRC32
    to every PutObject unless told only when required), named .gz so that auto mode takes
    them for compressed, and medium objects, half text."""
    s3 = s3_direct(moto_url)
    plain = _plain_client(moto_url)
    s3.create_bucket(Bucket=SOURCE)
    s3.create_bucket(Bucket=DEST)
    gen = Generator(seed=10)
    size = args.large_mib * MIB
    for n in range(args.large_count):
        body = gen.random_bytes(size)
        s3.put_object(Bucket=SOURCE, Key=f"large-crc32/object-{n:03d}.gz", Body=body, ChecksumAlgorithm="CRC32")
        plain.put_object(Bucket=SOURCE, Key=f"large-plain/object-{n:03d}.gz", Body=body)
    medium = args.medium_kib * 1024
    texts = (args.medium_count + 1) // 2
    for n in range(args.medium_count):  # text first (medium/log/), then random (medium/random/)
        folder, suffix = ("log", "log") if n < texts else ("random", "bin")
        body = gen.text(medium) if n < texts else gen.random_bytes(medium)
        plain.put_object(Bucket=SOURCE, Key=f"medium/{folder}/item-{n:05d}.{suffix}", Body=body)
    speed = args.speed_object_kib * 1024
    speed_count = max(1, args.speed_mib * MIB // speed)
    for n in range(speed_count):  # alternately text and random, so every shard has both
        body = gen.text(speed) if n % 2 == 0 else gen.random_bytes(speed)
        plain.put_object(Bucket=SOURCE, Key=f"speed/item-{n:05d}.{'log' if n % 2 == 0 else 'bin'}", Body=body)
    for key in ("large-crc32/object-000.gz", "large-plain/object-000.gz"):
        head = s3.head_object(Bucket=SOURCE, Key=key, ChecksumMode="ENABLED")
        if ("ChecksumCRC32" in head) != key.startswith("large-crc32"):
            raise SystemExit(f"seeding: {key} has checksums {sorted(k for k in head if k.startswith('Checksum'))}")
    large = args.large_count * size
    return {
        "crc32": Dataset("large stored, CRC32", "large-crc32/", args.large_count, large),
        "plain": Dataset("large stored, no checksum", "large-plain/", args.large_count, large),
        "medium": Dataset(
            "medium (half text)", "medium/", args.medium_count, args.medium_count * medium, texts * medium
        ),
        "text": Dataset("medium text", "medium/log/", texts, texts * medium, texts * medium),
        "speed": Dataset(
            "speed (half text)", "speed/", speed_count, speed_count * speed, (speed_count + 1) // 2 * speed
        ),
    }


def _plain_client(url: str):
    """A client that sends no checksum unless the operation requires one."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(request_checksum_calculation="when_required"),
    )


def _meter_call(endpoint: str, path: str) -> dict:
    request = urllib.request.Request(endpoint + path, method="POST" if path == RESET_PATH else "GET", data=b"")
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - our own proxy
        return json.loads(answer.read())


@dataclass
class Archived:
    """One archive run: the CLI's result, its cost, and what the meter counted."""

    label: str
    dataset: Dataset
    mode: str
    workers: int
    wall: float = 0.0
    cpu: float = 0.0
    emulator_cpu: float = 0.0  # moto's and the meters' CPU meanwhile (they share the machine)
    size: int = 0
    stats: dict = field(default_factory=dict)
    error: str = ""

    def total(self, what: str, ops: tuple[str, ...] | None = None, lambdas: str | None = None) -> int:
        return sum(
            row[what]
            for name, by_op in self.stats.items()
            if lambdas is None or (name == PARENT) == (lambdas == PARENT)
            for op, row in by_op.items()
            if ops is None or op in ops
        )

    def requests(self, lambdas: str | None = None) -> int:
        return self.total("requests", lambdas=lambdas)

    def figures(self) -> dict:
        size = self.size or 1
        return {
            "read_per_archive_byte": round(self.total("read", ("GetObject",)) / size, 4),
            "uploaded_per_archive_byte": round(self.total("uploaded", UPLOADS) / size, 4),
            "copied_per_archive_byte": round(self.total("copied", ("UploadPartCopy",)) / size, 4),
            "requests_per_object": round(self.requests() / max(1, self.dataset.objects), 2),
        }


def archive(
    services: Services, endpoint: str, run: Archived, args, attempt: int, concurrency: int | None = None
) -> Archived:
    key = f"{run.dataset.prefix.strip('/')}-{run.mode}-w{run.workers}-{attempt}.zip"
    state = Path(tempfile.mkdtemp(prefix="state-", dir=services.workdir))
    cmd = [
        "bucketzip.cli",
        "--endpoint-url",
        endpoint,
        "archive",
        f"s3://{SOURCE}/{run.dataset.prefix}",
        f"s3://{DEST}/{key}",
        "--compression",
        run.mode,
        "--part-size",
        args.part_size,
        "--concurrency",
        str(concurrency or args.concurrency),
        "--quiet",
        "--json",
    ]
    if run.workers > 1 or args.has_workers:
        cmd += ["--workers", str(run.workers)]
    if run.workers > 1 and args.has_shard_bytes:  # one shard per worker, balanced by bytes
        cmd += ["--shard-bytes", str(-(-run.dataset.bytes // run.workers))]
    _meter_call(endpoint, RESET_PATH)
    emulator = services.cpu_seconds()
    measured = measure(cmd, child_env(endpoint, state), args.timeout)
    run.emulator_cpu = services.cpu_seconds() - emulator
    run.stats = _meter_call(endpoint, STATS_PATH)
    run.wall, run.cpu = measured.wall, measured.cpu
    try:
        result = json.loads(measured.stdout) if measured.returncode == 0 else {}
    except ValueError:
        result = {}
    if measured.returncode != 0 or not result:
        tail = (measured.stderr.strip().splitlines() or ["(no output)"])[-1]
        run.error = f"exit {measured.returncode}: {tail}"
    elif result["entries"] != run.dataset.objects or result["skipped"]:
        run.error = f"{result['entries']} entries, {result['skipped']} skipped; the dataset has {run.dataset.objects}"
    else:
        run.size = result["size"]
    s3 = s3_direct(services.moto_url)
    for stale in (key, key + ".manifest.jsonl"):  # keep moto's memory flat between runs
        s3.delete_object(Bucket=DEST, Key=stale)
    shutil.rmtree(state, ignore_errors=True)
    return run


def cli_options() -> str:
    """This checkout's `archive --help` (whether it takes --workers, --shard-bytes: issue 10)."""
    out = subprocess.run(
        [sys.executable, "-m", "bucketzip.cli", "archive", "--help"],
        env=child_env(None),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout


# -- the three benchmarks -----------------------------------------------------------------


def through(services: Services, datasets: dict[str, Dataset], args, log) -> list[Archived]:
    endpoint = services.meter(0.0, "meter-open")
    plan = [
        ("large stored, CRC32", datasets["crc32"], "store"),
        ("large stored, no checksum", datasets["plain"], "store"),
        ("large auto (.gz), CRC32", datasets["crc32"], "auto"),
        ("large auto (.gz), no checksum", datasets["plain"], "auto"),
        ("medium stored", datasets["medium"], "store"),
        ("medium auto (half text)", datasets["medium"], "auto"),
        ("medium text, auto (deflate)", datasets["text"], "auto"),
    ]
    if args.has_workers and args.workers > 1:
        # What a segment moves, for the model's parallel rows. Stored only: the text
        # dataset's segments would deflate to under 5 MiB each, too small for a part of
        # their own (their bytes would go through the parent), which no 15 GB shard is.
        plan.append((f"medium stored, {args.workers} workers", datasets["medium"], "store"))
    runs = []
    for label, dataset, mode in plan:
        log(f"through: {label} ...")
        workers = args.workers if label.endswith(" workers") else 1
        runs.append(archive(services, endpoint, Archived(label, dataset, mode, workers), args, 0))
        log(f"through: {label}: {runs[-1].error or f'{runs[-1].wall:.1f} s'}")
    return runs


def cap_check(endpoint: str, dataset: Dataset, lambdas: int) -> dict:
    """The emulation itself, before the speed-up runs: the same `lambdas` objects read at
    once (one connection each) by ONE Lambda, then by `lambdas` Lambdas (a plan.json that
    gives each object a shard of its own, as the planner's would). With a cap per Lambda the
    second is `lambdas` times faster: the most any parallel run can gain here."""
    from concurrent.futures import ThreadPoolExecutor

    s3 = s3_direct(endpoint, lambdas)
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=SOURCE, Prefix=dataset.prefix)["Contents"][:lambdas]]

    def read_all() -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(len(keys)) as pool:
            list(pool.map(lambda key: s3.get_object(Bucket=SOURCE, Key=key)["Body"].read(), keys))
        return time.perf_counter() - started

    _meter_call(endpoint, RESET_PATH)
    one = read_all()
    plan = [
        {"run_id": "cap-check", "index": n, "start_after": keys[n - 1] if n else None, "last_key": key}
        for n, key in enumerate(keys)
    ]
    s3.put_object(Bucket=DEST, Key="cap-check/plan.json", Body=json.dumps(plan).encode())
    many = read_all()
    stats = _meter_call(endpoint, STATS_PATH)
    _meter_call(endpoint, RESET_PATH)
    s3.delete_object(Bucket=DEST, Key="cap-check/plan.json")
    return {
        "objects": len(keys),
        "bytes": sum(row["read"] for by_op in stats.values() for row in by_op.values()),
        "one_lambda_s": round(one, 3),
        "lambdas_s": round(many, 3),
        "lambdas_seen": len([name for name in stats if name != PARENT]),
        "ratio": round(one / many, 2),
    }


def speedup(services: Services, dataset: Dataset, args, log) -> dict[int, list[Archived]]:
    endpoint = services.meter(args.cap_mbps, "meter-capped")
    args.cap_check = cap_check(endpoint, dataset, args.workers)
    log(f"speed-up: cap check {args.cap_check}")
    counts = [1, args.workers] if args.has_workers and args.workers > 1 else [1]
    runs: dict[int, list[Archived]] = {n: [] for n in counts}
    for attempt in range(args.repeat):  # round robin: drifts in the machine's load spread evenly
        for workers in counts:
            log(f"speed-up: --workers {workers} (run {attempt + 1}) ...")
            run = Archived(f"workers {workers}", dataset, "auto", workers)
            archive(services, endpoint, run, args, attempt, args.speed_concurrency)
            runs[workers].append(run)
            log(f"speed-up: --workers {workers}: {run.error or f'{run.wall:.1f} s'}")
    return runs


def model_inputs(through_runs: list[Archived], speed: dict[int, list[Archived]], deflate_bps: float) -> dict:
    """Per source byte and per object, from the 1-worker runs of the medium datasets; the
    assembly's cost per segment from the parallel run's parent."""
    by_label = {r.label: r for r in through_runs if not r.error}
    traffic = {}
    for mode, label in (("stored", "medium stored"), ("deflate on text", "medium text, auto (deflate)")):
        # One worker's run, and (model.SEGMENTS) what the segments of an N-worker run moved:
        # the parent's planning, assembly and finish are modelled apart.
        for key, run, lambdas in (
            (mode, by_label.get(label), None),
            *(
                (f"{mode}{model.SEGMENTS}", r, "segments")
                for r in through_runs
                if not r.error and r.workers > 1 and r.label.startswith(label + ",")
            ),
        ):
            if run is None:
                continue
            source = run.dataset.bytes
            traffic[key] = {
                "read_per_byte": round(run.total("read", ("GetObject",), lambdas) / source, 4),
                "upload_per_byte": round(run.total("uploaded", UPLOADS, lambdas) / source, 4),
                "copied_per_byte": round(run.total("copied", ("UploadPartCopy",), lambdas) / source, 4),
                "deflated_per_byte": round(run.dataset.text_bytes / source, 4) if mode != "stored" else 0.0,
                "requests_per_object": round(run.requests(lambdas) / run.dataset.objects, 3),
            }
    assembly = {"requests_per_segment": model.MEASURED_ASSEMBLY.requests_per_segment, "bytes_per_segment": 0.0}
    parallel = [r for n, rs in speed.items() if n > 1 for r in rs if not r.error]
    if parallel:
        # What the parent did per segment to place the segments' bytes: server-side copies
        # (none since segments upload into the archive's upload). Segments under 5 MiB
        # would add their tails' GETs and bytes (none here: every shard is 64 MiB). The
        # parent's other calls (plan.json, listing, Complete, manifest) are fixed costs,
        # modelled as planning and finish.
        run = parallel[-1]
        segments = max(1, len([name for name in run.stats if name != PARENT]))
        assembly = {
            "requests_per_segment": round(run.total("requests", ("UploadPartCopy",), lambdas=PARENT) / segments, 2),
            "bytes_per_segment": round(run.total("copied", ("UploadPartCopy",), lambdas=PARENT) / segments),
        }
    return {"traffic": traffic, "assembly": assembly, "deflate_bps_per_core": deflate_bps}


# -- report -------------------------------------------------------------------------------


def transfer_span(stats: dict) -> float | None:
    """Seconds from the first to the last GET / UploadPart of the Lambdas that move the
    source's bytes (the segments of a parallel run, else the one worker): the part of a
    run that the per-Lambda cap governs, without start-up, planning and what the emulator
    does server-side (Complete and UploadPartCopy copy every byte in moto, not in S3)."""
    movers = [name for name in stats if name != PARENT] or [PARENT]
    rows = [stats[name][op] for name in movers for op in ("GetObject", "UploadPart") if op in stats[name]]
    if not rows:
        return None
    return max(row["last"] for row in rows) - min(row["first"] for row in rows)


def busy_lines(stats: dict) -> list[str]:
    """Per Lambda: bytes, calls and when it was busy (seconds since the meter's reset, just
    before the CLI started); for a parallel run, what the parent did after the last
    segment's last call (assembly and finish)."""
    lines, segment_end = [], 0.0
    for name in sorted(stats, key=lambda n: (n != PARENT, len(n), n)):
        rows = stats[name].values()
        moved = sum(row["read"] + row["uploaded"] for row in rows)
        first = min(row["first"] for row in rows if row["first"] is not None)
        last = max(row["last"] for row in rows if row["last"] is not None)
        if name != PARENT:
            segment_end = max(segment_end, last)
        calls = sum(row["requests"] for row in rows)
        lines.append(f"{name:<11} {moved / 1e6:8.1f} MB {calls:6d} calls, busy {first:6.1f} s .. {last:6.1f} s")
    if segment_end and PARENT in stats:
        after = [row for row in stats[PARENT].values() if row["last"] is not None and row["last"] > segment_end]
        if after:
            last = max(row["last"] for row in after)
            ops = sorted(op for op, row in stats[PARENT].items() if row["last"] and row["last"] > segment_end)
            lines.append(f"after the last segment call: the parent {last - segment_end:.1f} s more ({', '.join(ops)})")
    return lines


def _verdict(ok: bool | str | None) -> str:
    if isinstance(ok, str):
        return ok
    return "n/a " if ok is None else ("PASS" if ok else "MISS")


def report(config: dict, through_runs, speed, deflate_row, inputs, rows, out=sys.stdout) -> list[dict]:
    w = out.write
    checks: list[dict] = []
    w("\n== bucketzip issue 10 benchmarks ==\n")
    w(f"machine: {config['machine']}\n")
    w(
        f"settings: part size {config['part_size']}, concurrency {config['concurrency']}; moto {config['moto']} "
        f"behind metering proxies (bench/meter.py); CLI --workers: {'yes' if config['has_workers'] else 'NO'}\n"
    )
    if through_runs:
        w("\n1. bytes through the worker per archive byte (meter without a cap; exact counts)\n")
        head = (
            f"{'dataset':<30} {'objects':>7} {'archive MB':>10} {'read/B':>7} {'up/B':>7} {'sum/B':>6} "
            f"{'copied/B':>8} "
            f"{'req/obj':>7} {'wall s':>7} {'CPU s':>6}\n"
        )
        w(head + "-" * len(head) + "\n")
        for r in through_runs:
            if r.error:
                w(f"{r.label:<30} FAILED {r.error}\n")
                continue
            f = r.figures()
            w(
                f"{r.label:<30} {r.dataset.objects:>7} {r.size / 1e6:>10.1f} {f['read_per_archive_byte']:>7.3f} "
                f"{f['uploaded_per_archive_byte']:>7.3f} "
                f"{f['read_per_archive_byte'] + f['uploaded_per_archive_byte']:>6.3f} "
                f"{f['copied_per_archive_byte']:>8.3f} "
                f"{f['requests_per_object']:>7.1f} {r.wall:>7.1f} {r.cpu:>6.2f}\n"
            )
        by_label = {r.label: r.figures() for r in through_runs if not r.error}
        for mode in ("large stored", "large auto (.gz)"):
            crc, plain = by_label.get(f"{mode}, CRC32"), by_label.get(f"{mode}, no checksum")
            for name, value, limit in (
                (f"{mode}, CRC32: read/B", crc and crc["read_per_archive_byte"], TARGET_COPY_CRC),
                (f"{mode}, CRC32: up/B", crc and crc["uploaded_per_archive_byte"], TARGET_COPY_CRC),
                (f"{mode}, no checksum: read/B", plain and plain["read_per_archive_byte"], TARGET_COPY_READ),
                (f"{mode}, no checksum: up/B", plain and plain["uploaded_per_archive_byte"], TARGET_COPY_UP),
            ):
                checks.append(
                    {"target": f"{name} <= {limit}", "value": value, "ok": None if value is None else value <= limit}
                )
    if speed:
        w(
            f"\n2. parallel speed-up: {speed[1][0].dataset.name if speed.get(1) else ''}, auto, each Lambda capped at "
            f"{config['cap_mbps']:g} MB/s per direction\n"
        )
        c = config.get("cap_check")
        if c:
            w(
                f"   cap check: {c['objects']} objects ({c['bytes'] / 2e6:.1f} MB) read at once by one Lambda "
                f"{c['one_lambda_s']:.2f} s, by {c['lambdas_seen']} Lambdas {c['lambdas_s']:.2f} s: "
                f"{c['ratio']:.2f}x (ideal {c['objects']}x, the most a parallel run can gain)\n"
            )
        head = f"{'workers':>7} {'wall s':>8} {'spread':>7} {'CPU s':>7} {'emu CPU':>7}  walls\n"
        w(head + "-" * (len(head) + 20) + "\n")
        medians = {}
        for workers, runs in speed.items():
            good = [r for r in runs if not r.error]
            if not good:
                w(f"{workers:>7} FAILED {runs[-1].error if runs else ''}\n")
                continue
            walls = [r.wall for r in good]
            medians[workers] = statistics.median(walls)
            w(
                f"{workers:>7} {medians[workers]:>8.2f} {max(walls) - min(walls):>7.2f} "
                f"{statistics.median(r.cpu for r in good):>7.2f} "
                f"{statistics.median(r.emulator_cpu for r in good):>7.2f}  "
                f"{[round(x, 2) for x in walls]}\n"
            )
        for workers, runs in speed.items():
            good = [r for r in runs if not r.error]
            if good:
                w(f"   last --workers {workers} run ({good[-1].wall:.1f} s), per Lambda:\n")
                for line in busy_lines(good[-1].stats):
                    w(f"     {line}\n")
        parallel = [n for n in medians if n > 1]
        value = medians[1] / medians[parallel[0]] if 1 in medians and parallel else None
        if value is not None:
            w(f"   speed-up: {value:.2f}x (median wall, 1 worker / {parallel[0]} workers)\n")
            spans = {
                n: statistics.median(t for r in speed[n] if not r.error and (t := transfer_span(r.stats)))
                for n in (1, parallel[0])
            }
            transfer = spans[1] / spans[parallel[0]]
            w(
                f"   transfer phase (first GET to last UploadPart of the Lambdas moving the data): "
                f"{spans[1]:.1f} s / {spans[parallel[0]]:.1f} s = {transfer:.2f}x\n"
            )
            checks.append(
                {
                    "target": f"transfer phase only: --workers {config['workers']} / --workers 1",
                    "value": round(transfer, 2),
                    "ok": "info",
                }
            )
        elif not config["has_workers"]:
            w("   speed-up: n/a: this checkout's CLI has no --workers yet (only the 1-worker run was measured)\n")
        checks.append(
            {
                "target": f"--workers {config['workers']} >= {TARGET_SPEEDUP:g}x faster than --workers 1",
                "value": None if value is None else round(value, 2),
                "ok": None if value is None else value >= TARGET_SPEEDUP,
            }
        )
    if rows:
        w(
            f"\n3. projection model (bench/model.py): deflate level 1 measured here at {deflate_row:.0f} MB/s per core;"
            f"\n   traffic per source byte {json.dumps(inputs['traffic'])}"
            f"\n   assembly per segment {json.dumps(inputs['assembly'])}\n"
        )
        w(model.format_table(rows))
        w("   what if:\n" + "".join(f"     {line}\n" for line in inputs.get("what_if", [])))
        for t in model.targets(rows):
            checks.append({"target": f"model: {t['target']}", "value": t["value"], "ok": t["verdict"] == "PASS"})
    w("\ntargets:\n")
    for c in checks:
        value = "n/a" if c["value"] is None else f"{c['value']}"
        w(f"  {_verdict(c['ok'])}  {c['target']:<62} measured {value}\n")
    if config["quick"]:
        w("\nnote: --quick is a smoke test; fixed costs dominate at its sizes: read the targets from a full run.\n")
    out.flush()
    return checks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bucketzip-bench-parallel-"))
    log = lambda msg: print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    services = None
    try:
        options = cli_options()
        args.has_workers, args.has_shard_bytes = "--workers" in options, "--shard-bytes" in options
        # S3's documented UploadPartCopy answers (the part's CRC32 among them), which moto
        # lacks: without them the engine must read every copied part once for its CRC.
        services = Services(workdir, moto_args=("--copy-fidelity",))
        datasets = seed(services.moto_url, args)
        services.cache_bytes = sum(d.bytes for d in datasets.values()) + 64 * MIB
        log(f"seeded {sum(d.bytes for d in datasets.values()) / 1e6:.0f} MB; CLI --workers: {args.has_workers}")
        through_runs = through(services, datasets, args, log) if "through" not in args.skip else []
        speed = speedup(services, datasets["speed"], args, log) if "speedup" not in args.skip else {}
        rows, inputs, deflate_mb = [], {}, 0.0
        if "model" not in args.skip:
            sample = Generator(seed=7).text((2 if args.quick else 16) * MIB)
            level1 = [
                r for r in backends.compare(sample) if r["backend"].startswith("engine level 1") and r["available"]
            ]
            deflate_mb = level1[0]["mb_per_s"] if level1 else model.DEFLATE_BPS_PER_CORE / 1e6
            inputs = model_inputs(through_runs, speed, deflate_mb * 1e6)
            measured = {mode: model.Traffic(**fields) for mode, fields in inputs["traffic"].items()} or None
            rows = model.table(measured, model.Assembly(**inputs["assembly"]), inputs["deflate_bps_per_core"])
            inputs["what_if"] = model.what_if(
                measured, model.Assembly(**inputs["assembly"]), inputs["deflate_bps_per_core"]
            )
        import moto

        config = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f}",
            "moto": moto.__version__,
            "part_size": args.part_size,
            "concurrency": args.concurrency,
            "cap_mbps": args.cap_mbps,
            "workers": args.workers,
            "repeat": args.repeat,
            "quick": args.quick,
            "has_workers": args.has_workers,
            "has_shard_bytes": args.has_shard_bytes,
            "cap_check": getattr(args, "cap_check", None),
        }
        checks = report(config, through_runs, speed, deflate_mb, inputs, rows)
        failed = [r for r in through_runs if r.error] + [r for runs in speed.values() for r in runs if r.error]
        if args.json_out:
            payload = {
                "config": config,
                "through": [
                    {
                        "label": r.label,
                        "size": r.size,
                        "wall": r.wall,
                        "cpu": r.cpu,
                        "error": r.error,
                        **r.figures(),
                        "stats": r.stats,
                    }
                    for r in through_runs
                ],
                "speedup": {
                    str(n): [
                        {"wall": r.wall, "cpu": r.cpu, "emu_cpu": r.emulator_cpu, "error": r.error, "stats": r.stats}
                        for r in runs
                    ]
                    for n, runs in speed.items()
                },
                "model_inputs": inputs,
                "model": rows,
                "checks": checks,
            }
            Path(args.json_out).write_text(json.dumps(payload, indent=2) + "\n")
        return 1 if failed else 0
    finally:
        if services is not None:
            services.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
