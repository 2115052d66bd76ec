"""Successful runs of the real state machine over moto with the real engine."""

from __future__ import annotations

import json
import re
import zipfile

import pytest
from workflow_helpers import assert_nothing_left, fetch_archive, random_objects, step_events, text_objects

from support.readers import ALL_READERS, PYTHON, READERS_FAILING_STORED_DESCRIPTORS, check_archive
from support.seed import seed_bucket

# Failure paths publish no metrics by design (Powertools warns; the handlers silence it in Lambda).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

MIB = 1024 * 1024


def test_many_loops_and_continue_as_new(workflow, buckets, s3, dynamodb, tmp_path):
    source, dest = buckets
    objects = {
        **random_objects(30, 300_000),
        **text_objects(6, 200_000),
        "big/blob.bin": random_objects(1, 3 * MIB, seed=9)["data/0000.bin"],
        "names/été à la plage.txt": b"unicode\n",
        "names/with space.txt": b"space\n",
        "tiny/zero.txt": b"",
    }
    seed_bucket(s3, source, objects)
    s3.put_object(Bucket=source, Key="empty-folder/", Body=b"")

    outcome = workflow.run(
        {
            "source_bucket": source,
            "dest_bucket": dest,
            "dest_key": "backups/{source_bucket}/{date:%Y-%m-%d}.zip",
            "part_size": "5MiB",
            "step_bytes": "1MiB",
            "loops_per_execution": 4,
        }
    )

    assert outcome.succeeded, (outcome.error, outcome.cause)
    assert len(outcome.executions) >= 3  # continued as new at least twice
    steps = [step_events(workflow, arn) for arn in outcome.executions]
    assert all(n <= 4 for n in steps) and sum(steps) >= 10
    archive = outcome.output
    assert re.fullmatch(rf"backups/{source}/\d{{4}}-\d{{2}}-\d{{2}}\.zip", archive["key"])
    assert archive["bucket"] == dest and archive["entries"] == len(objects) + 1
    assert archive["parts"] >= 2 and archive["skipped"] == 0 and archive["duration_seconds"] > 0
    head = s3.head_object(Bucket=dest, Key=archive["key"])
    assert head["ContentLength"] == archive["size"]
    manifest = s3.get_object(Bucket=dest, Key=archive["manifest_key"])["Body"].read().decode()
    assert len([line for line in manifest.splitlines() if json.loads(line)]) >= len(objects)

    path = tmp_path / "archive.zip"
    fetch_archive(s3, dest, archive["key"], path)
    readers = [r for r in ALL_READERS if r not in READERS_FAILING_STORED_DESCRIPTORS]
    check_archive(path, objects, directories={"empty-folder/"}, readers=readers)
    assert_nothing_left(s3, dynamodb, workflow.table, dest)
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=dest)["Contents"]} == {archive["key"], archive["manifest_key"]}


def test_empty_source(workflow, buckets, s3, dynamodb, tmp_path):
    source, dest = buckets
    outcome = workflow.run({"source_bucket": source, "dest_bucket": dest, "dest_key": "empty.zip"})

    assert outcome.succeeded, (outcome.error, outcome.cause)
    assert outcome.output["entries"] == 0 and outcome.output["parts"] == 1
    path = tmp_path / "empty.zip"
    fetch_archive(s3, dest, "empty.zip", path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == []
    check_archive(path, {}, readers=[PYTHON])  # `unzip -t` exits 1 on any empty zip
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


def test_objects_larger_than_a_step_resume_mid_object(workflow, buckets, s3, dynamodb, tmp_path):
    source, dest = buckets
    objects = {**text_objects(2, 3 * MIB, seed=5), **random_objects(1, 2 * MIB, seed=6)}
    seed_bucket(s3, source, objects)

    outcome = workflow.run(
        {
            "source_bucket": source,
            "dest_bucket": dest,
            "dest_key": "big.zip",
            "compression": "deflate",
            "chunk_size": "256KiB",
            "step_bytes": "512KiB",
        }
    )

    assert outcome.succeeded, (outcome.error, outcome.cause)
    steps = step_events(workflow, outcome.execution_arn)
    assert steps >= 6 > len(objects)  # every object spans several steps
    assert outcome.output["steps"] >= steps
    path = tmp_path / "big.zip"
    fetch_archive(s3, dest, "big.zip", path)
    check_archive(path, objects)
    assert_nothing_left(s3, dynamodb, workflow.table, dest)
