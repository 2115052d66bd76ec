"""`bucketzip demo`: the production workflow, end to end, on this machine.

An embedded moto server plays S3, DynamoDB, IAM, Lambda and Step Functions; the REAL
statemachine/archive.asl.json runs in moto's interpreter, its Lambda tasks dispatched
to the handlers in this process. A small step budget makes the loop really loop and
continue as new executions. With workers > 1 the run takes the parallel path: Plan, a
Distributed Map of segment runs (one child per shard, at most `workers` at a time; two
shards per worker, of 6 MiB: the bucket gets incompressible clips up to that), Assemble,
Finish. The archive is then
downloaded and verified.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from ..state_table import create_table_params, ttl_params
from .server import embedded_moto_server
from .workflow import LocalWorkflow

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

SOURCE_BUCKET = "demo-photos"
DEST_BUCKET = "demo-archives"
TABLE = "bucketzip-demo-state"
KEY_TEMPLATE = "backups/{source_bucket}/{date:%Y-%m-%d}.zip"
FOLDER_MARKER = "projects/empty-folder/"


@dataclass
class DemoSummary:
    objects: int  # source objects archived (folder marker included)
    source_bytes: int
    archive: dict  # the execution output: bucket, key, size, entries, parts, ...
    executions: int  # 1 + continue-as-new count
    steps: int  # Step invocations (with workers > 1: segment steps)
    seconds: float
    verified: bool  # every object read back byte for byte from the archive
    problems: list[str]
    workers: int = 1
    segments: int = 0  # shards built as segments by the Distributed Map (workers > 1)

    @property
    def location(self) -> str:
        return f"s3://{self.archive.get('bucket')}/{self.archive.get('key')}"


def sample_objects(count: int = 300, seed: int = 7) -> dict[str, bytes]:
    """A few hundred objects of mixed sizes and names (deterministic)."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(800)]
    folders = [
        "docs",
        "docs/reports 2024",
        "logs/2024/11",
        "photos/été",
        "photos/2024/trip",
        "data/exports",
        "src/app",
        "notes",
    ]
    objects: dict[str, bytes] = {"README.txt": b"bucketzip demo bucket\n", "notes/empty.txt": b""}
    for i in range(max(0, count - len(objects) - 3)):
        folder = rng.choice(folders)
        kind = rng.random()
        if kind < 0.6:  # text, compresses well
            size = rng.choice([120, 900, 4_000, 20_000, 60_000])
            body = b" ".join(rng.choices(words, k=size // 6))[:size]
            objects[f"{folder}/file-{i:03d}.txt"] = body
        elif kind < 0.95:  # binary, incompressible
            objects[f"{folder}/image-{i:03d}.jpg"] = rng.randbytes(rng.choice([2_000, 30_000, 120_000]))
        else:  # a name that needs care in a zip
            objects[f"{folder}/ünïcode name {i:03d}.md"] = b"# " + rng.choice(words) * 40
    for i in range(3):  # large objects: each spans several steps
        objects[f"videos/clip-{i}.bin"] = rng.randbytes(1_500_000 + 250_000 * i)
    return objects


# A demo shard: big enough that its segment uploads parts of its own into the archive's
# upload (a segment of under 5 MiB of archive bytes is appended by Assemble instead).
DEMO_SHARD_BYTES = 6 * 1024 * 1024
FILLER_BYTES = 2 * 1024 * 1024


def shard_filler(objects: dict[str, bytes], total: int, seed: int = 11) -> dict[str, bytes]:
    """Incompressible clips that bring the bucket to `total` bytes (deterministic): the
    parallel demo's shards then hold several MiB each."""
    rng, have = random.Random(seed), sum(map(len, objects.values()))
    filler: dict[str, bytes] = {}
    while have < total:
        body = rng.randbytes(FILLER_BYTES)
        filler[f"videos/filler-{len(filler):03d}.bin"] = body
        have += len(body)
    return filler


def run_demo(
    count: int = 300,
    step_bytes: str = "1MiB",
    loops_per_execution: int = 5,
    on_event: Callable[[str], None] = lambda message: None,
    workers: int = 1,
) -> DemoSummary:
    started = time.monotonic()
    objects = sample_objects(count)
    if workers > 1:
        objects |= shard_filler(objects, 2 * workers * DEMO_SHARD_BYTES)
    source_bytes = sum(map(len, objects.values()))
    with embedded_moto_server() as url:
        on_event(f"moto server on {url} (S3, DynamoDB, IAM, Lambda, Step Functions)")
        s3 = boto3.client("s3", endpoint_url=url)
        _seed(s3, objects)
        on_event(f"seeded s3://{SOURCE_BUCKET}: {len(objects) + 1} objects, {source_bytes:,} bytes")
        _create_table(boto3.client("dynamodb", endpoint_url=url))
        quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
        with LocalWorkflow(url, TABLE, name="bucketzip-demo", environment=quiet) as workflow:
            on_event("running statemachine/archive.asl.json (Lambda tasks run in this process)")
            execution_input: dict = {
                "source_bucket": SOURCE_BUCKET,
                "dest_bucket": DEST_BUCKET,
                "dest_key": KEY_TEMPLATE,
                "part_size": "5MiB",
                "chunk_size": "256KiB",
                "step_bytes": step_bytes,
                "loops_per_execution": loops_per_execution,
            }
            if workers > 1:
                # two shards per worker: the Map queues children beyond MaxConcurrency
                execution_input.update(workers=workers, shard_bytes=DEMO_SHARD_BYTES)
                on_event(f"parallel path: {workers} workers, shards of ~{execution_input['shard_bytes']:,} bytes")
            outcome = workflow.run(execution_input, name="demo-run", timeout=600)
            segment_calls = [i.event for i in workflow.invocations("segment")]
            steps = len(workflow.invocations("step")) + sum(1 for e in segment_calls if e.get("action") == "step")
            segments = len({e["index"] for e in segment_calls if e.get("action") == "start"})
        if not outcome.succeeded:
            raise RuntimeError(f"demo execution {outcome.status}: {outcome.error}: {outcome.cause}")
        archive = outcome.output or {}
        on_event(f"execution SUCCEEDED; verifying s3://{archive['bucket']}/{archive['key']}")
        problems = verify(s3, archive, objects)
    return DemoSummary(
        objects=len(objects) + 1,
        source_bytes=source_bytes,
        archive=archive,
        executions=len(outcome.executions),
        steps=steps,
        seconds=time.monotonic() - started,
        verified=not problems,
        problems=problems,
        workers=workers,
        segments=segments,
    )


def verify(s3: S3Client, archive: dict, objects: dict[str, bytes]) -> list[str]:
    """Read every object back from the archive through the manifest's key -> name map."""
    manifest = s3.get_object(Bucket=archive["bucket"], Key=archive["manifest_key"])["Body"].read()
    names = {}
    for line in manifest.decode("utf-8").splitlines():
        record = json.loads(line)
        if record.get("type") == "entry":
            names[record["key"]] = record["name"]
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "archive.zip"
        s3.download_file(archive["bucket"], archive["key"], str(path))
        with zipfile.ZipFile(path) as zf:
            if (bad := zf.testzip()) is not None:
                problems.append(f"CRC error in {bad}")
            for key, body in objects.items():
                name = names.get(key)
                if name is None:
                    problems.append(f"{key}: not in the manifest")
                elif zf.read(name) != body:
                    problems.append(f"{key}: content differs")
            if not zf.getinfo(names.get(FOLDER_MARKER, FOLDER_MARKER)).is_dir():
                problems.append(f"{FOLDER_MARKER}: not a directory entry")
    return problems


def _seed(s3: S3Client, objects: dict[str, bytes]) -> None:
    for bucket in (SOURCE_BUCKET, DEST_BUCKET):
        s3.create_bucket(Bucket=bucket)
    for key, body in objects.items():
        s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=body)
    s3.put_object(Bucket=SOURCE_BUCKET, Key=FOLDER_MARKER, Body=b"")


def _create_table(dynamodb: DynamoDBClient) -> None:
    dynamodb.create_table(**create_table_params(TABLE))
    dynamodb.update_time_to_live(**ttl_params(TABLE))
