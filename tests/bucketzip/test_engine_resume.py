"""Resumability and crash safety: random step boundaries give the same archive as one
step; steps killed at random points converge on retry; a zombie step cannot commit."""

from __future__ import annotations

import copy
import os
import random
import tempfile
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bucketzip import engine
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.errors import StaleState
from bucketzip.results import ArchiveResult
from bucketzip.store_dynamodb import DynamoStateStore
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, contents_by_key, entry_differences, fetch
from support.crashes import Crash, Flaky
from support.seed import all_keys, list_multipart_uploads, seed_bucket, state_items

KIB = 1024


def _buckets(s3):
    source, dest = f"src-{uuid.uuid4().hex[:16]}", f"dst-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=dest)
    return source, dest


object_sets = st.dictionaries(
    keys=st.text(alphabet="ab/._-é ", min_size=1, max_size=12).filter(lambda k: not k.startswith("/")),
    values=st.tuples(st.integers(0, 300 * KIB), st.sampled_from(["zero", "text", "random"])),
    min_size=0,
    max_size=12,
)


def _body(size: int, kind: str, seed: int) -> bytes:
    if kind == "zero":
        return bytes(size)
    if kind == "text":
        return (b"text %d " % seed * (size // 6 + 1))[:size]
    return random.Random(seed).randbytes(size)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    spec=object_sets,
    chunk_kib=st.sampled_from([64, 128, 192]),
    step_bytes=st.integers(1, 400 * KIB),
    compression=st.sampled_from(["auto", "store", "deflate"]),
    page_size=st.integers(1, 5),
)
def test_random_step_boundaries_give_the_one_step_archive(s3, spec, chunk_kib, step_bytes, compression, page_size):
    objects = {key: _body(size, kind, i) for i, (key, (size, kind)) in enumerate(spec.items())}
    source, dest = _buckets(s3)
    seed_bucket(s3, source, objects)
    common = dict(
        source_bucket=source,
        dest_bucket=dest,
        chunk_size=chunk_kib * KIB,
        compression=compression,
        part_size="5MiB",
        page_size=page_size,
    )
    with tempfile.TemporaryDirectory() as state_dir:
        store = LocalStateStore(state_dir)
        archive(s3, store, dest_key="one.zip", **common)
        archive(s3, store, dest_key="split.zip", step_bytes=step_bytes, **common)
    split, one = fetch(s3, dest, "split.zip"), fetch(s3, dest, "one.zip")
    assert split == one, entry_differences(split, one)
    extracted = contents_by_key(s3, dest, "split.zip")
    assert extracted == {k: v for k, v in objects.items() if not (k.endswith("/") and not v)} | {
        k: b"" for k, v in objects.items() if k.endswith("/") and not v
    }


def _run_with_crashes(s3, dynamodb, table, request, rnd) -> tuple[ArchiveResult, int]:
    store = DynamoStateStore(table, client=dynamodb)
    run_id = engine.start_run(s3, store, request).run_id
    crashes, done = 0, False
    while True:
        # Half the attempts die at a random S3 or DynamoDB call; the others run clean.
        fail_s3, fail_db = (rnd.randint(1, 10), 0) if rnd.random() < 0.5 else (0, rnd.randint(1, 5))
        if rnd.random() < 0.5:
            fail_s3 = fail_db = 0
        flaky_s3, flaky_db = Flaky(s3, fail_s3), Flaky(dynamodb, fail_db)
        flaky_store = DynamoStateStore(table, client=flaky_db)
        try:
            if not done:
                done = engine.run_step(flaky_s3, flaky_store, run_id, Deadline(None)).done
                continue
            outcome = engine.finish_run(flaky_s3, flaky_store, run_id, Deadline(None))
            if isinstance(outcome, ArchiveResult):
                return outcome, crashes
        except Crash:
            crashes += 1
            assert crashes < 400


def test_steps_killed_at_random_points_converge(s3, dynamodb, state_table):
    rnd = random.Random(11)
    objects = {
        f"k{i:02d}": rnd.randbytes(rnd.randint(0, 200 * KIB)) if i % 2 else b"t%d" % i * 30_000 for i in range(25)
    }
    objects["big"] = os.urandom(11 * 1024 * KIB)
    source, dest = _buckets(s3)
    seed_bucket(s3, source, objects)
    common = dict(source_bucket=source, dest_bucket=dest, chunk_size="256KiB", part_size="5MiB", page_size=4)
    with tempfile.TemporaryDirectory() as state_dir:
        archive(s3, LocalStateStore(state_dir), dest_key="clean.zip", **common)
    request = ArchiveRequest.create(dest_key="crashy.zip", step_bytes=100 * KIB, **common)
    result, crashes = _run_with_crashes(s3, dynamodb, state_table, request, rnd)
    assert crashes >= 8
    assert contents_by_key(s3, dest, "crashy.zip") == objects
    crashy, clean = fetch(s3, dest, "crashy.zip"), fetch(s3, dest, "clean.zip")
    assert crashy == clean, entry_differences(crashy, clean)
    assert list_multipart_uploads(s3, dest) == []
    assert not [k for k in all_keys(s3, dest) if k.startswith(".bucketzip-staging/")]
    assert state_items(dynamodb, state_table) == ["result"]  # only the finished run's result


class StaleLoad:
    """A store whose next load returns an old state: a step that started earlier (zombie)."""

    def __init__(self, store, old_state):
        self._store, self._old = store, old_state

    def load(self, run_id):
        return copy.deepcopy(self._old)

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.mark.parametrize("zombie_uploads", [False, True])
def test_a_zombie_step_cannot_commit(s3, dynamodb, state_table, zombie_uploads):
    objects = {f"o{i}": os.urandom(150 * KIB) for i in range(80)}
    source, dest = _buckets(s3)
    seed_bucket(s3, source, objects)
    common = dict(source_bucket=source, dest_bucket=dest, chunk_size="128KiB", part_size="5MiB")
    with tempfile.TemporaryDirectory() as state_dir:
        archive(s3, LocalStateStore(state_dir), dest_key="clean.zip", **common)
    store = DynamoStateStore(state_table, client=dynamodb)
    step_bytes = 6 * 1024 * KIB if zombie_uploads else 200 * KIB
    run_id = engine.start_run(
        s3, store, ArchiveRequest.create(dest_key="z.zip", step_bytes=step_bytes, **common)
    ).run_id
    engine.run_step(s3, store, run_id, Deadline(None))
    before = store.load(run_id)
    engine.run_step(s3, store, run_id, Deadline(None))  # the retry that won
    with pytest.raises(StaleState):
        engine.run_step(s3, StaleLoad(store, before), run_id, Deadline(None))  # the zombie
    assert store.load(run_id).version == before.version + 1
    while not engine.run_step(s3, store, run_id, Deadline(None)).done:
        pass
    assert isinstance(engine.finish_run(s3, store, run_id, Deadline(None)), ArchiveResult)
    zombie, clean = fetch(s3, dest, "z.zip"), fetch(s3, dest, "clean.zip")
    assert zombie == clean, entry_differences(zombie, clean)
    assert state_items(dynamodb, state_table) == ["result"]  # only the finished run's result
