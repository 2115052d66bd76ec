"""The sink's memory does not grow with the part size (issue 9, req. 1): parts are spilled
to local disk and uploaded from there, and local disk is bounded by the spill budget."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc

from bucketzip.config import ArchiveRequest
from bucketzip.sink import ArchiveSink
from bucketzip.state import RunState
from support.fresh_process import call_in_fresh_process

MIB = 1024 * 1024


class FakeStore:
    def current_version(self, run_id):
        return 0


class FakeS3:
    """upload_part reads its body in small pieces, as botocore streams a file."""

    def __init__(self, spill_dir):
        self.parts: dict[int, tuple[int, str]] = {}
        self.spill_dir = spill_dir
        self.max_files = 0
        self.lock = threading.Lock()

    def upload_part(self, *, Body, PartNumber, ContentLength=None, **_):
        if isinstance(Body, bytes):  # how the old sink sent a part
            Body = io.BytesIO(Body)
        with self.lock:
            self.max_files = max(self.max_files, _files(self.spill_dir))
        digest, size = hashlib.md5(), 0
        while piece := Body.read(256 * 1024):
            digest.update(piece)
            size += len(piece)
        assert ContentLength in (None, size)
        self.parts[PartNumber] = (size, digest.hexdigest())
        return {"ETag": f'"{digest.hexdigest()}"'}


def _files(root) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def _state(part_size: int, concurrency: int = 4) -> RunState:
    request = ArchiveRequest.create(
        source_bucket="src", dest_bucket="dst", dest_key="a.zip", part_size=part_size, concurrency=concurrency
    )
    return RunState(run_id="r", request=request, upload_id="u", started_at=0.0)


def peak_of_a_sink(part_size: int) -> dict:
    """Write two parts and 3 MiB more through a sink, 1 MiB at a time: the peak of traced
    memory, and the parts (number, size). Run in a fresh process (support.fresh_process)."""
    spill_dir = os.environ["BUCKETZIP_SPILL_DIR"]
    block = os.urandom(MIB)
    state, s3 = _state(part_size), FakeS3(spill_dir)
    tracemalloc.start()
    sink = ArchiveSink(s3, FakeStore(), state, "attempt")
    try:
        for _ in range(2 * part_size // MIB + 3):
            sink.write(block)
        sink.write_last_part()
        parts = sink.wait()
    finally:
        sink.close()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"peak": peak, "parts": [[p[0], p[2]] for p in parts], "left": os.listdir(spill_dir)}


def test_peak_memory_is_flat_whatever_the_part_size(tmp_path):
    peaks = {}
    for size in (8 * MIB, 64 * MIB):
        measured = call_in_fresh_process(__file__, "peak_of_a_sink", size, env={"BUCKETZIP_SPILL_DIR": str(tmp_path)})
        peaks[size] = measured["peak"]
        assert measured["parts"] == [[1, size], [2, size], [3, 3 * MIB]]
        assert measured["left"] == []  # spill files removed
    # The old sink held whole parts (and up to concurrency + 2 of them): >= 64 MiB here.
    assert max(peaks.values()) < 8 * MIB, peaks


def test_spilled_parts_stay_within_the_disk_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("BUCKETZIP_SPILL_DIR", str(tmp_path))
    state, s3 = _state(5 * MIB, concurrency=8), FakeS3(tmp_path)
    sink = ArchiveSink(s3, FakeStore(), state, "attempt", spill_bytes=10 * MIB)
    try:
        data = os.urandom(41 * MIB)
        sink.write(data)
        sink.write_last_part()
        parts = sink.wait()
    finally:
        sink.close()
    assert len(parts) == 9 and sum(p[2] for p in parts) == len(data)
    # the part being built and one in flight fill the budget: never a third file
    assert s3.max_files <= 2
    assert [s3.parts[n][1] for n in range(1, 10)] == [
        hashlib.md5(data[i : i + 5 * MIB]).hexdigest() for i in range(0, len(data), 5 * MIB)
    ]


def test_spill_dirs_left_by_a_dead_invocation_are_swept(tmp_path, monkeypatch):
    """A Lambda invocation that timed out leaves its /tmp files to the next one."""
    monkeypatch.setenv("BUCKETZIP_SPILL_DIR", str(tmp_path))
    dead = tmp_path / "bucketzip-spill-999999999-old"
    ours = tmp_path / f"bucketzip-spill-{os.getpid()}-timedout"
    for path in (dead, ours):
        path.mkdir()
        (path / "part-7").write_bytes(b"x" * 1000)
    live = ArchiveSink(FakeS3(tmp_path), FakeStore(), _state(5 * MIB), "a")
    try:
        assert not dead.exists() and not ours.exists()
        other = ArchiveSink(FakeS3(tmp_path), FakeStore(), _state(5 * MIB), "b")
        other.close()
        assert os.path.isdir(live.dir)  # a sink in use is never swept
    finally:
        live.close()
    assert list(tmp_path.iterdir()) == []
