"""Parallel runs (execution input "workers" > 1) of the real state machine over moto with the
real engine: Plan, the Segments Distributed Map (children run the segment handler), Assemble,
Finish. Archives open in the readers and extract to the same files as a one-worker run."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from workflow_helpers import assert_nothing_left, assert_nothing_left_after_failure, fetch_archive, random_objects

from bucketzip.cli import workflow as cli_workflow
from bucketzip.deadline import Deadline
from bucketzip.errors import AccessDenied, RetryableError
from support.readers import ALL_READERS, PYTHON, READERS_FAILING_STORED_DESCRIPTORS, check_archive, read_with
from support.seed import list_multipart_uploads, seed_bucket, state_items

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def objects() -> dict[str, bytes]:
    """Small, but enough for several shards of a few KiB each (text and incompressible)."""
    text = {f"docs/{i:02d}.txt": (f"line {i} of the parallel test\n" * (40 + 13 * i)).encode() for i in range(14)}
    return {**random_objects(10, 3_000), **text, "names/été.txt": b"unicode\n", "tiny/empty.txt": b""}


def run_input(source: str, dest: str, key: str, **extra) -> dict:
    return {
        "source_bucket": source,
        "dest_bucket": dest,
        "dest_key": key,
        "part_size": "5MiB",
        "chunk_size": "256KiB",
        **extra,
    }


def one_piece_per_call(event, context, call):
    """A deadline already past: each Assemble call commits one batch of the segments' records
    or one relocated segment's bytes (these shards are all under 5 MiB), so the loop really
    loops (and continues as new executions) whatever the machine's speed. Assemble runs alone (after
    the Map), so swapping the handlers' deadline for its call touches no other invocation."""
    with mock.patch("handlers.common.deadline", lambda context: Deadline(0.0)):
        return call(event, context)


def segment_steps(workflow) -> list[int]:
    return [i.event["index"] for i in workflow.invocations("segment") if i.event.get("action") == "step"]


def test_three_workers_make_the_archive_one_worker_makes(workflow, buckets, s3, dynamodb, tmp_path, capsys):
    """Also `bucketzip watch` on that run (one parallel run checked for both): it shows each
    segment at work and complete, and the count of complete segments."""
    source, dest = buckets
    data = objects()
    seed_bucket(s3, source, data)
    s3.put_object(Bucket=source, Key="empty-folder/", Body=b"")

    def slowly(event, context, call):  # so that the watch's poll sees the segments at work
        time.sleep(0.2)
        return call(event, context)

    workflow.intercept("assemble", one_piece_per_call)
    workflow.intercept("segment", slowly)
    # About 7 Assemble calls (records, then each tiny segment appended): 3 loops per execution.
    arn = workflow.start(run_input(source, dest, "three.zip", workers=3, shard_bytes=16_000, loops_per_execution=3))
    parser = argparse.ArgumentParser(prog="bucketzip")
    cli_workflow.register(parser.add_subparsers(required=True))
    args = parser.parse_args(["watch", arn, "--interval", "0.05", "--table", workflow.table])
    assert args.func(args, None) == 0
    err = capsys.readouterr().err
    run_id = arn.rsplit(":", 1)[-1]
    assert re.search(rf"^  segment {re.escape(run_id)}\.s00000: archiving step \d+: ", err, re.M), err
    assert re.search(rf"^  segment {re.escape(run_id)}\.s00001: complete ", err, re.M), err
    assert re.search(r"segments [0-9]+/[2-9] complete$", err, re.M), err
    parallel = workflow.wait(arn)
    assert parallel.succeeded, (parallel.error, parallel.cause)
    started = {i.event["index"] for i in workflow.invocations("segment") if i.event.get("action") == "start"}
    assert len(started) >= 4  # more shards than workers: the Map queued some
    assert workflow.invocations("plan") and not workflow.invocations("step")
    assert len(workflow.invocations("assemble")) > 3
    # the Assemble loop continued as new executions, each re-entering the run at "assembling"
    assert len(parallel.executions) >= 2
    resumed = [i.result["progress"]["phase"] for i in workflow.invocations("start") if "resume" in i.event["input"]]
    assert resumed and set(resumed) == {"assembling"}
    assert parallel.output["entries"] == len(data) + 1
    assert_nothing_left(s3, dynamodb, workflow.table, dest)  # segments' staging and states too

    single = workflow.run(run_input(source, dest, "one.zip"))
    assert single.succeeded, (single.error, single.cause)
    three, one = tmp_path / "three.zip", tmp_path / "one.zip"
    fetch_archive(s3, dest, "three.zip", three)
    fetch_archive(s3, dest, "one.zip", one)
    readers = [r for r in ALL_READERS if r not in READERS_FAILING_STORED_DESCRIPTORS]
    check_archive(three, data, directories={"empty-folder/"}, readers=readers)
    for reader in readers:
        assert read_with(reader, three) == read_with(reader, one), reader


def test_a_segment_failing_transiently_suspends_the_run_and_resume_finishes_it(
    workflow, buckets, s3, dynamodb, tmp_path
):
    source, dest = buckets
    data = objects()
    seed_bucket(s3, source, data)
    outage = {"on": True}

    def slow_down(event, context, call):
        if outage["on"] and event.get("action") == "step" and event["index"] == 1:
            raise RetryableError("S3 SlowDown: please reduce your request rate")
        return call(event, context)

    workflow.intercept("segment", slow_down)
    failed = workflow.run(run_input(source, dest, "a.zip", workers=2, shard_bytes=8_000), name="flaky")
    assert failed.status == "FAILED" and failed.error == "RetryableError", failed.cause
    assert '{\\"resume\\": \\"flaky\\"}' in failed.cause and "segment(s) 1 (RetryableError)" in failed.cause
    assert not workflow.invocations("assemble")
    assert state_items(dynamodb, workflow.table) and list_multipart_uploads(s3, dest)  # kept for the resume

    outage["on"] = False
    resumed = workflow.run({"resume": "flaky"}, name="flaky-resumed")
    assert resumed.succeeded, (resumed.error, resumed.cause)
    assert resumed.output["key"] == "a.zip" and resumed.output["entries"] == len(data)
    path = tmp_path / "a.zip"
    fetch_archive(s3, dest, "a.zip", path)
    check_archive(path, data, readers=[PYTHON])
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


def test_a_segment_failing_permanently_aborts_the_run_and_leaves_nothing(workflow, buckets, s3, dynamodb):
    source, dest = buckets
    seed_bucket(s3, source, objects())

    def denied(event, context, call):
        if event.get("action") == "step" and event["index"] == 0:
            raise AccessDenied(f"s3://{source}/data/0000.bin: access denied")
        return call(event, context)

    workflow.intercept("segment", denied)
    outcome = workflow.run(run_input(source, dest, "a.zip", workers=2, shard_bytes=8_000))
    assert outcome.status == "FAILED" and outcome.error == "SegmentFailed", outcome.cause
    assert "segment(s) 0 (AccessDenied)" in outcome.cause
    assert segment_steps(workflow).count(0) == 1  # a permanent error is not retried
    assert_nothing_left_after_failure(s3, dynamodb, workflow.table, dest)  # every segment's upload too


def test_an_empty_selection_with_workers(workflow, buckets, s3, dynamodb, tmp_path):
    source, dest = buckets
    seed_bucket(s3, source, {"a.txt": b"a"})
    outcome = workflow.run(run_input(source, dest, "none.zip", workers=4, include=["*.nothing"]))
    assert outcome.succeeded, (outcome.error, outcome.cause)
    assert outcome.output["entries"] == 0 and not workflow.invocations("segment")[:-1]  # only CheckSegments
    path = tmp_path / "none.zip"
    fetch_archive(s3, dest, "none.zip", path)
    check_archive(path, {}, readers=[PYTHON])
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


def test_demo_with_workers(tmp_path):
    """`bucketzip demo --workers 3`: the Distributed Map on the emulator, every object verified."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "POWERTOOLS_", "BUCKETZIP_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FUNCTIONS), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "bucketzip.cli.workflow", "demo", "--objects", "60", "--workers", "3"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # The 60 sample objects (61 keys) and the incompressible clips that make two shards of
    # 6 MiB per worker: each segment uploads parts of its own into the archive's upload.
    seeded = re.search(r"seeded s3://\S+: (\d+) objects", out)
    assert seeded and int(seeded.group(1)) > 61 and f"Archived {seeded.group(1)} objects" in out, out
    segments = re.search(r"parallel   (\d+) segments by a Distributed Map, 3 at a time", out)
    assert segments and int(segments.group(1)) == 6, out
    parts = re.search(r"archive .*, (\d+) parts;", out)
    assert parts and int(parts.group(1)) >= 6 + 1, out  # a part of each segment's own, then the directory's
    assert "verified   every object read back byte for byte" in out


def test_start_command_passes_workers_and_shard_bytes():
    parser = argparse.ArgumentParser()
    cli_workflow.register(parser.add_subparsers())
    argv = ["start", "--state-machine", "arn", "--source", "s3://a", "--dest", "s3://b/k.zip"]
    args = parser.parse_args([*argv, "--workers", "8", "--shard-bytes", "1GiB"])
    assert cli_workflow.execution_input(args) == {
        "source_bucket": "a",
        "dest_bucket": "b",
        "dest_key": "k.zip",
        "workers": 8,
        "shard_bytes": "1GiB",
    }


@pytest.mark.parametrize("verb, phase", [("plan", "planning"), ("assemble", "assembling")])
def test_a_suspended_parallel_run_resumes_at_its_phase(verb, phase, workflow, buckets, s3, dynamodb, tmp_path):
    """Plan or Assemble failing transiently suspends the run; {"resume": RUN_ID} re-enters it
    in that phase (not from the start) and finishes it."""
    source, dest = buckets
    data = objects()
    seed_bucket(s3, source, data)
    outage = {"on": True}
    calls: list[dict] = []

    def failing(event, context, call):
        calls.append(event)
        if verb == "assemble" and len(calls) == 1:
            return one_piece_per_call(event, context, call)  # assembly has begun: one commit made
        if outage["on"]:
            raise RetryableError("DynamoDB throttled")
        return call(event, context)

    workflow.intercept(verb, failing)
    name = f"suspended-in-{phase}"
    failed = workflow.run(run_input(source, dest, "a.zip", workers=2, shard_bytes=16_000), name=name)
    assert failed.status == "FAILED" and failed.error == "RetryableError", failed.cause
    outage["on"] = False
    resumed = workflow.run({"resume": name}, name=f"{name}-resumed")
    assert resumed.succeeded, (resumed.error, resumed.cause)
    (start,) = [i for i in workflow.invocations("start") if i.event["input"].get("resume") == name]
    assert start.result["progress"]["phase"] == phase
    starts = [i.event["index"] for i in workflow.invocations("segment") if i.event.get("action") == "start"]
    assert len(starts) == len(set(starts))  # no segment built twice
    path = tmp_path / "a.zip"
    fetch_archive(s3, dest, "a.zip", path)
    check_archive(path, data, readers=[PYTHON])
    assert_nothing_left(s3, dynamodb, workflow.table, dest)
