"""The definition itself (valid for AWS, every task caught and retried as designed) and
its Retry/Catch behaviour when executed by moto."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from workflow_helpers import assert_nothing_left, assert_nothing_left_after_failure

from bucketzip.local.definition import (
    FUNCTION_PLACEHOLDERS,
    FUNCTIONS,
    PLACEHOLDERS,
    TASK_TIMEOUT_MARGIN_SECONDS,
    definition_path,
    render_definition,
)
from bucketzip.local.lambdas import ServiceError
from bucketzip.local.workflow import LocalWorkflow
from handlers.common import DEFAULT_LOOPS_PER_EXECUTION
from handlers.models import MAX_LOOPS_PER_EXECUTION
from support.seed import seed_bucket

# Failure paths publish no metrics by design (Powertools warns; the handlers silence it in Lambda).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
HISTORY_LIMIT = 25_000


@pytest.fixture(scope="module")
def definition():
    return json.loads(definition_path().read_text())


def all_states(definition):
    """Every state, those of the Distributed Map's children included."""
    for name, state in definition["States"].items():
        yield name, state
        if state["Type"] == "Map":
            yield from state["ItemProcessor"]["States"].items()


def lambda_tasks(definition):
    return {
        name: state
        for name, state in all_states(definition)
        if state["Type"] == "Task" and state["Resource"].startswith("${")
    }


CHILD_CATCH = {"Suspend": "SegmentSuspended", "Abort": "SegmentFailed"}  # in a Map child


def test_placeholders_are_the_function_arns_and_timeouts(definition):
    text = definition_path().read_text()
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(PLACEHOLDERS)
    assert {s["Resource"] for s in lambda_tasks(definition).values()} == {f"${{{p}}}" for p in FUNCTION_PLACEHOLDERS}
    assert "QueryLanguage" not in definition  # JSONPath, the default


TRANSIENT = {"RetryableError", "StaleState", "States.Timeout", "Sandbox.Timedout", "Lambda.Unknown"}


def test_every_task_is_caught_transient_to_suspend_permanent_to_abort(definition):
    """Only permanent errors discard a run: transient ones that outlast the retries (and
    lost fencing races, timeouts) go to Suspend, which keeps it (issue 8, item 5)."""
    children = definition["States"]["Segments"]["ItemProcessor"]["States"]
    for name, state in all_states(definition):
        if state["Type"] != "Task":
            continue
        suspend, abort = ("SegmentSuspended", "SegmentFailed") if name in children else ("Suspend", "Abort")
        if name in ("Abort", "Suspend"):
            (catch,) = state["Catch"]
            assert catch["ResultPath"] != "$.error"  # keep the original
            assert catch["Next"] == ("DescribeAbortFailure" if name == "Abort" else "Fail")
            assert state["Resource"] == "${AbortFunctionArn}"
        elif name == "ContinueAsNew":  # a continuation that ran has ended the run itself; one not started: Suspend
            (catch,) = state["Catch"]
            assert (catch["ErrorEquals"], catch["Next"], catch["ResultPath"]) == (
                ["States.ALL"],
                "IsContinuationEnded",
                "$.error",
            )
            assert definition["States"]["IsContinuationEnded"]["Default"] == "Suspend"
        else:
            transient, permanent = state["Catch"]
            assert TRANSIENT | LAMBDA_SERVICE_ERRORS <= set(transient["ErrorEquals"]), name
            assert (transient["Next"], transient["ResultPath"]) == (suspend, "$.error")
            assert permanent["ErrorEquals"] == ["States.ALL"]
            assert (permanent["Next"], permanent["ResultPath"]) == (abort, "$.error")
    assert definition["States"]["Abort"]["Next"] == "Fail"
    assert definition["States"]["Abort"]["ResultPath"] is None
    suspend = definition["States"]["Suspend"]
    assert suspend["Parameters"]["suspend"] is True and suspend["ResultPath"] == "$.error"
    assert suspend["Next"] == "Fail"
    fail = definition["States"]["Fail"]
    assert (fail["ErrorPath"], fail["CausePath"]) == ("$.error.Error", "$.error.Cause")


def test_every_task_has_a_timeout_a_little_above_its_function(definition):
    for name, state in all_states(definition):
        if state["Type"] != "Task":
            continue
        assert "TimeoutSeconds" in state, name
        if name in lambda_tasks(definition):
            function = state["Resource"][2 : -len("FunctionArn}")]  # Suspend runs Abort, CheckSegments Segment
            assert state["TimeoutSeconds"] == f"${{{function}TaskTimeoutSeconds}}", name
            retried = {error for r in state["Retry"] for error in r["ErrorEquals"]}
            assert "States.Timeout" in retried, name  # a lost invocation is retried, then aborts
    timeouts = {f"{name}TaskTimeoutSeconds": 100 + i for i, name in enumerate(FUNCTIONS)}
    arns = {p: f"arn:aws:lambda:eu-west-1:111122223333:function:{p}" for p in FUNCTION_PLACEHOLDERS}
    rendered = json.loads(render_definition({**arns, **timeouts}))
    for name in ("Start", "Step", "Finish", "Abort", "Plan", "Assemble"):
        assert rendered["States"][name]["TimeoutSeconds"] == timeouts[f"{name}TaskTimeoutSeconds"]
    child = rendered["States"]["Segments"]["ItemProcessor"]["States"]["SegmentStep"]
    assert child["TimeoutSeconds"] == timeouts["SegmentTaskTimeoutSeconds"]
    assert 0 < TASK_TIMEOUT_MARGIN_SECONDS <= 60


def test_retry_policies(definition):
    for name, state in lambda_tasks(definition).items():
        retried = {error: r for r in state["Retry"] for error in r["ErrorEquals"]}
        assert "States.ALL" not in retried
        assert LAMBDA_SERVICE_ERRORS <= retried.keys(), name
        # CheckSegments raises RetryableError as its verdict (segments failed transiently): Suspend
        assert ("RetryableError" in retried) == (name != "CheckSegments"), name
        for retrier in state["Retry"]:
            assert retrier["BackoffRate"] >= 2 and retrier["JitterStrategy"] == "FULL", name
        fenced = ("Step", "Finish", "Plan", "Assemble", "SegmentStart", "SegmentStep", "SegmentFinish")
        assert ("StaleState" in retried) == (name in fenced), name
        for permanent in ("InputError", "DestinationExists", "IntegrityError", "RunNotFound"):
            assert permanent not in retried


def test_continue_as_new_starts_this_state_machine_with_the_run_id(definition):
    state = definition["States"]["ContinueAsNew"]
    assert state["Resource"] == "arn:aws:states:::states:startExecution.sync:2"  # waits: the output is the run's
    assert state["Parameters"]["StateMachineArn.$"] == "$$.StateMachine.Id"
    assert state["Parameters"]["Input"]["resume"]["run_id.$"] == "$.run_id"
    assert "--continued-" in state["Parameters"]["Name.$"]
    assert state["OutputPath"] == "$.continuation.archive" and state["End"] is True
    (loop,) = [c for c in definition["States"]["IsArchived"]["Choices"] if c.get("Variable") == "$.loops"]
    assert (loop["NumericGreaterThanEqualsPath"], loop["Next"]) == ("$.loops_per_execution", "ContinueAsNew")


def test_loop_budget_fits_the_history_limit(workflow, buckets, s3):
    """Measure history events per loop iteration on a real run; the loop budget must fit."""
    source, dest = buckets
    seed_bucket(s3, source, {f"k{i}": bytes([i]) * 70_000 for i in range(12)})
    outcome = workflow.run(
        {
            "source_bucket": source,
            "dest_bucket": dest,
            "dest_key": "a.zip",
            "compression": "store",
            "step_bytes": "64KiB",
            "loops_per_execution": 50,
        }
    )
    assert outcome.succeeded and len(outcome.executions) == 1
    steps = outcome.output["steps"] - 1  # the engine counts Finish as a step
    entered = [e.get("stateEnteredEventDetails", {}).get("name") for e in workflow.history(outcome.execution_arn)]
    per_loop = (entered.index("Finish") - entered.index("Step")) / steps
    assert per_loop == 9  # Step task 5, Count 2, IsArchived 2 (as on AWS)
    assert MAX_LOOPS_PER_EXECUTION * per_loop < 0.8 * HISTORY_LIMIT
    assert DEFAULT_LOOPS_PER_EXECUTION * per_loop < 0.5 * HISTORY_LIMIT


def small_run(s3, source, dest) -> dict:
    seed_bucket(s3, source, {f"k{i}": b"x" * 1000 * i for i in range(5)})
    return {"source_bucket": source, "dest_bucket": dest, "dest_key": "a.zip"}


def test_lambda_throttling_and_timeouts_are_retried(workflow, buckets, s3, dynamodb):
    source, dest = buckets
    failures = [
        ServiceError(),
        ServiceError("ServiceException", 500, "internal"),
        type("Sandbox.Timedout", (Exception,), {})("Task timed out after 900.00 seconds"),
    ]

    def flaky(event, context, call):
        if failures:
            raise failures.pop(0)
        return call(event, context)

    workflow.intercept("step", flaky)
    outcome = workflow.run(small_run(s3, source, dest))

    assert outcome.succeeded, (outcome.error, outcome.cause)
    errors = [
        e["lambdaFunctionFailedEventDetails"]["error"]
        for e in workflow.history(outcome.execution_arn)
        if e["type"] == "LambdaFunctionFailed"
    ]
    assert errors == ["Lambda.TooManyRequestsException", "Lambda.ServiceException", "Sandbox.Timedout"]
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


def test_finish_is_called_again_until_complete(workflow, buckets, s3):
    source, dest = buckets
    calls = []

    def not_yet(event, context, call):
        calls.append(event)
        if len(calls) < 3:
            return {"complete": False, "progress": {"phase": "finishing"}}
        return call(event, context)

    workflow.intercept("finish", not_yet)
    outcome = workflow.run(small_run(s3, source, dest))
    assert outcome.succeeded and len(calls) == 3 and outcome.output["entries"] == 5


def test_a_failing_abort_fails_with_both_errors(workflow, buckets, s3):
    source, dest = buckets

    def broken(event, context, call):
        raise RuntimeError("abort is broken too")

    workflow.intercept("abort", broken)
    outcome = workflow.run({"source_bucket": source, "dest_bucket": dest})  # no dest_key
    assert outcome.status == "FAILED" and outcome.error == "AbortFailed"
    assert "InputError" in outcome.cause and "dest_key" in outcome.cause  # the run's error
    assert "RuntimeError" in outcome.cause and "abort is broken too" in outcome.cause  # and the abort's


def test_a_lost_invocation_times_out_and_is_retried(moto_server, state_table, buckets, s3, dynamodb):
    """The Step Task's TimeoutSeconds ends an invocation that never answers (States.Timeout);
    the retry completes the run. Without the timeout the lost call's late answer breaks the run."""
    source, dest = buckets
    name = f"bz-{uuid.uuid4().hex[:10]}"
    workflow = LocalWorkflow(moto_server, state_table, name=name, retry_time_scale=0.001, task_timeouts={"step": 3})
    workflow.setup()
    try:
        lost = []

        def never_answers(event, context, call):
            if not lost:
                lost.append(event)
                time.sleep(8)
                return {"lost": True}
            return call(event, context)

        workflow.intercept("step", never_answers)
        outcome = workflow.run(small_run(s3, source, dest))
        assert outcome.succeeded, (outcome.error, outcome.cause)
        assert len(lost) == 1 and workflow.invocations("step")  # the retry did the step
        assert_nothing_left(s3, dynamodb, workflow.table, dest)
    finally:
        workflow.close()


def test_a_permanent_error_is_not_retried(workflow, buckets, s3, dynamodb):
    source, dest = buckets
    from bucketzip.errors import IntegrityError

    def corrupt(event, context, call):
        raise IntegrityError("part 3 ETag mismatch")

    workflow.intercept("step", corrupt)
    outcome = workflow.run(small_run(s3, source, dest))
    assert outcome.error == "IntegrityError" and len(workflow.invocations("step")) == 1
    assert_nothing_left_after_failure(s3, dynamodb, workflow.table, dest)


def test_the_schedule_reaches_finish_across_continuations(workflow, buckets, s3):
    """A scheduled run's name goes from the input through every continuation to Finish,
    which counts the run's success per schedule."""
    source, dest = buckets
    run = {**small_run(s3, source, dest), "compression": "store", "step_bytes": "2KB", "loops_per_execution": 1}
    run["schedule"] = "nightly"
    outcome = workflow.run(run)
    assert outcome.succeeded and len(outcome.executions) >= 3, (outcome.error, outcome.cause)
    finishes = workflow.invocations("finish")
    assert finishes and all(i.event["schedule"] == "nightly" for i in finishes)
    unscheduled = workflow.run({**small_run(s3, source, dest), "dest_key": "b.zip"})
    assert unscheduled.succeeded and workflow.invocations("finish")[-1].event["schedule"] is None
