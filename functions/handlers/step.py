"""Step: archive until the Lambda deadline (remaining time minus a safety margin) or
the run's step budget, commit, and return the progress {objects, bytes_in, parts, done, ...}."""

from __future__ import annotations

import time

from bucketzip import engine

from . import common
from .common import logger, metrics, tracer
from .models import StepEvent

COUNTERS = {
    "objects": ("Objects", "Count"),
    "bytes_in": ("Bytes", "Bytes"),
    "parts": ("Parts", "Count"),
    "skipped": ("Skipped", "Count"),
}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event, context):
    step = common.parse_model(event, StepEvent, "Step event")
    logger.set_correlation_id(step.run_id)
    logger.append_keys(run_id=step.run_id, execution=step.execution_name)
    deadline = common.deadline(context)
    started = time.monotonic()
    store = common.state_store()
    progress = common.fenced(
        store, step.run_id, lambda: engine.run_step(common.s3_client(), store, step.run_id, deadline)
    )
    elapsed = time.monotonic() - started
    result = progress.to_json()
    record_metrics(step.previous or {}, result, elapsed)
    logger.info("step committed", extra={"progress": result, "seconds": round(elapsed, 3)})
    return result


def record_metrics(previous: dict, current: dict, seconds: float) -> None:
    """Per-step deltas (sum them in CloudWatch) and this step's read throughput."""
    deltas = {}
    for field, (name, unit) in COUNTERS.items():
        deltas[field] = max(0, int(current.get(field) or 0) - int(previous.get(field) or 0))
        metrics.add_metric(name=name, unit=unit, value=deltas[field])
    metrics.add_metric(name="Throughput", unit="Bytes/Second", value=deltas["bytes_in"] / max(seconds, 1e-3))
