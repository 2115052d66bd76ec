"""The shard plan of a parallel run (plan.py): deterministic, balanced by bytes, exactly
the selected keys once each in key order, resumable across calls (killed anywhere, a
zombie cannot commit), zero objects -> zero shards; the grouping at 10 M objects."""

from __future__ import annotations

import collections
import copy
import dataclasses
import itertools
import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from bucketzip import engine, plan
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.errors import ArchiveTooLarge, IntegrityError, StaleState
from bucketzip.limits import GiB, MiB
from bucketzip.listing import iter_objects
from bucketzip.parts import FIRST_TAIL_PART
from bucketzip.plan import Shard, load_plan, plan_key, plan_step
from bucketzip.segments import staging_prefix
from bucketzip.state import PLANNING, SEGMENTS, Cursor
from bucketzip.store_dynamodb import DynamoStateStore
from bucketzip.store_local import LocalStateStore
from support.crashes import Crash, Flaky
from support.seed import all_keys, seed_bucket

TiB = 1024 * GiB


def _request(source, dest, key="out.zip", **fields):
    fields.setdefault("workers", 3)
    return ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key=key, **fields)


def _plan(s3, store, request, deadline=lambda: Deadline(None), max_calls=10_000):
    """Start a parallel run and call plan_step until done; (run id, shards, calls)."""
    run_id = engine.start_run(s3, store, request).run_id
    assert store.load(run_id).phase == PLANNING
    for calls in range(1, max_calls + 1):
        progress = plan_step(s3, store, run_id, deadline())
        if progress.done:
            state = store.load(run_id)
            assert state.phase == SEGMENTS and progress.shards == state.plan.shards
            return run_id, load_plan(s3, state), calls
    raise AssertionError("planning did not end")


def _seed(s3, bucket, objects):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: s3.put_object(Bucket=bucket, Key=item[0], Body=item[1]), objects.items()))


def _selected(s3, request):
    """The keys (and sizes) a single-worker run archives, in its order."""
    stream = iter_objects(s3, request, Cursor())
    return [(listed.key, listed.size) for listed, _ in stream if listed is not None]


def _assert_covers(shards: list[Shard], selected: list[tuple[str, int]]):
    """Shards in order, contiguous, and each holds exactly its range of the selection."""
    keys = [k for k, _ in selected]
    at = 0
    for i, shard in enumerate(shards):
        assert shard.index == i
        assert shard.start_after == (shards[i - 1].last_key if i else None)
        end = keys.index(shard.last_key) + 1
        assert end > at  # never empty
        assert shard.objects == end - at
        assert shard.bytes == sum(size for _, size in selected[at:end])
        at = end
    assert at == len(keys)  # none left over, none twice (ranges are disjoint and ordered)


def test_zero_selected_objects_give_zero_shards(s3, bucket_factory, tmp_path):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a.tmp": b"x", "b.tmp": b"y"})
    store = LocalStateStore(tmp_path)
    run_id, shards, _ = _plan(s3, store, _request(source, dest, exclude=["*.tmp"]))
    assert shards == []
    body = s3.get_object(Bucket=dest, Key=plan_key(run_id))["Body"].read()
    assert json.loads(body) == []  # an empty JSON array: a Map over no items
    assert store.load(run_id).plan.shards == 0


def test_shards_cover_exactly_the_selected_keys_with_filters_and_own_keys(s3, bucket_factory, tmp_path):
    bucket = bucket_factory("same")  # source == destination: the run's own keys are there
    objects = {f"data/{i:03d}.{'log' if i % 3 else 'tmp'}": bytes(i * 37 % 900) for i in range(60)}
    objects |= {f"data/skip/{i}.log": b"s" * 50 for i in range(5)}
    objects |= {
        "data/out.zip": b"an older archive at the key",  # the archive's key (overwrite)
        "data/out.zip.manifest.jsonl": b"{}",  # its manifest's
        ".bucketzip-staging/other-run/tail-x": b"t" * 400,  # staging (outside the prefix, too)
        "data/.bucketzip-staging-lookalike.log": b"kept: not the staging prefix",
    }
    seed_bucket(s3, bucket, objects)
    request = ArchiveRequest.create(
        source_bucket=bucket,
        dest_bucket=bucket,
        dest_key="data/out.zip",
        source_prefix="data/",
        include=["*.log", "*.zip*"],
        exclude=["skip/*"],
        overwrite=True,
        workers=4,
        shard_bytes=2000,
        page_size=7,
    )
    store = LocalStateStore(tmp_path)
    run_id, shards, _ = _plan(s3, store, request)
    selected = _selected(s3, request)
    assert len(selected) == 40 + 1  # 40 .log objects and the look-alike; not .tmp, skip/, own keys
    assert len(shards) > 5
    _assert_covers(shards, selected)
    # What each segment run lists for its shard (from StartAfter, up to its last key).
    listed = []
    for shard in shards:
        stream = iter_objects(s3, request, Cursor(start_after=shard.start_after), shard.last_key)
        keys = [item.key for item, _ in stream if item is not None]
        assert len(keys) == shard.objects
        listed += keys
    assert listed == [key for key, _ in selected]
    items = json.loads(s3.get_object(Bucket=bucket, Key=plan_key(run_id))["Body"].read())
    assert items == [{"run_id": run_id, **vars(shard)} for shard in shards]


def test_shards_are_balanced_by_bytes_not_objects(s3, bucket_factory, tmp_path):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    rnd = random.Random(3)
    objects = {f"a{i:03d}": rnd.randbytes(rnd.randint(20, 100)) for i in range(100)}
    objects["m-huge"] = bytes(20_000)  # > 6 targets: a shard of its own
    objects |= {f"z{i:03d}": bytes(4) for i in range(400)}  # many tiny ones share shards
    _seed(s3, source, objects)
    target = 2000
    request = _request(source, dest, shard_bytes=target, page_size=50)
    _, shards, _ = _plan(s3, LocalStateStore(tmp_path), request)
    _assert_covers(shards, _selected(s3, request))
    huge = [s for s in shards if s.last_key == "m-huge"]
    # the big object's shard: it, and the objects before it when they are under half a target
    assert len(huge) == 1 and 20_000 <= huge[0].bytes < 20_000 + target // 2
    assert huge[0].objects == 1 or huge[0].start_after == shards[shards.index(huge[0]) - 1].last_key
    slack = target // (2 * plan.RUN_SLACK) + 100  # half a run, and a run passes the granule by < 1 object
    for i, shard in enumerate(shards[:-1]):
        if shard is huge[0] or shards[i + 1] is huge[0]:
            continue  # the shard before a big object ends early (at least half a target), by design
        assert abs(shard.bytes - target) <= slack, shard
    counts = [s.objects for s in shards if s is not huge[0]]
    assert max(counts) > 5 * min(counts[:-1])  # object counts differ widely: bytes decided


def test_the_plan_is_deterministic_whatever_the_pages_calls_and_chunks(s3, bucket_factory, tmp_path, monkeypatch):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    rnd = random.Random(5)
    sizes = [0, 10, 60, 150, 300, 5000]
    objects = {f"k/{rnd.randrange(10**6):06d}-{i}": rnd.randbytes(rnd.choice(sizes)) for i in range(80)}
    _seed(s3, source, objects)
    store = LocalStateStore(tmp_path)
    common = dict(workers=2, shard_bytes=6000)
    _, one_call, calls = _plan(s3, store, _request(source, dest, "one.zip", **common))
    assert calls == 1
    _, again, _ = _plan(s3, store, _request(source, dest, "again.zip", **common))
    assert again == one_call
    # Runs beyond a few bytes go to chunk objects; one page per call (deadline passed).
    monkeypatch.setattr(plan, "INLINE_RUN_BYTES", 60)
    commits = []
    real_commit = plan._commit_chunk
    monkeypatch.setattr(plan, "_commit_chunk", lambda *a: (commits.append(1), real_commit(*a)))
    request = _request(source, dest, "split.zip", page_size=3, **common)
    counting = Counting(s3)
    run_id, split, calls = _plan(counting, store, request, lambda: Deadline(0))
    assert split == one_call
    assert calls >= len(objects) // 3 and len(commits) >= 10  # resumed at every page, chunks used
    assert counting.calls["get_object"] == len(commits) + 1  # each chunk read once, then plan.json
    assert not all_keys(s3, dest, staging_prefix(run_id) + "plan-runs/")  # chunks deleted after the plan
    _assert_covers(split, _selected(s3, _request(source, dest, **common)))


class Counting:
    """A client proxy counting calls by method name."""

    def __init__(self, client):
        self._client, self.calls = client, collections.Counter()

    def __getattr__(self, name):
        target = getattr(self._client, name)
        if not callable(target) or name in ("get_paginator", "meta", "exceptions"):
            return target

        def call(*args, **kwargs):
            self.calls[name] += 1
            return target(*args, **kwargs)

        return call


def test_planning_stops_on_time_when_the_filter_selects_few_keys(s3, bucket_factory, tmp_path):
    """Pages without a selected key still end a call at the deadline: a 10 M-key bucket
    with a narrow include never has to be listed in one call."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    _seed(s3, source, {f"skip/{i:03d}": b"x" for i in range(30)} | {"z-wanted": b"y"})
    request = _request(source, dest, include=["z-*"], page_size=2)
    _, shards, calls = _plan(s3, LocalStateStore(tmp_path), request, lambda: Deadline(0))
    assert calls >= 15  # one page per call
    assert shards == plan.allot_parts([Shard(0, None, "z-wanted", 1, 1)], request.part_size)
    assert (shards[0].first_part, shards[0].part_size) == (1, request.part_size)


def test_planners_killed_anywhere_converge_to_the_same_plan(s3, dynamodb, state_table, bucket_factory, monkeypatch):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    rnd = random.Random(8)
    objects = {f"o{i:03d}": rnd.randbytes(rnd.randint(0, 3000)) for i in range(60)}
    _seed(s3, source, objects)
    store = DynamoStateStore(state_table, client=dynamodb)
    common = dict(workers=2, shard_bytes=9000, page_size=3)
    _, clean, _ = _plan(s3, store, _request(source, dest, "clean.zip", **common))
    monkeypatch.setattr(plan, "INLINE_RUN_BYTES", 80)
    run_id = engine.start_run(s3, store, _request(source, dest, "crashy.zip", **common)).run_id
    # Calls die at each S3 or DynamoDB call in turn (a call lists one page: its calls are a
    # load, a listing, maybe a chunk put and its commit, the commit, and at the end the
    # chunk reads, the plan's put and commit, the chunks' delete), every third runs clean.
    schedule = itertools.cycle([(1, 0), (0, 1), (2, 0), (0, 2), (0, 0), (3, 0), (0, 3), (4, 0), (0, 0)])
    # Grouping (the listing's end committed) dies at each of its calls in turn: the load,
    # the commit, then every S3 call (chunk reads, plan.json, the delete after the commit).
    grouping = itertools.chain([(0, 1), (0, 2)], ((n, 0) for n in itertools.count(1)))
    crashes, where = 0, set()
    while True:
        fail_s3, fail_db = next(grouping if store.load(run_id).plan.cursor.exhausted else schedule)
        try:
            flaky_store = DynamoStateStore(state_table, Flaky(dynamodb, fail_db))
            progress = plan_step(Flaky(s3, fail_s3), flaky_store, run_id, Deadline(0))
        except Crash as crash:
            crashes += 1
            where.add(str(crash).split("(")[1])
            assert crashes < 500
            continue
        if progress.done:
            break
    assert load_plan(s3, store.load(run_id)) == clean
    assert crashes >= 10
    assert {"list_objects_v2)", "put_object)", "get_object)", "get_item)", "transact_write_items)"} <= where
    assert "delete_objects)" in where  # after the plan's commit: the retry answers done


class StaleLoad:
    """A store whose next load returns an old state: a planner that started earlier."""

    def __init__(self, store, old_state):
        self._store, self._old = store, old_state

    def load(self, run_id):
        return copy.deepcopy(self._old)

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.mark.parametrize("stage", ["listing", "grouping"])
def test_a_zombie_planner_cannot_commit(s3, dynamodb, state_table, bucket_factory, monkeypatch, stage):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = {f"o{i:03d}": bytes(400 + i) for i in range(30)}  # each a run (granule: 375)
    _seed(s3, source, objects)
    store = DynamoStateStore(state_table, client=dynamodb)
    common = dict(workers=2, shard_bytes=3000, page_size=5)
    _, clean, _ = _plan(s3, store, _request(source, dest, "clean.zip", **common))
    monkeypatch.setattr(plan, "INLINE_RUN_BYTES", 1)  # every call writes a chunk
    run_id = engine.start_run(s3, store, _request(source, dest, f"z-{uuid.uuid4().hex[:6]}.zip", **common)).run_id
    if stage == "grouping":  # the listing's end committed; two calls group at once
        while not store.load(run_id).plan.cursor.exhausted:
            plan_step(s3, store, run_id, Deadline(0))
    else:
        plan_step(s3, store, run_id, Deadline(0))
    before = store.load(run_id)
    plan_step(s3, store, run_id, Deadline(0))  # the call that won
    won = store.load(run_id)
    assert won.version > before.version and won.phase == (SEGMENTS if stage == "grouping" else PLANNING)
    with pytest.raises(StaleState):
        plan_step(s3, StaleLoad(store, before), run_id, Deadline(0))  # the zombie
    state = store.load(run_id)
    assert state.version == won.version
    # No chunk but the ones the state names (the zombie deleted its own).
    named = {plan.chunk_key(run_id, seq, token) for seq, token in enumerate(state.plan.chunks)}
    assert set(all_keys(s3, dest, staging_prefix(run_id) + "plan-runs/")) == named
    while not plan_step(s3, store, run_id, Deadline(0)).done:
        pass
    assert load_plan(s3, store.load(run_id)) == clean


def test_a_finished_plan_answers_retries_and_is_checked_when_read(s3, bucket_factory, tmp_path):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {f"o{i}": bytes(1000) for i in range(10)})
    store = LocalStateStore(tmp_path)
    run_id, shards, _ = _plan(s3, store, _request(source, dest, shard_bytes=3000))
    assert [s.objects for s in shards] == [3, 3, 3, 1]
    version = store.load(run_id).version
    progress = plan_step(s3, store, run_id, Deadline(None))  # a retried call: nothing to do
    assert progress.done and progress.shards == 4 and store.load(run_id).version == version
    s3.put_object(Bucket=dest, Key=plan_key(run_id), Body=b"[]")
    with pytest.raises(IntegrityError, match="holds 0 shards of this run, its state says 4"):
        load_plan(s3, store.load(run_id))
    s3.delete_object(Bucket=dest, Key=plan_key(run_id))
    with pytest.raises(IntegrityError, match="shard plan .* is missing"):
        load_plan(s3, store.load(run_id))


# -- the pure parts ---------------------------------------------------------------------


def test_runs_do_not_depend_on_where_the_listing_stopped():
    rnd = random.Random(1)
    sizes = [rnd.choice([0, 1, 50, 200, 5000, 40_000]) for _ in range(3000)]

    def cut(split_every):
        progress, runs = plan.PlanProgress(), []
        for i, size in enumerate(sizes):
            plan.add_object(progress, f"k{i:05d}", size, 16_000)
            if i % split_every == 0:  # a commit: runs to a chunk, the state through JSON
                runs += progress.runs
                progress.runs = []
                progress = plan.PlanProgress.from_json(json.loads(json.dumps(dataclasses.asdict(progress))))
        plan.close_run(progress)
        return runs + progress.runs

    whole = cut(10**9)
    assert cut(1) == whole and cut(7) == whole
    assert all(n == 1 for _, n, b in whole if b >= 2000)  # big objects are runs of their own
    assert all(b < 2000 + 200 for _, n, b in whole if n > 1)  # a run passes its granule by one small object


def ten_million_object_runs() -> list[tuple[str, int, int]]:
    """Synthetic runs as plan_step would cut 10 M objects (4 TiB) with its granule of
    32 MiB: runs of 50 small objects, and every 997th run one big object (1-8 GiB)."""
    rnd = random.Random(10)
    runs = []
    for i in range(200_000):
        if i % 997 == 0:
            runs.append((f"key/{i:09d}", 1, rnd.randint(1 << 30, 8 << 30)))
        else:
            runs.append((f"key/{i:09d}", 50, rnd.randint(50, 32 << 20)))
    return runs


def test_grouping_ten_million_objects():
    """Grouped as plan_step does (1,000 workers): the cap, coverage, byte balance, big
    objects alone or after less than half a target. Its time and memory are measured
    outside the test (see the report)."""
    runs = ten_million_object_runs()
    objects, total = sum(r[1] for r in runs), sum(r[2] for r in runs)
    assert objects > 9_800_000
    target = plan.choose_target(lambda: runs, total, 1000, None)
    assert target == -(-total // 2000)  # workers x 2 shards
    shards = list(plan.group(runs, target))
    assert 1000 < len(shards) <= plan.MAX_SHARDS
    assert sum(s.objects for s in shards) == objects and sum(s.bytes for s in shards) == total
    position = {key: i for i, (key, _, _) in enumerate(runs)}
    start, balanced = 0, 0
    small = 32 << 20
    for i, shard in enumerate(shards):
        assert shard.start_after == (shards[i - 1].last_key if i else None)
        end = position[shard.last_key] + 1
        inside = runs[start:end]
        assert shard.objects == sum(r[1] for r in inside) and shard.bytes == sum(r[2] for r in inside)
        if any(r[2] > target for r in inside):
            # a big object ends its shard; the runs before it only when under half a target
            assert inside[-1][2] > target and 2 * sum(r[2] for r in inside[:-1]) < target
        elif end < len(runs) and all(r[2] <= small for r in runs[start : end + 1]):
            assert abs(shard.bytes - target) <= small // 2  # ended at the boundary nearest the target
            balanced += 1
        start = end
    assert start == len(runs) and balanced > len(shards) // 2


def test_choose_target_formula():
    gib = 1 << 30
    runs = [("k", 1, 1)]
    assert plan.choose_target(lambda: runs, 0, 4, None) == plan.MIN_SHARD_BYTES  # empty: any target
    assert plan.choose_target(lambda: runs, 10 * gib, 4, None) == -(-10 * gib // 8)  # workers x 2 shards
    assert plan.choose_target(lambda: runs, 1 * gib, 100, None) == plan.MIN_SHARD_BYTES  # floor
    assert plan.choose_target(lambda: runs, 10 << 20, 4, 12345) == 12345  # request.shard_bytes
    # the cap: 10 GiB in 1-byte-target shards would be 10 G shards
    huge = [(f"k{i}", 1, 4 << 20) for i in range(2560)]
    target = plan.choose_target(lambda: huge, 10 * gib, 4, 1)
    assert len(list(plan.group(huge, target))) <= plan.MAX_SHARDS


# -- part ranges (allot_parts) ---------------------------------------------------------------


def _assert_allotted(shards: list[Shard], allotted: list[Shard], start_size: int) -> None:
    """Each shard gets a range of the archive upload's part numbers: in shard order, from 1,
    ascending, disjoint and contiguous, all below FIRST_TAIL_PART, one number at least, at a
    part size from the request's to 5 GiB - 5 MiB (whole MiB) that holds its bound."""
    assert [dataclasses.replace(s, first_part=0, last_part=0, part_size=0) for s in allotted] == shards
    first = 1
    for shard in allotted:
        assert shard.first_part == first and shard.last_part >= shard.first_part
        assert start_size <= shard.part_size <= 5 * GiB - 5 * MiB and shard.part_size % MiB == 0
        count = shard.last_part - shard.first_part + 1
        assert count * shard.part_size >= plan.shard_bound(shard) >= shard.bytes
        first = shard.last_part + 1
    assert first - 1 < FIRST_TAIL_PART


def test_part_ranges_of_a_small_plan_are_in_shard_order_and_proportional_to_bytes():
    shards = [Shard(0, None, "a", 3, 300 * MiB), Shard(1, "a", "b", 1, 100 * MiB), Shard(2, "b", "c", 9, 600 * MiB)]
    allotted = plan.allot_parts(shards, 5 * MiB)
    _assert_allotted(shards, allotted, 5 * MiB)
    counts = [s.last_part - s.first_part + 1 for s in allotted]
    assert counts[1] < counts[0] < counts[2] and sum(counts) >= FIRST_TAIL_PART - 1 - len(shards)  # all, but rounding
    assert all(s.part_size == 5 * MiB for s in allotted)  # thousands of numbers each: the request's size holds
    assert plan.allot_parts(shards, 5 * MiB) == allotted  # pure: the same plan each call
    assert plan.allot_parts(shards, 64 * MiB)[0].part_size == 64 * MiB  # never below the request's
    assert plan.allot_parts([], 5 * MiB) == []


def test_part_ranges_for_the_ten_million_object_plan():
    """2,000 shards of 4 TiB in all, big objects alone: sizes grow past the request's."""
    runs = ten_million_object_runs()
    shards = list(plan.group(runs, plan.choose_target(lambda: runs, sum(r[2] for r in runs), 1000, None)))
    allotted = plan.allot_parts(shards, 16 * MiB)
    _assert_allotted(shards, allotted, 16 * MiB)
    assert len({s.part_size for s in allotted}) > 1


def test_a_shard_of_one_huge_object_gets_parts_up_to_5_gib():
    shards = [Shard(0, None, "a", 1, 10), Shard(1, "a", "b", 1, 30 * TiB), Shard(2, "b", "c", 1, 10)]
    allotted = plan.allot_parts(shards, 5 * MiB)
    _assert_allotted(shards, allotted, 5 * MiB)
    counts = [s.last_part - s.first_part + 1 for s in allotted]
    assert counts[0] == counts[2] == 1 and counts[1] >= FIRST_TAIL_PART - 4  # nearly every number
    assert allotted[1].part_size > GiB


def test_part_ranges_that_cannot_hold_a_shard_are_refused():
    # 50 TiB: past 8,998 parts of 5 GiB - 5 MiB (S3's 5 TiB object limit is checked at start).
    with pytest.raises(ArchiveTooLarge, match=r"shard 1 \(1 objects, .*\) needs more than its \d+ parts of at most"):
        plan.allot_parts([Shard(0, None, "a", 1, 10), Shard(1, "a", "b", 1, 50 * TiB)], 5 * MiB)
    many = [Shard(i, None, f"k{i}", 1, 1) for i in range(FIRST_TAIL_PART)]  # more shards than numbers
    with pytest.raises(ArchiveTooLarge, match="shards need more part numbers"):
        plan.allot_parts(many, 5 * MiB)
    assert len(plan.allot_parts(many[:-1], 5 * MiB)) == FIRST_TAIL_PART - 1  # one number each still fits


def test_a_plan_item_carries_its_part_range():
    (shard,) = plan.allot_parts([Shard(0, None, "z", 2, 123)], 5 * MiB)
    item = json.loads(json.dumps(shard.to_item("R")))
    assert item["run_id"] == "R" and Shard.from_item(item) == shard
