"""Abort: abort the multipart upload, delete staging objects and every item of the run.
With "suspend": true (the Suspend state) it keeps all of that and marks the run suspended.

Idempotent. The run is the one of the execution: from the `resume` input of a
continuation, else derived from the execution name exactly as Start derives it (so a
Start that failed half-way is cleaned, and nothing else)."""

from __future__ import annotations

import json

from bucketzip import engine
from bucketzip.run_ids import run_id_of_execution

from . import common
from .common import logger, metrics, tracer
from .models import AbortEvent


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event, context):
    abort = common.parse_model(event, AbortEvent, "Abort event")
    execution_input = abort.execution_input if isinstance(abort.execution_input, dict) else None
    run_id = run_id_of_execution(abort.execution_name, execution_input)
    logger.set_correlation_id(run_id)
    logger.append_keys(run_id=run_id, execution=abort.execution_name)
    error = abort.error or {}
    if abort.suspend:
        return suspend(run_id, error)
    logger.warning("aborting run", extra={"error": error.get("Error"), "cause": error.get("Cause")})
    engine.abort_run(common.s3_client(), common.state_store(), run_id)
    metrics.add_metric(name="RunsAborted", unit="Count", value=1)
    return {"run_id": run_id, "aborted": True}


def suspend(run_id: str, error: dict) -> dict:
    """Keep the run (state, upload, staging), mark it suspended, and return the error the
    execution fails with: RetryableError, its cause saying how to resume."""
    message = _message(error)
    logger.warning("suspending run", extra={"error": error.get("Error"), "cause": error.get("Cause")})
    kept = engine.suspend_run(common.state_store(), run_id, f"{error.get('Error') or 'error'}: {message}")
    if kept is None:  # failed before the run had state: nothing to resume, nothing to keep
        engine.abort_run(common.s3_client(), common.state_store(), run_id)
        advice = "the run had not started (no state); start it again"
    else:
        metrics.add_metric(name="RunsSuspended", unit="Count", value=1)
        advice = (
            f"run {run_id} is suspended (state, upload and staging kept); resume it by starting an execution "
            f'of this state machine with {{"resume": "{run_id}"}}, or discard it with `bucketzip abort {run_id}`'
        )
    cause = {"errorType": "RetryableError", "errorMessage": f"{message} -- {advice}", "run_id": run_id}
    return {"Error": "RetryableError", "Cause": json.dumps(cause)}


def _message(error: dict) -> str:
    """The original error's message (a Lambda error's cause is its JSON)."""
    cause = error.get("Cause") or ""
    try:
        return str(json.loads(cause).get("errorMessage") or cause)
    except (ValueError, AttributeError):
        return cause or str(error.get("Error") or "unknown error")
