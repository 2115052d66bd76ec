"""Every IAM statement the stack creates: its actions, resources and conditions, exactly."""

from __future__ import annotations

import pytest
from infra_support import KMS_DEST, KMS_SOURCE, as_list, render, strip_hash

S3_READ = ["s3:GetObject", "s3:GetObjectVersion"]
S3_WRITE = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"]
TABLE = [
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
]
XRAY = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
LOGS = ["logs:CreateLogStream", "logs:PutLogEvents"]
FUNCTIONS = [f"${{Functions{n}.Arn}}" for n in ("Abort", "Assemble", "Finish", "Plan", "Segment", "Start", "Step")]
S3 = "arn:${AWS::Partition}:s3:::"
STATE_MACHINE_DELIVERY = [
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
]


def prefix(*values, operator="StringLike"):
    return {operator: {"s3:prefix": list(values)}}


def statement(sid, actions, resources, condition=None):
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": sorted(resources),
        "Condition": condition,
    }


def rendered(value):
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("Ref", "Fn::GetAtt", "Fn::Join"):
        return render(value)
    if isinstance(value, dict):
        return {k: rendered(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rendered(v) for v in value]
    return value


def normalize(raw: dict) -> dict:
    return {
        "Sid": raw.get("Sid"),
        "Effect": raw["Effect"],
        "Action": sorted(as_list(raw["Action"])),
        "Resource": sorted(render(r) for r in as_list(raw["Resource"])),
        "Condition": rendered(raw.get("Condition")),
    }


def policies(synth) -> dict[str, list[dict]]:
    """Role name (logical id without hash) -> its normalized statements, sorted."""
    out = {}
    for policy in synth.resources("AWS::IAM::Policy").values():
        props = policy["Properties"]
        (role,) = props["Roles"]
        out[render(role)[2:-1]] = sorted(
            (normalize(s) for s in props["PolicyDocument"]["Statement"]), key=lambda s: (s["Sid"] or "", s["Action"])
        )
    return out


def expect(*statements):
    return sorted(statements, key=lambda s: (s["Sid"] or "", s["Action"]))


def function_policies(dest: str, staging: str, dest_prefix: str, sources: list, kms: bool) -> dict[str, list]:
    """Role -> statements: each function holds only what its own code calls. `sources` are
    (ListSourceN, ReadSourceN) statement pairs."""
    listing = [s for s, _ in sources]
    reading = [s for pair in sources for s in pair]
    heading = [
        {**read, "Sid": read["Sid"].replace("ReadSource", "HeadSource"), "Action": ["s3:GetObject"]}
        for _, read in sources
    ]
    table = statement("StateTable", TABLE, ["${StateTable.Arn}"])
    dest_key = [statement("DestinationKey", ["kms:Decrypt", "kms:GenerateDataKey"], [KMS_DEST])] if kms else []
    source_keys = [statement("SourceKeys", ["kms:Decrypt"], [KMS_SOURCE])] if kms else []

    def common(name):
        return [statement(None, XRAY, ["*"]), statement("WriteLogs", LOGS, [f"${{Functions{name}Logs.Arn}}"])]

    def list_dest(*prefixes):
        return statement("ListDestination", ["s3:ListBucket"], [dest], prefix(*prefixes))

    staging_objects = f"{staging}/.bucketzip-staging/*"
    archives = f"{staging}/{dest_prefix}*"
    return {
        "FunctionsStartRole": expect(
            *listing,
            list_dest(f"{dest_prefix}*"),
            statement("WriteDestination", ["s3:AbortMultipartUpload", "s3:PutObject"], [archives]),
            table,
            *dest_key,
            *common("Start"),
        ),
        "FunctionsStepRole": expect(
            *reading,
            statement("WriteDestination", ["s3:PutObject"], [archives]),
            statement("Staging", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [staging_objects]),
            table,
            *dest_key,
            *source_keys,
            *common("Step"),
        ),
        "FunctionsFinishRole": expect(
            list_dest(f"{dest_prefix}*", ".bucketzip-staging/*"),
            statement("WriteDestination", S3_WRITE, [archives]),
            statement("Staging", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [staging_objects]),
            table,
            *dest_key,
            *common("Finish"),
        ),
        "FunctionsAbortRole": expect(
            list_dest(".bucketzip-staging/*"),
            statement("WriteDestination", ["s3:AbortMultipartUpload"], [archives]),
            statement("Staging", ["s3:DeleteObject"], [staging_objects]),
            table,
            *common("Abort"),
        ),
        # The parallel path (workers > 1): plan never touches the archive itself; segments
        # upload their parts into its upload.
        "FunctionsPlanRole": expect(
            *listing,
            *heading,  # HEADs only: a changed entry name must not be a source key's own
            list_dest(".bucketzip-staging/*"),
            statement("Staging", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [staging_objects]),
            table,
            *dest_key,
            *common("Plan"),
        ),
        "FunctionsSegmentRole": expect(
            *reading,  # GET, and UploadPartCopy's copy source for stored objects
            statement("WriteDestination", ["s3:PutObject"], [archives]),  # UploadPart(Copy)
            statement("Staging", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [staging_objects]),  # tails
            table,
            *dest_key,
            *source_keys,
            *common("Segment"),
        ),
        "FunctionsAssembleRole": expect(
            list_dest(".bucketzip-staging/*"),
            statement("WriteDestination", ["s3:PutObject"], [archives]),  # parts of small segments' bytes
            # the small segments' tails, read; its own tail
            statement("Staging", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [staging_objects]),
            table,
            *dest_key,
            *common("Assemble"),
        ),
        "FunctionsCleanupRole": expect(
            list_dest(".bucketzip-staging/*"),
            statement("WriteDestination", ["s3:AbortMultipartUpload"], [archives]),
            statement("Staging", ["s3:DeleteObject"], [staging_objects]),
            table,
            statement(
                "DescribeExecutions",
                ["states:DescribeExecution"],
                [
                    f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{STACK_OF[dest]}-archive:*"
                ],
            ),
            *common("Cleanup"),
            statement(
                None, ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"], ["${CleanupDeadLetters.Arn}"]
            ),
        ),
    }


STACK_OF = {"${DestinationBucket.Arn}": "Bucketzip", f"{S3}team-archive": "Archiver"}
MAIN_FUNCTIONS = function_policies(
    "${DestinationBucket.Arn}",
    "${DestinationBucket.Arn}",
    "backups/",
    [
        (
            statement("ListSource0", ["s3:ListBucket"], [f"{S3}acme-logs"], prefix("app/*")),
            statement("ReadSource0", S3_READ, [f"{S3}acme-logs/app/*"]),
        ),
        (
            statement("ListSource1", ["s3:ListBucket"], [f"{S3}acme-misc"], prefix("reports/*")),
            statement("ReadSource1", S3_READ, [f"{S3}acme-misc/reports/*"]),
        ),
        (  # the whole bucket is configured
            statement("ListSource2", ["s3:ListBucket"], [f"{S3}acme-photos"]),
            statement("ReadSource2", S3_READ, [f"{S3}acme-photos/*"]),
        ),
    ],
    kms=False,
)
EXISTING_FUNCTIONS = function_policies(
    f"{S3}team-archive",
    f"{S3}team-archive",
    "bucketzip/",
    [
        (
            statement("ListSource0", ["s3:ListBucket"], [f"{S3}data-lake"], prefix("curated/2026/*", "raw/*")),
            statement("ReadSource0", S3_READ, [f"{S3}data-lake/curated/2026/*", f"{S3}data-lake/raw/*"]),
        )
    ],
    kms=True,
)


def test_abort_does_not_read_sources_and_start_does_not_write_parts_or_staging(any_synth):
    roles = policies(any_synth)
    actions = {role: {a for s in statements for a in s["Action"]} for role, statements in roles.items()}
    resources = {role: {r for s in statements for r in s["Resource"]} for role, statements in roles.items()}
    for role in (
        "FunctionsAbortRole",
        "FunctionsCleanupRole",
        "FunctionsStartRole",
        "FunctionsFinishRole",
        "FunctionsPlanRole",
        "FunctionsAssembleRole",
    ):
        assert not {"s3:GetObjectVersion"} & actions[role], role  # only Step and Segment read sources
    for role in ("FunctionsAbortRole", "FunctionsCleanupRole"):
        assert not {"s3:GetObject", "s3:PutObject", "kms:GenerateDataKey"} & actions[role], role
    assert not any("staging" in r for r in resources["FunctionsStartRole"])
    assert "s3:DeleteObject" not in actions["FunctionsStartRole"]
    # the planner: staging objects only, never the archive
    assert {s["Sid"] for s in roles["FunctionsPlanRole"]} & {"WriteDestination"} == set()
    assert len([r for r in roles if r.startswith("Functions")]) == 8  # one role per function


def state_machine_statements(name: str, dest: str):
    return expect(
        statement(None, STATE_MACHINE_DELIVERY, ["*"]),
        statement("InvokeFunctions", ["lambda:InvokeFunction"], FUNCTIONS),
        statement(
            "ContinueAsNew",
            ["states:StartExecution"],
            [f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{name}"],
        ),
        statement(
            "FollowContinuation",
            ["states:DescribeExecution", "states:StopExecution"],
            [f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{name}:*"],
        ),
        statement(  # the Segments Distributed Map's child executions
            "MapChildExecutions",
            ["states:DescribeExecution", "states:StopExecution"],
            [f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{name}/*"],
        ),
        statement("ReadPlan", ["s3:GetObject"], [f"{dest}/.bucketzip-staging/*/plan.json"]),  # its ItemReader
        statement(
            "ContinuationEvents",
            ["events:DescribeRule", "events:PutRule", "events:PutTargets"],
            [
                "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
                "StepFunctionsGetEventsForStepFunctionsExecutionRule"
            ],
        ),
    )


def test_main_policies_exactly(main):
    assert policies(main) == {
        **MAIN_FUNCTIONS,
        "ArchiveStateMachineRole": state_machine_statements("Bucketzip-archive", "${DestinationBucket.Arn}"),
        "SchedulesRole": expect(
            statement(None, ["states:StartExecution"], ["${ArchiveStateMachine}"]),
            statement(  # each schedule's dead-letter queue
                None,
                ["sqs:SendMessage"],
                ["${SchedulesDeadLetterslogsweekly.Arn}", "${SchedulesDeadLettersphotosnightly.Arn}"],
            ),
        ),
    }


def test_existing_bucket_kms_policies_exactly(existing):
    assert policies(existing) == {
        **EXISTING_FUNCTIONS,
        "ArchiveStateMachineRole": state_machine_statements("Archiver-archive", f"{S3}team-archive"),
    }


def test_continue_as_new_names_this_state_machine(any_synth):
    _, machine = any_synth.one("AWS::StepFunctions::StateMachine")
    name = machine["Properties"]["StateMachineName"]
    (continue_as_new,) = [s for s in policies(any_synth)["ArchiveStateMachineRole"] if s["Sid"] == "ContinueAsNew"]
    assert continue_as_new["Resource"][0].endswith(f":stateMachine:{name}")


def test_no_wildcard_resource_or_action_on_s3_or_dynamodb(any_synth):
    for policy in policies(any_synth).values():
        for s in policy:
            assert not any("*" in a for a in s["Action"]), s
            if any(a.startswith(("s3:", "dynamodb:", "kms:", "lambda:", "states:StartExecution")) for a in s["Action"]):
                assert "*" not in s["Resource"], s


FUNCTION_ROLES = {
    f"Functions{n}Role": "lambda.amazonaws.com"
    for n in ("Start", "Step", "Finish", "Abort", "Cleanup", "Plan", "Segment", "Assemble")
}


@pytest.mark.parametrize(
    "fixture,services",
    [
        (
            "main",
            {
                **FUNCTION_ROLES,
                "ArchiveStateMachineRole": "states.amazonaws.com",
                "SchedulesRole": "scheduler.amazonaws.com",
            },
        ),
        ("existing", {**FUNCTION_ROLES, "ArchiveStateMachineRole": "states.amazonaws.com"}),
    ],
)
def test_roles_trust_one_service_and_carry_no_other_policies(request, fixture, services):
    synth = request.getfixturevalue(fixture)
    roles = synth.resources("AWS::IAM::Role")
    assert {strip_hash(k) for k in roles} == set(services)
    for logical_id, role in roles.items():
        props = role["Properties"]
        assert "ManagedPolicyArns" not in props and "Policies" not in props, logical_id
        (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Action"] == "sts:AssumeRole"
        assert trust["Principal"] == {"Service": services[strip_hash(logical_id)]}
    assert not synth.resources("AWS::IAM::ManagedPolicy")
    assert not synth.resources("AWS::IAM::User")


def test_scheduler_role_only_assumable_from_this_account(main):
    (role,) = [r for k, r in main.resources("AWS::IAM::Role").items() if k.startswith("SchedulesRole")]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert set(trust["Condition"]) == {"StringEquals", "ArnLike"}  # and this group's schedules only


def test_resource_policies(main):
    _, bucket_policy = main.one("AWS::S3::BucketPolicy")
    (deny,) = bucket_policy["Properties"]["PolicyDocument"]["Statement"]
    assert normalize(deny) == {
        "Sid": None,
        "Effect": "Deny",
        "Action": ["s3:*"],
        "Resource": ["${DestinationBucket.Arn}", "${DestinationBucket.Arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    assert deny["Principal"] == {"AWS": "*"}

    _, topic_policy = main.one("AWS::SNS::TopicPolicy")
    statements = {s.get("Sid"): s for s in topic_policy["Properties"]["PolicyDocument"]["Statement"]}
    assert set(statements) == {"AllowPublishThroughSSLOnly", "CloudWatchAlarms"}
    assert statements["AllowPublishThroughSSLOnly"]["Effect"] == "Deny"
    alarms = statements["CloudWatchAlarms"]
    assert normalize(alarms) == {
        "Sid": "CloudWatchAlarms",
        "Effect": "Allow",
        "Action": ["sns:Publish"],
        "Resource": ["${AlarmsTopic}"],
        "Condition": {"StringEquals": {"aws:SourceAccount": "${AWS::AccountId}"}},
    }
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
