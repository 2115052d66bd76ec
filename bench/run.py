"""bucketzip benchmark: one command, one run, every figure.

    python -m bench [--quick] [--latency-ms 20] [--large-mib 256] [--small-count 2000] ...

Starts moto and a latency proxy in front of it, each in a process of its own, seeds a
source bucket (directly, no latency), then runs each contender in a subprocess of its
own: wall time (measured outside, interpreter start included), peak RSS (the child's
own VmHWM, bench/peak.py) and CPU seconds (os.wait4 rusage of that child only).

Contenders, on each dataset, all with the same --concurrency, part and chunk sizes:
  floor             bench/floor.py: GET every byte once + multipart PUT of the same bytes
  bucketzip store   `bucketzip archive --compression store`
  bucketzip auto    `bucketzip archive --compression auto` (the default)
  baseline          bench/baseline.py: sequential list -> GET -> zipstream-ng (deflate) -> parts
Datasets:
  large             --large-count objects of --large-mib MiB: half random (.bin), half log text (.log)
  large-half        the first half of them (bucketzip store only): peak RSS flat as bytes grow?
  small             --small-count objects of 1-64 KiB, half log text (.json), half random (.dat)
  small xK          K x --small-count objects (bucketzip auto only): flat as objects grow?

The proxy (bench/servers.py) adds --latency-ms to every request for the small datasets
(--large-latency-ms, default 0, for the large ones) and serves GETs of the source
objects from memory, loaded before the first contender: moto reads a whole object for
each ranged GET and spends ~2.5 ms of CPU per GET under one GIL, S3 does neither.
Listings and all writes go to moto. An untimed warm-up run comes first; with --repeat N
the contenders run round robin and the fastest run of each is kept. Also compares the
deflate backends on a text sample. Targets are checked and printed (PASS/MISS); the
command does not fail on a MISS (exit 1 only when a contender fails).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import backends  # noqa: E402
from bench.common import FAKE_AWS_ENV, MIB  # noqa: E402
from bench.data import Generator  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCE, DEST = "bench-source", "bench-dest"
# The floor uploading as many bytes as bucketzip auto did on the same dataset (its out/in):
# auto uploads a third less than it reads, and an emulator that is CPU-bound on writes
# rewards that, so auto is compared with this floor, not with the full-bytes one.
FLOOR_AUTO_BYTES = "floor (auto's bytes)"
TARGET_LARGE = 1.2  # bucketzip wall / floor wall on large objects, at most
TARGET_SMALL = 8.0  # baseline wall / bucketzip wall on small objects with latency, at least
TARGET_RSS = 1.25  # peak RSS at K x N objects / at N objects, at most ("flat")

QUICK = {"large_mib": 32, "large_count": 4, "small_count": 300, "deflate_mib": 8}
DEFAULT = {"large_mib": 256, "large_count": 4, "small_count": 2000, "deflate_mib": 32}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--quick", action="store_true", help=f"small configuration (smoke test, < 2 min): {QUICK}")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=20.0,
        help="injected per-request latency for the small datasets (default 20)",
    )
    parser.add_argument(
        "--large-latency-ms",
        type=float,
        default=0.0,
        help="injected per-request latency for the large datasets (default 0)",
    )
    parser.add_argument("--large-mib", type=int, help=f"MiB per large object (default {DEFAULT['large_mib']})")
    parser.add_argument("--large-count", type=int, help=f"large objects (default {DEFAULT['large_count']})")
    parser.add_argument("--small-count", type=int, help=f"small objects (default {DEFAULT['small_count']})")
    parser.add_argument(
        "--rss-factor",
        type=int,
        default=4,
        help="the RSS check archives this many times --small-count objects too (default 4)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="for floor and bucketzip (default 16)")
    parser.add_argument("--part-size", default="16MiB", help="multipart part size, all contenders (default 16MiB)")
    parser.add_argument("--chunk-size", default="8MiB", help="ranged GET size, floor and bucketzip (default 8MiB)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per contender, round robin; keeps the fastest, and the highest peak RSS (default 1)",
    )
    parser.add_argument(
        "--deflate-mib",
        type=int,
        help=f"text sample for the deflate backends (default {DEFAULT['deflate_mib']}; 0 skips)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=("large", "small", "rss", "deflate", "baseline"),
        help="leave out a part of the run (repeatable)",
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    parser.add_argument(
        "--moto-reads",
        action="store_true",
        help="send whole-object GETs to moto instead of the proxy's memory (its CPU per GET "
        "then caps the small-object speed-up on small machines); ranged GETs are always "
        "served by the proxy",
    )
    parser.add_argument("--json-out", metavar="PATH", help="also write every figure as JSON to PATH")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per contender run (default 1800)")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else DEFAULT
    for name, value in profile.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.part_bytes = _size(args.part_size)
    args.chunk_bytes = _size(args.chunk_size)
    if args.large_count < 1 or args.large_mib < 1 or args.small_count < 1 or args.rss_factor < 2:
        parser.error("sizes and counts must be positive (--rss-factor at least 2)")
    return args


def _size(text: str) -> int:
    text = text.strip()
    for suffix, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("MB", 10**6), ("KB", 10**3)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


# -- processes --------------------------------------------------------------------------


class Services:
    """moto, and the latency proxies, each a subprocess; stopped (by pid) on exit."""

    def __init__(
        self, workdir: Path, cache_bytes: int = 2 << 30, cache_whole: bool = True, moto_args: tuple[str, ...] = ()
    ):
        self.workdir, self.cache_bytes, self.cache_whole = workdir, cache_bytes, cache_whole
        self.procs: list[subprocess.Popen] = []
        self.proxies: dict[float, str] = {}
        try:
            self.moto_url = self._start(["moto", *moto_args], "moto")
        except BaseException:
            self.stop()
            raise

    def _start(self, args: list[str], name: str) -> str:
        with open(self.workdir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "servers.py"), *args],
                stdout=subprocess.PIPE,
                stderr=log,
                env=child_env(None),
                cwd=ROOT,
                preexec_fn=_die_with_parent,
            )
        self.procs.append(proc)
        deadline = time.monotonic() + 60
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                byte = os.read(proc.stdout.fileno(), 1)
                if not byte:
                    break
                line += byte
        if not line.startswith(b"PORT "):
            log_text = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} did not start:\n{log_text}")
        return f"http://127.0.0.1:{int(line.split()[1])}"

    def endpoint(self, latency_ms: float) -> str:
        """The proxy adding `latency_ms` (0 too: it also serves ranged GETs, see servers.py)."""
        if latency_ms not in self.proxies:
            port = self.moto_url.rsplit(":", 1)[1]
            options = ["--cache-bucket", SOURCE, "--cache-bytes", str(self.cache_bytes)]
            if self.cache_whole:
                options.append("--cache-whole")
            self.proxies[latency_ms] = self._start(
                ["proxy", port, str(latency_ms), *options], f"proxy-{latency_ms:g}ms"
            )
        return self.proxies[latency_ms]

    def meter(self, cap_mbps: float = 0.0, name: str = "meter") -> str:
        """A metering proxy (bench/meter.py): counts per Lambda and operation, and caps
        each Lambda at `cap_mbps` MB/s per direction (0: no cap). Serves the source
        bucket's GETs from memory like the latency proxy."""
        port = self.moto_url.rsplit(":", 1)[1]
        options = ["--cap-mbps", str(cap_mbps), "--cache-bucket", SOURCE, "--cache-bytes", str(self.cache_bytes)]
        return self._start(["meter", port, *options], name)

    def cpu_seconds(self) -> float:
        """CPU used so far by moto and the proxies (children of ours, read through psutil)."""
        import psutil

        total = 0.0
        for proc in self.procs:
            try:
                times = psutil.Process(proc.pid).cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _die_with_parent() -> None:
    """In the server child: SIGTERM when the benchmark dies, even by SIGKILL (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - elsewhere, stop() at exit still applies
        pass


def child_env(endpoint: str | None, state_dir: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(FAKE_AWS_ENV)
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    if state_dir:
        env["BUCKETZIP_STATE_DIR"] = str(state_dir)
    # This checkout's engine, not whichever one `pip install -e` points at (a worktree).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "functions"), str(ROOT), env.get("PYTHONPATH")) if p)
    return env


@dataclass
class Measured:
    wall: float
    cpu: float
    rss_kib: int
    returncode: int
    stdout: str
    stderr: str
    emulator_cpu: float = 0.0


def measure(module_and_args: list[str], env: dict, timeout: float) -> Measured:
    """Run `python -m MODULE ARGS...` in a child, through bench/peak.py: its peak RSS is
    the child's own VmHWM, its CPU seconds come from os.wait4 (that child only)."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".peak") as peak,
    ):
        cmd = [sys.executable, "-m", "bench.peak", peak.name, *module_and_args]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        peak_kib = int(peak.read().strip() or 0)
        return Measured(
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            rss_kib=peak_kib,
            returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


# -- datasets ---------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    prefix: str
    objects: int
    bytes: int
    latency_ms: float


def s3_direct(url: str, concurrency: int = 16):
    import boto3
    from botocore.config import Config

    for name, value in FAKE_AWS_ENV.items():
        os.environ.setdefault(name, value)
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(max_pool_connections=concurrency + 4),
    )


def seed(s3, args) -> list[Dataset]:
    s3.create_bucket(Bucket=SOURCE)
    s3.create_bucket(Bucket=DEST)
    gen = Generator(seed=20240501)
    large_bytes = 0
    half = (args.large_count + 1) // 2  # under large/a/: the "large-half" dataset
    for n in range(args.large_count):
        size = args.large_mib * MIB
        folder = "a" if n < half else "b"
        if n % 2 == 0:
            key, body = f"large/{folder}/object-{n:02d}.bin", gen.random_bytes(size)
        else:
            key, body = f"large/{folder}/object-{n:02d}.log", gen.text(size)
        s3.put_object(Bucket=SOURCE, Key=key, Body=body)
        large_bytes += size
    del body
    # Small objects in rss_factor groups: the "small" dataset is group 0, "small xK" all groups.
    specs = []
    for group in range(args.rss_factor):
        for n in range(args.small_count):
            size = gen.rng.randint(1024, 64 * 1024)
            text = n % 2 == 0
            key = f"small/g{group}/{n // 100:03d}/item-{n:06d}.{'json' if text else 'dat'}"
            specs.append((key, size, text, gen.rng.getrandbits(32)))

    def put(spec):
        key, size, text, salt = spec
        local = Generator(salt, pool=gen.pool)
        body = local.text(size) if text else local.random_bytes(size)
        s3.put_object(Bucket=SOURCE, Key=key, Body=body)
        return len(body)

    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(put, specs))
    group_bytes = sum(sizes[: args.small_count])
    large = Dataset("large", "large/", args.large_count, large_bytes, args.large_latency_ms)
    large_half = Dataset("large-half", "large/a/", half, half * args.large_mib * MIB, args.large_latency_ms)
    small = Dataset("small", "small/g0/", args.small_count, group_bytes, args.latency_ms)
    small_k = Dataset(
        f"small x{args.rss_factor}", "small/", args.small_count * args.rss_factor, sum(sizes), args.latency_ms
    )
    return [large, large_half, small, small_k]


def warm_cache(endpoint: str, prefix: str) -> None:
    proxied = s3_direct(endpoint, 32)
    keys = [
        item["Key"]
        for page in proxied.get_paginator("list_objects_v2").paginate(Bucket=SOURCE, Prefix=prefix)
        for item in page.get("Contents", [])
    ]

    def touch(key: str) -> None:
        proxied.get_object(Bucket=SOURCE, Key=key, Range="bytes=0-0")["Body"].read()

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(touch, keys))


# -- contenders -------------------------------------------------------------------------


@dataclass
class Run:
    dataset: str
    contender: str
    objects: int
    bytes_in: int
    latency_ms: float
    wall: float = 0.0
    cpu: float = 0.0
    emulator_cpu: float = 0.0
    rss_mib: float = 0.0
    bytes_out: int = 0
    ok: bool = False
    error: str = ""
    walls: list = field(default_factory=list)
    cpus: list = field(default_factory=list)
    emulator_cpus: list = field(default_factory=list)

    @property
    def wall_spread(self) -> float:
        return max(self.walls) - min(self.walls) if self.walls else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_in / self.wall / 1e6 if self.wall else 0.0

    @property
    def objects_per_s(self) -> float:
        return self.objects / self.wall if self.wall else 0.0


def contender_cmd(
    contender: str, dataset: Dataset, endpoint: str, dest_key: str, args, out_ratio: float = 1.0
) -> list[str]:
    source, dest = f"s3://{SOURCE}/{dataset.prefix}", f"s3://{DEST}/{dest_key}"
    if contender.startswith("floor"):
        return [
            "bench.floor",
            source,
            dest,
            "--endpoint-url",
            endpoint,
            "--concurrency",
            str(args.concurrency),
            "--part-size",
            str(args.part_bytes),
            "--chunk-size",
            str(args.chunk_bytes),
            "--out-ratio",
            str(out_ratio if contender == FLOOR_AUTO_BYTES else 1.0),
        ]
    if contender == "baseline":
        return ["bench.baseline", source, dest, "--endpoint-url", endpoint, "--part-size", str(args.part_bytes)]
    mode = contender.split()[-1]
    return [
        "bucketzip.cli",
        "--endpoint-url",
        endpoint,
        "archive",
        source,
        dest,
        "--compression",
        mode,
        "--concurrency",
        str(args.concurrency),
        "--part-size",
        args.part_size,
        "--chunk-size",
        args.chunk_size,
        "--quiet",
        "--json",
    ]


def run_once(
    run: Run,
    contender: str,
    dataset: Dataset,
    services: Services,
    s3,
    workdir: Path,
    args,
    attempt: int,
    out_ratio: float = 1.0,
) -> None:
    """One measured run of `contender` on `dataset`, folded into `run`: the median wall
    time and the median CPU figures over the attempts (their spread is kept too: the
    best of N hides how noisy a shared machine is), and the highest peak RSS."""
    endpoint = services.endpoint(dataset.latency_ms)
    dest_key = f"{dataset.name.replace(' ', '-')}/{contender.replace(' ', '-')}-{attempt}.zip"
    state_dir = workdir / "state" / f"{dataset.name}-{contender}-{attempt}".replace(" ", "-")
    emulator_before = services.cpu_seconds()
    measured = measure(
        contender_cmd(contender, dataset, endpoint, dest_key, args, out_ratio),
        child_env(endpoint, state_dir),
        args.timeout,
    )
    measured.emulator_cpu = services.cpu_seconds() - emulator_before
    error = _check(contender, dataset, measured)
    if not error:
        run.bytes_out = s3.head_object(Bucket=DEST, Key=dest_key)["ContentLength"]
    for key in (dest_key, dest_key + ".manifest.jsonl"):
        try:
            s3.delete_object(Bucket=DEST, Key=key)  # keep moto's memory flat between runs
        except Exception:  # noqa: BLE001
            pass
    if error:
        run.ok, run.error = False, error
        return
    run.walls.append(round(measured.wall, 3))
    run.cpus.append(measured.cpu)
    run.emulator_cpus.append(measured.emulator_cpu)
    if not run.error:
        run.ok = True
        run.wall, run.cpu = statistics.median(run.walls), statistics.median(run.cpus)
        run.emulator_cpu = statistics.median(run.emulator_cpus)
    run.rss_mib = max(run.rss_mib, measured.rss_kib / 1024)


def _check(contender: str, dataset: Dataset, measured: Measured) -> str:
    if measured.returncode != 0:
        tail = (measured.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return f"exit {measured.returncode}: {tail}"
    try:
        if contender.startswith("bucketzip"):
            result = json.loads(measured.stdout)
            objects, skipped = result["entries"], result["skipped"]
            if skipped:
                return f"{skipped} objects skipped"
        else:
            result = json.loads(measured.stdout.strip().splitlines()[-1])
            objects = result["objects"]
            if result["bytes_in"] != dataset.bytes:
                return f"read {result['bytes_in']} bytes, the dataset has {dataset.bytes}"
    except (ValueError, KeyError, IndexError) as exc:
        return f"unreadable output ({exc}): {measured.stdout[-200:]!r}"
    if objects != dataset.objects:
        return f"{objects} objects archived, the dataset has {dataset.objects}"
    return ""


# -- report -----------------------------------------------------------------------------


def ratio(runs: dict, a: tuple[str, str], b: tuple[str, str]) -> float | None:
    ra, rb = runs.get(a), runs.get(b)
    if ra is None or rb is None or not ra.ok or not rb.ok or not rb.wall:
        return None
    return ra.wall / rb.wall


def build_checks(runs: dict, args, names: dict) -> tuple[list[dict], list[dict]]:
    ratios, checks = [], []
    large_half, small_k = names["large-half"], names["small xK"]

    def add(label, a, b, measure="wall"):
        ra, rb = runs.get(a), runs.get(b)
        value = None
        if ra is not None and rb is not None and ra.ok and rb.ok:
            num, den = {"wall": (ra.wall, rb.wall), "cpu": (ra.cpu, rb.cpu), "rss": (ra.rss_mib, rb.rss_mib)}[measure]
            value = num / den if den else None
        ratios.append({"label": label, "measure": measure, "value": None if value is None else round(value, 3)})
        return value

    bz_store, bz_auto = "bucketzip store", "bucketzip auto"
    large_store = add("large  bucketzip/floor  (store)", ("large", bz_store), ("large", "floor"))
    large_auto = add("large  bucketzip/floor  (auto)", ("large", bz_auto), ("large", FLOOR_AUTO_BYTES))
    add("large  baseline/bucketzip  (auto)", ("large", "baseline"), ("large", bz_auto))
    add("large  baseline/floor  (the most any tool can gain here)", ("large", "baseline"), ("large", "floor"))
    add("small  bucketzip/floor  (store)", ("small", bz_store), ("small", "floor"))
    add("small  bucketzip/floor  (auto)", ("small", bz_auto), ("small", FLOOR_AUTO_BYTES))
    add("small  baseline/bucketzip  (store)", ("small", "baseline"), ("small", bz_store))
    small_speedup = add("small  baseline/bucketzip  (auto)", ("small", "baseline"), ("small", bz_auto))
    add("small  baseline/floor  (the most any tool can gain here)", ("small", "baseline"), ("small", "floor"))
    add("large  bucketzip/floor  CPU (store)", ("large", bz_store), ("large", "floor"), "cpu")
    add("large  bucketzip/floor  CPU (auto)", ("large", bz_auto), ("large", FLOOR_AUTO_BYTES), "cpu")
    add("small  bucketzip/floor  CPU (store)", ("small", bz_store), ("small", "floor"), "cpu")
    add("small  bucketzip/floor  CPU (auto)", ("small", bz_auto), ("small", FLOOR_AUTO_BYTES), "cpu")
    rss_bytes = add(
        f"large/{large_half}  peak RSS (bucketzip store)", ("large", bz_store), (large_half, bz_store), "rss"
    )
    rss_objects = add(f"{small_k}/small  peak RSS (bucketzip auto)", (small_k, bz_auto), ("small", bz_auto), "rss")

    def check(name, value, target, higher_is_better):
        if value is None:
            verdict = "SKIP"
        else:
            verdict = "PASS" if (value >= target if higher_is_better else value <= target) else "MISS"
        checks.append(
            {"target": name, "value": None if value is None else round(value, 3), "limit": target, "verdict": verdict}
        )

    check(f"large objects: bucketzip (store) <= {TARGET_LARGE}x floor", large_store, TARGET_LARGE, False)
    check(f"large objects: bucketzip (auto) <= {TARGET_LARGE}x floor", large_auto, TARGET_LARGE, False)
    check(
        f"small objects at {args.latency_ms:g} ms: bucketzip (auto) >= {TARGET_SMALL:g}x faster than baseline",
        small_speedup,
        TARGET_SMALL,
        True,
    )
    check(f"peak RSS flat as bytes grow: large / {large_half} <= {TARGET_RSS}x", rss_bytes, TARGET_RSS, False)
    check(f"peak RSS flat as objects grow: {small_k} / small <= {TARGET_RSS}x", rss_objects, TARGET_RSS, False)
    return ratios, checks


def print_report(
    config: dict,
    datasets: list[Dataset],
    runs: dict,
    deflate: list[dict],
    ratios,
    checks,
    reference_rss: float | None,
    out=sys.stdout,
) -> None:
    w = out.write
    w("\n== bucketzip benchmark ==\n")
    w(f"machine: {config['machine']}\n")
    w(
        f"settings: concurrency {config['concurrency']}, part size {config['part_size']}, chunk size "
        f"{config['chunk_size']}, repeat {config['repeat']}; moto {config['moto']} in its own process; "
        f"source reads served by {config['reads']}\n"
    )
    for d in datasets:
        w(
            f"dataset {d.name:<10} {d.objects:>6} objects, {d.bytes / 1e6:9.1f} MB, prefix {d.prefix:<10} "
            f"latency {d.latency_ms:g} ms per request\n"
        )
    if reference_rss:
        w(f"reference: a process that only imports boto3 and bucketzip.cli peaks at {reference_rss:.1f} MiB RSS\n")
    w("\n")
    header = (
        f"{'dataset':<10} {'contender':<20} {'wall s':>8} {'spread':>7} {'MB/s':>8} {'obj/s':>9} {'peak RSS MiB':>12} "
        f"{'CPU s':>7} {'emu CPU':>7} {'out/in':>7}  note\n"
    )
    w(header)
    w("-" * (len(header) + 8) + "\n")
    for run in runs.values():
        if run.ok:
            w(
                f"{run.dataset:<10} {run.contender:<20} {run.wall:8.2f} {run.wall_spread:7.2f} "
                f"{run.mb_per_s:8.1f} {run.objects_per_s:9.1f} "
                f"{run.rss_mib:12.1f} {run.cpu:7.2f} {run.emulator_cpu:7.2f} {run.bytes_out / run.bytes_in:7.3f}  "
                f"{'walls ' + str(run.walls) if len(run.walls) > 1 else ''}\n"
            )
        else:
            w(f"{run.dataset:<10} {run.contender:<20} {'FAILED':>8}  {run.error}\n")
    if deflate:
        w(f"\ndeflate backends, {config['deflate_mib']} MiB of log text, 8 MiB sync-flushed pieces, one thread:\n")
        for row in deflate:
            if row["available"]:
                w(f"  {row['backend']:<44} {row['mb_per_s']:8.1f} MB/s  ratio {row['ratio']:.3f}\n")
            else:
                w(f"  {row['backend']:<28} not installed (skipped)\n")
    w("\nratios (wall time unless marked CPU: the contender's own CPU seconds; RSS: peak RSS):\n")
    for r in ratios:
        value = "n/a" if r["value"] is None else f"{r['value']:.2f}x"
        w(f"  {r['label']:<56} {value}\n")
    w("\ntargets:\n")
    for c in checks:
        value = "n/a" if c["value"] is None else f"{c['value']:.2f}x"
        w(f"  {c['verdict']:<5} {c['target']:<70} measured {value}\n")
    if config["quick"]:
        w(
            "\nnote: --quick is a smoke test: at its sizes interpreter start-up and fixed request costs\n"
            "      dominate, and every dataset is below the RSS bound below; read the targets from a full run.\n"
        )
    bound = config["concurrency"] * config["chunk_bytes"]
    w(
        f"\nnote: the engine holds at most concurrency x chunk = {bound / MIB:.0f} MiB of source data (prefetch; "
        f"parts are spilled to disk);\n      the RSS checks only show a plateau when both sizes exceed it "
        f"({', '.join(f'{d.name} {d.bytes / MIB:.0f} MiB' for d in datasets)}).\n"
    )
    out.flush()


# -- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bucketzip-bench-"))
    services = None
    log = lambda msg: print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        log(f"starting moto (own process); work dir {workdir}")
        services = Services(workdir, cache_whole=not args.moto_reads)
        s3 = s3_direct(services.moto_url)
        seeding = time.perf_counter()
        datasets = seed(s3, args)
        large, large_half, small, small_k = datasets
        log(
            f"seeded {large.objects + small_k.objects} objects, "
            f"{(large.bytes + small_k.bytes) / 1e6:.0f} MB in {time.perf_counter() - seeding:.1f} s"
        )

        # The proxies serve the source's reads from memory (servers.py): load them now, so
        # that no contender pays for it.
        services.cache_bytes = large.bytes + small_k.bytes + 256 * MIB
        warm = time.perf_counter()
        if "large" not in args.skip:
            warm_cache(services.endpoint(large.latency_ms), large.prefix)
        if "small" not in args.skip and not args.moto_reads:
            warm_cache(services.endpoint(small_k.latency_ms), small_k.prefix)
        log(f"proxy caches loaded in {time.perf_counter() - warm:.1f} s")

        deflate: list[dict] = []
        if args.deflate_mib and "deflate" not in args.skip:
            log("deflate backends")
            sample = Generator(seed=7).text(args.deflate_mib * MIB)
            deflate = backends.compare(sample)
            del sample

        reference = measure(["bench.imports"], child_env(None), 120)
        reference_rss = reference.rss_kib / 1024 if reference.returncode == 0 else None

        plan: list[tuple[str, Dataset]] = []
        contenders = ["floor", "bucketzip store", "bucketzip auto", FLOOR_AUTO_BYTES]
        if "baseline" not in args.skip:
            contenders.append("baseline")
        if "large" not in args.skip:
            plan += [(c, large) for c in contenders]
            if "rss" not in args.skip:
                plan.append(("bucketzip store", large_half))
        if "small" not in args.skip:
            plan += [(c, small) for c in contenders]
            if "rss" not in args.skip:
                plan.append(("bucketzip auto", small_k))
        if plan and not args.no_warmup:
            # moto is slower at its first big multipart uploads after seeding: an untimed
            # run first, so that whichever contender comes first is not the one to pay.
            log("warm-up: one untimed floor run on the first dataset")
            run_once(Run("warm-up", "floor", 0, 0, 0), "floor", plan[0][1], services, s3, workdir, args, -1)
        runs: dict[tuple[str, str], Run] = {
            (d.name, c): Run(d.name, c, d.objects, d.bytes, d.latency_ms) for c, d in plan
        }
        for attempt in range(args.repeat):  # round robin, so that drifts in load spread evenly
            for contender, dataset in plan:
                run = runs[(dataset.name, contender)]
                if run.error:
                    continue
                log(f"{dataset.name}: {contender}{f' (run {attempt + 1})' if args.repeat > 1 else ''} ...")
                auto = runs.get((dataset.name, "bucketzip auto"))
                out_ratio = auto.bytes_out / auto.bytes_in if auto and auto.ok and auto.bytes_in else 1.0
                run_once(run, contender, dataset, services, s3, workdir, args, attempt, out_ratio)
                log(
                    f"{dataset.name}: {contender}: "
                    + (f"{run.walls[-1]:.2f} s, {run.rss_mib:.0f} MiB" if not run.error else f"FAILED {run.error}")
                )

        ratios, checks = build_checks(runs, args, {"large-half": large_half.name, "small xK": small_k.name})
        import moto

        config = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f}",
            "moto": moto.__version__,
            "concurrency": args.concurrency,
            "part_size": args.part_size,
            "chunk_size": args.chunk_size,
            "part_bytes": args.part_bytes,
            "chunk_bytes": args.chunk_bytes,
            "repeat": args.repeat,
            "deflate_mib": args.deflate_mib,
            "latency_ms": args.latency_ms,
            "large_latency_ms": args.large_latency_ms,
            "quick": args.quick,
            "reads": "moto (whole GETs), proxy (ranges)" if args.moto_reads else "proxy memory",
        }
        print_report(config, datasets, runs, deflate, ratios, checks, reference_rss)
        if args.json_out:
            payload = {
                "config": config,
                "datasets": [asdict(d) for d in datasets],
                "reference_rss_mib": reference_rss,
                "runs": [
                    {**asdict(r), "mb_per_s": round(r.mb_per_s, 2), "objects_per_s": round(r.objects_per_s, 2)}
                    for r in runs.values()
                ],
                "deflate": deflate,
                "ratios": ratios,
                "checks": checks,
            }
            Path(args.json_out).write_text(json.dumps(payload, indent=2) + "\n")
            log(f"wrote {args.json_out}")
        return 0 if all(r.ok for r in runs.values()) else 1
    finally:
        if services is not None:
            services.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
