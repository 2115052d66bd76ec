"""Parallel segments (issue 10) over the moto server: N workers give an archive that
every reader opens and that extracts to the one-worker archive's files; the same plan
gives the same bytes; segments and assembly resume wherever they are cut; tails under
5 MiB; an empty plan; abort leaves nothing."""

from __future__ import annotations

import io
import random
import shutil
import struct
import threading
import time
import zipfile

import pytest

from bucketzip import assembly, engine
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.driver import run_to_completion
from bucketzip.plan import load_plan, plan_step
from bucketzip.results import ArchiveResult
from bucketzip.segments import segment_run_id
from bucketzip.state import PLANNING, Fragment
from bucketzip.store_dynamodb import DynamoStateStore
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, contents_by_key, fetch, manifest
from support.copy_fidelity import s3_copy_fidelity
from support.disk_bucket import DiskBucket
from support.readers import ALL_READERS, STREAMING_READERS, check_archive, check_listing
from support.seed import HOSTILE_KEYS, all_keys, list_multipart_uploads, seed_bucket, state_items
from support.synthetic import SyntheticSource, crc32_of, generate

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


class Crash(Exception):
    pass


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
    segments = [engine.start_segment(s3, store, run_id, i).run_id for i in range(3)]
    engine.run_step(s3, store, segments[0], Deadline(None))  # one complete, one begun, one not
    engine.finish_segment(s3, store, segments[0], Deadline(None))
    engine.run_step(s3, store, segments[1], Deadline(0.0))
    watched = engine.segment_progress(store, run_id)  # what `watch` shows per segment
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


class _Nowhere:
    """The client behind the synthetic source and the disk bucket: nothing else is called."""

    def __getattr__(self, name):
        raise AssertionError(f"unexpected S3 call {name}: source and destination are local")


def _extra_tags(extra: bytes) -> list[int]:
    tags, at = [], 0
    while at + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, at)
        tags.append(tag)
        at += 4 + size
    return tags


@pytest.mark.parametrize(
    "huge",
    [
        pytest.param(2 * GIB + 40 * MIB, id="2GiB"),  # ~40 s: zip64 offsets by the base alone
        # ~2.5 min on a loaded machine (the engine writing 5 GiB): -m big
        pytest.param(5 * GIB + 40 * MIB, id="5GiB", marks=[pytest.mark.big, pytest.mark.timeout(1800)]),
    ],
)
def test_a_big_segment_and_zip64_caused_only_by_rebased_offsets(tmp_path, huge):
    # Shard 0: one object past 2 GiB (or 5 GiB: its segment is copied in two parts); shard 1:
    # small objects at segment offsets near 0, whose segment's own directory records need no
    # zip64; placed after shard 0, their offsets do (zip64 past 2 GiB - 1, as zipfile).
    sizes = {"a/huge.bin": huge, "b/one.txt": 1000, "b/two.txt": 2000}
    s3 = DiskBucket(SyntheticSource(_Nowhere(), "synthetic", sizes), "dest", tmp_path / "dest")
    calls = Calls(s3)
    request = ArchiveRequest.create(
        source_bucket="synthetic",
        dest_bucket="dest",
        dest_key="huge.zip",
        part_size="256MiB",
        concurrency=2,
        workers=2,
        shard_bytes=GIB,
    )
    store = LocalStateStore(tmp_path / "state")
    done = run_to_completion(calls, store, request)
    copies = [kw for kw in calls.named("upload_part_copy") if kw["Key"] == "huge.zip"]
    spans = [[int(n) for n in kw["CopySourceRange"].removeprefix("bytes=").split("-")] for kw in copies]
    assert len(spans) == (2 if huge > 5 * GIB else 1)
    assert all(5 * MIB <= last - first + 1 <= 5 * GIB for first, last in spans)
    assert spans[-1][1] + 1 > huge  # the whole segment was copied, none of it read back
    path = s3.path("huge.zip")
    assert done.result.entries == 3 and path.stat().st_size == done.result.size
    with zipfile.ZipFile(path) as zf:
        one, two = zf.getinfo("b/one.txt"), zf.getinfo("b/two.txt")
        assert huge < one.header_offset < two.header_offset
        assert ZIP64_EXTRA in _extra_tags(one.extra) and ZIP64_EXTRA in _extra_tags(two.extra)
        assert zf.read(one) == generate(0, 1000) and zf.read(two) == generate(0, 2000)
        assert zf.getinfo("a/huge.bin").CRC == crc32_of(sizes["a/huge.bin"])
    # Every reader that reads the directory lists the archive and reads the small entries.
    # (The streaming reader never sees an offset: test_engine_zip64 streams a > 4 GiB entry.)
    small = {"b/one.txt": generate(0, 1000), "b/two.txt": generate(0, 2000)}
    check_listing(path, sizes, small, readers=[r for r in ALL_READERS if r not in STREAMING_READERS], test=False)
    assert store.run_ids() == [] and s3.keys() == ["huge.zip", "huge.zip.manifest.jsonl"]


ZIP64_EXTRA = 0x0001


# -- crashes: a segment, the assembly, a whole run --------------------------------------

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


def _run_segment(s3, store, run_id, index):
    progress = engine.start_segment(s3, store, run_id, index)
    while not progress.done:
        progress = engine.run_step(s3, store, progress.run_id, Deadline(None))
    while progress.phase != "complete":
        progress = engine.finish_segment(s3, store, progress.run_id, Deadline(None))
    return progress.run_id


def _assembled(s3, store, run_id):
    while not engine.assemble_step(s3, store, run_id, Deadline(None)).done:
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
