"""Parallel segments (issue 10) over the moto server: N workers give an archive that
every reader opens and that extracts to the one-worker archive's files; the same plan
gives the same bytes; segments and assembly resume wherever they are cut; tails under
5 MiB; an empty plan; abort leaves nothing."""

from __future__ import annotations

import io
import random
import threading
import time
import zipfile

import pytest

from bucketzip import engine, parallel
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.driver import run_to_completion
from bucketzip.plan import load_plan, plan_step
from bucketzip.state import PLANNING
from bucketzip.store_dynamodb import DynamoStateStore
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, contents_by_key, fetch, manifest
from support.copy_fidelity import s3_copy_fidelity
from support.crashes import Crash
from support.readers import ALL_READERS, check_archive
from support.seed import HOSTILE_KEYS, all_keys, list_multipart_uploads, seed_bucket, state_items

KIB, MIB, GIB = 1024, 1024 * 1024, 1024**3

MIXED = {
    **HOSTILE_KEYS,
    "plain.txt": b"plain\n" * 100,
    "empty.bin": b"",
    "photo.jpg": random.Random(1).randbytes(50_000),
    "a/random.bin": random.Random(2).randbytes(300_000),
    "b/compressible.log": b"".join(b"line %d of a log\n" % i for i in range(200_000)),
    "c/incompressible.bin": random.Random(3).randbytes(6 * MIB + 123),
    **{f"d/o{i:03d}": b"small %d " % i * (i * 37) for i in range(20)},
}


@pytest.fixture
def store(tmp_path):
    return LocalStateStore(tmp_path / "state")


def _seed(s3, bucket_factory, objects):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, objects)
    return source, dest


def _expected(objects):
    return {k: (b"" if k.endswith("/") and not v else v) for k, v in objects.items()}


def test_workers_extract_to_the_one_worker_files_in_every_reader(s3, bucket_factory, store, tmp_path):
    source, dest = _seed(s3, bucket_factory, MIXED)
    common = dict(source_bucket=source, dest_bucket=dest, part_size="5MiB", chunk_size="1MiB")
    archive(s3, store, dest_key="one.zip", **common)
    for workers in (2, 3):
        key = f"w{workers}.zip"
        result, _ = archive(s3, store, dest_key=key, workers=workers, shard_bytes=400 * KIB, step_bytes=MIB, **common)
        assert contents_by_key(s3, dest, key) == contents_by_key(s3, dest, "one.zip") == _expected(MIXED)
        # More: the same entries in the same order at the same offsets, so the same bytes
        # (no two keys of different shards map to one name here, which a race would decide).
        assert fetch(s3, dest, key) == fetch(s3, dest, "one.zip")
        lines = [line for line in manifest(s3, dest, key) if line["type"] == "entry"]
        one = [line for line in manifest(s3, dest, "one.zip") if line["type"] == "entry"]
        assert [(line["key"], line["name"]) for line in lines] == [(line["key"], line["name"]) for line in one]
        assert result.entries == len(MIXED)
    path = tmp_path / "w3.zip"
    path.write_bytes(fetch(s3, dest, "w3.zip"))
    lines = [line for line in manifest(s3, dest, "w3.zip") if line["type"] == "entry"]
    expected = {line["name"]: MIXED[line["key"]] for line in lines if not line["name"].endswith("/")}
    check_archive(path, expected, readers=ALL_READERS, directories={"folder/"})
    assert list_multipart_uploads(s3, dest) == []
    assert [k for k in all_keys(s3, dest) if k.startswith(".bucketzip-staging/")] == []
    assert store.run_ids() == []


class Calls:
    """A client proxy recording S3 calls (name, kwargs) and, optionally, raising Crash at
    its `crash_at`-th call (any thread): the process dying there."""

    def __init__(self, client, crash_at: int = 0):
        self._client, self.crash_at, self.calls = client, crash_at, []
        self._lock = threading.Lock()

    def __getattr__(self, name):
        target = getattr(self._client, name)
        if not callable(target) or name in ("get_paginator", "meta", "exceptions"):
            return target
        return self.wrap(name, target)

    def wrap(self, name, target):
        def call(*args, **kwargs):
            with self._lock:
                self.calls.append((name, kwargs))
                crash = len(self.calls) == self.crash_at
            if crash:
                raise Crash(f"injected crash at call {self.crash_at} ({name})")
            return target(*args, **kwargs)

        return call

    def named(self, name):
        return [kwargs for called, kwargs in self.calls if called == name]


def _request(source, dest, key, **fields):
    return ArchiveRequest.create(
        source_bucket=source, dest_bucket=dest, dest_key=key, part_size="5MiB", chunk_size="1MiB", **fields
    )


@pytest.mark.parametrize("kind", ["local", "dynamodb"])
def test_tiny_segments_are_read_back_into_the_tail_and_nothing_is_copied(
    s3, dynamodb, state_table, bucket_factory, tmp_path, kind
):
    objects = {f"k{i:02d}": random.Random(i).randbytes(10_000 + i) for i in range(12)}
    source, dest = _seed(s3, bucket_factory, objects)
    store = LocalStateStore(tmp_path / "state") if kind == "local" else DynamoStateStore(state_table, client=dynamodb)
    calls = Calls(s3)
    done = run_to_completion(calls, store, _request(source, dest, "tiny.zip", workers=3, shard_bytes=1))
    assert contents_by_key(s3, dest, "tiny.zip") == objects
    assert calls.named("upload_part_copy") == []
    segments = {kw["Key"] for kw in calls.named("create_multipart_upload") if "segment-" in kw["Key"]}
    assert len(segments) == 12  # one segment per object
    assert done.result.parts == 1  # every segment joined the tail; the directory ends it
    if kind == "local":
        assert store.run_ids() == []
    else:  # the finished run's result only: no segment's state, fragments or name claims
        assert state_items(dynamodb, state_table) == ["result"]


def test_a_pending_tail_and_the_next_head_make_one_part_and_the_rest_is_copied(s3, bucket_factory, store):
    objects = {"a": random.Random(1).randbytes(3 * MIB), "b": random.Random(2).randbytes(9 * MIB)}
    source, dest = _seed(s3, bucket_factory, objects)
    calls = Calls(s3)
    request = _request(source, dest, "seam.zip", workers=2, shard_bytes=3 * MIB, compression="store")
    run_to_completion(calls, store, request)
    assert contents_by_key(s3, dest, "seam.zip") == objects
    final = [kw for kw in calls.named("upload_part") if kw["Key"] == "seam.zip"]
    copies = [kw for kw in calls.named("upload_part_copy") if kw["Key"] == "seam.zip"]
    # Segment 0 (3 MiB and headers) is the pending tail; with segment 1's head it is part 1
    # of exactly 5 MiB; the rest of segment 1 is part 2, copied; the directory is part 3.
    assert [kw["PartNumber"] for kw in final] == [1, 3]
    assert len(final[0]["Body"]) == 5 * MIB
    assert [kw["PartNumber"] for kw in copies] == [2]
    segment_reads = [kw["Range"] for kw in calls.named("get_object") if "/segment-" in kw["Key"]]
    spans = [[int(n) for n in text.removeprefix("bytes=").split("-")] for text in segment_reads]
    # Only segment 0 (whole) and segment 1's head came back through the worker: 5 MiB.
    assert sum(last - first + 1 for first, last in spans) == 5 * MIB


class SlowCopies(Calls):
    """UploadPartCopy taking a while (as S3's do, seconds per GiB); counts how many overlap."""

    def __init__(self, client):
        super().__init__(client)
        self.running = self.most = 0

    def wrap(self, name, target):
        call = super().wrap(name, target)
        if name != "upload_part_copy":
            return call

        def slow(*args, **kwargs):
            with self._lock:
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                time.sleep(0.5)
                return call(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1

        return slow


def test_the_copies_of_later_segments_run_while_earlier_pieces_are_placed(s3, bucket_factory, store):
    objects = {f"k{i}": random.Random(i).randbytes(6 * MIB) for i in range(4)}
    source, dest = _seed(s3, bucket_factory, objects)
    calls = SlowCopies(s3)
    request = _request(source, dest, "ahead.zip", workers=2, shard_bytes=6 * MIB, compression="store")
    with s3_copy_fidelity():  # S3's part CRCs: each is checked against the one derived from the segment's
        run_to_completion(calls, store, request)
    copies = [kw for kw in calls.named("upload_part_copy") if kw["Key"] == "ahead.zip"]
    assert len(copies) == 4 and calls.most >= 2
    assert contents_by_key(s3, dest, "ahead.zip") == objects


def test_an_empty_plan_gives_a_valid_empty_archive(s3, bucket_factory, store):
    source, dest = _seed(s3, bucket_factory, {"x.log": b"excluded"})
    done = run_to_completion(s3, store, _request(source, dest, "empty.zip", workers=4, exclude=("*.log",)))
    data = fetch(s3, dest, "empty.zip")
    assert done.result.entries == 0 and len(data) == 22  # the end record alone
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == []
    assert store.run_ids() == [] and list_multipart_uploads(s3, dest) == []


def test_abort_of_a_parallel_run_leaves_no_upload_state_or_staging(s3, bucket_factory, store):
    objects = {f"k{i}": random.Random(i).randbytes(300 * KIB) for i in range(6)}
    source, dest = _seed(s3, bucket_factory, objects)
    run_id = engine.start_run(s3, store, _request(source, dest, "gone.zip", workers=3, shard_bytes=600 * KIB)).run_id
    while engine.get_progress(store, run_id).phase == PLANNING:
        plan_step(s3, store, run_id, Deadline(None))
    segments = [parallel.start_segment(s3, store, run_id, i).run_id for i in range(3)]
    engine.run_step(s3, store, segments[0], Deadline(None))  # one complete, one begun, one not
    parallel.finish_segment(s3, store, segments[0], Deadline(None))
    engine.run_step(s3, store, segments[1], Deadline(0.0))
    watched = parallel.segment_progress(store, run_id)  # what `watch` shows per segment
    assert [(p.run_id, p.phase, p.done) for p in watched] == [
        (segments[0], "complete", True),
        (segments[1], "archiving", False),
        (segments[2], "archiving", False),
    ]
    assert len(list_multipart_uploads(s3, dest)) == 3  # the archive's and two segments'
    engine.abort_run(s3, store, run_id)
    assert list_multipart_uploads(s3, dest) == []
    assert all_keys(s3, dest) == []
    assert store.run_ids() == []


def _run_segment(s3, store, run_id, index):
    progress = parallel.start_segment(s3, store, run_id, index)
    while not progress.done:
        progress = engine.run_step(s3, store, progress.run_id, Deadline(None))
    while progress.phase != "complete":
        progress = parallel.finish_segment(s3, store, progress.run_id, Deadline(None))
    return progress.run_id


def test_a_shard_whose_objects_were_all_deleted_after_planning_is_an_empty_segment(s3, bucket_factory, store):
    objects = {f"k{i}": random.Random(i).randbytes(200 * KIB) for i in range(6)}
    source, dest = _seed(s3, bucket_factory, objects)
    run_id = engine.start_run(s3, store, _request(source, dest, "v.zip", workers=2, shard_bytes=400 * KIB)).run_id
    while engine.get_progress(store, run_id).phase == PLANNING:
        plan_step(s3, store, run_id, Deadline(None))
    first = load_plan(s3, store.load(run_id))[0]
    gone = [key for key in objects if key <= first.last_key]
    for key in gone:
        s3.delete_object(Bucket=source, Key=key)
    segment = _run_segment(s3, store, run_id, 0)
    assert store.load(segment).offset == 0 and store.load(segment).upload_id  # its upload aborted, no object
    done = run_to_completion(s3, store, run_id=run_id)
    assert len(gone) >= 2 and done.result.entries == len(objects) - len(gone)
    assert contents_by_key(s3, dest, "v.zip") == {k: v for k, v in objects.items() if k not in gone}
    assert store.run_ids() == [] and list_multipart_uploads(s3, dest) == []
