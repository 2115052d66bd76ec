"""Failure paths of the real state machine: bad input, injected step errors (Retry,
then Catch -> Suspend -> Fail, resumable; permanent ones -> Abort -> Fail), and zombie
step invocations."""

from __future__ import annotations

import json
import threading

import pytest
from workflow_helpers import (
    assert_nothing_left,
    assert_nothing_left_after_failure,
    cause_message,
    fetch_archive,
    random_objects,
)

from bucketzip.errors import RetryableError, StaleState
from support.readers import PYTHON, UNZIP, check_archive
from support.seed import list_multipart_uploads, seed_bucket

# Failure paths publish no metrics by design (Powertools warns; the handlers silence it in Lambda).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

MIB = 1024 * 1024


def states_entered(workflow, execution_arn: str) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"]
        for e in workflow.history(execution_arn)
        if "stateEnteredEventDetails" in e
    ]


@pytest.mark.parametrize(
    "case, error, words",
    [
        ("missing field", "InputError", ["dest_bucket", "Field required"]),
        ("unknown field", "InputError", ["sorce_bucket", "not permitted"]),
        ("bad size", "InputError", ["part_size", "lots"]),
        ("bad template", "InputError", ["dest_key", "{nope}"]),
        ("missing source bucket", "SourceNotFound", ["no-such-source-bucket"]),
        ("missing destination bucket", "DestinationNotFound", ["no-such-dest-bucket"]),
        ("existing key", "DestinationExists", ["taken.zip", "overwrite"]),
    ],
)
def test_bad_input_fails_naming_the_problem_and_leaves_nothing(case, error, words, workflow, buckets, s3, dynamodb):
    source, dest = buckets
    seed_bucket(s3, source, {"a.txt": b"a", "b.txt": b"b"})
    s3.put_object(Bucket=dest, Key="taken.zip", Body=b"keep me")
    execution_input = {"source_bucket": source, "dest_bucket": dest, "dest_key": "out.zip"}
    if case == "missing field":
        del execution_input["dest_bucket"]
    elif case == "unknown field":
        execution_input["sorce_bucket"] = execution_input.pop("source_bucket")
    elif case == "bad size":
        execution_input["part_size"] = "lots"
    elif case == "bad template":
        execution_input["dest_key"] = "x/{nope}.zip"
    elif case == "missing source bucket":
        execution_input["source_bucket"] = "no-such-source-bucket"
    elif case == "missing destination bucket":
        execution_input["dest_bucket"] = "no-such-dest-bucket"
    elif case == "existing key":
        execution_input["dest_key"] = "taken.zip"

    outcome = workflow.run(execution_input)

    assert outcome.status == "FAILED"
    assert outcome.error == error
    message = cause_message(outcome)
    assert all(word in message for word in words), message
    assert states_entered(workflow, outcome.execution_arn) == ["Start", "Abort", "Fail"]
    assert_nothing_left_after_failure(s3, dynamodb, workflow.table, dest)
    assert list_multipart_uploads(s3, source) == []
    assert s3.get_object(Bucket=dest, Key="taken.zip")["Body"].read() == b"keep me"
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=dest)["Contents"]} == {"taken.zip"}


def big_run(s3, source: str, dest: str, step_bytes: str = "6MiB") -> tuple[dict, dict]:
    objects = random_objects(12, MIB, seed=3)
    seed_bucket(s3, source, objects)
    return objects, {
        "source_bucket": source,
        "dest_bucket": dest,
        "dest_key": "run.zip",
        "part_size": "5MiB",
        "step_bytes": step_bytes,
    }


def uploaded_parts(s3, state) -> int:
    request = state.request
    return len(
        s3.list_parts(Bucket=request.dest_bucket, Key=request.dest_key, UploadId=state.upload_id).get("Parts", [])
    )


def test_step_error_after_parts_were_uploaded_is_retried_to_a_valid_archive(
    workflow, buckets, s3, dynamodb, store_faults, tmp_path
):
    source, dest = buckets
    objects, execution_input = big_run(s3, source, dest)
    seen = {}

    def fail_before_commit(event, context, call):
        seen["calls"] = seen.get("calls", 0) + 1
        if seen["calls"] != 2:
            return call(event, context)

        def on_load(state):
            seen["committed_parts"] = state.next_part - 1

        def on_commit(state, expected_version):
            seen["parts_in_s3"] = uploaded_parts(s3, state)
            raise RetryableError("injected: S3 SlowDown after uploading parts")

        with store_faults.active(on_load=on_load, on_commit=on_commit):
            return call(event, context)

    workflow.intercept("step", fail_before_commit)
    outcome = workflow.run(execution_input)

    assert outcome.succeeded, (outcome.error, outcome.cause)
    assert seen["parts_in_s3"] > seen["committed_parts"]  # the failed attempt had uploaded parts
    errors = [i.error_type for i in workflow.invocations("step")]
    assert errors.count("RetryableError") == 1 and errors[-1] is None
    path = tmp_path / "run.zip"
    fetch_archive(s3, dest, "run.zip", path)
    check_archive(path, objects, readers=[PYTHON, UNZIP])
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


def test_step_error_exhausting_retries_suspends_and_resume_finishes(
    workflow, buckets, s3, dynamodb, store_faults, tmp_path
):
    """Transient faults outlasting the retries suspend the run (issue 8, item 5): the
    execution fails with RetryableError whose cause says how to resume, state, upload and
    staging are kept (the state item says `suspended`), and an execution started with
    {"resume": RUN_ID} finishes it into a valid archive."""
    source, dest = buckets
    objects, execution_input = big_run(s3, source, dest)
    calls = []

    def always_fail_after_first(event, context, call):
        calls.append(1)
        if len(calls) == 1:
            return call(event, context)

        def on_commit(state, expected_version):
            assert uploaded_parts(s3, state) > 0
            raise RetryableError("injected: S3 keeps answering 503")

        with store_faults.active(on_commit=on_commit):
            return call(event, context)

    workflow.intercept("step", always_fail_after_first)
    outcome = workflow.run(execution_input)

    assert outcome.status == "FAILED" and outcome.error == "RetryableError"
    message = cause_message(outcome)
    run_id = json.loads(outcome.cause)["run_id"]
    assert "S3 keeps answering 503" in message and f'{{"resume": "{run_id}"}}' in message
    assert len(calls) == 1 + 1 + 6  # first step, failing step, 6 retries
    assert workflow.invocations("abort")[-1].event["suspend"] is True
    assert states_entered(workflow, outcome.execution_arn)[-2:] == ["Suspend", "Fail"]
    assert len(list_multipart_uploads(s3, dest)) == 1
    state_item = dynamodb.get_item(
        TableName=workflow.table, Key={"run_id": {"S": run_id}, "sk": {"S": "state"}}, ConsistentRead=True
    )["Item"]
    assert state_item["suspended"] == {"BOOL": True}

    workflow.intercept("step", None)
    resumed = workflow.run({"resume": run_id})
    assert resumed.succeeded, (resumed.error, resumed.cause)
    path = tmp_path / "run.zip"
    fetch_archive(s3, dest, "run.zip", path)
    check_archive(path, objects, readers=[PYTHON, UNZIP])
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


def test_late_zombie_step_cannot_commit_or_corrupt(workflow, buckets, s3, dynamodb, store_faults, tmp_path):
    """A step invocation that loaded the state, then stalled while later steps committed,
    wakes up, uploads what it computed and tries to commit: StaleState, no effect."""
    source, dest = buckets
    objects, execution_input = big_run(s3, source, dest, step_bytes="2MiB")
    release, zombie = threading.Event(), {}

    def run_zombie(event, context, call):
        with store_faults.active(on_load=lambda state: release.wait(60)):
            try:
                zombie["result"] = call(event, context)
            except Exception as exc:  # noqa: BLE001 - recorded for the assertion
                zombie["error"] = exc

    def interceptor(event, context, call):
        zombie["calls"] = zombie.get("calls", 0) + 1
        if zombie["calls"] == 2:  # a duplicate of step 2 that stalls after loading
            zombie["thread"] = threading.Thread(target=run_zombie, args=(event, context, call))
            zombie["thread"].start()
        if zombie["calls"] == 4:  # steps 2 and 3 committed: wake the zombie up
            release.set()
            zombie["thread"].join(60)
        return call(event, context)

    workflow.intercept("step", interceptor)
    outcome = workflow.run(execution_input)

    assert isinstance(zombie.get("error"), StaleState), zombie
    assert outcome.succeeded, (outcome.error, outcome.cause)
    path = tmp_path / "run.zip"
    fetch_archive(s3, dest, "run.zip", path)
    check_archive(path, objects, readers=[PYTHON, UNZIP])
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


def test_concurrent_duplicate_steps_commit_once(workflow, buckets, s3, dynamodb, store_faults, tmp_path):
    """Two invocations of the same step load the same state version: one commits, the
    other gets StaleState; whichever the state machine sees, the run completes."""
    source, dest = buckets
    objects, execution_input = big_run(s3, source, dest, step_bytes="3MiB")
    both_loaded, outcomes = threading.Barrier(2, timeout=60), {}

    def run(label, event, context, call):
        with store_faults.active(on_load=lambda state: both_loaded.wait()):
            try:
                outcomes[label] = call(event, context)
            except StaleState as exc:
                outcomes[label] = exc
                if label == "visible":
                    raise

    def interceptor(event, context, call):
        if "visible" in outcomes:
            return call(event, context)
        twin = threading.Thread(target=run, args=("twin", event, context, call))
        twin.start()
        try:
            run("visible", event, context, call)
        finally:
            twin.join(60)
        return outcomes["visible"]

    workflow.intercept("step", interceptor)
    outcome = workflow.run(execution_input)

    assert sorted(type(v).__name__ for v in outcomes.values()) == ["StaleState", "dict"]
    assert outcome.succeeded, (outcome.error, outcome.cause)
    path = tmp_path / "run.zip"
    fetch_archive(s3, dest, "run.zip", path)
    check_archive(path, objects, readers=[PYTHON, UNZIP])
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


def test_stale_step_seen_by_the_state_machine_is_retried_not_aborted(
    workflow, buckets, s3, dynamodb, store_faults, tmp_path
):
    """The invocation the state machine waits for stalls after loading while a duplicate
    commits (e.g. a Lambda retry after a lost response): it fails with StaleState, the
    Step Retry reloads the latest state, and the run completes."""
    source, dest = buckets
    objects, execution_input = big_run(s3, source, dest, step_bytes="2MiB")
    seen = {"calls": 0}

    def interceptor(event, context, call):
        seen["calls"] += 1
        if seen["calls"] != 2:
            return call(event, context)

        def let_a_duplicate_commit(state):
            duplicate = threading.Thread(target=call, args=(event, context))
            duplicate.start()
            duplicate.join(60)

        with store_faults.active(on_load=let_a_duplicate_commit):
            return call(event, context)

    workflow.intercept("step", interceptor)
    outcome = workflow.run(execution_input)

    assert outcome.succeeded, (outcome.error, outcome.cause)
    errors = [i.error_type for i in workflow.invocations("step")]
    assert errors.count("StaleState") == 1, errors
    path = tmp_path / "run.zip"
    fetch_archive(s3, dest, "run.zip", path)
    check_archive(path, objects, readers=[PYTHON, UNZIP])
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


def losing_the_first_response():
    """An interceptor whose function does its work every time but whose first response is
    lost (a Lambda service error); returns (the responses it produced, the interceptor)."""
    from bucketzip.local.lambdas import ServiceError

    calls = []

    def lose_the_first_response(event, context, call):
        calls.append(call(event, context))
        if len(calls) == 1:
            raise ServiceError("ServiceException", 500, "response lost")
        return calls[-1]

    return calls, lose_the_first_response


def test_finish_retried_after_it_completed_still_succeeds(workflow, buckets, s3, dynamodb, tmp_path):
    """Finish completed the upload and deleted the run state, but its response was lost
    (a Lambda service error): the retried Finish must report the same archive."""
    source, dest = buckets
    objects = {"a.txt": b"a" * 1000, "b.txt": b"b" * 2000}
    seed_bucket(s3, source, objects)
    calls, lose_the_first_response = losing_the_first_response()

    workflow.intercept("finish", lose_the_first_response)
    outcome = workflow.run({"source_bucket": source, "dest_bucket": dest, "dest_key": "a.zip"})

    assert outcome.succeeded, (outcome.error, cause_message(outcome))
    assert outcome.output == calls[0]["archive"]
    path = tmp_path / "a.zip"
    fetch_archive(s3, dest, "a.zip", path)
    check_archive(path, objects, readers=[PYTHON])
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


@pytest.mark.parametrize("function", ["start", "step"])
def test_a_lost_response_after_the_work_was_done_is_retried_harmlessly(
    function, workflow, buckets, s3, dynamodb, tmp_path
):
    """Start created the run / Step committed, then the response was lost: the retry finds
    the run (Start's run id comes from the execution name) or the committed state."""
    source, dest = buckets
    objects, execution_input = big_run(s3, source, dest, step_bytes="4MiB")
    calls, lose_the_first_response = losing_the_first_response()

    workflow.intercept(function, lose_the_first_response)
    outcome = workflow.run(execution_input)

    assert outcome.succeeded, (outcome.error, cause_message(outcome))
    if function == "start":
        assert calls[0] == calls[1]
    path = tmp_path / "run.zip"
    fetch_archive(s3, dest, "run.zip", path)
    check_archive(path, objects, readers=[PYTHON, UNZIP])
    assert_nothing_left(s3, dynamodb, workflow.table, dest)
