"""Parallel segments killed anywhere: a segment killed at any of its calls resumes to the
same staging object; the assembly killed at any of its calls (S3, fragment writes,
commits) converges to the same parts, directory and manifest, and the archive is the
one-worker archive byte for byte."""

from __future__ import annotations

import random
import shutil

import pytest
from test_segments import MIB, Calls, Crash, _request, _run_segment, _seed

from bucketzip import assembly, engine, parallel
from bucketzip.deadline import Deadline
from bucketzip.plan import load_plan, plan_step
from bucketzip.results import ArchiveResult
from bucketzip.segments import segment_run_id
from bucketzip.state import PLANNING, Fragment
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, fetch
from support.copy_fidelity import s3_copy_fidelity
from support.seed import all_keys, list_multipart_uploads

RESUME_OBJECTS = {
    "0/first.bin": random.Random(10).randbytes(1 * MIB),  # a shard of its own: the pending tail
    "a/six.bin": random.Random(11).randbytes(6 * MIB + 77),
    "b/small.txt": b"small " * 5000,
    "b/two.bin": random.Random(12).randbytes(2 * MIB),
    "c/seven.bin": random.Random(13).randbytes(7 * MIB + 5),
    "d/text.log": b"".join(b"log line %d\n" % i for i in range(100_000)),
}


class CrashingStore:
    """A store proxy whose fragment writes and commits count towards the same crash point."""

    def __init__(self, store, calls):
        self._store, self._calls = store, calls

    def __getattr__(self, name):
        target = getattr(self._store, name)
        if name not in ("put_fragment", "commit"):
            return target
        return self._calls.wrap(name, target)


def _snapshot(store_dir, to):
    shutil.rmtree(to, ignore_errors=True)
    shutil.copytree(store_dir, to)


def _restore(snapshot, store_dir):
    shutil.rmtree(store_dir)
    shutil.copytree(snapshot, store_dir)


def _planned(s3, bucket_factory, tmp_path):
    source, dest = _seed(s3, bucket_factory, RESUME_OBJECTS)
    store_dir = tmp_path / "state"
    store = LocalStateStore(store_dir)
    request = _request(source, dest, "r.zip", workers=2, shard_bytes=3 * MIB, step_bytes=MIB)
    run_id = engine.start_run(s3, store, request).run_id
    while engine.get_progress(store, run_id).phase == PLANNING:
        plan_step(s3, store, run_id, Deadline(None))
    return source, dest, store_dir, store, run_id


def _assembled(s3, store, run_id):
    while not parallel.assemble_step(s3, store, run_id, Deadline(None)).done:
        pass
    state = store.load(run_id)
    fragments = [Fragment.from_bytes(blob) for _, blob in store.iter_fragments(run_id)]
    parts = [tuple(part[0:1] + part[2:]) for fragment in fragments for part in fragment.parts]
    return (
        state.offset,
        state.crc,
        state.entries,
        state.next_part,
        state.tail.length,
        assembly.read_tail(s3, state),
        parts,
        b"".join(bytes(f.central) for f in fragments),
        b"".join(bytes(f.manifest) for f in fragments),
    )


def _crash_then_resume(action, crash_at, s3, store):
    calls = Calls(s3, crash_at)
    try:
        action(calls, CrashingStore(store, calls))
    except Crash:
        action(s3, store)
        return True
    return False


def _crash_points(action, s3, store, stride: int, offset: int) -> list[int]:
    """Call numbers to crash at: every `stride`-th call (from `offset` + 1) of a clean run
    of `action` (S3 calls, fragment writes, commits). The default run takes offset 0; the
    other offsets (-m big) make every call a crash point once."""
    calls = Calls(s3)
    action(calls, CrashingStore(store, calls))
    return list(range(1 + offset, len(calls.calls) + 1, stride))


def _offsets(stride: int) -> list:
    return [0] + [pytest.param(n, marks=pytest.mark.big) for n in range(1, stride)]


SEGMENT_STRIDE, ASSEMBLY_STRIDE = 8, 4


@pytest.mark.parametrize("offset", _offsets(SEGMENT_STRIDE))
def test_a_segment_killed_at_any_call_resumes_to_the_same_segment(s3, bucket_factory, tmp_path, offset):
    _, dest, store_dir, store, run_id = _planned(s3, bucket_factory, tmp_path)
    _snapshot(store_dir, tmp_path / "planned")
    segment_id = segment_run_id(run_id, 1)  # a/six.bin: 7 steps, 2 parts

    def run(s3, store):
        _run_segment(s3, store, run_id, 1)

    points = _crash_points(run, s3, store, SEGMENT_STRIDE, offset)
    reference = fetch(s3, dest, store.load(segment_id).upload_key), store.load(segment_id).crc
    assert len(store.load(segment_id).tail.inline) == 0 and store.load(segment_id).steps > 3
    crashed = 0
    for crash_at in points:
        _restore(tmp_path / "planned", store_dir)
        crashed += _crash_then_resume(run, crash_at, s3, store)
        segment = store.load(segment_id)
        assert segment.phase == "complete" and (fetch(s3, dest, segment.upload_key), segment.crc) == reference, crash_at
    assert crashed >= len(points) // 2


@pytest.mark.parametrize("offset", _offsets(ASSEMBLY_STRIDE))
def test_assembly_killed_at_any_call_converges_to_the_same_archive(s3, bucket_factory, tmp_path, offset):
    source, dest, store_dir, store, run_id = _planned(s3, bucket_factory, tmp_path)
    shards = len(load_plan(s3, store.load(run_id)))
    assert shards >= 2
    for index in range(shards):
        _run_segment(s3, store, run_id, index)
    _snapshot(store_dir, tmp_path / "segments-done")
    with s3_copy_fidelity():

        def run(s3, store):
            _assembled(s3, store, run_id)

        points = _crash_points(run, s3, store, ASSEMBLY_STRIDE, offset)
        reference = _assembled(s3, store, run_id)
        assert any(part[1] > 5 * MIB for part in reference[6])  # a copied part, at least
        assert any(part[1] == 5 * MIB for part in reference[6]), reference[6]  # the pending tail + a head
        for crash_at in points:
            _restore(tmp_path / "segments-done", store_dir)
            assert _crash_then_resume(run, crash_at, s3, store)
            assert _assembled(s3, store, run_id) == reference, crash_at
    assert len(points) > 10  # of about 84 calls
    while not isinstance(engine.finish_run(s3, store, run_id, Deadline(None)), ArchiveResult):
        pass
    archive(s3, store, source_bucket=source, dest_bucket=dest, dest_key="one.zip", part_size="5MiB", chunk_size="1MiB")
    assert fetch(s3, dest, "r.zip") == fetch(s3, dest, "one.zip")
    assert store.run_ids() == [] and list_multipart_uploads(s3, dest) == []
    assert [k for k in all_keys(s3, dest) if k.startswith(".bucketzip-staging/")] == []
