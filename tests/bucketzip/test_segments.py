"""Parallel segments (issue 10) over the moto server. Each segment uploads straight into
its range of the archive upload's part numbers (its final part 5 MiB at least), so when
every segment has 5 MiB or more, N workers make the one-worker archive byte for byte;
segments under 5 MiB are relocated (appended after the others: a valid archive of the
same files); an empty plan; abort leaves nothing. Resume: test_segments_crash."""

from __future__ import annotations

import io
import random
import zipfile

import pytest

from bucketzip import engine, parallel
from bucketzip import plan as plan_module
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.driver import run_to_completion
from bucketzip.errors import ArchiveTooLarge
from bucketzip.limits import MIN_PART_SIZE
from bucketzip.parts import FIRST_TAIL_PART
from bucketzip.plan import load_plan, plan_step
from bucketzip.results import ArchiveResult
from bucketzip.state import PLANNING
from bucketzip.store_dynamodb import DynamoStateStore
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, contents_by_key, fetch, manifest
from support.crashes import Flaky
from support.readers import ALL_READERS, check_archive
from support.seed import HOSTILE_KEYS, all_keys, list_multipart_uploads, seed_bucket, state_items

KIB, MIB, GIB = 1024, 1024 * 1024, 1024**3

# Three shards at shard_bytes=6 MiB, each 5 MiB or more of archive bytes (random bytes do
# not compress): the hostile keys (two of them map to one name: both in shard 0, where one
# worker decides too), a log and n/ ; o/big.bin alone (over the target: 2 parts); the rest.
EQUAL = {
    **HOSTILE_KEYS,
    "m/compressible.log": b"".join(b"line %d of a log\n" % i for i in range(60_000)),
    "n/random.bin": random.Random(1).randbytes(5 * MIB + 3 * MIB // 4),
    "o/big.bin": random.Random(2).randbytes(11 * MIB),
    "s/random.bin": random.Random(3).randbytes(5 * MIB + MIB // 2),
    "s/t/empty.bin": b"",
}


@pytest.fixture
def store(tmp_path):
    return LocalStateStore(tmp_path / "state")


def _seed(s3, bucket_factory, objects):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, objects)
    return source, dest


def _request(source, dest, key, **fields):
    return ArchiveRequest.create(
        source_bucket=source, dest_bucket=dest, dest_key=key, part_size="5MiB", chunk_size="1MiB", **fields
    )


def _run_segment(s3, store, run_id, index):
    progress = parallel.start_segment(s3, store, run_id, index)
    while not progress.done:
        progress = engine.run_step(s3, store, progress.run_id, Deadline(None))
    while progress.phase != "complete":
        progress = parallel.finish_segment(s3, store, progress.run_id, Deadline(None))
    return progress.run_id


def _planned(s3, store, request, seconds: float | None = None) -> tuple[str, int]:
    """The run, planned; and how many plan calls it took (each given `seconds`)."""
    run_id, calls = engine.start_run(s3, store, request).run_id, 0
    while engine.get_progress(store, run_id).phase == PLANNING:
        plan_step(s3, store, run_id, Deadline(seconds))
        calls += 1
    return run_id, calls


def _finished(s3, store, run_id) -> ArchiveResult:
    while not parallel.assemble_step(s3, store, run_id, Deadline(None)).done:
        pass
    while not isinstance(result := engine.finish_run(s3, store, run_id, Deadline(None)), ArchiveResult):
        pass
    return result


def _list_parts(s3, bucket, key, upload_id) -> list[dict]:
    parts, marker = [], 0
    while True:
        page = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker)
        parts += page.get("Parts", [])
        if not page.get("IsTruncated"):
            return parts
        marker = page["NextPartNumberMarker"]


def test_segments_of_5_mib_or_more_make_the_one_worker_archive_byte_for_byte(s3, bucket_factory, store, tmp_path):
    source, dest = _seed(s3, bucket_factory, EQUAL)
    common = dict(source_bucket=source, dest_bucket=dest, part_size="5MiB", chunk_size="1MiB")
    archive(s3, store, dest_key="one.zip", **common)
    one = fetch(s3, dest, "one.zip")
    # Three workers, by hand: segments in another order than the plan's, several steps each.
    request = ArchiveRequest.create(dest_key="w3.zip", workers=3, shard_bytes="6MiB", step_bytes=2 * MIB, **common)
    run_id, _ = _planned(s3, store, request)
    shards = load_plan(s3, store.load(run_id))
    assert [shard.last_key for shard in shards] == ["n/random.bin", "o/big.bin", "ünï/日本.txt"]
    for index in (2, 0, 1):
        _run_segment(s3, store, run_id, index)
    # Before assembly: every segment's parts in the archive's own upload, inside its range,
    # numbered from its first, each part 5 MiB at least (the final part of a segment too).
    parts = _list_parts(s3, dest, "w3.zip", store.load(run_id).upload_id)
    assert len(list_multipart_uploads(s3, dest)) == 1  # the archive's: no upload of a segment's own
    for shard in shards:
        mine = [p for p in parts if shard.first_part <= p["PartNumber"] <= shard.last_part]
        assert [p["PartNumber"] for p in mine] == list(range(shard.first_part, shard.first_part + len(mine)))
        assert mine and all(p["Size"] == shard.part_size for p in mine[:-1]), (shard, mine)
        assert mine[-1]["Size"] >= MIN_PART_SIZE
    assert len(parts) == 4 and max(p["PartNumber"] for p in parts) < FIRST_TAIL_PART  # o/big.bin: 2 parts
    result = _finished(s3, store, run_id)
    assert fetch(s3, dest, "w3.zip") == one
    assert result.entries == len(EQUAL) and result.parts == 5  # the segments' 4 and the directory
    # Two workers through the driver (the CLI's loop): the same plan, the same bytes.
    run_to_completion(s3, store, ArchiveRequest.create(dest_key="w2.zip", workers=2, shard_bytes="6MiB", **common))
    assert fetch(s3, dest, "w2.zip") == one
    lines = [line for line in manifest(s3, dest, "w3.zip") if line["type"] == "entry"]
    assert lines == [line for line in manifest(s3, dest, "one.zip") if line["type"] == "entry"]
    path = tmp_path / "w3.zip"
    path.write_bytes(one)
    expected = {line["name"]: EQUAL[line["key"]] for line in lines if not line["name"].endswith("/")}
    check_archive(path, expected, readers=ALL_READERS, directories={"folder/"})
    assert list_multipart_uploads(s3, dest) == []
    assert [k for k in all_keys(s3, dest) if k.startswith(".bucketzip-staging/")] == []
    assert store.run_ids() == []


# Five shards at shard_bytes=6 MiB: the big objects are over the target, so each is a
# shard of its own, and the small objects between them make shards 0, 2 and 4, each
# under 5 MiB: relocated (shard 2's tail is staged in S3, the others' inline).
def _log(size: int, seed: int) -> bytes:
    """Log text of `size` bytes: deflates far under 5 MiB."""
    lines = b"".join(b"%d: request %d served\n" % (seed, i) for i in range(size // 16 + 1))
    return lines[:size]


# Shards of 6 MiB (planned by listed bytes): the log objects' segments deflate to under
# 5 MiB, and so does the last one; the random ones keep a part of their own. c/note.txt
# joins d/big.bin's shard (a shard under half the target joins the big object after it).
RELOCATED = {
    "a/one.log": _log(6 * MIB + 100, 1),
    "b/big.bin": random.Random(4).randbytes(6 * MIB + 1000),
    "c/mid.log": _log(6 * MIB + 5, 2),
    "c/note.txt": b"note",
    "d/big.bin": random.Random(6).randbytes(6 * MIB + 7),
    "e/last.txt": b"last",
}
SHARD_OF = {"a/one.log": 0, "b/big.bin": 1, "c/mid.log": 2, "c/note.txt": 3, "d/big.bin": 3, "e/last.txt": 4}
RELOCATED_SHARDS = {0, 2, 4}


def _entry_spans(data: bytes) -> dict[str, bytes]:
    """Entry name -> its local header, data and descriptor: the bytes up to the next entry."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = sorted(zf.infolist(), key=lambda info: info.header_offset)
        ends = [info.header_offset for info in infos[1:]] + [zf.start_dir]
        return {info.filename: data[info.header_offset : end] for info, end in zip(infos, ends, strict=True)}


def test_segments_under_5_mib_are_relocated_after_the_others(s3, dynamodb, state_table, bucket_factory, tmp_path):
    source, dest = _seed(s3, bucket_factory, RELOCATED)
    store = DynamoStateStore(state_table, client=dynamodb)
    common = dict(source_bucket=source, dest_bucket=dest, part_size="5MiB", chunk_size="1MiB")
    calls = Flaky(s3)
    done = run_to_completion(
        calls, store, ArchiveRequest.create(dest_key="rel.zip", workers=3, shard_bytes="6MiB", **common)
    )
    archive(s3, LocalStateStore(tmp_path / "state"), dest_key="one.zip", **common)
    data, one = fetch(s3, dest, "rel.zip"), fetch(s3, dest, "one.zip")
    assert contents_by_key(s3, dest, "rel.zip") == contents_by_key(s3, dest, "one.zip") == RELOCATED
    # Segments 1 and 3 (a part each) first, then the bytes of segments 0, 2 and 4 in shard
    # order, each entry's bytes exactly as one worker wrote them; then the directory, which
    # lists the entries in shard (key) order as one worker's does.
    spans = _entry_spans(one)
    order = sorted(spans, key=lambda name: (SHARD_OF[name] in RELOCATED_SHARDS, SHARD_OF[name]))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert data[: zf.start_dir] == b"".join(spans[name] for name in order)
        assert [info.filename for info in zf.infolist()] == list(RELOCATED)
        offsets = {info.filename: info.header_offset for info in zf.infolist()}
    assert [line["offset"] for line in manifest(s3, dest, "rel.zip") if line["type"] == "entry"] == [
        offsets[name] for name in RELOCATED
    ]
    # Every segment wrote into the archive's one upload: only the placed ones uploaded parts
    # (from their ranges), the parent the relocated bytes and the directory from 9001 on.
    uploads = [kw["Key"] for kw in calls.named("create_multipart_upload")]
    assert uploads == ["rel.zip", "rel.zip.manifest.jsonl"]
    numbers = sorted({kw["PartNumber"] for kw in calls.named("upload_part") if kw["Key"] == "rel.zip"})
    assert len(numbers) == 3 and numbers[-1] == FIRST_TAIL_PART and done.result.parts == 3
    path = tmp_path / "rel.zip"
    path.write_bytes(data)
    check_archive(path, RELOCATED, readers=ALL_READERS)
    assert list_multipart_uploads(s3, dest) == []
    assert [k for k in all_keys(s3, dest) if k.startswith(".bucketzip-staging/")] == []
    assert state_items(dynamodb, state_table) == ["result"]  # no segment's state, fragments or name claims


def test_an_empty_plan_gives_a_valid_empty_archive(s3, bucket_factory, store):
    source, dest = _seed(s3, bucket_factory, {"x.log": b"excluded"})
    done = run_to_completion(s3, store, _request(source, dest, "empty.zip", workers=4, exclude=("*.log",)))
    data = fetch(s3, dest, "empty.zip")
    assert done.result.entries == 0 and len(data) == 22  # the end record alone
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == []
    assert store.run_ids() == [] and list_multipart_uploads(s3, dest) == []


def test_abort_of_a_parallel_run_leaves_no_upload_state_or_staging(s3, bucket_factory, store):
    objects = {"k0": random.Random(0).randbytes(5 * MIB + MIB // 2)}
    objects |= {f"k{i}": random.Random(i).randbytes(300 * KIB) for i in range(1, 5)}
    source, dest = _seed(s3, bucket_factory, objects)
    run_id, _ = _planned(s3, store, _request(source, dest, "gone.zip", workers=3, shard_bytes=600 * KIB))
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
    (upload,) = list_multipart_uploads(s3, dest)  # the archive's: the segments write into it
    assert [p["PartNumber"] for p in _list_parts(s3, dest, "gone.zip", upload["UploadId"])] == [1]  # segment 0's
    assert [k for k in all_keys(s3, dest) if k.startswith(".bucketzip-staging/")]  # the plan, tails
    engine.abort_run(s3, store, run_id)
    assert list_multipart_uploads(s3, dest) == []
    assert all_keys(s3, dest) == []
    assert store.run_ids() == []


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
    assert (store.load(segment).offset, store.load(segment).uploaded) == (0, 0)  # nothing to upload nor relocate
    done = run_to_completion(s3, store, run_id=run_id)
    assert len(gone) >= 2 and done.result.entries == len(objects) - len(gone)
    assert contents_by_key(s3, dest, "v.zip") == {k: v for k, v in objects.items() if k not in gone}
    assert store.run_ids() == [] and list_multipart_uploads(s3, dest) == []


# Keys that map to one entry name, in different shards: "g/./x.txt" < "g/.fill*" <
# "g//x.txt" < "g/x.txt" in key order. One worker names them in key order; so must any
# order of the segments (the planner claims changed names while it lists).
NAMESAKES = {
    "g/./x.txt": b"dot",  # -> g/x~1.txt: g/x.txt is a source key of its own
    **{f"g/.fill{i}": random.Random(i).randbytes(20 * KIB) for i in range(4)},
    "g//x.txt": b"double slash",  # -> g/x~2.txt
    "g/x.txt": b"the key that has the name",
    "h/./y.txt": b"first of two",  # -> h/y.txt
    **{f"h/.fill{i}": random.Random(10 + i).randbytes(20 * KIB) for i in range(4)},
    "h//y.txt": b"second of two",  # -> h/y~1.txt
}


def test_names_of_keys_in_different_shards_are_one_workers_whatever_order_segments_run_in(s3, bucket_factory, store):
    source, dest = _seed(s3, bucket_factory, NAMESAKES)
    common = dict(source_bucket=source, dest_bucket=dest, part_size="5MiB", chunk_size="1MiB")
    archive(s3, store, dest_key="one.zip", **common)
    one = {line["key"]: line["name"] for line in manifest(s3, dest, "one.zip") if line["type"] == "entry"}
    assert (one["g/./x.txt"], one["g//x.txt"], one["h/./y.txt"], one["h//y.txt"]) == (
        "g/x~1.txt",
        "g/x~2.txt",
        "h/y.txt",
        "h/y~1.txt",
    )
    archives, plans = [], []
    for order in ("backward", "forward"):
        request = ArchiveRequest.create(dest_key=f"{order}.zip", workers=4, shard_bytes=30 * KIB, **common)
        # Forward: every plan call out of time, so listing stops after each claim, mid-page.
        run_id, calls = _planned(s3, store, request, None if order == "backward" else 0.0)
        assert (calls == 1) if order == "backward" else (calls > 4), calls  # a call per claim at least
        shards = load_plan(s3, store.load(run_id))
        plans.append([(s.start_after, s.last_key, s.first_part, s.last_part) for s in shards])
        shard_of = {key: next(i for i, s in enumerate(shards) if key <= s.last_key) for key in NAMESAKES}
        assert shard_of["g/./x.txt"] < shard_of["g//x.txt"] and shard_of["h/./y.txt"] < shard_of["h//y.txt"]
        indexes = range(len(shards))
        for index in reversed(indexes) if order == "backward" else indexes:
            _run_segment(s3, store, run_id, index)
        _finished(s3, store, run_id)
        names = {line["key"]: line["name"] for line in manifest(s3, dest, f"{order}.zip") if line["type"] == "entry"}
        assert names == one, order
        archives.append(fetch(s3, dest, f"{order}.zip"))
    assert plans[0] == plans[1] and archives[0] == archives[1]  # the same plan: the same bytes
    assert contents_by_key(s3, dest, "forward.zip") == NAMESAKES
    assert store.run_ids() == [] and list_multipart_uploads(s3, dest) == []


def test_a_shard_that_grew_past_its_part_range_fails_naming_it_and_abort_leaves_nothing(
    s3, bucket_factory, store, monkeypatch
):
    """A shard's part range holds at least twice its planned bytes. An object that grows
    past it after planning stops its segment before any part leaves the range, with
    ArchiveTooLarge saying what to do; the abort (the CLI's, the workflow's) then leaves
    nothing. The plan gets 4 part numbers, not 9,000, so that a range is 2 parts of 5 MiB
    (else the object would have to grow by 20 GiB)."""
    monkeypatch.setattr(plan_module, "FIRST_TAIL_PART", 5)
    objects = {f"k{i}": random.Random(i).randbytes(100 * KIB) for i in range(6)}
    source, dest = _seed(s3, bucket_factory, objects)
    run_id, _ = _planned(s3, store, _request(source, dest, "grown.zip", workers=2, shard_bytes=300 * KIB))
    shards = load_plan(s3, store.load(run_id))
    first = shards[0]
    room = (first.last_part - first.first_part + 1) * first.part_size
    assert len(shards) == 2 and (first.first_part, first.last_part, room) == (1, 2, 10 * MIB)
    s3.put_object(Bucket=source, Key="k0", Body=random.Random(9).randbytes(room + MIB))  # after planning
    with pytest.raises(ArchiveTooLarge, match=r"segment 0 .* grew after planning; start a new run"):
        _run_segment(s3, store, run_id, 0)
    (upload,) = list_multipart_uploads(s3, dest)
    numbers = [p["PartNumber"] for p in _list_parts(s3, dest, "grown.zip", upload["UploadId"])]
    assert all(first.first_part <= n <= first.last_part for n in numbers)  # none, or only its own
    engine.abort_run(s3, store, run_id)
    assert list_multipart_uploads(s3, dest) == [] and all_keys(s3, dest) == [] and store.run_ids() == []
