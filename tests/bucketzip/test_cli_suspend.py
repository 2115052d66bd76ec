"""No lost run (issue 8, items 4-7 and the small CLI items): a body that breaks mid-GET is
read again in the same step; faults that outlast the retries suspend the run (exit 75,
the resume command printed, everything kept); resume goes on from any phase and needs no
SRC/DEST; a second process on the same run stops at once and touches nothing."""

from __future__ import annotations

import re
import threading

import pytest
from botocore.exceptions import ResponseStreamingError

from bucketzip import cli, engine
from bucketzip.clients import s3_client
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.results import ArchiveResult
from bucketzip.state import COMPLETING, FINISHING
from bucketzip.store_local import LocalStateStore
from support.archiving import contents_by_key, entry_differences, fetch
from support.seed import all_keys, list_multipart_uploads, seed_bucket

KIB = 1024
OBJECTS = {f"d/{i:02d}.txt": (b"line %d\n" % i) * (3000 + 500 * i) for i in range(6)}


@pytest.fixture
def buckets(s3, bucket_factory):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, OBJECTS)
    return source, dest


class _BreakingBody:
    def __init__(self, body):
        self.body = body

    def read(self, *args, **kwargs):
        self.body.read(100)  # some bytes arrive, then the connection resets
        raise ResponseStreamingError(error=ConnectionResetError(104, "Connection reset by peer"))


def breaking_client(times: int | None):
    """A real client whose GetObject bodies break mid-stream: the first `times` of them,
    or every one (None). The SDK does not retry these."""
    client = s3_client()
    broken = []
    lock = threading.Lock()

    def after_get(parsed, model, **_):
        if "Body" not in parsed:
            return
        with lock:
            if times is not None and len(broken) >= times:
                return
            broken.append(1)
        parsed["Body"] = _BreakingBody(parsed["Body"])

    client.meta.events.register("after-call.s3.GetObject", after_get)
    client.broken = broken  # type: ignore[attr-defined]
    return client


def _run_id(err: str) -> str:
    return re.search(r"run (\S+) started", err).group(1)


def test_a_body_broken_mid_get_is_read_again_in_the_same_step(s3, buckets, run_cli):
    """Before: one ResponseStreamingError aborted the whole run (exit 1)."""
    source, dest = buckets
    client = breaking_client(times=3)
    code, _, err = run_cli("archive", f"s3://{source}/d/", f"s3://{dest}/a.zip", "--chunk-size", "64KiB", client=client)
    assert code == 0, err
    assert len(client.broken) == 3
    assert contents_by_key(s3, dest, "a.zip") == OBJECTS
    code, _, _ = run_cli("archive", f"s3://{source}/d/", f"s3://{dest}/clean.zip", "--chunk-size", "64KiB")
    resumed, clean = fetch(s3, dest, "a.zip"), fetch(s3, dest, "clean.zip")
    assert resumed == clean, entry_differences(resumed, clean)


def test_faults_outlasting_the_retries_suspend_and_resume_finishes(s3, buckets, run_cli, state_dir):
    """Before: the run was aborted and its work thrown away (issue 8, item 5)."""
    source, dest = buckets
    argv = ("archive", f"s3://{source}/d/", f"s3://{dest}/a.zip", "--chunk-size", "64KiB", "--step-bytes", "20KiB")
    argv += ("--compression", "store")
    code, _, err = run_cli(*argv, client=breaking_client(times=None))
    run_id = _run_id(err)
    assert code == cli.EXIT_SUSPENDED, err
    assert f"run {run_id} is suspended" in err and f"bucketzip archive --resume {run_id}" in err
    assert "ResponseStreamingError" in err or "broke" in err
    assert len(list_multipart_uploads(s3, dest)) == 1  # the upload is kept
    assert LocalStateStore(state_dir).load(run_id).suspended  # marked: cleanup must keep it
    code, _, err = run_cli("archive", "--resume", run_id)
    assert code == 0, err
    assert contents_by_key(s3, dest, "a.zip") == OBJECTS
    assert list_multipart_uploads(s3, dest) == []
    assert not LocalStateStore(state_dir).run_ids()


def _started_run(s3, state_dir, source, dest, **fields):
    store = LocalStateStore(state_dir)
    request = ArchiveRequest.create(
        source_bucket=source,
        source_prefix="d/",
        dest_bucket=dest,
        dest_key="a.zip",
        chunk_size="64KiB",
        compression="store",
        **fields,
    )
    return store, engine.start_run(s3, store, request).run_id


@pytest.mark.timeout(60)
def test_resume_in_finishing_makes_progress(s3, buckets, run_cli, state_dir):
    """Before: resuming a run interrupted in `finishing` looped forever."""
    source, dest = buckets
    store, run_id = _started_run(s3, state_dir, source, dest, step_bytes=20 * KIB)
    while not engine.run_step(s3, store, run_id, Deadline(None)).done:
        pass
    assert not isinstance(engine.finish_run(s3, store, run_id, Deadline(0)), ArchiveResult)
    assert store.load(run_id).phase == FINISHING
    code, _, err = run_cli("archive", "--resume", run_id)
    assert code == 0, err
    assert contents_by_key(s3, dest, "a.zip") == OBJECTS


def test_finish_makes_progress_whatever_the_deadline(s3, buckets, state_dir):
    """Before: with an expired deadline every Finish call added the fragment the next one
    read (version 1599 after 60 s on 5 objects)."""
    source, dest = buckets
    store, run_id = _started_run(s3, state_dir, source, dest, step_bytes=10 * KIB)
    steps = 0
    while not engine.run_step(s3, store, run_id, Deadline(None)).done:
        steps += 1
    calls = 1
    while not isinstance(engine.finish_run(s3, store, run_id, Deadline(0)), ArchiveResult):
        calls += 1
        assert calls <= steps + 3, "Finish does not make progress"
    assert contents_by_key(s3, dest, "a.zip") == OBJECTS


@pytest.mark.parametrize("seconds", ["0", "-1"])
def test_non_positive_step_seconds_is_bad_usage(buckets, run_cli, seconds):
    source, dest = buckets
    code, _, err = run_cli("archive", f"s3://{source}", f"s3://{dest}/a.zip", f"--step-seconds={seconds}")
    assert code == 2 and "--step-seconds" in err


@pytest.mark.timeout(60)
def test_completing_run_resumes_to_success(s3, buckets, run_cli, state_dir):
    source, dest = buckets
    store, run_id = _started_run(s3, state_dir, source, dest)
    while not engine.run_step(s3, store, run_id, Deadline(None)).done:
        pass

    class NoComplete:
        def complete_multipart_upload(self, **kwargs):
            raise ConnectionResetError("killed before Complete")

        def __getattr__(self, name):
            return getattr(s3, name)

    with pytest.raises(ConnectionResetError):
        engine.finish_run(NoComplete(), store, run_id, Deadline(None))
    assert store.load(run_id).phase == COMPLETING
    code, _, err = run_cli("archive", "--resume", run_id)
    assert code == 0, err
    assert contents_by_key(s3, dest, "a.zip") == OBJECTS


def test_a_second_process_on_the_same_run_stops_at_once(s3, buckets, run_cli, state_dir):
    """Before: two resumes of one run destroyed it (issue 8, item 7)."""
    source, dest = buckets
    store, run_id = _started_run(s3, state_dir, source, dest, step_bytes=20 * KIB)
    engine.run_step(s3, store, run_id, Deadline(None))
    version = store.load(run_id).version
    hold = store.hold(run_id)  # the other process
    try:
        code, _, err = run_cli("archive", "--resume", run_id)
        assert code == 1 and f"run {run_id} is being resumed by another process" in err
        code, _, err = run_cli("abort", run_id)
        assert code == 1 and f"run {run_id} is being resumed by another process" in err
    finally:
        hold.release()
    assert store.load(run_id).version == version
    assert len(list_multipart_uploads(s3, dest)) == 1
    code, _, err = run_cli("archive", "--resume", run_id)
    assert code == 0, err


def test_losing_a_fencing_race_is_no_reason_to_abort(s3, buckets, run_cli, state_dir):
    """A commit that loses to another writer (StaleState): exit 1 with the message, the
    run left as the winner made it (not aborted)."""
    source, dest = buckets
    client = s3_client()
    bumped = []

    def bump(params, **_):  # another process commits while this one uploads its first part
        if not bumped:
            bumped.append(1)
            store = LocalStateStore(state_dir)
            (run_id,) = store.run_ids()
            state = store.load(run_id)
            store.commit(state, state.version, None, 0)

    client.meta.events.register("before-call.s3.UploadPart", bump)
    code, _, err = run_cli("archive", f"s3://{source}/d/", f"s3://{dest}/a.zip", "--chunk-size", "64KiB", client=client)
    run_id = _run_id(err)
    assert code == 1 and f"run {run_id} is being resumed by another process" in err, err
    assert LocalStateStore(state_dir).run_ids() == [run_id]
    assert len(list_multipart_uploads(s3, dest)) == 1
    code, _, err = run_cli("archive", "--resume", run_id)
    assert code == 0, err
    assert contents_by_key(s3, dest, "a.zip") == OBJECTS


def test_resume_needs_no_src_dest_and_refuses_changes(s3, buckets, run_cli, state_dir, bucket_factory):
    source, dest = buckets
    store, run_id = _started_run(s3, state_dir, source, dest, step_bytes=20 * KIB)
    other = bucket_factory("other")
    for extra, needle in [
        ((f"s3://{other}", f"s3://{dest}/a.zip"), "SRC"),
        ((f"s3://{source}/d/", f"s3://{dest}/b.zip"), "DEST"),
        (("--compression", "deflate"), "compression"),
        (("--chunk-size", "1MiB"), "chunk"),
        (("--overwrite",), "overwrite"),
    ]:
        code, _, err = run_cli("archive", "--resume", run_id, *extra)
        assert code == 2 and needle in err and "a resumed run keeps" in err, (extra, err)
    code, _, err = run_cli(
        "archive", f"s3://{source}/d/", f"s3://{dest}/a.zip", "--resume", run_id, "--chunk-size", "64KiB"
    )
    assert code == 0, err  # the same SRC/DEST and options are fine
    assert contents_by_key(s3, dest, "a.zip") == OBJECTS


def test_small_items(s3, buckets, run_cli, state_dir):
    source, dest = buckets
    code, _, err = run_cli("abort", "NO-SUCH-RUN")
    assert code == 1 and "no run NO-SUCH-RUN" in err
    code, _, err = run_cli("archive", "--resume", "NO-SUCH-RUN")
    assert code == 1 and "no run NO-SUCH-RUN" in err
    code, _, err = run_cli("archive", f"s3://{source}/d/", f"s3://{dest}/a.zip")
    assert code == 0 and re.search(r"run \S+ started", err)
    code, _, err = run_cli("archive", f"s3://{source}/d/")
    assert code == 2 and "DEST" in err
    assert all_keys(s3, dest) == ["a.zip", "a.zip.manifest.jsonl"]
