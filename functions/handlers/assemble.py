"""Assemble (workers > 1, after every segment is complete): take the segments over into the
parent run (their parts, and their directory records and manifest lines rebased to
absolute offsets; the bytes of segments under 5 MiB appended), until the deadline. Returns
the parent's progress; done=True when every segment is taken (Finish comes next)."""

from __future__ import annotations

from bucketzip import parallel

from . import common
from .common import logger, tracer
from .models import AssembleEvent


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    assemble = common.parse_model(event, AssembleEvent, "Assemble event")
    logger.set_correlation_id(assemble.run_id)
    logger.append_keys(run_id=assemble.run_id, execution=assemble.execution_name)
    deadline = common.deadline(context)
    store = common.state_store()
    progress = common.fenced(
        store, assemble.run_id, lambda: parallel.assemble_step(common.s3_client(), store, assemble.run_id, deadline)
    ).to_json()
    logger.info("assembly step committed", extra={"progress": progress})
    return progress
