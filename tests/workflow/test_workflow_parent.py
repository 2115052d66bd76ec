"""The README's parent workflow (startExecution.sync:2), run against the real
definition: it gets the archive, following continue-as-new when there is one."""

from __future__ import annotations

import json

import pytest

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
            "Next": "IsContinued",
        },
        "IsContinued": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.archive.continued_as", "IsPresent": True, "Next": "WaitForRun"}],
            "Default": "Archived",
        },
        "WaitForRun": {"Type": "Wait", "Seconds": 1, "Next": "DescribeRun"},
        "DescribeRun": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:sfn:describeExecution",
            "Parameters": {"ExecutionArn.$": "$.archive.continued_as"},
            "ResultPath": "$.run",
            "Next": "IsRunDone",
        },
        "IsRunDone": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.run.Status", "StringEquals": "RUNNING", "Next": "WaitForRun"},
                {"Variable": "$.run.Status", "StringEquals": "SUCCEEDED", "Next": "ReadOutput"},
            ],
            "Default": "RunFailed",
        },
        "ReadOutput": {
            "Type": "Pass",
            "Parameters": {"archive.$": "States.StringToJson($.run.Output)"},
            "Next": "IsContinued",
        },
        "RunFailed": {"Type": "Fail", "ErrorPath": "$.run.Error", "CausePath": "$.run.Cause"},
        "Archived": {"Type": "Pass", "OutputPath": "$.archive", "End": True},
    },
}


@pytest.mark.parametrize("loops_per_execution", [1000, 2])
def test_parent_workflow_gets_the_archive(loops_per_execution, workflow, buckets, s3):
    source, dest = buckets
    seed_bucket(s3, source, {f"k{i}": bytes([i]) * 100_000 for i in range(8)})
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
        input=json.dumps({"source_bucket": source, "step_bytes": "200KB", "loops_per_execution": loops_per_execution}),
    )
    outcome = workflow.wait(execution["executionArn"])

    assert outcome.succeeded, (outcome.error, outcome.cause)
    assert outcome.output["bucket"] == dest and outcome.output["entries"] == 8
    assert s3.head_object(Bucket=dest, Key=outcome.output["key"])["ContentLength"] == outcome.output["size"]
