"""A big parallel run through support.disk_bucket and a synthetic source: zip64 caused only
by rebased offsets (small entries of a segment placed past 2 GiB), and a segment over 5 GiB
(-m big) uploaded straight into its part range of the archive's upload."""

from __future__ import annotations

import struct
import zipfile

import pytest
from test_segments import GIB, MIB

from bucketzip.config import ArchiveRequest
from bucketzip.driver import run_to_completion
from bucketzip.limits import MIN_PART_SIZE
from bucketzip.parts import FIRST_TAIL_PART
from bucketzip.store_local import LocalStateStore
from support.crashes import Flaky
from support.disk_bucket import DiskBucket
from support.readers import ALL_READERS, STREAMING_READERS, check_listing
from support.synthetic import SyntheticSource, crc32_of, generate


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
    # Shard 0: one object past 2 GiB (or 5 GiB); shard 1: small objects at segment offsets
    # near 0, whose segment's own directory records need no zip64; placed after shard 0
    # (relocated: under 5 MiB, their bytes go after the others anyway), their offsets do
    # (zip64 past 2 GiB - 1, as zipfile).
    sizes = {"a/huge.bin": huge, "b/one.txt": 1000, "b/two.txt": 2000}
    s3 = DiskBucket(SyntheticSource(_Nowhere(), "synthetic", sizes), "dest", tmp_path / "dest")
    calls = Flaky(s3)
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
    # Segment 0 wrote parts 1.. of the archive's upload (its range starts the plan) at the
    # request's part size, the last one 5 MiB at least; the parent part 9001 (segment 1's
    # bytes and the directory). Nothing is copied or read back.
    assert calls.named("upload_part_copy") == []
    parts = sorted(
        (kw["PartNumber"], kw["ContentLength"]) for kw in calls.named("upload_part") if kw["Key"] == "huge.zip"
    )
    segment = [(number, size) for number, size in parts if number < FIRST_TAIL_PART]
    assert [number for number, _ in segment] == list(range(1, len(segment) + 1))
    assert all(size == 256 * MIB for _, size in segment[:-1]) and MIN_PART_SIZE <= segment[-1][1]
    assert sum(size for _, size in segment) > huge
    assert [number for number, _ in parts[len(segment) :]] == [FIRST_TAIL_PART] and done.result.parts == len(parts)
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
