"""Determinism (issue 8, item 10): the archive's bytes do not depend on where steps stop
or what was retried. Each seed replays the same faults (tests/support/faults.py: 503s,
GET bodies cut at seeded bytes, slow bodies), Ctrl-C at seeded chunks and around commits,
and step splits at seeded chunks, over objects that take every path of auto mode; the
archive must equal, byte for byte, the one an uninterrupted, fault-free run makes.

The default run replays a few seeds; `-m big` replays many (BUCKETZIP_DETERMINISM_SEEDS,
default 200)."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import ReadTimeoutError

from bucketzip import compress, engine
from bucketzip import fetch as fetch_module
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.errors import RetryableError
from bucketzip.results import ArchiveResult
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, contents_by_key, fetch
from support.faults import ChunkDeadline, FaultPlan, Interrupter, draw, faulty_s3_client
from support.seed import seed_bucket

KIB = 1024
CHUNK = 64 * KIB  # the smallest chunk: many chunks, steps and faults in little data


def _text(seed: int, size: int) -> bytes:
    rnd = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"log", b"INFO", b"request", b"200", b"GET", b"/v1/items"]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rnd.choice(words) for _ in range(12)) + b"\n"
    return bytes(out[:size])


def _near_threshold(seed: int, size: int) -> bytes:
    """Random bytes with 8.5% zeros: they deflate to about 97% of their size, so auto
    mode's decision (INCOMPRESSIBLE_RATIO) sits on the edge."""
    rnd = random.Random(seed)
    return bytes(0 if rnd.random() < 0.085 else byte for byte in rnd.randbytes(size))


def _objects() -> dict[str, bytes]:
    rnd = random.Random(10)
    return {
        "a/text-multi.txt": _text(1, 4 * CHUNK + 1234),  # deflate, several pieces
        "b/random-multi.bin": rnd.randbytes(3 * CHUNK + 77),  # auto: stored deflate blocks (level 0)
        "c/random-single.bin": rnd.randbytes(CHUNK // 2),  # auto: stored entry (method 0)
        "d/text-then-random.log": _text(2, CHUNK) + rnd.randbytes(2 * CHUNK),  # decided on chunk 1: deflate
        "e/random-then-text.dat": rnd.randbytes(CHUNK) + _text(3, 2 * CHUNK),  # decided on chunk 1: level 0
        "f/near-threshold.bin": _near_threshold(4, 3 * CHUNK),
        "g/already.gz": _text(5, 2 * CHUNK + 5),  # by name: level 0
        "h/exact-chunk.txt": _text(6, CHUNK),
        "h/chunk-plus-one.txt": _text(7, CHUNK + 1),
        "i/empty": b"",
        "j/folder/": b"",
        "k/tiny.txt": b"tiny\n",
    }


# compression settings a seed draws from: auto (ISA-L level 1, stored blocks, stored
# entries), each backend by level (0 stored blocks, 1-3 ISA-L, 4-9 zlib-ng), store
SETTINGS = [("auto", None), ("auto", 3), ("auto", 6), ("deflate", 0), ("deflate", 2), ("deflate", 9), ("store", None)]


class InterruptedStore(LocalStateStore):
    """Ctrl-C just before or just after a seeded commit (the step is then lost, or kept)."""

    def __init__(self, directory, seed: int, p: float):
        super().__init__(directory)
        self.seed, self.p, self.commits, self.fired = seed, p, 0, 0
        self.inside = 0  # commits of a step that stopped inside an object (an open entry)

    def commit(self, state, expected_version, attempt, pieces):
        self.commits += 1
        self.inside += state.open_entry is not None
        roll = draw(self.seed, "commit", self.commits)
        if roll < self.p / 2:
            self.fired += 1
            raise KeyboardInterrupt("injected Ctrl-C before a commit")
        super().commit(state, expected_version, attempt, pieces)
        if roll < self.p:
            self.fired += 1
            raise KeyboardInterrupt("injected Ctrl-C after a commit")


# What a failed call may raise for the run to be resumed (the CLI suspends on these).
RESUMABLE: tuple[type[BaseException], ...] = (RetryableError,)


def faulted_run(endpoint: str, state_dir, request: ArchiveRequest, seed: int, tries: int = 400) -> tuple[str, Counter]:
    """Archive `request` through seeded faults, resuming after every failure as a new
    process would (state reloaded, nothing kept in memory); returns the run id and what
    happened."""
    rnd = random.Random(seed)
    plan = FaultPlan(seed, p_503=rnd.choice([0.0, 0.05, 0.15]), p_cut=rnd.choice([0.05, 0.15, 0.3]), p_slow=0.3)
    client = faulty_s3_client(plan, endpoint)
    store = InterruptedStore(state_dir, seed, p=rnd.choice([0.0, 0.1, 0.3]))
    interrupter = Interrupter(at=set(rnd.sample(range(1, 40), k=rnd.randint(0, 3))))
    run_id = engine.new_run_id()
    events: Counter = Counter()
    done = False
    for _ in range(tries):
        try:
            if not done:
                engine.start_run(client, store, request, run_id)
                progress = engine.run_step(client, store, run_id, ChunkDeadline(rnd.randint(1, 6)), interrupter)
                events["steps"] += 1
                done = progress.done
                continue
            if isinstance(engine.finish_run(client, store, run_id, Deadline(None)), ArchiveResult):
                break
        except KeyboardInterrupt:
            events["ctrl-c"] += 1
        except RESUMABLE:
            events["suspended"] += 1
    else:
        raise AssertionError(f"seed {seed}: no archive after {tries} tries ({dict(events)}, {dict(plan.injected)})")
    events.update(plan.injected)
    events["inside-object"] = store.inside
    return run_id, events


_clean: dict[tuple, bytes] = {}


def _replay(s3, moto_server, tmp_path, source: str, dest: str, seed: int) -> Counter:
    rnd = random.Random(f"settings-{seed}")
    compression, level = rnd.choice(SETTINGS)
    fields = dict(
        source_bucket=source,
        dest_bucket=dest,
        compression=compression,
        level=level,
        chunk_size=CHUNK,
        part_size="5MiB",
        page_size=rnd.randint(1, 5),
    )
    if (source, compression, level) not in _clean:
        key = f"clean-{compression}-{level}.zip"
        archive(s3, LocalStateStore(tmp_path / "clean"), dest_key=key, **fields)
        _clean[(source, compression, level)] = fetch(s3, dest, key)
    key = f"seed-{seed}.zip"
    request = ArchiveRequest.create(
        dest_key=key, concurrency=rnd.choice([1, 2, 8]), step_bytes=rnd.choice([None, 100 * KIB]), **fields
    )
    _, events = faulted_run(moto_server, tmp_path / f"state-{seed}", request, seed)
    got = fetch(s3, dest, key)
    assert got == _clean[(source, compression, level)], (
        f"seed {seed} ({compression}, level {level}): archive differs from the uninterrupted run ({dict(events)})"
    )
    return events


@pytest.fixture
def quick_rereads(monkeypatch):
    """fetch re-reads a broken body after a pause (0.2-0.8 s): no pause here, the faults
    are injected, not waited out."""
    monkeypatch.setattr(fetch_module, "time", SimpleNamespace(sleep=lambda _seconds: None))


@pytest.fixture
def source_and_dest(s3, bucket_factory):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, _objects())
    return source, dest


def test_seeded_faults_ctrl_c_and_step_splits_give_the_uninterrupted_archive(
    s3, moto_server, tmp_path, source_and_dest, quick_rereads
):
    source, dest = source_and_dest
    totals: Counter = Counter()
    for seed in range(3):
        totals += _replay(s3, moto_server, tmp_path, source, dest, seed)
    # the replay did strike: every kind of fault, and resumes after them
    for kind in ("503", "cut", "slow", "ctrl-c", "suspended", "inside-object"):
        assert totals[kind] > 0, f"no {kind} in {dict(totals)}"
    assert totals["steps"] > 20
    extracted = contents_by_key(s3, dest, "seed-0.zip")
    assert extracted == _objects()


@pytest.mark.big
@pytest.mark.timeout(3600)
def test_many_seeds(s3, moto_server, tmp_path, source_and_dest, quick_rereads):
    source, dest = source_and_dest
    seeds = int(os.environ.get("BUCKETZIP_DETERMINISM_SEEDS", "200"))
    totals: Counter = Counter()
    for seed in range(seeds):
        totals += _replay(s3, moto_server, tmp_path, source, dest, seed)
        s3.delete_object(Bucket=dest, Key=f"seed-{seed}.zip")
        s3.delete_object(Bucket=dest, Key=f"seed-{seed}.zip.manifest.jsonl")
    print(f"{seeds} seeds: {dict(totals)}")


class _AnswerLost(LocalStateStore):
    """The first commit is written, then its answer is lost (as a DynamoDB write whose
    response times out, or Ctrl-C right after it)."""

    lost = False

    def commit(self, state, expected_version, attempt, pieces):
        super().commit(state, expected_version, attempt, pieces)
        if not self.lost:
            self.lost = True
            raise ReadTimeoutError(endpoint_url="https://injected/state-store")


def test_a_start_whose_commit_landed_keeps_its_upload(s3, tmp_path, source_and_dest):
    """Found by the replay (a Ctrl-C just after Start's commit): Start aborted the upload
    its state already named, and every later UploadPart failed (NoSuchUpload): the run
    was lost. Before: the list_parts below raised NoSuchUpload."""
    source, dest = source_and_dest
    store = _AnswerLost(tmp_path / "state")
    request = ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key="a.zip", part_size="5MiB")
    run_id = engine.new_run_id()
    with pytest.raises(ReadTimeoutError):
        engine.start_run(s3, store, request, run_id)
    upload_id = store.load(run_id).upload_id
    s3.list_parts(Bucket=dest, Key="a.zip", UploadId=upload_id)  # still there
    engine.start_run(s3, store, request, run_id)  # the retried Start
    assert store.load(run_id).upload_id == upload_id
    while not engine.run_step(s3, store, run_id, Deadline(None)).done:
        pass
    assert isinstance(engine.finish_run(s3, store, run_id, Deadline(None)), ArchiveResult)
    assert contents_by_key(s3, dest, "a.zip") == _objects()


def test_each_backend_compresses_a_chunk_to_the_same_bytes_wherever_it_lies_and_runs():
    """A piece depends only on the chunk's bytes and the level: not on the memory around
    the chunk (a backend reading past its input), on its alignment, or on the thread and
    what the other threads compress at the same time (shared backend state)."""
    rnd = random.Random(11)
    chunks = [_text(8, 3 * CHUNK + 5), rnd.randbytes(CHUNK), _near_threshold(9, CHUNK), _text(10, 1000)]
    jobs = []
    for level in range(10):  # 0 stored blocks, 1-3 ISA-L, 4-9 zlib-ng
        for data in chunks:
            before = rnd.randrange(64)
            around = bytearray(rnd.randbytes(before)) + data + rnd.randbytes(64)
            jobs.append((level, data, memoryview(around)[before : before + len(data)]))
    with ThreadPoolExecutor(8) as pool:
        pieces = list(pool.map(lambda job: compress.deflate_piece(job[2], job[0]), jobs * 3))
    for (level, data, _), piece in zip(jobs * 3, pieces, strict=True):
        assert piece == compress.deflate_piece(data, level), f"level {level} ({compress.backend_name(level)})"
        assert zlib.decompress(piece + compress.FINAL_BLOCK, -15) == data


def _cli(argv: list[str], env: dict, interrupt_after: float | None) -> tuple[int, str]:
    """The command in a fresh process (its own hash seed, memory and threads); SIGINT
    after `interrupt_after` seconds if it still runs."""
    process = subprocess.Popen(
        [sys.executable, "-m", "support.faulty_cli", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if interrupt_after is not None:
        try:
            process.wait(interrupt_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
    _, err = process.communicate()
    return process.returncode, err.decode()


@pytest.mark.big
@pytest.mark.timeout(3600)
def test_many_ctrl_c_resumes_of_the_command_in_fresh_processes(s3, tmp_path, source_and_dest):
    """The command as a user runs it: SIGINT at seeded moments, each resume a new process,
    faults in every process; the archive must be the uninterrupted run's."""
    source, dest = source_and_dest
    tests = str(Path(__file__).resolve().parents[1])  # for `python -m support.faulty_cli`
    path = os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "BUCKETZIP_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": path}
    common = ["--quiet", "--chunk-size", "64KiB", "--part-size", "5MiB"]
    code, err = _cli(["archive", f"s3://{source}/", f"s3://{dest}/clean.zip", *common], env, None)
    assert code == 0, err
    clean = fetch(s3, dest, "clean.zip")
    seeds = int(os.environ.get("BUCKETZIP_DETERMINISM_SEEDS", "30"))
    interrupted = 0
    for seed in range(seeds):
        rnd, key, run_id, code = random.Random(seed), f"cli-{seed}.zip", None, -1
        for attempt in range(40):
            faulted = {**env, "BUCKETZIP_FAULT_SEED": str(seed * 100 + attempt)}
            after = rnd.uniform(1.0, 6.0) if rnd.random() < 0.7 else None
            if run_id is None:
                step = ["--step-seconds", str(rnd.choice([0.2, 0.5, 2]))]
                argv = ["archive", f"s3://{source}/", f"s3://{dest}/{key}", *common, *step]
            else:
                argv = ["archive", "--resume", run_id, "--quiet"]
            code, err = _cli(argv, faulted, after)
            found = re.search(r"run (\S+) started", err)
            run_id = run_id or (found.group(1) if found else None)
            interrupted += code == 130
            if code == 0:
                break
            # 130: Ctrl-C; 75: suspended by faults; -SIGINT: Ctrl-C while still importing;
            # before the run started (a fault in Start's checks) nothing to resume: start again
            assert code in (130, 75, -signal.SIGINT) or run_id is None, err
        assert code == 0, f"seed {seed}: no archive after 40 runs: {err}"
        assert fetch(s3, dest, key) == clean, f"seed {seed}: the archive differs from the uninterrupted run's"
        s3.delete_object(Bucket=dest, Key=key)
    assert interrupted >= seeds // 2
