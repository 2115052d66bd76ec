"""Cleanup: target of the EventBridge rule on "Step Functions Execution Status Change"
(ABORTED, TIMED_OUT, FAILED) of the archive state machine.

The state machine's own Catch -> Abort misses a run when the execution is stopped
(StopExecution), times out, fails with States.Runtime or States.DataLimitExceeded
(which skip Catch), or when Abort itself fails. Every such end emits this event, for the
first execution and for each continuation, so this handler aborts the run's upload and
deletes its staging objects and state (engine.abort_run, idempotent), unless the run is
to be kept: suspended by the trust path (resumable), or already succeeded.

The run is the one of the execution, derived exactly as Abort derives it: from the
`resume` input of a continuation, else from the execution name."""

from __future__ import annotations

import json

from bucketzip import engine
from bucketzip.errors import RunNotFound
from bucketzip.run_ids import run_id_of_execution

from . import common
from .common import logger, metrics, tracer
from .models import ExecutionStatusChange

CLEANED_STATUSES = ("ABORTED", "TIMED_OUT", "FAILED")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event, context):
    change = common.parse_model(event, ExecutionStatusChange, "execution status change event").detail
    run_id = run_id_of_execution(change.name, execution_input(change))
    logger.set_correlation_id(run_id)
    logger.append_keys(run_id=run_id, execution=change.name, status=change.status)
    if change.status not in CLEANED_STATUSES:
        logger.info("not a failed execution: nothing to clean")
        return {"run_id": run_id, "cleaned": False, "kept": f"execution {change.status}"}
    store = common.state_store()
    kept = kept_because(store, run_id)
    if kept:
        logger.info("run kept", extra={"kept": kept})
        return {"run_id": run_id, "cleaned": False, "kept": kept}
    logger.warning("cleaning up after the execution", extra={"executionArn": change.executionArn})
    engine.abort_run(common.s3_client(), store, run_id)
    metrics.add_metric(name="RunsCleanedUp", unit="Count", value=1)
    return {"run_id": run_id, "cleaned": True}


def kept_because(store, run_id: str) -> str | None:
    """Why the run must not be aborted: it succeeded, or it is suspended (its state,
    upload and staging are kept for a resume). None: abort it."""
    if store.load_result(run_id) is not None:
        return "succeeded"
    try:
        state = store.load(run_id)
    except RunNotFound:
        return None  # nothing but possible orphans: abort_run sweeps them
    if state.suspended:  # set by the Suspend path (engine.suspend_run)
        return "suspended"
    return None


def execution_input(change) -> dict | None:
    """The execution input: in the event, or (when too large to be included) described."""
    text = change.input
    if text is None:
        text = common.stepfunctions_client().describe_execution(executionArn=change.executionArn).get("input")
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
