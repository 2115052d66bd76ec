"""The one driver loop: start -> steps -> finish, its hooks, and resuming by run id."""

from __future__ import annotations

import os

import pytest

from bucketzip import engine
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.driver import run_to_completion
from bucketzip.store_local import LocalStateStore
from support.archiving import contents_by_key
from support.seed import seed_bucket

KIB = 1024


def _request(s3, bucket_factory, objects, **fields) -> ArchiveRequest:
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, objects)
    return ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key="a.zip", part_size="5MiB", **fields)


def test_hooks_see_every_step_and_each_call_gets_a_fresh_deadline(s3, bucket_factory, tmp_path):
    objects = {f"o{i}": os.urandom(40 * KIB) for i in range(6)}
    request = _request(s3, bucket_factory, objects, step_bytes=50 * KIB)
    started, stepped, deadlines, chunks = [], [], [], []

    def deadline() -> Deadline:
        deadlines.append(Deadline(None))
        return deadlines[-1]

    completed = run_to_completion(
        s3,
        LocalStateStore(tmp_path),
        request,
        step_deadline=deadline,
        observer=lambda nbytes, nentries: chunks.append(nbytes),
        on_started=started.append,
        on_step=stepped.append,
    )
    result = completed.result
    assert [p.run_id for p in started] == [result.run_id]
    assert len(stepped) == completed.archiving_steps > 1
    assert stepped[-1].done and not any(p.done for p in stepped[:-1])
    assert len(deadlines) == completed.archiving_steps + 1  # one per step, one per finish call
    assert sum(chunks) == sum(map(len, objects.values()))
    assert contents_by_key(s3, request.dest_bucket, "a.zip") == objects


def test_resume_by_run_id_finishes_a_started_run(s3, bucket_factory, tmp_path):
    objects = {f"o{i}": os.urandom(30 * KIB) for i in range(4)}
    request = _request(s3, bucket_factory, objects, step_bytes=40 * KIB)
    store = LocalStateStore(tmp_path)
    run_id = engine.start_run(s3, store, request).run_id
    engine.run_step(s3, store, run_id, Deadline(None))  # an earlier process got this far
    completed = run_to_completion(s3, store, run_id=run_id)
    assert completed.result.run_id == run_id
    assert contents_by_key(s3, request.dest_bucket, "a.zip") == objects


def test_failures_are_left_to_the_caller(s3, bucket_factory, tmp_path):
    request = _request(s3, bucket_factory, {"a": b"x" * 100, "b": b"y" * 100}, step_bytes=1)
    store = LocalStateStore(tmp_path)
    started = []

    def boom(progress):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_to_completion(s3, store, request, on_started=started.append, on_step=boom)
    run_id = started[0].run_id
    assert store.load(run_id).steps == 1  # the run is kept as it was: the caller decides
    assert run_to_completion(s3, store, run_id=run_id).result.entries == 2


def test_max_steps_guards_a_runaway_loop(s3, bucket_factory, tmp_path):
    request = _request(s3, bucket_factory, {f"o{i}": b"z" * 100 for i in range(5)}, step_bytes=1)
    with pytest.raises(RuntimeError, match="more than 2 archiving steps"):
        run_to_completion(s3, LocalStateStore(tmp_path), request, max_steps=2)


def test_needs_a_request_or_a_run_id(tmp_path):
    with pytest.raises(ValueError):
        run_to_completion(None, LocalStateStore(tmp_path))
