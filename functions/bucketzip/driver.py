"""The one loop that runs an archive from start (or resume) to a finished archive in one
process: start -> steps -> finish. The CLI and the tests drive the engine through it; the
workflow runs the same verbs as separate Lambda invocations.

The loop decides nothing about failure: an exception leaves it as raised, and the caller
(which knows the run id from `on_started`) chooses to abort, suspend or report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import engine
from .config import ArchiveRequest
from .deadline import Deadline
from .results import ArchiveResult, Progress
from .state import ARCHIVING

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


__all__ = ["Completed", "run_to_completion", "no_deadline"]
