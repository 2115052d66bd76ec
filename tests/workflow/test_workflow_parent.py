"""The README's parent workflow (startExecution.sync:2), run against the real
definition: it gets the final archive whatever the number of continuations, and a failure
deep in the chain reaches it with the run's own error."""

from __future__ import annotations

import json

import pytest
from workflow_helpers import assert_nothing_left, assert_nothing_left_after_failure, random_objects

from bucketzip.errors import IntegrityError
from bucketzip.run_ids import continuation_name
from support.seed import seed_bucket

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

# Kept identical to the README ("From a parent workflow"), ARNs aside.
PARENT = {
    "Comment": "Archive a bucket with bucketzip, then use the archive",
    "StartAt": "Archive",
    "States": {
        "Archive": {
            "Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {
                "StateMachineArn": "BUCKETZIP_STATE_MACHINE_ARN",
                "Input": {
                    "source_bucket.$": "$.source_bucket",
                    "dest_bucket": "DEST_BUCKET",
                    "dest_key": "backups/{source_bucket}/{date:%Y-%m-%d}.zip",
                    "step_bytes.$": "$.step_bytes",
                    "loops_per_execution.$": "$.loops_per_execution",
                    "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
                },
            },
            "ResultSelector": {"archive.$": "$.Output"},
            "Next": "Archived",
        },
        "Archived": {"Type": "Pass", "OutputPath": "$.archive", "End": True},
    },
}


def run_parent(workflow, s3, source, dest, loops_per_execution):
    definition = (
        json.dumps(PARENT)
        .replace("BUCKETZIP_STATE_MACHINE_ARN", workflow.state_machine_arn)
        .replace("DEST_BUCKET", dest)
    )
    sfn = workflow.sfn
    parent_arn = sfn.create_state_machine(
        name=f"{workflow.name}-parent",
        definition=definition,
        roleArn="arn:aws:iam::123456789012:role/" + workflow.name + "-role",
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=parent_arn,
        name="parent",
        input=json.dumps({"source_bucket": source, "step_bytes": "100KB", "loops_per_execution": loops_per_execution}),
    )
    return workflow.wait(execution["executionArn"])


def bucketzip_executions(workflow) -> list[str]:
    return [e["name"] for e in workflow.sfn.list_executions(stateMachineArn=workflow.state_machine_arn)["executions"]]


@pytest.mark.parametrize("loops_per_execution", [1000, 1])
def test_parent_workflow_gets_the_final_archive(loops_per_execution, workflow, buckets, s3, dynamodb):
    source, dest = buckets
    seed_bucket(s3, source, random_objects(6, 50_000))

    outcome = run_parent(workflow, s3, source, dest, loops_per_execution)

    assert outcome.succeeded, (outcome.error, outcome.cause)
    assert outcome.output["bucket"] == dest and outcome.output["entries"] == 6
    assert "continued_as" not in outcome.output and "status" not in outcome.output
    assert s3.head_object(Bucket=dest, Key=outcome.output["key"])["ContentLength"] == outcome.output["size"]
    names = bucketzip_executions(workflow)
    (first,) = [n for n in names if "--continued-" not in n]
    continued = sorted(n for n in names if n != first)
    if loops_per_execution == 1:
        assert len(continued) >= 2
        assert continued == sorted(continuation_name(first, g) for g in range(1, len(continued) + 1))
    else:
        assert continued == []
    assert_nothing_left(s3, dynamodb, workflow.table, dest)


def test_a_failure_in_a_continuation_reaches_the_parent_with_its_error(workflow, buckets, s3, dynamodb):
    source, dest = buckets
    seed_bucket(s3, source, random_objects(6, 50_000))
    calls = []

    def corrupt_third(event, context, call):
        calls.append(event)
        if len(calls) == 3:
            raise IntegrityError("part 2 ETag mismatch")
        return call(event, context)

    workflow.intercept("step", corrupt_third)
    outcome = run_parent(workflow, s3, source, dest, 1)

    assert outcome.status == "FAILED" and outcome.error == "States.TaskFailed"  # how .sync:2 reports a child
    run = json.loads(outcome.cause)  # the bucketzip execution the parent started: the run's own error
    assert run["Error"] == "IntegrityError" and "part 2 ETag mismatch" in run["Cause"]
    assert len([n for n in bucketzip_executions(workflow) if "--continued-" in n]) == 2
    assert_nothing_left_after_failure(s3, dynamodb, workflow.table, dest)
