"""Single-worker server-side copy (issue 10, requirement 3): large stored objects are
placed by UploadPartCopy between a topped-up part and a streamed remainder. The archive
is byte for byte the streamed one (`store`), every reader opens it, the CRC-32 comes from
S3 or from one read-only pass, a step stopping (or dying) inside a copied entry resumes,
a transient copy fault suspends, a changed source is handled as when streaming, and a
zombie step copies nothing. Small: 5 MiB parts, objects of a few parts, moto server."""

from __future__ import annotations

import io
import os
import random
import tempfile
import zipfile

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from bucketzip import copy as server_copy
from bucketzip import engine
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.errors import ObjectChanged, RetryableError, StaleState
from bucketzip.parts import FIRST_TAIL_PART
from bucketzip.records import TRUNCATED_MARK
from bucketzip.results import ArchiveResult
from bucketzip.store_dynamodb import DynamoStateStore
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, fetch, manifest
from support.copy_fidelity import s3_copy_fidelity
from support.counting import CountingS3
from support.crashes import Flaky
from support.readers import ALL_READERS, READERS_FAILING_STORED_DESCRIPTORS, check_archive

MiB = 1024 * 1024
NO_COPY = 1 << 62


def _objects() -> dict[str, bytes]:
    rnd = random.Random(10)
    return {
        "a.txt": b"small text " * 300,
        "big.bin": rnd.randbytes(17 * MiB + 3),  # top-up, 2 copied parts, a remainder
        "m/c.txt": b"c" * 100,
        "video.mp4": rnd.randbytes(13 * MiB + 1),
        "y.bin": rnd.randbytes(9 * MiB),  # under COPY_MIN_PARTS (2) parts of 5 MiB: streamed
        "z.bin": rnd.randbytes(11 * MiB),
    }


def _seed(s3, bucket: str, objects: dict[str, bytes], checksums: bool) -> None:
    """With checksums: CRC32 full-object checksums S3 keeps; without: none (boto3 adds a
    CRC32 to every PutObject unless told it is only wanted when required)."""
    client = s3
    if not checksums:
        client = boto3.client(
            "s3",
            endpoint_url=s3.meta.endpoint_url,
            region_name=s3.meta.region_name,
            config=Config(request_checksum_calculation="when_required"),
        )
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body, **({"ChecksumAlgorithm": "CRC32"} if checksums else {}))
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert ("ChecksumCRC32" in head) == checksums


def _common(source: str, dest: str, **extra) -> dict:
    return dict(source_bucket=source, dest_bucket=dest, part_size="5MiB", chunk_size="1MiB", **extra)


def _streamed(s3, monkeypatch, key: str, **fields) -> bytes:
    monkeypatch.setattr(server_copy, "COPY_MIN_BYTES", NO_COPY)
    with tempfile.TemporaryDirectory() as state_dir:
        archive(s3, LocalStateStore(state_dir), dest_key=key, **fields)
    monkeypatch.setattr(server_copy, "COPY_MIN_BYTES", 8 * MiB)
    return fetch(s3, fields["dest_bucket"], key)


def _check_readers(data: bytes, expected: dict[str, bytes], readers=ALL_READERS) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "a.zip")
        with open(path, "wb") as out:
            out.write(data)
        check_archive(path, expected, readers=readers)


@pytest.mark.parametrize(("checksums", "s3_part_crcs"), [(True, True), (False, False), (False, True)])
def test_a_copied_store_archive_is_the_streamed_archive(s3, bucket_factory, monkeypatch, checksums, s3_part_crcs):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = _objects()
    _seed(s3, source, objects, checksums)
    fields = _common(source, dest, compression="store")
    streamed = _streamed(s3, monkeypatch, "streamed.zip", **fields)
    counting = CountingS3(s3)
    with s3_copy_fidelity(crc=s3_part_crcs), tempfile.TemporaryDirectory() as state_dir:
        archive(counting, LocalStateStore(state_dir), dest_key="copied.zip", **fields)
    copied = fetch(s3, dest, "copied.zip")
    assert copied == streamed
    # big.bin: top-up, 2 copied parts, remainder; y.bin (under 2 parts) streamed
    assert counting.copies == {"big.bin": 2, "video.mp4": 2, "z.bin": 2}
    copied_bytes = counting.copied[dest]
    assert copied_bytes == 6 * 5 * MiB
    source_bytes = sum(map(len, objects.values()))
    # Part CRCs from S3 (CopyPartResult): only the top-ups and remainders are read; without
    # them each copied range is read once for its CRC, never twice, never uploaded.
    assert counting.read[source] == source_bytes - (copied_bytes if s3_part_crcs else 0)
    # uploaded: the archive's other bytes, the last step's staged tail (< one part, as when
    # streaming) and the manifest
    assert counting.uploaded[dest] <= len(copied) - copied_bytes + 5 * MiB + 64 * 1024
    readers = [r for r in ALL_READERS if r not in READERS_FAILING_STORED_DESCRIPTORS]
    _check_readers(copied, objects, readers)


@pytest.mark.parametrize("checksums", [True, False])
def test_auto_copies_compressed_objects_with_their_crc_up_front(s3, bucket_factory, monkeypatch, checksums):
    """`auto`: a large object compressed already (by its name or type) is copied as a
    STORED entry with CRC and sizes in its local header (streaming readers too accept
    it); the CRC is S3's full-object checksum, or one read-only pass when S3 has none.
    Another large object is deflated, streamed, as before."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    rnd = random.Random(3)
    objects = {
        "a.txt": b"small text " * 300,
        "video.mp4": rnd.randbytes(16 * MiB + 5),
        "big.log": b"".join(b"line %d of the log\n" % i for i in range(600_000)),  # ~11 MiB
    }
    _seed(s3, source, objects, checksums)
    counting = CountingS3(s3)
    monkeypatch.setattr(server_copy, "COPY_MIN_BYTES", 8 * MiB)
    with s3_copy_fidelity(), tempfile.TemporaryDirectory() as state_dir:
        archive(counting, LocalStateStore(state_dir), dest_key="auto.zip", **_common(source, dest))
    data = fetch(s3, dest, "auto.zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        video, log = zf.getinfo("video.mp4"), zf.getinfo("big.log")
        assert video.compress_type == zipfile.ZIP_STORED and not video.flag_bits & 0x08
        assert log.compress_type == zipfile.ZIP_DEFLATED
    copied = counting.copied[dest]
    assert counting.calls["upload_part_copy"] >= 2 and copied >= 10 * MiB
    video_size = len(objects["video.mp4"])
    # big.log: streamed; video.mp4: top-up and remainder, plus the pass when S3 keeps no
    # CRC-32 of it.
    expected = len(objects["a.txt"]) + len(objects["big.log"]) + video_size - copied
    assert counting.read[source] == expected + (0 if checksums else video_size)
    _check_readers(data, objects)


def test_a_step_stopping_or_dying_inside_a_copied_entry_resumes(s3, dynamodb, state_table, bucket_factory, monkeypatch):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = _objects()
    _seed(s3, source, objects, checksums=True)
    # concurrency 1: one copied part per batch, so steps stop between copied parts
    fields = _common(source, dest, compression="store", concurrency=1)
    streamed = _streamed(s3, monkeypatch, "streamed.zip", **fields)
    store = DynamoStateStore(state_table, client=dynamodb)
    request = ArchiveRequest.create(dest_key="resumed.zip", step_bytes=2 * MiB, **fields)
    run_id = engine.start_run(s3, store, request).run_id
    inside, crashed = [], 0
    with s3_copy_fidelity():
        dies = _DiesAtCopy(s3, at=2)  # the step making the run's 2nd copy dies in it
        while True:
            try:
                if engine.run_step(dies, store, run_id, Deadline(None)).done:
                    break
            except _Crash:
                crashed += 1
                continue
            state = store.load(run_id)
            entry = state.open_entry
            if entry is not None and entry.copy is not None:
                inside.append((entry.listed.key, entry.bytes_read, state.tail.length))
        while not isinstance(engine.finish_run(s3, store, run_id, Deadline(None)), ArchiveResult):
            pass
    assert crashed == 1
    assert fetch(s3, dest, "resumed.zip") == streamed
    # steps ended inside copied entries, at part boundaries between copied parts too
    assert any(key == "big.bin" and 5 * MiB < read < 15 * MiB and tail == 0 for key, read, tail in inside)


class _Crash(Exception):
    pass


class _DiesAtCopy:
    """Raises _Crash (the process dying) at its `at`-th UploadPartCopy call (0: never)."""

    def __init__(self, client, at: int):
        self._client, self._at, self._copies = client, at, 0

    def __getattr__(self, name):
        target = getattr(self._client, name)
        if name != "upload_part_copy":
            return target

        def call(**kwargs):
            self._copies += 1
            if self._copies == self._at:
                raise _Crash("died in upload_part_copy")
            return target(**kwargs)

        return call


class _FlakyCopy(_DiesAtCopy):
    def __getattr__(self, name):
        target = getattr(self._client, name)
        if name != "upload_part_copy":
            return target

        def call(**kwargs):
            raise EndpointConnectionError(endpoint_url="https://injected/upload_part_copy")

        return call


def test_a_transient_copy_fault_suspends_and_the_run_resumes(s3, bucket_factory, monkeypatch):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = _objects()
    _seed(s3, source, objects, checksums=True)
    fields = _common(source, dest, compression="store")
    streamed = _streamed(s3, monkeypatch, "streamed.zip", **fields)
    with tempfile.TemporaryDirectory() as state_dir:
        store = LocalStateStore(state_dir)
        run_id = engine.start_run(s3, store, ArchiveRequest.create(dest_key="t.zip", **fields)).run_id
        with pytest.raises(RetryableError, match=r"copy bytes .* into part \d+ of s3://.*t\.zip from s3://.*big\.bin"):
            engine.run_step(_FlakyCopy(s3, 0), store, run_id, Deadline(None))
        assert engine.suspend_run(store, run_id, "transient faults outlasted the retries").suspended
        assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=dest).get("Uploads", [])] == ["t.zip"]
        engine.resume_run(s3, store, run_id)
        while not engine.run_step(s3, store, run_id, Deadline(None)).done:
            pass
        while not isinstance(engine.finish_run(s3, store, run_id, Deadline(None)), ArchiveResult):
            pass
    assert fetch(s3, dest, "t.zip") == streamed


class _ChangesSource:
    """Replaces the source object (same size, other bytes) just before the first copy."""

    def __init__(self, client, bucket: str, key: str):
        self._client, self._bucket, self._key, self._done = client, bucket, key, False

    def __getattr__(self, name):
        target = getattr(self._client, name)
        if name != "upload_part_copy":
            return target

        def call(**kwargs):
            if not self._done and kwargs["CopySource"]["Key"] == self._key:
                self._done = True
                size = self._client.head_object(Bucket=self._bucket, Key=self._key)["ContentLength"]
                self._client.put_object(Bucket=self._bucket, Key=self._key, Body=b"x" * size)
            return target(**kwargs)

        return call


@pytest.mark.parametrize("if_match", [True, False])  # S3 refuses the copy; moto copies, the CRC read refuses
def test_a_source_changed_mid_copy_is_truncated_and_reported(s3, bucket_factory, monkeypatch, if_match):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = _objects()
    _seed(s3, source, objects, checksums=True)
    monkeypatch.setattr(server_copy, "COPY_MIN_BYTES", 8 * MiB)
    fields = _common(source, dest, compression="store")
    changing = _ChangesSource(s3, source, "big.bin")
    with s3_copy_fidelity(if_match=if_match, crc=False), tempfile.TemporaryDirectory() as state_dir:
        archive(changing, LocalStateStore(state_dir), dest_key="c.zip", **fields)
    data = fetch(s3, dest, "c.zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        big = zf.getinfo("big.bin")
        assert big.comment.decode().startswith(TRUNCATED_MARK)
        assert zf.read(big) == objects["big.bin"][: big.file_size] and big.file_size < len(objects["big.bin"])
        for name in objects.keys() - {"big.bin"}:
            assert zf.read(name) == objects[name]
    skipped = [line for line in manifest(s3, dest, "c.zip") if line["type"] == "skipped"]
    assert [line["key"] for line in skipped] == ["big.bin"] and "changed after listing" in skipped[0]["reason"]


def test_a_source_changed_mid_copy_fails_a_strict_run(s3, bucket_factory, monkeypatch):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    _seed(s3, source, _objects(), checksums=True)
    monkeypatch.setattr(server_copy, "COPY_MIN_BYTES", 8 * MiB)
    changing = _ChangesSource(s3, source, "big.bin")
    with (
        s3_copy_fidelity(),
        tempfile.TemporaryDirectory() as state_dir,
        pytest.raises(ObjectChanged, match="big.bin"),
    ):
        archive(
            changing,
            LocalStateStore(state_dir),
            dest_key="s.zip",
            strict=True,
            **_common(source, dest, compression="store"),
        )
    assert s3.list_multipart_uploads(Bucket=dest).get("Uploads", []) == []


class _StaleLoad:
    def __init__(self, store, old):
        self._store, self._old = store, old

    def load(self, run_id):
        import copy

        return copy.deepcopy(self._old)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_a_zombie_step_copies_nothing(s3, dynamodb, state_table, bucket_factory, monkeypatch):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    _seed(s3, source, _objects(), checksums=True)
    monkeypatch.setattr(server_copy, "COPY_MIN_BYTES", 8 * MiB)
    store = DynamoStateStore(state_table, client=dynamodb)
    fields = _common(source, dest, compression="store", concurrency=1)
    run_id = engine.start_run(s3, store, ArchiveRequest.create(dest_key="z.zip", step_bytes=MiB, **fields)).run_id
    with s3_copy_fidelity():
        while True:  # up to a commit at a part boundary inside a copied entry
            engine.run_step(s3, store, run_id, Deadline(None))
            before = store.load(run_id)
            entry = before.open_entry
            if entry is not None and entry.copy is not None and before.tail.length == 0:
                break
        engine.run_step(s3, store, run_id, Deadline(None))  # the retry that won
        zombie = CountingS3(s3)
        with pytest.raises(StaleState):
            engine.run_step(zombie, _StaleLoad(store, before), run_id, Deadline(None))
    assert zombie.calls["upload_part_copy"] == 0 and zombie.calls["upload_part"] == 0
    assert store.load(run_id).version == before.version + 1


@pytest.mark.parametrize("checksums", [True, False])
def test_an_entry_with_known_sizes_is_the_streamed_one_too(s3, bucket_factory, monkeypatch, checksums):
    """Objects just under 4 GiB (straddles_zip32) are stored with CRC and sizes in the local
    header, streamed or copied; the copied one takes the CRC from S3's checksum or one
    read-only pass, and the archive is the streamed one byte for byte. (4 GiB made small.)"""
    import bucketzip.records as records

    monkeypatch.setattr(records, "ZIP32_MAX", 12 * MiB)
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = {"a.txt": b"first", "edge.bin": random.Random(5).randbytes(12_580_000), "b.txt": b"last"}
    assert records.straddles_zip32(len(objects["edge.bin"]))
    _seed(s3, source, objects, checksums)
    fields = _common(source, dest, compression="store")
    streamed = _streamed(s3, monkeypatch, "streamed.zip", **fields)
    counting = CountingS3(s3)
    with s3_copy_fidelity(), tempfile.TemporaryDirectory() as state_dir:
        archive(counting, LocalStateStore(state_dir), dest_key="copied.zip", **fields)
    copied = fetch(s3, dest, "copied.zip")
    assert copied == streamed
    with zipfile.ZipFile(io.BytesIO(copied)) as zf:
        assert not zf.getinfo("edge.bin").flag_bits & 0x08  # no descriptor
    assert counting.copies == {"edge.bin": 1}
    edge, placed = len(objects["edge.bin"]), counting.copied[dest]
    small = len(objects["a.txt"]) + len(objects["b.txt"])
    assert counting.read[source] == small + edge - placed + (0 if checksums else edge)
    _check_readers(copied, objects)


def test_a_copy_needing_a_crc_pass_waits_for_a_step_with_time_for_it(s3, bucket_factory, monkeypatch, tmp_path):
    import bucketzip.writer as writer

    monkeypatch.setattr(writer, "CRC_PASS_BYTES_PER_SECOND", 1.0)  # never time enough in a used step
    monkeypatch.setattr(server_copy, "COPY_MIN_BYTES", 8 * MiB)
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = {"0.txt": b"first", "v.mp4": os.urandom(11 * MiB), "w.txt": b"last"}
    _seed(s3, source, objects, checksums=False)
    store = LocalStateStore(tmp_path / "state")
    run_id = engine.start_run(s3, store, ArchiveRequest.create(dest_key="w.zip", **_common(source, dest))).run_id
    progress = engine.run_step(s3, store, run_id, Deadline(600))
    assert progress.objects == 1 and not progress.done  # stopped before v.mp4, not inside it
    assert store.load(run_id).open_entry is None
    with s3_copy_fidelity():
        progress = engine.run_step(s3, store, run_id, Deadline(600))
    assert progress.objects == 3 and progress.done  # a fresh step takes it


def test_segments_copy_large_objects_into_the_archive_upload(s3, bucket_factory, monkeypatch):
    """workers > 1: each segment run is the same step loop, so its large stored objects are
    copied into its part range of the archive's upload; but a segment's last part must be
    5 MiB at least, so the last 5 MiB of a copied object are streamed (its next part may
    be the segment's last). Shards of 17, 22 and 11 MiB: big.bin (17 MiB) is topped up,
    copied for one part and its last 7 MiB streamed; video.mp4 (13 MiB) and z.bin (11 MiB)
    have no whole part left after the top-up and those 5 MiB: streamed. Every segment is
    over 5 MiB, so the archive is the streamed one-worker archive byte for byte."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    objects = _objects()
    _seed(s3, source, objects, checksums=True)
    streamed = _streamed(s3, monkeypatch, "s.zip", **_common(source, dest, compression="store"))
    monkeypatch.setattr(server_copy, "COPY_MIN_BYTES", 8 * MiB)
    counting = CountingS3(s3)
    calls = Flaky(counting)
    fields = _common(source, dest, compression="store", workers=2, shard_bytes=20 * MiB)
    with s3_copy_fidelity(), tempfile.TemporaryDirectory() as state_dir:
        archive(calls, LocalStateStore(state_dir), dest_key="p.zip", **fields)
    assert dict(counting.copies) == {"big.bin": 1}
    (copy,) = calls.named("upload_part_copy")
    assert copy["Key"] == "p.zip" and copy["PartNumber"] < FIRST_TAIL_PART
    assert counting.copied[dest] == 5 * MiB
    assert fetch(s3, dest, "p.zip") == streamed


def test_an_archived_large_object_is_skipped_as_when_streaming(s3, bucket_factory, monkeypatch):
    """A GLACIER object cannot be read nor copied until restored: it is streamed, i.e.
    skipped with the reason, not copied (a copy would fail the run)."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    monkeypatch.setattr(server_copy, "COPY_MIN_BYTES", 8 * MiB)
    s3.put_object(Bucket=source, Key="a.txt", Body=b"warm")
    s3.put_object(Bucket=source, Key="cold.bin", Body=os.urandom(11 * MiB), StorageClass="GLACIER")
    counting = CountingS3(s3)
    with tempfile.TemporaryDirectory() as state_dir:
        result, _ = archive(
            counting, LocalStateStore(state_dir), dest_key="g.zip", **_common(source, dest, compression="store")
        )
    assert result.entries == 1 and result.skipped == 1 and counting.calls["upload_part_copy"] == 0
    skipped = [line for line in manifest(s3, dest, "g.zip") if line["type"] == "skipped"]
    assert [line["key"] for line in skipped] == ["cold.bin"] and "not restored" in skipped[0]["reason"]
