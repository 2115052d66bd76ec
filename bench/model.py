"""Projection model: the wall time of one archive on AWS, from what the benchmarks measured
per worker (bench/parallel.py: bytes and requests per object and per source byte, what the
assembly costs per segment, deflate throughput per core) and published AWS figures.

    python -m bench.model                       # the table, from the figures in MEASURED below
    python -m bench.model --from bench.json     # ... from a `python -m bench.parallel --json-out` run

`predict` is a pure function of its inputs (tests/bench/test_model.py checks its arithmetic
on a hand-computed case). The run it models (SEGMENTS.md):

    start (execution + first Lambda)
    -> plan (workers > 1: list every key, one page of 1,000 after the other, write plan.json)
    -> Distributed Map: children start at a rate, each a cold Lambda; each segment moves its
       share of the bytes through its own network (read and upload overlap: full duplex),
       straight into its part numbers of the archive's upload; its requests overlap
       `concurrency` at a time, deflate runs on its vCPUs; whichever is slowest sets its
       time; server-side copies (UploadPartCopy of large stored objects) come on top
    -> assembly (workers > 1: no byte is copied or read; the segments' states and fragments
       are read 16 segments at a time, their records taken over in commits of 4 MiB, plus
       what the assembler measured per segment: requests and bytes of segments under 5 MiB)
    -> finish (central directory, Complete, manifest, cleanup).

Every AWS figure is a named constant with its source; where AWS publishes none, the comment
says so and gives the assumption. Change them in `Aws(...)` to see what each term is worth.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

GB, MB, MIB = 10**9, 10**6, 2**20

# -- published AWS figures (and the assumptions where none is published) -------------------

# One Lambda's network: ~75 MB/s per function, as issue 10 states it (independent
# measurements of Lambda-to-S3 throughput report 70-90 MB/s for one function at >= 1,769 MB).
LAMBDA_NETWORK_BPS = 75 * MB
# Lambda CPU is proportional to memory; "at 1,769 MB, a function has the equivalent of one
# vCPU" (AWS Lambda Developer Guide, "Configure Lambda function memory"). The step function
# is deployed with 2,048 MB (infra/context.py FUNCTION_DEFAULTS): 2048 / 1769 vCPU.
LAMBDA_VCPUS = 2048 / 1769
# Cold start: "typically ... from under 100 ms to over 1 second" (AWS Compute Blog,
# "Understanding and Remediating Cold Starts: An AWS Lambda Perspective", 2025); a Python
# function importing boto3 sits in the middle: 0.5 s.
LAMBDA_COLD_START_S = 0.5
# S3 first-byte latency: "small object latencies ... of roughly 100-200 milliseconds"
# (Amazon S3 User Guide, "Performance guidelines for Amazon S3"); the low end, as S3 from
# Lambda in the same region is.
S3_REQUEST_S = 0.1
# A LIST page of 1,000 keys: AWS publishes no figure; assumed twice a small GET (its answer
# is ~250 KB of XML).
S3_LIST_PAGE_S = 0.2
# UploadPartCopy server-side throughput per request: AWS publishes none. Assumption, from
# field reports of multi-GB CopyObject calls (roughly 100-250 MB/s per request): 150 MB/s.
S3_COPY_BPS = 150 * MB
# CompleteMultipartUpload: no published figure; S3 may take seconds for large uploads
# (the API may answer 200 and keep the connection open while it works: "Processing of a
# Complete Multipart Upload request could take several minutes", Amazon S3 API Reference,
# CompleteMultipartUpload). Assumed 1 s.
S3_COMPLETE_S = 1.0
# Standard workflow: starting the execution and each state transition. No latency is
# published; assumed 50 ms per transition.
SFN_TRANSITION_S = 0.05
# Distributed Map children: AWS publishes the maximum concurrency (10,000 child workflow
# executions; AWS Step Functions Developer Guide, "Using Map state in Distributed mode")
# but neither the start latency nor a start rate. Assumed: the first child 0.5 s after the
# Map state starts, then 300 children per second (the StartExecution token refill rate of
# standard workflows in us-east-1, Step Functions quotas, as an analog).
SFN_MAP_FIRST_CHILD_S = 0.5
SFN_MAP_CHILDREN_PER_S = 300.0
# A state commit (a conditional write to DynamoDB): "consistent single-digit millisecond
# performance" (Amazon DynamoDB Developer Guide, "What is Amazon DynamoDB?"): 10 ms.
DYNAMODB_COMMIT_S = 0.01
# A Lambda runs at most 15 minutes (Lambda quotas); the engine ends a step at 840 s.
STEP_BUDGET_S = 840.0

# -- figures measured by bench/ (defaults; `--from` replaces them with a fresh run) ---------

# Deflate level 1 (ISA-L, the engine's default backend) on log text, one core of the shared
# 2-core VM under load (bench.parallel's run in bench/README.md, median of 3): MB/s per core.
# (361 MB/s on the quiet VM at main 2b61a48; the loaded figure is kept: the lower one.)
DEFLATE_BPS_PER_CORE = 126 * MB
# Finish on the fake S3 (bench.scale objects 1000000): 3.2 s for 1 M entries, CPU-bound.
FINISH_S_PER_OBJECT = 3.2e-6
# parallel.assemble_step reads segment states and fragments LOAD_CONCURRENCY (16) segments at
# a time, and commits the records taken over in fragments of ASSEMBLY_FRAGMENT_BYTES (4 MiB).
ASSEMBLY_CONCURRENCY = 16
ASSEMBLY_FRAGMENT_BYTES = 4 * MIB
# Central directory bytes per entry (46-byte record + name ~40 + zip64 extra): ~100.
DIRECTORY_BYTES_PER_OBJECT = 100
# A manifest line per entry (JSON: key, name, sizes, CRC, offset, ETag, ...): ~250 bytes.
MANIFEST_BYTES_PER_OBJECT = 250


@dataclass(frozen=True)
class Traffic:
    """What one worker moves, per SOURCE byte and per object (bench.parallel measures it)."""

    read_per_byte: float  # GET body bytes through the worker
    upload_per_byte: float  # UploadPart / PutObject body bytes through the worker
    copied_per_byte: float  # bytes placed server-side by the worker's UploadPartCopy calls
    deflated_per_byte: float  # source bytes the worker deflates (0: stored)
    requests_per_object: float  # the worker's S3 requests (GET, HEAD, UploadPart, ...)


@dataclass(frozen=True)
class Assembly:
    """What the assembler (the parent) measured per segment: S3 requests and bytes (only
    segments under 5 MiB, whose bytes it appends, cost any)."""

    requests_per_segment: float
    bytes_per_segment: float  # read + uploaded through the parent (small segments, junctions)


@dataclass(frozen=True)
class Aws:
    network_bps: float = LAMBDA_NETWORK_BPS
    vcpus: float = LAMBDA_VCPUS
    cold_start_s: float = LAMBDA_COLD_START_S
    request_s: float = S3_REQUEST_S
    list_page_s: float = S3_LIST_PAGE_S
    copy_bps: float = S3_COPY_BPS
    complete_s: float = S3_COMPLETE_S
    transition_s: float = SFN_TRANSITION_S
    map_first_child_s: float = SFN_MAP_FIRST_CHILD_S
    map_children_per_s: float = SFN_MAP_CHILDREN_PER_S
    step_budget_s: float = STEP_BUDGET_S
    commit_s: float = DYNAMODB_COMMIT_S


@dataclass(frozen=True)
class Workload:
    name: str
    source_bytes: int
    objects: int


@dataclass(frozen=True)
class Prediction:
    workers: int
    start_s: float
    plan_s: float
    map_s: float
    worker_s: float
    assemble_s: float
    finish_s: float
    bound: str  # what sets a worker's time: network, requests, deflate (+ copy)
    terms: dict = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return self.start_s + self.plan_s + self.map_s + self.worker_s + self.assemble_s + self.finish_s


def predict(
    workload: Workload,
    traffic: Traffic,
    workers: int,
    *,
    aws: Aws = Aws(),
    assembly: Assembly = Assembly(0.0, 0.0),
    deflate_bps_per_core: float = DEFLATE_BPS_PER_CORE,
    concurrency: int = 8,
    assembly_concurrency: int = ASSEMBLY_CONCURRENCY,
    finish_s_per_object: float = FINISH_S_PER_OBJECT,
) -> Prediction:
    """Wall time of `workload` at `workers` (a pure function: no clock, no I/O).
    concurrency: a worker's requests in flight (ArchiveRequest.concurrency, default 8);
    assembly_concurrency: segments whose state and fragments the assembler reads at once."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    share_bytes = workload.source_bytes / workers  # the plan balances shards by bytes
    share_objects = workload.objects / workers
    start_s = aws.transition_s + aws.cold_start_s
    if workers == 1:  # the current path: listing overlaps the reads, no plan, no Map, no assembly
        plan_s = map_s = 0.0
    else:
        pages = math.ceil(workload.objects / 1000)
        plan_s = pages * aws.list_page_s + aws.request_s + aws.transition_s
        map_s = aws.map_first_child_s + (workers - 1) / aws.map_children_per_s + aws.cold_start_s
    terms = {
        "network": max(traffic.read_per_byte, traffic.upload_per_byte) * share_bytes / aws.network_bps,
        "requests": share_objects * traffic.requests_per_object * aws.request_s / concurrency,
        "deflate": share_bytes * traffic.deflated_per_byte / (deflate_bps_per_core * aws.vcpus),
    }
    bound = max(terms, key=lambda name: terms[name])
    copy_s = share_bytes * traffic.copied_per_byte / (aws.copy_bps * concurrency)
    busy = terms[bound] + copy_s
    steps = max(1, math.ceil(busy / aws.step_budget_s))
    worker_s = busy + (steps - 1) * (aws.transition_s + aws.cold_start_s)  # each step a fresh invocation
    if copy_s:
        bound += " + copy"
    if workers == 1:
        assemble_s = 0.0
    else:
        # The segments' bytes are in the archive's upload already. The assembler reads each
        # segment's state, then its fragments (`assembly_concurrency` segments at a time: a
        # read each, at the latency of a commit), commits the records taken over (one
        # commit per 4 MiB of records and lines, plus the first and the last), and makes
        # the requests and moves the bytes it measured per segment, one after the other.
        reads = 2 * math.ceil(workers / assembly_concurrency)
        records = workload.objects * (DIRECTORY_BYTES_PER_OBJECT + MANIFEST_BYTES_PER_OBJECT)
        commits = 2 + math.ceil(records / ASSEMBLY_FRAGMENT_BYTES)
        assemble_s = (
            (reads + commits) * aws.commit_s
            + workers * assembly.requests_per_segment * aws.request_s
            + workers * assembly.bytes_per_segment / aws.network_bps
            + aws.transition_s
        )
    finish_s = (
        workload.objects * (finish_s_per_object + DIRECTORY_BYTES_PER_OBJECT / aws.network_bps)
        + aws.complete_s
        + aws.transition_s
    )
    return Prediction(workers, start_s, plan_s, map_s, worker_s, assemble_s, finish_s, bound, terms)


# -- the table ------------------------------------------------------------------------------

# Measured by `python -m bench.parallel` (bench/README.md, 15:25 UTC run; the same figures
# again at main 2b61a48): per source byte and per object, the 1-worker runs of 1 MiB objects
# (under the copy threshold, so through the worker): stored (half text, half random), and
# log text in auto mode (deflate level 1).
# A mode's traffic under this key (mode + SEGMENTS) is what the segments of a parallel run
# moved per source byte and object; the rows with workers > 1 use it where it is measured.
SEGMENTS = ", segments"
MEASURED = {
    "stored": Traffic(
        read_per_byte=1.0626,
        upload_per_byte=1.0632,
        copied_per_byte=0.0,
        deflated_per_byte=0.0,
        requests_per_object=1.469,
    ),
    "deflate on text": Traffic(
        read_per_byte=1.0361,
        upload_per_byte=0.3853,
        copied_per_byte=0.0,
        deflated_per_byte=1.0,
        requests_per_object=1.625,
    ),
    # The segments of a 4-worker run of the same 64 x 1 MiB stored objects (bench.parallel's
    # "medium stored, 4 workers", main 2b61a48): each moves its bytes once, in and out; the
    # one-worker run's extra 6% is its final tail, staged by its last step and read back by
    # Finish, which a segment does not do (its last step uploads its last part).
    "stored" + SEGMENTS: Traffic(
        read_per_byte=1.0,
        upload_per_byte=1.0005,
        copied_per_byte=0.0,
        deflated_per_byte=0.0,
        requests_per_object=1.203,
    ),
}
# What the assembler placed per segment in the 4-worker speed-up run (main 2b61a48):
# nothing, neither copied nor uploaded (segments upload into the archive's upload; only
# segments under 5 MiB would cost their tails' GETs and bytes).
MEASURED_ASSEMBLY = Assembly(requests_per_segment=0.0, bytes_per_segment=0.0)
WORKLOADS = (
    Workload("15 GB / 3,000 objects", 15 * GB, 3_000),
    Workload("1 TB / 1 M objects", 10**12, 1_000_000),
)
WORKER_COUNTS = (1, 10, 100)
PUBLISHED_15GB_S = 6.0  # the Distributed Map demo's 15 GB (3,000 x 5 MB), stored


def table(
    measured: dict[str, Traffic] | None = None,
    assembly: Assembly = MEASURED_ASSEMBLY,
    deflate_bps_per_core: float = DEFLATE_BPS_PER_CORE,
    aws: Aws = Aws(),
) -> list[dict]:
    rows = []
    measured = measured or MEASURED
    for workload in WORKLOADS:
        for mode, traffic in modes(measured).items():
            for workers in WORKER_COUNTS:
                used = measured.get(mode + SEGMENTS, traffic) if workers > 1 else traffic
                p = predict(
                    workload, used, workers, aws=aws, assembly=assembly, deflate_bps_per_core=deflate_bps_per_core
                )
                rows.append(
                    {
                        "workload": workload.name,
                        "mode": mode,
                        "workers": workers,
                        "total_s": round(p.total_s, 2),
                        "start_s": round(p.start_s, 2),
                        "plan_s": round(p.plan_s, 2),
                        "map_s": round(p.map_s, 2),
                        "worker_s": round(p.worker_s, 2),
                        "assemble_s": round(p.assemble_s, 2),
                        "finish_s": round(p.finish_s, 2),
                        "bound": p.bound,
                    }
                )
    return rows


def modes(measured: dict[str, Traffic]) -> dict[str, Traffic]:
    """The modes (one worker's traffic), without their SEGMENTS entries."""
    return {mode: traffic for mode, traffic in measured.items() if not mode.endswith(SEGMENTS)}


def what_if(
    measured: dict[str, Traffic] | None = None,
    assembly: Assembly = MEASURED_ASSEMBLY,
    deflate_bps_per_core: float = DEFLATE_BPS_PER_CORE,
    aws: Aws = Aws(),
) -> list[str]:
    """The 15 GB rows at 100 workers again, varying the assumptions that decide them: cold
    starts (the plan, assemble and finish functions are cold too), the Map's child start,
    Complete's time, and the per-Lambda network."""
    lines = []
    workload, workers = WORKLOADS[0], 100
    measured = measured or MEASURED
    for mode, one_worker in modes(measured).items():
        traffic = measured.get(mode + SEGMENTS, one_worker)
        for label, variant, extra in (
            ("as modelled", aws, 0.0),
            ("+ the plan, assemble and finish functions cold too", aws, 3 * aws.cold_start_s),
            ("Map children start 2x slower", replace(aws, map_first_child_s=2 * aws.map_first_child_s), 0.0),
            ("Complete takes 3 s", replace(aws, complete_s=3.0), 0.0),
            ("one Lambda moves 50 MB/s", replace(aws, network_bps=50 * MB), 0.0),
        ):
            p = predict(
                workload, traffic, workers, aws=variant, assembly=assembly, deflate_bps_per_core=deflate_bps_per_core
            )
            head = f"{workload.name}, {mode}, {workers} workers"
            lines.append(f"{head}, {label}: {p.total_s + extra:.1f} s (assemble {p.assemble_s:.2f} s)")
    return lines


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets against the best worker count of the 15 GB rows."""
    out = []
    for mode, limit, label in (
        ("stored", PUBLISHED_15GB_S, "15 GB stored: beat the published 6 s"),
        ("deflate on text", 2 * PUBLISHED_15GB_S, "15 GB deflate on text: within 2x of 6 s"),
    ):
        best = min(
            (r for r in rows if r["workload"] == WORKLOADS[0].name and r["mode"] == mode),
            key=lambda r: r["total_s"],
            default=None,
        )
        if best is not None:
            verdict = "PASS" if best["total_s"] <= limit else "MISS"
            out.append({"target": label, "value": best["total_s"], "workers": best["workers"], "verdict": verdict})
    return out


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'workload':<22} {'mode':<16} {'workers':>7} {'total s':>8} {'start':>6} {'plan':>6} {'map':>6} "
        f"{'worker':>8} {'assemble':>8} {'finish':>6}  bound\n"
    )
    lines = [head, "-" * (len(head) + 10) + "\n"]
    for r in rows:
        lines.append(
            f"{r['workload']:<22} {r['mode']:<16} {r['workers']:>7} {r['total_s']:>8.1f} {r['start_s']:>6.1f} "
            f"{r['plan_s']:>6.1f} {r['map_s']:>6.1f} {r['worker_s']:>8.1f} {r['assemble_s']:>8.1f} "
            f"{r['finish_s']:>6.1f}  {r['bound']}\n"
        )
    return "".join(lines)


def inputs_from(path: Path) -> tuple[dict[str, Traffic], Assembly, float]:
    """The model's measured inputs from a `bench.parallel --json-out` file."""
    data = json.loads(path.read_text())["model_inputs"]
    measured = {mode: Traffic(**fields) for mode, fields in data["traffic"].items()}
    return measured, Assembly(**data["assembly"]), data["deflate_bps_per_core"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="a bench.parallel --json-out file")
    args = parser.parse_args(argv)
    measured, assembly, deflate = MEASURED, MEASURED_ASSEMBLY, DEFLATE_BPS_PER_CORE
    if args.source:
        measured, assembly, deflate = inputs_from(args.source)
    rows = table(measured, assembly, deflate)
    sys.stdout.write(format_table(rows))
    sys.stdout.write("what if:\n" + "".join(f"  {line}\n" for line in what_if(measured, assembly, deflate)))
    for t in targets(rows):
        sys.stdout.write(f"{t['verdict']:<5} {t['target']}: {t['value']:.1f} s at {t['workers']} workers\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
