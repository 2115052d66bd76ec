"""The crash matrix (issue 8): a small whole run (start, steps, Finish with its late
windows: complete, record result, manifest, deletes) is counted call by call on S3 and
DynamoDB; then, for call i, the run dies right there with a real botocore exception, the
process is gone (nothing in memory survives), and a fresh one resumes the run. Every
outcome must be the uninterrupted run's archive, byte for byte, with its manifest, and
nothing left behind: no multipart upload, no staging object, no state but the result."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
from botocore.exceptions import EndpointConnectionError, ResponseStreamingError

from bucketzip import engine
from bucketzip.config import STAGING_PREFIX, ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.driver import run_to_completion
from bucketzip.errors import RunNotFound
from bucketzip.store_dynamodb import DynamoStateStore
from support.archiving import fetch
from support.seed import seed_bucket

KIB = 1024
# The small run makes about 60 S3/DynamoDB calls, and every one of them is crashed in
# turn (about 50 s); a run grown past this bound fails the test rather than sampling.
MAX_POINTS = 80


class Dies:
    """A boto3 client proxy counting calls (all threads, shared counter) and raising a
    real botocore exception at call number `at` (0: never)."""

    def __init__(self, client, counter: dict, at: int, log: list):
        self._client, self._counter, self._at, self._log = client, counter, at, log

    def __getattr__(self, name):
        target = getattr(self._client, name)
        if not callable(target) or name in ("get_paginator", "meta", "exceptions", "can_paginate"):
            return target

        def call(*args, **kwargs):
            with self._counter["lock"]:
                self._counter["n"] += 1
                n = self._counter["n"]
                self._log.append(name)
            if n == self._at:
                if n % 2:
                    raise EndpointConnectionError(endpoint_url=f"https://injected/{name}")
                raise ResponseStreamingError(error=ConnectionResetError(104, f"injected reset in {name}"))
            return target(*args, **kwargs)

        return call


def _objects() -> dict[str, bytes]:
    rnd = random.Random(8)
    objects = {f"t/{i}.txt": (b"text %d " % i) * rnd.randint(2000, 9000) for i in range(4)}
    objects.update({f"r/{i}.bin": rnd.randbytes(rnd.randint(50 * KIB, 150 * KIB)) for i in range(3)})
    objects["empty"] = b""
    return objects


def _nothing_left(s3, dynamodb, table: str, dest: str, key: str, run_id: str | None) -> None:
    uploads = s3.list_multipart_uploads(Bucket=dest, Prefix=key).get("Uploads", [])
    assert uploads == [], f"uploads left: {uploads}"
    if run_id is not None:
        staged = s3.list_objects_v2(Bucket=dest, Prefix=f"{STAGING_PREFIX}{run_id}/").get("Contents", [])
        assert staged == [], f"staging left: {staged}"
        items = dynamodb.query(
            TableName=table,
            KeyConditionExpression="run_id = :r",
            ExpressionAttributeValues={":r": {"S": run_id}},
            ConsistentRead=True,
        )["Items"]
        assert [i["sk"]["S"] for i in items if i["sk"]["S"] != "result"] == []


def _entries(s3, dest: str, key: str) -> list[dict]:
    lines = [json.loads(line) for line in fetch(s3, dest, key + ".manifest.jsonl").splitlines()]
    return [{k: v for k, v in line.items() if k != "created"} for line in lines if line["type"] != "archive"]


@pytest.mark.timeout(240)
def test_a_crash_at_every_call_converges(s3, dynamodb, state_table, bucket_factory):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, _objects())
    fields = dict(source_bucket=source, dest_bucket=dest, chunk_size="64KiB", part_size="5MiB", step_bytes=150 * KIB)

    def run(key: str, at: int) -> tuple[str | None, list, BaseException | None]:
        counter: dict = {"n": 0, "lock": threading.Lock()}
        log: list = []
        dying_s3 = Dies(s3, counter, at, log)
        store = DynamoStateStore(state_table, client=Dies(dynamodb, counter, at, log))
        started: list[str] = []
        try:
            run_to_completion(
                dying_s3,
                store,
                ArchiveRequest.create(dest_key=key, **fields),
                on_started=lambda p: started.append(p.run_id),
            )
        except (EndpointConnectionError, ResponseStreamingError, Exception) as exc:  # noqa: BLE001
            return (started[0] if started else None), log, exc
        return (started[0] if started else None), log, None

    began = time.monotonic()
    _, calls, error = run("clean.zip", 0)
    assert error is None
    clean, clean_entries = fetch(s3, dest, "clean.zip"), _entries(s3, dest, "clean.zip")
    total = len(calls)
    assert total <= MAX_POINTS, f"the small run makes {total} calls: crash every one (raise MAX_POINTS)"
    points = list(range(1, total + 1))
    outcomes: dict[str, int] = {}
    for at in points:
        key = f"crash-{at}.zip"
        run_id, log, error = run(key, at)
        where = f"crash at call {at}/{total} ({log[at - 1] if len(log) >= at else '?'})"
        if error is None:  # absorbed where it struck (a GET read again in its step)
            outcomes["absorbed"] = outcomes.get("absorbed", 0) + 1
        else:
            store = DynamoStateStore(state_table, client=dynamodb)  # a fresh process
            if run_id is None:
                outcomes["start"] = outcomes.get("start", 0) + 1
                _nothing_left(s3, dynamodb, state_table, dest, key, None)
                continue
            try:
                run_to_completion(s3, store, run_id=run_id)
            except RunNotFound:  # died in Finish after its state went: the result answers
                assert engine.finish_run(s3, store, run_id, Deadline(None)).key == key, where
            outcomes["resumed"] = outcomes.get("resumed", 0) + 1
        assert fetch(s3, dest, key) == clean, where
        assert _entries(s3, dest, key) == clean_entries, where
        _nothing_left(s3, dynamodb, state_table, dest, key, run_id)
    print(f"crash matrix: {total} calls, {len(points)} crash points, {outcomes}, {time.monotonic() - began:.1f} s")
    assert outcomes.get("resumed", 0) >= len(points) // 2
