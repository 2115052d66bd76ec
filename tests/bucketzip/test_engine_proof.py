"""No false success: a run reports success only when the object at its key is provably its
archive (run id in the metadata, size, and S3's full-object CRC-32 or the multipart ETag),
and Complete is conditional, so that of two runs to one key exactly one wins."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.stub import Stubber

from bucketzip import engine, finish
from bucketzip.checksums import crc32_header, multipart_etag
from bucketzip.clients import s3_client
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.driver import run_to_completion
from bucketzip.errors import BucketzipError, DestinationExists, IntegrityError
from bucketzip.results import ArchiveResult
from bucketzip.state import COMPLETING, RunState
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, fetch, manifest
from support.seed import all_keys, list_multipart_uploads, seed_bucket

KIB = 1024


class FailingComplete:
    """A real client whose CompleteMultipartUpload always fails with `code`; the rest is real."""

    def __init__(self, client, code: str, status: int):
        self._client, self._code, self._status = client, code, status
        self.completes: list[dict] = []

    def complete_multipart_upload(self, **kwargs):
        self.completes.append(kwargs)
        raise ClientError(
            {
                "Error": {"Code": self._code, "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": self._status},
            },
            "CompleteMultipartUpload",
        )

    def __getattr__(self, name):
        return getattr(self._client, name)


def _drive(s3, store, run_id: str) -> ArchiveResult:
    return run_to_completion(s3, store, run_id=run_id).result


@pytest.mark.parametrize("code, status", [("InternalError", 500), ("NoSuchUpload", 404), ("InvalidPart", 400)], ids=str)
def test_overwrite_of_a_same_size_archive_with_failing_complete_is_no_success(
    s3, bucket_factory, tmp_path, code, status
):
    """Before: Finish took "an object of the expected size exists" as proof and reported
    success while the OLD archive stayed (issue 8, item 1)."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {f"o{i}": os.urandom(3 * KIB) for i in range(4)})
    store = LocalStateStore(tmp_path / "state")
    fields = dict(source_bucket=source, dest_bucket=dest, dest_key="a.zip", compression="store", part_size="5MiB")
    archive(s3, store, **fields)
    old, old_manifest = fetch(s3, dest, "a.zip"), fetch(s3, dest, "a.zip.manifest.jsonl")
    seed_bucket(s3, source, {f"o{i}": os.urandom(3 * KIB) for i in range(4)})  # same sizes, new bytes
    failing = FailingComplete(s3, code, status)
    run_id = engine.start_run(failing, store, ArchiveRequest.create(overwrite=True, **fields)).run_id
    with pytest.raises(BucketzipError):
        _drive(failing, store, run_id)
    assert failing.completes, "Complete was never tried"
    assert fetch(s3, dest, "a.zip") == old
    assert fetch(s3, dest, "a.zip.manifest.jsonl") == old_manifest
    assert store.load(run_id).phase == COMPLETING  # not reported complete; resumable or abortable
    engine.abort_run(s3, store, run_id)
    assert list_multipart_uploads(s3, dest) == []


def test_two_runs_to_one_key_exactly_one_wins(s3, bucket_factory, tmp_path):
    """Both runs pass the start check (the key is free), both archive; the second Complete
    is refused (IfNoneMatch="*"), the loser fails with DestinationExists and, aborted,
    leaves nothing; the archive and the manifest are the winner's (issue 8, item 2)."""
    first, second, dest = bucket_factory("one"), bucket_factory("two"), bucket_factory("dst")
    seed_bucket(s3, first, {"a": b"first" * 1000})
    seed_bucket(s3, second, {"b": b"second" * 1000})
    store = LocalStateStore(tmp_path / "state")
    runs = [
        engine.start_run(s3, store, ArchiveRequest.create(source_bucket=src, dest_bucket=dest, dest_key="k.zip")).run_id
        for src in (first, second)
    ]
    for run_id in runs:
        while not engine.run_step(s3, store, run_id, Deadline(None)).done:
            pass
    winner = _drive(s3, store, runs[0])
    with pytest.raises(DestinationExists, match="another run to the same key won"):
        _drive(s3, store, runs[1])
    engine.abort_run(s3, store, runs[1])
    assert winner.key == "k.zip"
    assert [line["key"] for line in manifest(s3, dest, "k.zip") if line["type"] == "entry"] == ["a"]
    assert list_multipart_uploads(s3, dest) == []
    assert sorted(all_keys(s3, dest)) == ["k.zip", "k.zip.manifest.jsonl"]
    assert store.run_ids() == []


def test_two_concurrent_runs_to_one_key(s3, bucket_factory, tmp_path):
    """Started together in threads: exactly one succeeds, the other fails cleanly."""
    sources = [bucket_factory(f"s{i}") for i in range(2)]
    dest = bucket_factory("dst")
    for i, src in enumerate(sources):
        seed_bucket(s3, src, {f"x{j}": os.urandom(20 * KIB) + bytes([i]) for j in range(6)})
    outcomes: list = [None, None]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        store = LocalStateStore(tmp_path / f"state{i}")
        barrier.wait()
        try:
            outcomes[i] = archive(
                s3, store, source_bucket=sources[i], dest_bucket=dest, dest_key="k.zip", step_bytes=30 * KIB
            )[0]
        except BucketzipError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [o for o in outcomes if isinstance(o, ArchiveResult)]
    lost = [o for o in outcomes if isinstance(o, DestinationExists)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    entries = [line["key"] for line in manifest(s3, dest, "k.zip") if line["type"] == "entry"]
    assert len(entries) == 6 and fetch(s3, dest, "k.zip") and len(fetch(s3, dest, "k.zip")) == won[0].size
    assert list_multipart_uploads(s3, dest) == []
    assert sorted(all_keys(s3, dest)) == ["k.zip", "k.zip.manifest.jsonl"]


def test_overwrite_completes_on_the_checked_etag_only(s3, bucket_factory, tmp_path):
    """IfMatch on the ETag seen at start: a second overwrite run to the key cannot replace
    what the first wrote (the emulator does not enforce IfMatch; the call is checked)."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a": b"a" * 100})
    s3.put_object(Bucket=dest, Key="k.zip", Body=b"old")
    old_etag = s3.head_object(Bucket=dest, Key="k.zip")["ETag"]
    calls = FailingComplete(s3, "PreconditionFailed", 412)
    store = LocalStateStore(tmp_path / "state")
    request = ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key="k.zip", overwrite=True)
    run_id = engine.start_run(calls, store, request).run_id
    with pytest.raises(DestinationExists):
        _drive(calls, store, run_id)
    assert calls.completes[0]["IfMatch"] == old_etag and "IfNoneMatch" not in calls.completes[0]
    assert calls.completes[0]["ChecksumType"] == "FULL_OBJECT"
    engine.abort_run(s3, store, run_id)
    assert fetch(s3, dest, "k.zip") == b"old"


def test_a_wrong_crc_the_emulator_accepts_is_caught_by_the_proof(s3, bucket_factory, tmp_path):
    """moto completes whatever CRC it is sent; HeadObject reports the true one, so a run
    whose recorded CRC is not the archive's bytes' is no success."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a": b"a" * 100})
    store = LocalStateStore(tmp_path / "state")
    run_id = engine.start_run(
        s3, store, ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key="k.zip")
    ).run_id
    while not engine.run_step(s3, store, run_id, Deadline(None)).done:
        pass
    state = store.load(run_id)
    state.crc ^= 1
    store.commit(state, state.version, None, 0)
    with pytest.raises(IntegrityError, match="not this run's archive"):
        _drive(s3, store, run_id)


# -- S3's side, with botocore's Stubber: refusal of a wrong CRC, SSE-KMS ETags -----------


def _completing_state(parts: list[list]) -> RunState:
    request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="k.zip")
    return RunState(
        run_id="R1",
        request=request,
        upload_id="U1",
        started_at=0.0,
        phase=COMPLETING,
        offset=sum(p[2] for p in parts),
        crc=0x1234ABCD,
        marked=True,
        next_part=len(parts) + 1,
    )


PARTS = [[1, '"' + "a" * 32 + '"', 5 * 1024 * KIB, 7], [2, '"' + "b" * 32 + '"', 10, 8]]


def _stubbed(head: dict | None, complete_error: str | None):
    client = s3_client("http://127.0.0.1:1")
    stubber = Stubber(client)
    stubber.add_response(
        "list_parts",
        {"Parts": [{"PartNumber": n, "ETag": etag} for n, etag, *_ in PARTS], "IsTruncated": False},
        {"Bucket": "dst", "Key": "k.zip", "UploadId": "U1"},
    )
    expected_complete = {
        "Bucket": "dst",
        "Key": "k.zip",
        "UploadId": "U1",
        "MultipartUpload": {
            "Parts": [
                {"PartNumber": 1, "ETag": PARTS[0][1], "ChecksumCRC32": crc32_header(7)},
                {"PartNumber": 2, "ETag": PARTS[1][1], "ChecksumCRC32": crc32_header(8)},
            ]
        },
        "IfNoneMatch": "*",
        "ChecksumCRC32": crc32_header(0x1234ABCD),
        "ChecksumType": "FULL_OBJECT",
    }
    if complete_error:
        stubber.add_client_error(
            "complete_multipart_upload", complete_error, "refused", 400, expected_params=expected_complete
        )
    else:
        stubber.add_response("complete_multipart_upload", {"ETag": '"x-2"'}, expected_complete)
    head_params = {"Bucket": "dst", "Key": "k.zip", "ChecksumMode": "ENABLED"}
    if head is None:
        stubber.add_client_error("head_object", "404", "Not Found", 404, expected_params=head_params)
    else:
        stubber.add_response("head_object", head, head_params)
    stubber.activate()
    return client, stubber


def test_s3_refusing_a_wrong_crc_at_complete_is_no_success():
    client, stubber = _stubbed(head=None, complete_error="BadDigest")
    with pytest.raises(BucketzipError, match="BadDigest"):
        engine._complete(client, _completing_state(PARTS), PARTS)
    stubber.assert_no_pending_responses()


def test_sse_kms_archive_is_proven_by_its_crc():
    """SSE-KMS part and object ETags are no MD5s: the full-object CRC-32 proves it."""
    size = sum(p[2] for p in PARTS)
    head = {
        "ETag": '"0123456789abcdef0123456789abcdef-2"',
        "ContentLength": size,
        "ChecksumCRC32": crc32_header(0x1234ABCD),
        "ChecksumType": "FULL_OBJECT",
        "Metadata": {finish.RUN_METADATA: "R1"},
        "ServerSideEncryption": "aws:kms",
    }
    client, stubber = _stubbed(head=head, complete_error=None)
    assert engine._complete(client, _completing_state(PARTS), PARTS) == head["ETag"]
    client, stubber = _stubbed(head={**head, "ChecksumCRC32": crc32_header(1)}, complete_error=None)
    with pytest.raises(IntegrityError):
        engine._complete(client, _completing_state(PARTS), PARTS)
    client, stubber = _stubbed(head={**head, "Metadata": {finish.RUN_METADATA: "R2"}}, complete_error=None)
    with pytest.raises(DestinationExists):  # same bytes, another run's object
        engine._complete(client, _completing_state(PARTS), PARTS)


class LostCompleteAnswer:
    """Complete succeeds in S3, then the connection drops before the answer arrives."""

    def __init__(self, client):
        self._client, self.raised = client, False

    def complete_multipart_upload(self, **kwargs):
        self._client.complete_multipart_upload(**kwargs)
        self.raised = True
        raise ReadTimeoutError(endpoint_url="https://s3.example")

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_lost_complete_answer_is_proven_on_retry(s3, bucket_factory, tmp_path):
    """Complete worked but its answer is lost: the key holds this run's archive, which the
    proof shows (a retried conditional Complete would be refused)."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a": b"a" * 100, "b": os.urandom(1000)})
    store = LocalStateStore(tmp_path / "state")
    request = ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key="k.zip")
    run_id = engine.start_run(s3, store, request).run_id
    lost = LostCompleteAnswer(s3)
    result = _drive(lost, store, run_id)
    assert lost.raised
    assert result.etag == s3.head_object(Bucket=dest, Key="k.zip")["ETag"]
    assert len(fetch(s3, dest, "k.zip")) == result.size


def test_multipart_etag():
    assert multipart_etag(['"' + "0" * 32 + '"']) == '"' + hashlib.md5(bytes(16)).hexdigest() + '-1"'
    assert multipart_etag(['"not-an-md5"']) is None


def test_a_leftover_manifest_is_refused_at_start_unless_overwrite(s3, bucket_factory, tmp_path):
    """The manifest's Complete is conditional too; a manifest left at the key (its archive
    deleted) is refused before any upload rather than failing the run at its end."""
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a": b"a"})
    s3.put_object(Bucket=dest, Key="k.zip.manifest.jsonl", Body=b"old")
    store = LocalStateStore(tmp_path / "state")
    request = ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key="k.zip")
    with pytest.raises(DestinationExists, match="manifest"):
        engine.start_run(s3, store, request)
    assert list_multipart_uploads(s3, dest) == [] and store.run_ids() == []
    archive(s3, store, source_bucket=source, dest_bucket=dest, dest_key="k.zip", overwrite=True)
    assert fetch(s3, dest, "k.zip.manifest.jsonl") != b"old"
