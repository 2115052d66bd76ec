"""A parallel run's plan is a snapshot of the listing, but its segments list their key
ranges live, and the last segment lists to the end of the selection: an object written
after planning is archived wherever its key falls."""

from __future__ import annotations

from bucketzip import engine
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.driver import run_to_completion
from bucketzip.plan import load_plan, plan_step
from bucketzip.state import SEGMENTS
from bucketzip.store_local import LocalStateStore
from support.archiving import contents_by_key
from support.seed import list_multipart_uploads, seed_bucket


def test_keys_written_after_planning_are_archived_past_the_last_shard_too(s3, bucket_factory, tmp_path):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = {f"k{i:02d}": bytes([i]) * 3000 for i in range(12)}
    seed_bucket(s3, source, objects)
    store = LocalStateStore(tmp_path)
    request = ArchiveRequest.create(
        source_bucket=source, dest_bucket=dest, dest_key="late.zip", part_size="5MiB", workers=3, shard_bytes=9000
    )
    run_id = engine.start_run(s3, store, request).run_id
    while plan_step(s3, store, run_id, Deadline(60)).phase != SEGMENTS:
        pass
    shards = load_plan(s3, store.load(run_id))
    assert len(shards) > 2 and shards[-1].last_key == "k11"
    late = {"k05a": b"between shards' keys", "zz-after-the-plan": b"past the plan's last key"}
    seed_bucket(s3, source, late)
    completed = run_to_completion(s3, store, run_id=run_id)
    assert completed.result.entries == len(objects) + len(late)
    assert contents_by_key(s3, dest, "late.zip") == objects | late
    assert list_multipart_uploads(s3, dest) == []
