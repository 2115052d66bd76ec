"""Finish: central directory, end records, CompleteMultipartUpload, manifest; state deleted.

Returns {"complete": true, "archive": {...}} or, when it must be called again,
{"complete": false, "progress": {...}}."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from bucketzip import engine
from bucketzip.results import ArchiveResult

from . import common
from .common import logger, metrics, tracer
from .models import FinishEvent


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event, context):
    finish = common.parse_model(event, FinishEvent, "Finish event")
    logger.set_correlation_id(finish.run_id)
    logger.append_keys(run_id=finish.run_id, execution=finish.execution_name)
    deadline = common.deadline(context)
    store = common.state_store()
    outcome = common.fenced(
        store, finish.run_id, lambda: engine.finish_run(common.s3_client(), store, finish.run_id, deadline)
    )
    if not isinstance(outcome, ArchiveResult):
        logger.info("finish continues", extra={"progress": outcome.to_json()})
        return {"complete": False, "progress": outcome.to_json()}
    archive = outcome.to_json()
    logger.info("archive complete", extra={"archive": archive})
    metrics.add_metric(name="RunsSucceeded", unit="Count", value=1)
    metrics.add_metric(name="ArchiveBytes", unit="Bytes", value=outcome.size)
    metrics.add_metric(name="ArchiveEntries", unit="Count", value=outcome.entries)
    metrics.add_metric(name="RunSeconds", unit="Seconds", value=outcome.duration_seconds)
    if finish.schedule:  # per schedule: the "no successful run in N hours" alarm watches it
        with single_metric(
            name="ScheduledRunsSucceeded",
            unit=MetricUnit.Count,
            value=1,
            namespace=metrics.namespace,
            default_dimensions={"service": common.SERVICE},  # dimensions: service, schedule
        ) as metric:
            metric.add_dimension(name="schedule", value=finish.schedule)
    return {"complete": True, "archive": archive}
