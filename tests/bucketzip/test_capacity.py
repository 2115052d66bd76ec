"""Capacity known up front (issue 9, req. 5): an archive that cannot fit 10,000 parts under
its part policy fails as soon as that is proven, naming the largest archive allowed; never
a raw ValueError from part_size(10001) after all the data was processed."""

from __future__ import annotations

import pytest

from bucketzip import engine
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.errors import ArchiveTooLarge
from bucketzip.parts import capacity
from bucketzip.sink import ArchiveSink
from bucketzip.state import RunState
from bucketzip.store_local import LocalStateStore
from support.seed import list_multipart_uploads
from support.synthetic import SyntheticSource

MIB = 1024 * 1024
TIB = 1024**4


def test_default_policy_capacity_is_stated():
    assert capacity(16 * MIB) == 13_941_866_496_000  # 12.7 TiB, README's figure
    assert capacity(5 * MIB) == 8_047_820_800_000
    assert capacity(5 * 1024 * MIB) == 10_000 * 5 * 1024 * MIB


def test_a_listed_object_past_capacity_fails_before_its_bytes(s3, bucket_factory, tmp_path):
    dest = bucket_factory("dst")
    source = SyntheticSource(s3, "synthetic-huge", {"a.txt": 10, "huge.bin": 8 * TIB})
    store = LocalStateStore(tmp_path / "state")
    request = ArchiveRequest.create(
        source_bucket="synthetic-huge", dest_bucket=dest, dest_key="big.zip", part_size="5MiB", compression="store"
    )
    progress = engine.start_run(source, store, request)
    with pytest.raises(ArchiveTooLarge) as caught:
        engine.run_step(source, store, progress.run_id, Deadline(20))  # old code: returned after 20 s
    message = str(caught.value)
    assert "'huge.bin'" in message and "7.3 TiB (8047820800000 bytes)" in message and "part_size" in message
    engine.abort_run(source, store, progress.run_id)
    assert list_multipart_uploads(s3, dest) == []


class _Store:
    def current_version(self, run_id):
        return 0


def test_a_byte_past_the_last_part_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("BUCKETZIP_SPILL_DIR", str(tmp_path))
    request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip", part_size="5MiB")
    full = capacity(5 * MIB)
    state = RunState(run_id="r", request=request, upload_id="u", started_at=0.0, next_part=10_001)
    state.uploaded = state.offset = full
    sink = ArchiveSink(None, _Store(), state, "attempt")
    try:
        with pytest.raises(ArchiveTooLarge, match="largest archive"):
            sink.write(b"x")
    finally:
        sink.close()
