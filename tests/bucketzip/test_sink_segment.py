"""The sink's hold mode for a segment of a parallel run (sink.py): a segment writes parts
`first_part`..`last_part` of the archive's own upload, and another segment's part follows
its last one, so each of its parts is 5 MiB at least. Random writes over several steps
(a new sink per step, the tail saved and loaded between them), then write_last_part: the
parts concatenate to the bytes written, each is 5 MiB at least, a cut part goes up only
once 5 MiB follow it, per-part and running CRC-32s are right, and a segment under 5 MiB
uploads nothing (its bytes stay its tail: assembly relocates them). With a fake S3."""

from __future__ import annotations

import io
import random
import zlib

import pytest

from bucketzip import sink as sink_module
from bucketzip.config import ArchiveRequest
from bucketzip.errors import ArchiveTooLarge, StaleState
from bucketzip.sink import ArchiveSink
from bucketzip.state import RunState, SegmentOf

KIB, MIB = 1024, 1024 * 1024


class FakeStore:
    def current_version(self, run_id):
        return 0


class FakeS3:
    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.parts: dict[int, bytes] = {}
        self.uploads: list[int] = []  # part numbers in upload order

    def put_object(self, *, Key, Body, ContentLength, **_):
        data = Body.read()
        assert len(data) == ContentLength
        self.objects[Key] = data

    def get_object(self, *, Key, **_):
        return {"Body": io.BytesIO(self.objects[Key])}

    def upload_part(self, *, PartNumber, Body, ContentLength, UploadId, Key, **_):
        data = Body.read()
        assert len(data) == ContentLength and UploadId == "parent-upload" and Key == "a.zip"
        self.parts[PartNumber] = data
        self.uploads.append(PartNumber)
        return {"ETag": f'"{PartNumber}"'}


def _segment_state(first: int, last: int, part_size: int) -> RunState:
    request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip", part_size="5MiB")
    segment = SegmentOf("P", 1, None, None, first, last, part_size)
    return RunState("P.s00001", request, "parent-upload", 0.0, next_part=first, segment=segment)


def _tail_bytes(s3: FakeS3, state: RunState) -> bytes:
    tail = state.tail
    return tail.inline if tail.staging_key is None else s3.objects[tail.staging_key]


def _run(data: bytes, state: RunState, rng: random.Random, hold: int):
    """Write `data` in random pieces over several steps (a sink per step), then the last
    part; after each step, check that every uploaded part has `hold` bytes after it."""
    s3, parts, written, step = FakeS3(), [], 0, 0
    while written < len(data):
        sink = ArchiveSink(s3, FakeStore(), state, f"step{step}")
        try:
            for _ in range(rng.randrange(1, 4)):
                n = min(len(data) - written, rng.randrange(1, 3 * hold))
                sink.write(data[written : written + n])
                written += n
            parts += sink.wait()
            state.tail = sink.save_tail()
        finally:
            sink.close()
        step += 1
        ends = [sum(p[2] for p in parts[: i + 1]) for i in range(len(parts))]
        assert all(end + hold <= written for end in ends), "a part went up before `hold` bytes followed it"
        assert state.offset == written and state.uploaded + state.tail.length == written
        assert _tail_bytes(s3, state) == data[state.uploaded : written]
    sink = ArchiveSink(s3, FakeStore(), state, "last")
    try:
        sink.write_last_part()
        parts += sink.wait()
        state.tail = sink.save_tail()
    finally:
        sink.close()
    return s3, parts


def _check(data: bytes, state: RunState, s3: FakeS3, parts: list, hold: int) -> None:
    segment = state.segment
    assert segment is not None
    assert state.crc == zlib.crc32(data) and state.offset == len(data)
    if len(data) < hold:  # relocated: nothing uploaded, every byte in the tail
        assert parts == [] and s3.uploads == [] and state.uploaded == 0 and state.next_part == segment.first_part
        assert _tail_bytes(s3, state) == data
        return
    numbers = [p[0] for p in parts]
    assert numbers == list(range(segment.first_part, segment.first_part + len(parts)))
    assert numbers[-1] <= segment.last_part and state.next_part == numbers[-1] + 1
    assert sorted(s3.uploads) == numbers  # each part uploaded once
    assert b"".join(s3.parts[n] for n in numbers) == data
    sizes = [p[2] for p in parts]
    assert all(size == segment.part_size for size in sizes[:-1])
    assert hold <= sizes[-1] < segment.part_size + hold, sizes
    assert all(p[3] == zlib.crc32(s3.parts[p[0]]) for p in parts)
    assert state.uploaded == len(data) and state.tail.length == 0


@pytest.mark.parametrize("seed", range(60))
def test_hold_mode_on_a_small_scale(seed, monkeypatch, tmp_path):
    """The same rules with a 5 KiB minimum (many layouts in little time), tails staged
    past 1 KiB so both the inline and the staged tail are carried between steps."""
    monkeypatch.setenv("BUCKETZIP_SPILL_DIR", str(tmp_path))
    hold = 5 * KIB
    monkeypatch.setattr(sink_module, "MIN_PART_SIZE", hold)
    monkeypatch.setattr(sink_module, "INLINE_TAIL_BYTES", KIB)
    rng = random.Random(seed)
    part_size = rng.choice([hold, hold + 1, 6 * KIB, 8 * KIB, 16 * KIB])
    total = rng.choice(
        [rng.randrange(1, hold), hold - 1, hold, part_size, part_size + hold - 1, rng.randrange(hold, 12 * part_size)]
    )
    state = _segment_state(10, 30, part_size)
    data = rng.randbytes(total)
    s3, parts = _run(data, state, rng, hold)
    _check(data, state, s3, parts, hold)


@pytest.mark.parametrize(
    "total, part_size",
    [(23 * MIB + 12345, 5 * MIB), (6 * MIB, 8 * MIB), (4 * MIB + 7, 5 * MIB)],
    ids=["several-parts", "one-part-under-the-part-size", "under-5MiB"],
)
def test_hold_mode_with_s3_sizes(total, part_size, monkeypatch, tmp_path):
    monkeypatch.setenv("BUCKETZIP_SPILL_DIR", str(tmp_path))
    rng = random.Random(total)
    state = _segment_state(100, 120, part_size)
    data = rng.randbytes(total)
    s3, parts = _run(data, state, rng, 5 * MIB)
    _check(data, state, s3, parts, 5 * MIB)


def test_a_segment_refuses_bytes_past_its_range(monkeypatch, tmp_path):
    monkeypatch.setenv("BUCKETZIP_SPILL_DIR", str(tmp_path))
    monkeypatch.setattr(sink_module, "MIN_PART_SIZE", 5 * KIB)
    state = _segment_state(7, 9, 5 * KIB)  # three parts: 15 KiB
    sink = ArchiveSink(FakeS3(), FakeStore(), state, "a")
    try:
        sink.write(bytes(15 * KIB))
        with pytest.raises(ArchiveTooLarge, match="segment 1 of run P needs more than"):
            sink.write(b"x")
    finally:
        sink.close()


def test_a_zombie_segment_step_uploads_nothing_into_the_shared_upload(monkeypatch, tmp_path):
    """Segments share the archive's upload: a step whose state another step replaced
    (its version moved on) must not put a part there, held or not."""
    monkeypatch.setenv("BUCKETZIP_SPILL_DIR", str(tmp_path))
    monkeypatch.setattr(sink_module, "MIN_PART_SIZE", 5 * KIB)

    class MovedOn:
        def current_version(self, run_id):
            return 1  # the state this step loaded is version 0

    s3, state = FakeS3(), _segment_state(3, 9, 5 * KIB)
    sink = ArchiveSink(s3, MovedOn(), state, "zombie")
    try:
        # Part 3 is cut and released once 5 KiB follow it; its upload runs in the
        # background, so the refusal surfaces at the next write or at the wait.
        with pytest.raises(StaleState, match="not uploading part 3"):
            sink.write(bytes(12 * KIB))
            sink.write(bytes(6 * KIB))
            sink.wait()
    finally:
        sink.close()
    assert s3.uploads == []
