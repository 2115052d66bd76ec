"""Abort: abort the multipart upload, delete staging objects and every item of the run.

Idempotent. The run is the one of the execution: from the `resume` input of a
continuation, else derived from the execution name exactly as Start derives it (so a
Start that failed half-way is cleaned, and nothing else)."""

from __future__ import annotations

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
    logger.warning("aborting run", extra={"error": error.get("Error"), "cause": error.get("Cause")})
    engine.abort_run(common.s3_client(), common.state_store(), run_id)
    metrics.add_metric(name="RunsAborted", unit="Count", value=1)
    return {"run_id": run_id, "aborted": True}
