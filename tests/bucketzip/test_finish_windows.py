"""Finish's late windows (issue 8, item 8): the result is recorded first, the manifest is
its own resumable multipart upload, the state goes last; a Finish that dies at any of
these points is retried into the same result and the whole manifest."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import moto.s3.models
import pytest

from bucketzip import engine, finish
from bucketzip.config import STAGING_PREFIX, ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.errors import RunNotFound, StaleState
from bucketzip.results import ArchiveResult
from bucketzip.state import RunState
from bucketzip.store_dynamodb import DynamoStateStore
from support.archiving import fetch
from support.crashes import Crash
from support.seed import list_multipart_uploads, seed_bucket, state_items

OBJECTS = {f"k/{i:03d}": b"%d" % i * (40 + i) for i in range(40)}


def _archived(s3, dynamodb, table, bucket_factory, **fields):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, OBJECTS)
    store = DynamoStateStore(table, client=dynamodb)
    request = ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key="a.zip", step_bytes=600, **fields)
    run_id = engine.start_run(s3, store, request).run_id
    while not engine.run_step(s3, store, run_id, Deadline(None)).done:
        pass
    return store, run_id, dest


def _manifest(s3, dest) -> list[dict]:
    return [json.loads(line) for line in fetch(s3, dest, "a.zip.manifest.jsonl").splitlines()]


def _check_manifest(s3, dest) -> None:
    lines = _manifest(s3, dest)
    assert lines[0]["type"] == "archive" and lines[0]["entries"] == len(OBJECTS)
    assert [line["key"] for line in lines[1:]] == sorted(OBJECTS)


class DeleteThenCrash:
    """A store whose delete_run dies: after deleting everything (`all`) or only the
    fragment items (half-way)."""

    def __init__(self, store, all_items: bool):
        self._store, self._all = store, all_items

    def delete_run(self, run_id):
        if self._all:
            self._store.delete_run(run_id)
        else:
            client, table = self._store.client, self._store.table
            items = client.query(
                TableName=table,
                KeyConditionExpression="run_id = :r",
                ExpressionAttributeValues={":r": {"S": run_id}},
                ConsistentRead=True,
            )["Items"]
            for item in items:
                if item["sk"]["S"].startswith(("frag#", "commit#")):
                    client.delete_item(TableName=table, Key={"run_id": item["run_id"], "sk": item["sk"]})
        raise Crash("killed while deleting the run's state")

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.mark.parametrize("all_items", [True, False], ids=["after-delete", "half-way"])
def test_finish_dying_while_deleting_the_state_converges(s3, dynamodb, state_table, bucket_factory, all_items):
    """Before: the retry rewrote the manifest from the surviving fragments (fewer lines
    than the header says), or raised RunNotFound although the archive was complete."""
    store, run_id, dest = _archived(s3, dynamodb, state_table, bucket_factory)
    with pytest.raises(Crash):
        engine.finish_run(s3, DeleteThenCrash(store, all_items), run_id, Deadline(None))
    result = engine.finish_run(s3, store, run_id, Deadline(None))
    assert isinstance(result, ArchiveResult) and result.entries == len(OBJECTS)
    assert result.etag == s3.head_object(Bucket=dest, Key="a.zip")["ETag"]
    _check_manifest(s3, dest)
    assert state_items(dynamodb, state_table) == ["result"]
    assert list_multipart_uploads(s3, dest) == []


def test_manifest_spans_finish_calls_and_resumes(s3, dynamodb, state_table, bucket_factory, monkeypatch):
    """Tens of millions of lines do not fit one invocation: the manifest goes out part by
    part, its progress committed, each call making progress even with no time left; a
    call that dies mid-manifest is taken up where the last part was committed."""
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1)  # tiny parts in the emulator
    monkeypatch.setattr(finish, "MANIFEST_PART_BYTES", 1500)
    store, run_id, dest = _archived(s3, dynamodb, state_table, bucket_factory)

    class DiesOnThirdManifestPart:
        def __init__(self):
            self.parts = 0

        def upload_part(self, **kwargs):
            if kwargs["Key"].endswith(".manifest.jsonl"):
                self.parts += 1
                if self.parts == 3:
                    raise Crash("killed mid-manifest")
            return s3.upload_part(**kwargs)

        def __getattr__(self, name):
            return getattr(s3, name)

    outcome = None
    with pytest.raises(Crash):
        while not isinstance(outcome, ArchiveResult):
            outcome = engine.finish_run(DiesOnThirdManifestPart(), store, run_id, Deadline(None))
    assert store.load(run_id).manifest.parts  # two parts committed before the crash
    assert store.load_result(run_id)["entries"] == len(OBJECTS)  # recorded before the manifest
    calls = 0
    while not isinstance(outcome := engine.finish_run(s3, store, run_id, Deadline(0)), ArchiveResult):
        calls += 1
        assert calls < 100
    assert calls >= 2  # one part per call at least, several calls
    _check_manifest(s3, dest)
    assert state_items(dynamodb, state_table) == ["result"]
    assert list_multipart_uploads(s3, dest) == []


def test_aborting_while_the_manifest_is_written_leaves_no_upload(
    s3, dynamodb, state_table, bucket_factory, monkeypatch
):
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1)
    monkeypatch.setattr(finish, "MANIFEST_PART_BYTES", 1500)
    store, run_id, dest = _archived(s3, dynamodb, state_table, bucket_factory)
    while store.load(run_id).manifest.upload_id is None:
        engine.finish_run(s3, store, run_id, Deadline(0))
    assert len(list_multipart_uploads(s3, dest)) == 1
    engine.abort_run(s3, store, run_id)
    assert list_multipart_uploads(s3, dest) == []


def test_a_zombie_step_of_an_aborted_run_leaves_nothing(s3, dynamodb, state_table, bucket_factory):
    """The run is aborted while a step still runs; the step stages its tail after the
    abort swept the staging prefix, then fails to commit (issue 8, item 9): it removes
    what it wrote itself."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {f"r{i}": os.urandom(200 * 1024) for i in range(4)})
    store = DynamoStateStore(state_table, client=dynamodb)
    request = ArchiveRequest.create(
        source_bucket=source, dest_bucket=dest, dest_key="z.zip", compression="store", step_bytes=300 * 1024
    )
    run_id = engine.start_run(s3, store, request).run_id

    class AbortedMeanwhile:
        def put_object(self, **kwargs):
            if kwargs["Key"].startswith(STAGING_PREFIX):
                engine.abort_run(s3, store, run_id)  # the abort, from another invocation
            return s3.put_object(**kwargs)

        def __getattr__(self, name):
            return getattr(s3, name)

    with pytest.raises((StaleState, RunNotFound)):
        engine.run_step(AbortedMeanwhile(), store, run_id, Deadline(None))
    assert s3.list_objects_v2(Bucket=dest, Prefix=STAGING_PREFIX).get("KeyCount") == 0
    assert state_items(dynamodb, state_table) == []
    assert list_multipart_uploads(s3, dest) == []


class RealUploadTimes:
    """moto reports one fixed date as every upload's Initiated; S3 reports the real one."""

    def list_multipart_uploads(self, **kwargs):
        page = self._s3.list_multipart_uploads(**kwargs)
        for upload in page.get("Uploads", []):
            upload["Initiated"] = datetime.now(UTC)
        return page

    def __init__(self, s3):
        self._s3 = s3

    def __getattr__(self, name):
        return getattr(self._s3, name)


@pytest.mark.parametrize("then", ["abort", "start-retry"])
def test_an_upload_created_by_a_start_that_died_is_found(s3, dynamodb, state_table, bucket_factory, then):
    """Killed between CreateMultipartUpload and recording its id (issue 8, item 9): the run
    was recorded first, so its abort, or Start's retry, finds the upload by key and time."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a": b"a" * 1000})
    store = DynamoStateStore(state_table, client=dynamodb)
    request = ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key="o.zip")
    state = RunState(run_id="R-dead", request=request, upload_id="", started_at=time.time(), marked=True)
    store.create(state)  # the intent, then the upload; the process dies before recording it
    s3.create_multipart_upload(Bucket=dest, Key="o.zip", Metadata={finish.RUN_METADATA: "R-dead"})
    client = RealUploadTimes(s3)
    if then == "abort":
        engine.abort_run(client, store, "R-dead")
    else:
        progress = engine.start_run(client, store, request, run_id="R-dead")
        assert len(list_multipart_uploads(s3, dest)) == 1  # the orphan gone, the new one recorded
        assert store.load("R-dead").upload_id == list_multipart_uploads(s3, dest)[0]["UploadId"]
        while not progress.done:
            progress = engine.run_step(client, store, "R-dead", Deadline(None))
        assert isinstance(engine.finish_run(client, store, "R-dead", Deadline(None)), ArchiveResult)
    assert list_multipart_uploads(s3, dest) == []
