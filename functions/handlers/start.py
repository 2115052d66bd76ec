"""Start: validate the execution input, render the archive key, start the run.

Returns the state data the loop works on:
    {"run_id", "generation", "loops": 0, "loops_per_execution", "progress": {...}}
The run id is derived from the execution name, so a retried Start finds the run it
created. With {"resume": {"run_id", "generation", ...}} (ContinueAsNew) or {"resume": "RUN_ID"}
(a user resuming a suspended run) it loads the run and goes on from its last commit.
"""

from __future__ import annotations

import time

from bucketzip import engine
from bucketzip.config import ArchiveRequest
from bucketzip.errors import InputError
from bucketzip.keys import render_key
from bucketzip.run_ids import CONTINUATION_MARK, is_reserved_name, run_id_for_execution

from . import common
from .common import logger, metrics, tracer
from .models import ExecutionInput, ResumeInput, StartEvent


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event, context):
    start = common.parse_model(event, StartEvent, "Start event")
    # A parent workflow may pass AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID: not ours.
    data = {k: v for k, v in start.input.items() if not k.startswith("AWS_STEP_FUNCTIONS_")}
    logger.append_keys(execution=start.execution_name)
    if "resume" in data:
        if isinstance(data["resume"], str):
            # A user's resume: its continuations get names no earlier execution of the
            # run had (execution names are unique for 90 days), hence the generation.
            data = {**data, "resume": {"run_id": data["resume"], "generation": int(time.time())}}
        wanted = common.parse_model(data, ResumeInput, "execution input").resume
        return resume(wanted)

    if is_reserved_name(start.execution_name):
        raise InputError(
            f"execution name {start.execution_name!r}: names containing {CONTINUATION_MARK!r} are reserved "
            "for the continuations of a run; choose another name"
        )
    execution_input = common.parse_model(data, ExecutionInput, "execution input")
    common.check_workers(execution_input.workers)
    run_id = run_id_for_execution(start.execution_name)
    logger.set_correlation_id(run_id)
    logger.append_keys(run_id=run_id)
    fields = execution_input.model_dump(exclude_unset=True, exclude={"loops_per_execution", "schedule"})
    fields["dest_key"] = render_key(
        execution_input.dest_key,
        source_bucket=execution_input.source_bucket,
        source_prefix=execution_input.source_prefix,
        run_id=run_id,
        now=start.execution_start_time,
    )
    request = ArchiveRequest.create(**fields)
    progress = engine.start_run(common.s3_client(), common.state_store(), request, run_id=run_id)
    logger.info(
        "run started",
        extra={"source_bucket": request.source_bucket, "dest": f"s3://{request.dest_bucket}/{request.dest_key}"},
    )
    metrics.add_metric(name="RunsStarted", unit="Count", value=1)
    loops = execution_input.loops_per_execution or common.default_loops_per_execution()
    return state_data(run_id, 0, loops, progress.to_json(), execution_input.schedule, request.workers)


def resume(resume_input) -> dict:
    logger.set_correlation_id(resume_input.run_id)
    logger.append_keys(run_id=resume_input.run_id, generation=resume_input.generation)
    store = common.state_store()
    progress = engine.resume_run(common.s3_client(), store, resume_input.run_id)  # clears a suspension
    logger.info("run resumed", extra={"steps": progress.steps, "phase": progress.phase})
    metrics.add_metric(name="RunsContinued", unit="Count", value=1)
    loops = resume_input.loops_per_execution or common.default_loops_per_execution()
    workers = store.load(resume_input.run_id).request.workers
    return state_data(
        resume_input.run_id, resume_input.generation, loops, progress.to_json(), resume_input.schedule, workers
    )


def state_data(
    run_id: str,
    generation: int,
    loops_per_execution: int,
    progress: dict,
    schedule: str | None = None,
    workers: int = 1,
) -> dict:
    """The loop's state data. `workers` is the Distributed Map's MaxConcurrency and `plan`
    where its ItemReader finds the shards (null for a one-worker run)."""
    plan = None
    if workers > 1:
        from bucketzip.plan import plan_key

        plan = {"bucket": progress["dest_bucket"], "key": plan_key(run_id)}
    return {
        "run_id": run_id,
        "generation": generation,
        "loops": 0,
        "loops_per_execution": loops_per_execution,
        "progress": progress,
        "schedule": schedule,  # always present (null): the state machine's paths read it
        "workers": workers,
        "plan": plan,
    }
