"""What the handlers share: Powertools instances, clients, the state store, parsing."""

from __future__ import annotations

import functools
import os
import threading
import warnings
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError

from bucketzip.errors import InputError

if TYPE_CHECKING:
    from bucketzip.store import StateStore

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "bucketzip"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "bucketzip", service=SERVICE)
tracer = Tracer(service=SERVICE)
# Failure paths publish no metrics by design; Powertools would warn on every one.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

DEFAULT_TTL_DAYS = 14
DEFAULT_SAFETY_MARGIN_SECONDS = 60.0
DEFAULT_LOOPS_PER_EXECUTION = 1000


_clients_lock = threading.Lock()


def s3_client():
    return _client("s3", os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_REGION"))


def dynamodb_client():
    return _client("dynamodb", os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_REGION"))


def stepfunctions_client():
    return _client("stepfunctions", os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_REGION"))


@functools.lru_cache(maxsize=8)
def _client(service: str, endpoint_url: str | None, region: str | None):
    """Cached per endpoint/region: warm invocations reuse connections. The S3 pool fits
    the engine's largest concurrency (64)."""
    from bucketzip import clients

    with _clients_lock:  # boto3's default session is not thread-safe while creating clients
        if service == "s3":
            return clients.s3_client(endpoint_url, concurrency=64)
        if service == "stepfunctions":
            import boto3

            return boto3.client("stepfunctions", endpoint_url=endpoint_url, region_name=region)
        return clients.dynamodb_client(endpoint_url)


def state_store():
    from bucketzip.store_dynamodb import DynamoStateStore

    table = os.environ.get("BUCKETZIP_TABLE")
    if not table:
        raise RuntimeError("BUCKETZIP_TABLE is not set: the function has no state table")
    ttl_days = _env_number("BUCKETZIP_STATE_TTL_DAYS", DEFAULT_TTL_DAYS, int)
    return DynamoStateStore(table, client=dynamodb_client(), ttl_days=ttl_days)


def deadline(context):
    """When this invocation must stop working: the Lambda's remaining time minus a safety
    margin for the last part uploads and the commit ($BUCKETZIP_SAFETY_MARGIN_SECONDS,
    default 60 s, at most a quarter of the remaining time for short timeouts)."""
    from bucketzip.deadline import Deadline

    remaining = context.get_remaining_time_in_millis() / 1000.0
    margin = _env_number("BUCKETZIP_SAFETY_MARGIN_SECONDS", DEFAULT_SAFETY_MARGIN_SECONDS, float)
    return Deadline.from_lambda_context(context, min(margin, remaining / 4))


def check_workers(workers: int) -> None:
    """Refuse more workers than the segment function can run at once ($BUCKETZIP_MAX_WORKERS,
    its reserved concurrency, set by the stack): the extra children would only be throttled
    until their retries ran out and the run was suspended."""
    limit = _env_number("BUCKETZIP_MAX_WORKERS", 0, int)
    if limit and workers > limit:
        raise InputError(
            f"invalid execution input: workers: {workers} is more than the {limit} segments this deployment "
            "runs at once (the segment function's reserved concurrency: segment_reserved_concurrency)"
        )


def default_loops_per_execution() -> int:
    return _env_number("BUCKETZIP_LOOPS_PER_EXECUTION", DEFAULT_LOOPS_PER_EXECUTION, int)


def parse_model(data, model, what: str):
    """Validate with the Powertools parser; a failure is an InputError naming the fields."""
    try:
        return parse(event=data, model=model)
    except ValidationError as exc:
        raise InputError(f"invalid {what}: {summarize(exc)}") from None
    except InvalidModelTypeError:
        raise InputError(f"invalid {what}: expected a JSON object, got {type(data).__name__}") from None


def summarize(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(root)"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def _env_number(name: str, default, kind):
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError:
        raise RuntimeError(f"{name}={raw!r} is not a number") from None


def fenced(store: StateStore, run_id: str, work):
    """Run work(); if it fails while another invocation committed (the state version
    moved), the failure is StaleState: the state machine retries and reloads instead
    of aborting a healthy run because a stale step tripped over newer state."""
    from bucketzip.errors import StaleState

    before = store.current_version(run_id)
    try:
        return work()
    except StaleState:
        raise
    except Exception as exc:
        try:
            after = store.current_version(run_id)
        except Exception:  # the check itself failed: report the original error
            raise exc from None
        if before is not None and after is not None and after != before:
            raise StaleState(
                f"run {run_id}: another invocation committed during this one ({type(exc).__name__}: {exc})"
            ) from exc
        raise
