"""Segment: one child of the Distributed Map builds shard `index` of parent run `run_id`
as its own resumable run (bucketzip.segments.segment_run_id) that uploads into its part
numbers of the archive's upload: "start" (idempotent: the segment's state), "step" (the
ordinary step loop over the shard's key range; the last one uploads its last part),
"finish" (marks it complete). Each returns the segment's progress; done=True when the
action needs no further call.

"check" (the parent, after the Map): the children's results say which segments failed;
all transient -> RetryableError (the parent suspends), any permanent -> SegmentFailed
(the parent aborts)."""

from __future__ import annotations

from bucketzip import engine, parallel
from bucketzip.errors import RetryableError, SegmentFailed
from bucketzip.segments import segment_run_id

from . import common
from .common import logger, metrics, tracer
from .models import SegmentEvent, SegmentResult, SegmentsEvent

MAX_LISTED = 10  # segments named in an error message


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event, context):
    if isinstance(event, dict) and event.get("action") == "check":
        return check(common.parse_model(event, SegmentsEvent, "CheckSegments event"))
    segment = common.parse_model(event, SegmentEvent, "Segment event")
    segment_id = segment_run_id(segment.run_id, segment.index)
    logger.set_correlation_id(segment.run_id)
    logger.append_keys(run_id=segment.run_id, segment=segment_id, action=segment.action)
    store = common.state_store()
    s3 = common.s3_client()
    try:
        if segment.action == "start":
            progress = parallel.start_segment(s3, store, segment.run_id, segment.index)
        else:
            deadline = common.deadline(context)
            verb = engine.run_step if segment.action == "step" else parallel.finish_segment
            progress = common.fenced(store, segment_id, lambda: verb(s3, store, segment_id, deadline))
    except Exception:
        # The child reports only the error's name to the parent (its result must stay small):
        # the message and trace are here, in the segment function's log.
        logger.exception("segment action failed")
        raise
    result = progress.to_json()
    logger.info("segment action committed", extra={"progress": result})
    return result


def check(segments: SegmentsEvent) -> dict:
    """The parent's CheckSegments task: raise the error the parent's Catch routes on."""
    logger.append_keys(run_id=segments.run_id)
    # null: a child that ended without reporting (moto's Map; on AWS the Map itself fails)
    results = [r or SegmentResult(index=i, Error="unknown", transient=True) for i, r in enumerate(segments.results)]
    failed = [r for r in results if r.Error is not None]
    if not failed:
        return {"segments": len(results)}
    permanent = [r for r in failed if not r.transient]
    listed = permanent or failed
    named = ", ".join(f"{r.index} ({r.Error})" for r in listed[:MAX_LISTED])
    if len(listed) > MAX_LISTED:
        named += f" and {len(listed) - MAX_LISTED} more"
    where = "their errors are in the segment function's log"
    if permanent:
        raise SegmentFailed(f"run {segments.run_id}: segment(s) {named} failed; {where}")
    raise RetryableError(
        f"run {segments.run_id}: segment(s) {named} failed with transient errors after their retries; {where}"
    )
