"""The one loop that runs an archive from start (or resume) to a finished archive in one
process: start -> steps -> finish. The CLI and the tests drive the engine through it; the
workflow runs the same verbs as separate Lambda invocations.

The loop decides nothing about failure: an exception leaves it as raised, and the caller
(which knows the run id from `on_started`) chooses to abort, suspend or report.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import engine, parallel
from .config import ArchiveRequest
from .deadline import Deadline
from .results import ArchiveResult, Progress
from .state import ARCHIVING, ASSEMBLING, COMPLETE, PLANNING, SEGMENTS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from .store import StateStore

Observer = Callable[[int, int], None]  # (source bytes, entries) per chunk written


def no_deadline() -> Deadline:
    return Deadline(None)


@dataclass
class Completed:
    """A finished run: the engine's result and what the steps warned about on the way."""

    result: ArchiveResult
    warnings: list[str] = field(default_factory=list)
    archiving_steps: int = 0  # steps this process ran (not counting earlier processes')


def run_to_completion(
    s3: S3Client,
    store: StateStore,
    request: ArchiveRequest | None = None,
    *,
    run_id: str | None = None,
    step_deadline: Callable[[], Deadline] = no_deadline,
    observer: Observer | None = None,
    on_started: Callable[[Progress], None] | None = None,
    on_step: Callable[[Progress], None] | None = None,
    max_steps: int | None = None,
) -> Completed:
    """Start a run of `request` (with `run_id`, or a new id), or resume run `run_id` when no
    request is given, then step until archiving is done and finish until there is a result.

    step_deadline: called once per step / finish call for that call's Deadline.
    observer: hears of each chunk written (progress display).
    on_started: called once with the run's progress before the first step (the run id
      is known from here on: the caller needs it to abort, suspend or resume).
    on_step: called with the progress of every call that did not end the run: each
      archiving step, then each finish call that must be called again (phase "finishing").
    max_steps: a guard for tests; more archiving steps than this raise RuntimeError.
    """
    if request is not None:
        progress = engine.start_run(s3, store, request, run_id)
    elif run_id is not None:
        progress = engine.resume_run(s3, store, run_id)
    else:
        raise ValueError("run_to_completion needs a request or the run id to resume")
    if on_started is not None:
        on_started(progress)
    run_id = progress.run_id
    warnings: list[str] = []
    steps = 0
    if progress.phase in (PLANNING, SEGMENTS, ASSEMBLING):
        progress, steps = _parallel(
            s3, store, progress, step_deadline, observer, on_step, max_steps, warnings, workers=_workers(store, run_id)
        )
    while not progress.done and progress.phase == ARCHIVING:
        if max_steps is not None and steps >= max_steps:
            raise RuntimeError(f"run {run_id}: more than {max_steps} archiving steps")
        progress = engine.run_step(s3, store, run_id, step_deadline(), observer)
        steps += 1
        warnings += progress.warnings
        if on_step is not None:
            on_step(progress)
    while not isinstance(outcome := engine.finish_run(s3, store, run_id, step_deadline()), ArchiveResult):
        if on_step is not None:
            on_step(outcome)
    return Completed(outcome, warnings, steps)


def _workers(store: StateStore, run_id: str) -> int:
    return store.load(run_id).request.workers


def _parallel(
    s3: S3Client,
    store: StateStore,
    progress: Progress,
    step_deadline: Callable[[], Deadline],
    observer: Observer | None,
    on_step: Callable[[Progress], None] | None,
    max_steps: int | None,
    warnings: list[str],
    *,
    workers: int,
) -> tuple[Progress, int]:
    """A parallel run (request.workers > 1) from its phase on: plan, then every segment
    not yet complete on `workers` threads (each: start, steps, finish), then assembly.
    Returns the assembled run's progress (done, for finish_run) and the steps run."""
    from .plan import load_plan, plan_step  # the planner imports the engine

    run_id = progress.run_id
    while progress.phase == PLANNING:
        progress = plan_step(s3, store, run_id, step_deadline())
        if on_step is not None:
            on_step(progress)
    lock = threading.Lock()
    steps = [0]

    def counted(progress: Progress) -> None:
        with lock:
            steps[0] += 1
            if max_steps is not None and steps[0] > max_steps:
                raise RuntimeError(f"run {run_id}: more than {max_steps} archiving steps")
            warnings.extend(progress.warnings)
            if on_step is not None:
                on_step(progress)

    def heard(source_bytes: int, entries: int) -> None:
        assert observer is not None
        with lock:  # observers (progress displays) need not be thread-safe
            observer(source_bytes, entries)

    stop = threading.Event()  # a failed segment stops the others between their steps

    def segment(index: int) -> None:
        seg = parallel.start_segment(s3, store, run_id, index)
        while seg.phase == ARCHIVING and not seg.done and not stop.is_set():
            seg = engine.run_step(s3, store, seg.run_id, step_deadline(), heard if observer else None)
            counted(seg)
        while seg.phase != COMPLETE and not stop.is_set():
            seg = parallel.finish_segment(s3, store, seg.run_id, step_deadline())

    if progress.phase == SEGMENTS:
        shards = load_plan(s3, store.load(run_id))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segment") as pool:
            futures = [pool.submit(segment, shard.index) for shard in shards]
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
            if failed:
                stop.set()
                for future in futures:
                    future.cancel()
                raise failed[0].exception()  # type: ignore[misc]  # the first failure, as raised
    while progress.phase in (SEGMENTS, ASSEMBLING) and not (progress.phase == ASSEMBLING and progress.done):
        progress = parallel.assemble_step(s3, store, run_id, step_deadline())
        if on_step is not None and not progress.done:
            on_step(progress)
    return progress, steps[0]


__all__ = ["Completed", "run_to_completion", "no_deadline"]
