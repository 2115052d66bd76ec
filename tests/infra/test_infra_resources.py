"""Resources and their properties: table, functions, logs, destination bucket, alarms, outputs."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match
from infra_support import DEST_BUCKET, LAYER, render

from bucketzip.state_table import create_table_params, ttl_params

FUNCTIONS = {
    "start": (512, 120),
    "step": (2048, 900),
    "finish": (1024, 900),
    "abort": (512, 300),
    "cleanup": (512, 300),
    "plan": (1024, 900),
    "segment": (2048, 900),
    "assemble": (1024, 900),
}
SPILLS = ("step", "finish", "segment", "assemble")  # build parts: /tmp holds them
RESERVED = {"step": 10, "segment": 100}  # others 5; segment: the largest "workers"


def test_resource_inventory(main, existing):
    counts = {
        "AWS::DynamoDB::Table": 1,
        "AWS::Lambda::Function": 8,
        "AWS::StepFunctions::StateMachine": 1,
        "AWS::Logs::LogGroup": 9,
        "AWS::SNS::Topic": 1,
        # 3 execution alarms, 1 cleanup DLQ; per schedule: a DLQ (2) and no-success (1, the
        # weekly one has none); TargetErrorCount, InvocationDroppedCount
        "AWS::CloudWatch::Alarm": 9,
        "AWS::CloudWatch::Dashboard": 1,
        "AWS::IAM::Role": 10,
        "AWS::Events::Rule": 1,
        "AWS::SQS::Queue": 3,
        "AWS::SQS::QueuePolicy": 3,
        "AWS::Lambda::Permission": 1,
        "AWS::Lambda::EventInvokeConfig": 1,
        "AWS::S3::Bucket": 1,
        "AWS::Scheduler::Schedule": 2,
        "AWS::Scheduler::ScheduleGroup": 1,
        "AWS::SNS::Subscription": 1,
    }
    for type_, count in counts.items():
        main.assertions.resource_count_is(type_, count)
    for type_, count in {
        **counts,
        "AWS::CloudWatch::Alarm": 4,
        "AWS::IAM::Role": 9,
        "AWS::SQS::Queue": 1,
        "AWS::SQS::QueuePolicy": 1,
        "AWS::S3::Bucket": 0,
        "AWS::Scheduler::Schedule": 0,
        "AWS::Scheduler::ScheduleGroup": 0,
        "AWS::SNS::Subscription": 0,
    }.items():
        existing.assertions.resource_count_is(type_, count)
    # nothing else sneaks in (custom resources, extra functions...)
    allowed = set(counts) | {"AWS::IAM::Policy", "AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy"}
    for synth in (main, existing):
        assert {r["Type"] for r in synth.template["Resources"].values()} <= allowed


def test_table(main, existing):
    schema, ttl = create_table_params("t"), ttl_params("t")
    for synth, pitr in ((main, False), (existing, True)):
        synth.assertions.has_resource(
            "AWS::DynamoDB::Table",
            {
                "Properties": {
                    # the one schema the store, the demo and the tests' tables use too
                    "KeySchema": schema["KeySchema"],
                    "AttributeDefinitions": schema["AttributeDefinitions"],
                    "BillingMode": schema["BillingMode"],
                    "TimeToLiveSpecification": ttl["TimeToLiveSpecification"],
                    "SSESpecification": {"SSEEnabled": True},
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": pitr},
                },
                "DeletionPolicy": "Delete",
            },
        )


def functions_by_name(synth) -> dict[str, dict]:
    out = {}
    for fn in synth.resources("AWS::Lambda::Function").values():
        props = fn["Properties"]
        name = props["Handler"].split(".")[1]
        assert props["Handler"] == f"handlers.{name}.handler"
        out[name] = props
    return out


def test_functions(main, existing):
    for synth, stack, step_memory, layers in ((main, "Bucketzip", 2048, None), (existing, "Archiver", 4096, [LAYER])):
        functions = functions_by_name(synth)
        assert set(functions) == set(FUNCTIONS)
        for name, props in functions.items():
            memory, timeout = FUNCTIONS[name]
            assert props["Runtime"] == "python3.14"
            assert props["Architectures"] == ["arm64"]
            assert props["MemorySize"] == (step_memory if name == "step" else memory)
            assert props["Timeout"] == timeout
            assert props["FunctionName"] == f"{stack}-{name}"
            assert props["TracingConfig"] == {"Mode": "Active"}
            assert props["ReservedConcurrentExecutions"] == RESERVED.get(name, 5)
            assert props.get("Layers") == layers
            env = props["Environment"]["Variables"]
            spills = name in SPILLS
            assert env == {
                "BUCKETZIP_TABLE": env["BUCKETZIP_TABLE"],
                "BUCKETZIP_STATE_TTL_DAYS": "14",
                "POWERTOOLS_SERVICE_NAME": "bucketzip",
                "POWERTOOLS_METRICS_NAMESPACE": "Bucketzip",
                **({"BUCKETZIP_SPILL_BYTES": str((10240 - 256) * 1024 * 1024)} if spills else {}),
                # Start refuses more workers than segments can run at once
                **({"BUCKETZIP_MAX_WORKERS": "100"} if name == "start" else {}),
            }
            # parts are spilled to /tmp: it must hold the policy's largest part (5 GiB)
            assert props.get("EphemeralStorage") == ({"Size": 10240} if spills else None)
            assert render(env["BUCKETZIP_TABLE"]) == "${StateTable}"
            assert render(props["LoggingConfig"]["LogGroup"]) == f"${{Functions{name.title()}Logs}}"
        assert functions["step"]["Timeout"] == 900  # the Lambda maximum
        # one code asset shared by the functions
        assert len({str(p["Code"]) for p in functions.values()}) == 1


def test_log_groups(main, existing):
    for synth, stack, days in ((main, "Bucketzip", 30), (existing, "Archiver", 90)):
        names = {
            g["Properties"]["LogGroupName"]: g["Properties"]["RetentionInDays"]
            for g in synth.resources("AWS::Logs::LogGroup").values()
        }
        assert names == {
            **{f"/aws/lambda/{stack}-{n}": days for n in FUNCTIONS},
            f"/aws/vendedlogs/states/{stack}-archive": days,
        }


def test_created_destination_bucket(main):
    main.assertions.has_resource(
        "AWS::S3::Bucket",
        {
            "Properties": {
                "BucketName": DEST_BUCKET,
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
                "VersioningConfiguration": {"Status": "Enabled"},
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            "Id": "abort-incomplete-multipart-uploads",
                            "Status": "Enabled",
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                        },
                        {
                            "Id": "expire-staging-objects",
                            "Status": "Enabled",
                            "Prefix": ".bucketzip-staging/",
                            "ExpirationInDays": 7,
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                        },
                    ]
                },
            },
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


def test_created_bucket_uses_configured_kms_key(tmp_path):
    from infra_support import KMS_DEST, MAIN_CONTEXT, synthesize

    synth = synthesize({**MAIN_CONTEXT, "dest_kms_key_arn": KMS_DEST, "schedules": [], "alarm_email": None}, tmp_path)
    synth.assertions.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "BucketKeyEnabled": True,
                        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KMS_DEST},
                    }
                ]
            }
        },
    )


def test_state_machine_logging_and_tracing(main):
    main.assertions.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineName": "Bucketzip-archive",
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": True,
                "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": Match.any_value()}}],
            },
            "TracingConfiguration": {"Enabled": True},
        },
    )


def test_failure_alarms(main, existing):
    for synth in (main, existing):
        alarms = {
            a["Properties"]["MetricName"]: a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values()
        }
        assert {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"} <= set(alarms)
        for props in (alarms[m] for m in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")):
            assert props["Namespace"] == "AWS/States"
            assert props["Statistic"] == "Sum" and props["Threshold"] == 1 and props["Period"] == 300
            assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            assert props["TreatMissingData"] == "notBreaching"
            assert [render(a) for a in props["AlarmActions"]] == ["${AlarmsTopic}"]
            assert [render(d["Value"]) for d in props["Dimensions"]] == ["${ArchiveStateMachine}"]
    main.assertions.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )


def test_outputs(main, existing):
    for synth, source, dest in (
        (main, "s3://acme-misc/reports/", "s3://${DestinationBucket}/backups/acme-misc.zip"),
        (existing, "s3://data-lake/raw/", "s3://team-archive/bucketzip/data-lake.zip"),
    ):
        outputs = {k: render(v["Value"]) for k, v in synth.template["Outputs"].items()}
        assert outputs["StateMachineArn"] == "${ArchiveStateMachine}"
        assert outputs["TableName"] == "${StateTable}"
        assert outputs["StartCommand"] == (
            f"bucketzip start --state-machine ${{ArchiveStateMachine}} --source {source} --dest {dest}"
        )
    # an existing bucket is not changed by the stack: it offers the lifecycle rule to add
    assert "AbortIncompleteUploadsRule" not in main.template["Outputs"]
    rule = json.loads(existing.template["Outputs"]["AbortIncompleteUploadsRule"]["Value"])
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7} and rule["Status"] == "Enabled"


def test_spill_check_refuses_small_step_memory_or_storage():
    import dataclasses

    import pytest

    from infra.config import ConfigError, FunctionSettings
    from infra.functions import check_spill_settings

    class Cfg:
        functions = {name: FunctionSettings(1024, 900) for name in SPILLS} | {"step": FunctionSettings(512, 900)}

    with pytest.raises(ConfigError, match="step_memory_mb: 512 MB is below the 1024 MB"):
        check_spill_settings(Cfg())  # type: ignore[arg-type]
    Cfg.functions["step"] = dataclasses.replace(Cfg.functions["step"], memory_mb=2048)
    check_spill_settings(Cfg())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot hold the part policy's largest part"):
        check_spill_settings(Cfg(), ephemeral_mb=4096)  # type: ignore[arg-type]
