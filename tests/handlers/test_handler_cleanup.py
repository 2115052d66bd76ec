"""The cleanup handler, target of the execution-status-change rule, called directly with
the EventBridge event shape over a real run in the moto server: a stopped, timed-out or
failed execution leaves no upload, staging object or state, unless the run is suspended
or succeeded."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from bucketzip import engine
from bucketzip.config import STAGING_PREFIX, ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.store_dynamodb import DynamoStateStore
from handlers import cleanup
from support.seed import list_multipart_uploads, seed_bucket

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:Bucketzip-archive"


def status_change(name: str, status: str, execution_input: dict | None, include_input: bool = True) -> dict:
    """An EventBridge "Step Functions Execution Status Change" event, as AWS sends it."""
    return {
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-12-01T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"{STATE_MACHINE.replace(':stateMachine:', ':execution:')}:{name}"],
        "detail": {
            "executionArn": f"{STATE_MACHINE.replace(':stateMachine:', ':execution:')}:{name}",
            "stateMachineArn": STATE_MACHINE,
            "name": name,
            "status": status,
            "startDate": 1796126400000,
            "stopDate": 1796126460000,
            "input": json.dumps(execution_input) if include_input else None,
            "inputDetails": {"included": include_input},
            "output": None,
            "outputDetails": None,
            "error": "States.Runtime" if status == "FAILED" else None,
            "cause": "An error occurred while executing the state 'Count'" if status == "FAILED" else None,
        },
    }


@pytest.fixture
def run(s3, dynamodb, bucket_factory, state_table, monkeypatch):
    """A run half-way: upload with a part, a staging tail, state items."""
    monkeypatch.setenv("BUCKETZIP_TABLE", state_table)
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {f"k{i}": bytes([i]) * 3_000_000 for i in range(3)})
    store = DynamoStateStore(state_table, client=dynamodb)
    request = ArchiveRequest.create(
        source_bucket=source,
        dest_bucket=dest,
        dest_key="a.zip",
        part_size="5MiB",
        compression="store",
        step_bytes="6MiB",
    )
    engine.start_run(s3, store, request, run_id="nightly")
    engine.run_step(s3, store, "nightly", Deadline(60))
    assert list_multipart_uploads(s3, dest) and s3.list_objects_v2(Bucket=dest, Prefix=STAGING_PREFIX)["KeyCount"]
    return SimpleNamespace(store=store, dest=dest, table=state_table)


def nothing_left(s3, dynamodb, run) -> bool:
    return (
        list_multipart_uploads(s3, run.dest) == []
        and s3.list_objects_v2(Bucket=run.dest, Prefix=STAGING_PREFIX)["KeyCount"] == 0
        and dynamodb.scan(TableName=run.table)["Items"] == []
    )


@pytest.mark.parametrize(
    "name, status, execution_input",
    [
        ("nightly", "ABORTED", {"source_bucket": "x", "dest_bucket": "y", "dest_key": "a.zip"}),  # StopExecution
        ("nightly", "TIMED_OUT", {"source_bucket": "x"}),
        ("nightly--continued-2", "FAILED", {"resume": {"run_id": "nightly", "generation": 2}}),  # a continuation
    ],
)
def test_a_stopped_timed_out_or_failed_execution_leaves_nothing(
    name, status, execution_input, run, s3, dynamodb, context
):
    result = cleanup.handler(status_change(name, status, execution_input), context)
    assert result == {"run_id": "nightly", "cleaned": True}
    assert nothing_left(s3, dynamodb, run)
    # idempotent: the rule fires for each execution of the chain
    assert cleanup.handler(status_change(name, status, execution_input), context)["cleaned"] is True


def test_input_too_large_for_the_event_is_described(run, s3, dynamodb, context, monkeypatch):
    described = []

    class Sfn:
        def describe_execution(self, executionArn):
            described.append(executionArn)
            return {"input": json.dumps({"resume": {"run_id": "nightly", "generation": 5}})}

    monkeypatch.setattr(cleanup.common, "stepfunctions_client", lambda: Sfn())
    event = status_change("nightly--continued-5", "ABORTED", None, include_input=False)
    assert cleanup.handler(event, context)["cleaned"] is True
    assert described == [event["detail"]["executionArn"]] and nothing_left(s3, dynamodb, run)


def test_a_succeeded_run_is_kept(run, s3, dynamodb, context):
    run.store.record_result("nightly", {"key": "a.zip"})
    result = cleanup.handler(status_change("nightly", "FAILED", {}), context)
    assert result == {"run_id": "nightly", "cleaned": False, "kept": "succeeded"}
    assert list_multipart_uploads(s3, run.dest)  # untouched


def test_a_suspended_run_is_kept(run, s3, dynamodb, context):
    engine.suspend_run(run.store, "nightly", "RetryableError: SlowDown")  # as the Suspend path marks it
    result = cleanup.handler(status_change("nightly", "FAILED", {}), context)
    assert result == {"run_id": "nightly", "cleaned": False, "kept": "suspended"}
    assert list_multipart_uploads(s3, run.dest)
    assert s3.list_objects_v2(Bucket=run.dest, Prefix=STAGING_PREFIX)["KeyCount"]


def test_other_statuses_and_foreign_events_are_not_cleaned(run, s3, dynamodb, context):
    assert cleanup.handler(status_change("nightly", "SUCCEEDED", {}), context)["cleaned"] is False
    assert list_multipart_uploads(s3, run.dest)
    from bucketzip.errors import InputError

    with pytest.raises(InputError, match="source"):
        cleanup.handler({**status_change("nightly", "FAILED", {}), "source": "aws.s3"}, context)
