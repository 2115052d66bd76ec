"""Plan (workers > 1): list the selection, resumably, into shards balanced by bytes, and
write plan.json (the Distributed Map's ItemReader reads it). Returns the progress; done=True
(phase "segments") once the plan is written."""

from __future__ import annotations

from bucketzip import plan

from . import common
from .common import logger, tracer
from .models import PlanEvent


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    planning = common.parse_model(event, PlanEvent, "Plan event")
    logger.set_correlation_id(planning.run_id)
    logger.append_keys(run_id=planning.run_id, execution=planning.execution_name)
    deadline = common.deadline(context)
    store = common.state_store()
    progress = common.fenced(
        store, planning.run_id, lambda: plan.plan_step(common.s3_client(), store, planning.run_id, deadline)
    ).to_json()
    logger.info("plan step committed", extra={"progress": progress})
    return progress
