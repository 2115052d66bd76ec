"""Parallel segments killed anywhere: a segment killed at any of its calls resumes to the
same parts of the archive's upload (same numbers, bytes and CRCs) and records; assembly
killed at any of its calls (S3, fragment writes, commits) converges to the same state,
parts, directory and manifest, and the archive holds every file."""

from __future__ import annotations

import random
import shutil

import pytest
from test_segments import MIB, _list_parts, _request, _run_segment, _seed

from bucketzip import engine, parallel
from bucketzip.deadline import Deadline
from bucketzip.plan import load_plan, plan_step
from bucketzip.results import ArchiveResult
from bucketzip.segments import segment_run_id
from bucketzip.state import PLANNING, Fragment
from bucketzip.store_local import LocalStateStore
from support.archiving import contents_by_key, fetch
from support.crashes import Crash, Flaky
from support.seed import all_keys, list_multipart_uploads

# Four shards at shard_bytes=6 MiB: 0/first.bin (relocated: under 5 MiB, but at least half
# the target, so it does not join the big object after it), a/big.bin (over the target: a
# shard of its own, 2 parts), b/ (relocated, its tail staged), c/seven.bin.
RESUME_OBJECTS = {
    "0/first.bin": random.Random(10).randbytes(3 * MIB + MIB // 2),
    "a/big.bin": random.Random(11).randbytes(11 * MIB + 77),
    "b/small.txt": b"small " * 5000,
    "b/two.bin": random.Random(12).randbytes(2 * MIB),
    "b/text.log": b"".join(b"log line %d\n" % i for i in range(100_000)),
    "c/seven.bin": random.Random(13).randbytes(7 * MIB + 5),
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
    request = _request(source, dest, "r.zip", workers=2, shard_bytes=6 * MIB, step_bytes=2 * MIB)
    run_id = engine.start_run(s3, store, request).run_id
    while engine.get_progress(store, run_id).phase == PLANNING:
        plan_step(s3, store, run_id, Deadline(None))
    assert [shard.last_key for shard in load_plan(s3, store.load(run_id))] == [
        "0/first.bin",
        "a/big.bin",
        "b/two.bin",
        "c/seven.bin",
    ]
    return source, dest, store_dir, store, run_id


def _tail(s3, state) -> bytes:
    tail = state.tail
    if tail.staging_key is None:
        return tail.inline
    return fetch(s3, state.request.dest_bucket, tail.staging_key)


def _recorded(s3, store, run_id):
    """What a run has produced: its counts, CRC-32, tail bytes, and from its fragments the
    parts (number, ETag, size, CRC-32), directory records and manifest lines."""
    state = store.load(run_id)
    fragments = [Fragment.from_bytes(blob) for _, blob in store.iter_fragments(run_id)]
    return (
        state.phase,
        state.offset,
        state.uploaded,
        state.crc,
        state.entries,
        state.next_part,
        _tail(s3, state),
        [tuple(part) for fragment in fragments for part in fragment.parts],
        b"".join(bytes(f.central) for f in fragments),
        b"".join(bytes(f.manifest) for f in fragments),
    )


def _assembled(s3, store, run_id):
    while not parallel.assemble_step(s3, store, run_id, Deadline(None)).done:
        pass
    return _recorded(s3, store, run_id)


def _crash_then_resume(action, crash_at, s3, store):
    calls = Flaky(s3, crash_at)
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
    calls = Flaky(s3)
    action(calls, CrashingStore(store, calls))
    return list(range(1 + offset, len(calls.calls) + 1, stride))


def _offsets(stride: int) -> list:
    return [0] + [pytest.param(n, marks=pytest.mark.big) for n in range(1, stride)]


SEGMENT_STRIDE = 8


@pytest.mark.parametrize("offset", _offsets(SEGMENT_STRIDE))
def test_a_segment_killed_at_any_call_resumes_to_the_same_parts(s3, bucket_factory, tmp_path, offset):
    _, dest, store_dir, store, run_id = _planned(s3, bucket_factory, tmp_path)
    _snapshot(store_dir, tmp_path / "planned")
    segment_id = segment_run_id(run_id, 1)  # a/big.bin: 6 steps, 2 parts (the first held over two steps)

    def run(s3, store):
        _run_segment(s3, store, run_id, 1)

    points = _crash_points(run, s3, store, SEGMENT_STRIDE, offset)
    reference = _recorded(s3, store, segment_id)
    assert reference[0] == "complete" and store.load(segment_id).steps > 5
    first = load_plan(s3, store.load(run_id))[1].first_part
    assert [(part[0], part[2]) for part in reference[7]] == [(first, 5 * MIB), (first + 1, reference[1] - 5 * MIB)]
    upload_id = store.load(run_id).upload_id
    crashed = 0
    for crash_at in points:
        _restore(tmp_path / "planned", store_dir)
        crashed += _crash_then_resume(run, crash_at, s3, store)
        assert _recorded(s3, store, segment_id) == reference, crash_at
        # The recorded parts are the ones in S3 (the ETag is the bytes' MD5 on the emulator).
        held = {p["PartNumber"]: (p["ETag"], p["Size"]) for p in _list_parts(s3, dest, "r.zip", upload_id)}
        assert {part[0]: (part[1], part[2]) for part in reference[7]} == held, crash_at
    assert crashed >= len(points) // 2


def test_assembly_killed_at_each_call_converges_to_the_same_archive(s3, bucket_factory, tmp_path, monkeypatch):
    _, dest, store_dir, store, run_id = _planned(s3, bucket_factory, tmp_path)
    monkeypatch.setattr(parallel, "ASSEMBLY_FRAGMENT_BYTES", 300)  # several commits taking fragments over
    for index in range(4):
        _run_segment(s3, store, run_id, index)
    _snapshot(store_dir, tmp_path / "segments-done")

    def run(s3, store):
        _assembled(s3, store, run_id)

    points = _crash_points(run, s3, store, 1, 0)  # every call: about 20
    reference = _assembled(s3, store, run_id)
    # The segments' 3 parts taken over (segment 1's two, segment 3's one, from their ranges);
    # segments 0 and 2 relocated: their bytes are the run's tail (staged), the directory next.
    shards = load_plan(s3, store.load(run_id))
    numbers = [shards[1].first_part, shards[1].first_part + 1, shards[3].first_part]
    assert [part[0] for part in reference[7]] == numbers and reference[7][0][2] == 5 * MIB
    assert all(part[2] >= 5 * MIB for part in reference[7])
    assert len(reference[6]) > 3 * MIB  # the relocated bytes, staged
    for crash_at in points:
        _restore(tmp_path / "segments-done", store_dir)
        assert _crash_then_resume(run, crash_at, s3, store)
        assert _assembled(s3, store, run_id) == reference, crash_at
    assert len(points) >= 15
    while not isinstance(engine.finish_run(s3, store, run_id, Deadline(None)), ArchiveResult):
        pass
    assert contents_by_key(s3, dest, "r.zip") == RESUME_OBJECTS
    assert store.run_ids() == [] and list_multipart_uploads(s3, dest) == []
    assert [k for k in all_keys(s3, dest) if k.startswith(".bucketzip-staging/")] == []
