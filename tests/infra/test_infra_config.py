"""The cdk.json context: defaults, `-c` strings, and clear errors naming the schedule and field."""

from __future__ import annotations

import json

import pytest
from infra_support import ROOT

from infra.config import ConfigError, cdk_json_context, load_config
from infra.schedule_expression import check_schedule_expression

GOOD = {
    "name": "nightly",
    "schedule": "cron(0 3 * * ? *)",
    "source_bucket": "acme-photos",
    "dest_bucket": "acme-archives",
    "dest_key": "backups/{source_bucket}/{date:%Y-%m-%d}.zip",
}


def with_schedule(**changes):
    schedule = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    return {"dest_bucket": "acme-archives", "schedules": [schedule]}


def test_default_cdk_json_is_valid():
    config = load_config(cdk_json_context())
    assert (config.stack_name, config.bundle, config.dest_bucket, config.create_dest_bucket) == (
        "Bucketzip",
        "pip",
        None,
        True,
    )
    assert config.schedules == () and config.sources == ()
    assert config.functions["step"].timeout_seconds == 900
    assert json.loads((ROOT / "cdk.json").read_text())["app"] == "python3 app.py"


def test_empty_context_means_defaults():
    assert load_config({}) == load_config(cdk_json_context())


def test_cli_strings_are_parsed():
    config = load_config(
        {
            "dest_bucket": "acme-archives",
            "create_dest_bucket": "false",
            "step_memory_mb": "4096",
            "point_in_time_recovery": "yes",
            "sources": "s3://a-bucket/x/,b-bucket",
            "schedules": json.dumps([GOOD]),
            "alarm_email": "null",
        }
    )
    assert config.create_dest_bucket is False and config.point_in_time_recovery is True
    assert config.functions["step"].memory_mb == 4096
    assert config.sources == (("a-bucket", "x/"), ("b-bucket", ""), ("acme-photos", ""))
    assert config.alarm_email is None
    assert config.schedules[0].input == {
        **{k: GOOD[k] for k in ("source_bucket", "dest_bucket", "dest_key")},
        "schedule": "nightly",
    }


def test_a_source_beside_the_destination_prefix_is_fine():
    config = load_config({"dest_bucket": "acme-archives", "sources": ["s3://acme-archives/photos/"]})
    assert config.sources == (("acme-archives", "photos/"),)


def test_sources_group_by_bucket():
    config = load_config({"sources": ["s3://bb1/x/", "s3://bb1/y/", "s3://cc1/z/", "s3://cc1/", "bb1/x/"]})
    assert config.source_prefixes() == {"bb1": ["x/", "y/"], "cc1": [""]}


S = "schedule schedules[0] ('nightly'): "


@pytest.mark.parametrize(
    "context,message",
    [
        (with_schedule(dest_bucket=None), S + "dest_bucket: is required"),
        (with_schedule(dest_key=None), S + "dest_key: is required"),
        (with_schedule(schedule=None), S + "schedule: is required"),
        (with_schedule(schedule="cron(0 3 * * ?)"), S + "schedule: 'cron(0 3 * * ?)': cron needs 6 fields"),
        (with_schedule(schedule="cron(0 3 * * MON *)"), S + "schedule: 'cron(0 3 * * MON *)': exactly one of"),
        (with_schedule(schedule="cron(61 3 * * ? *)"), S + "schedule: 'cron(61 3 * * ? *)': minutes value '61'"),
        (with_schedule(schedule="cron(0 3 * FOO ? *)"), S + "schedule: 'cron(0 3 * FOO ? *)': bad month value"),
        (with_schedule(schedule="rate(1 days)"), S + "schedule: 'rate(1 days)': use a singular unit"),
        (with_schedule(schedule="every day"), S + "schedule: 'every day' is not cron(...), rate(...) or at(...)"),
        (with_schedule(timezone="Mars/Olympus"), S + "timezone: 'Mars/Olympus' is not an IANA time zone"),
        (with_schedule(dest_bucket="other-bucket"), S + "dest_bucket: 'other-bucket' is not the stack's destination"),
        (with_schedule(dest_key="{source_bucket}/x.zip"), S + "dest_key: '{source_bucket}/x.zip' must start with"),
        (with_schedule(dest_key="backups/{bucket}.zip"), S + "dest_key: unknown placeholder(s) {bucket}"),
        (
            with_schedule(dest_key="backups/"),
            S + "dest_key: template 'backups/' renders to 'backups/', not an object key",
        ),
        (with_schedule(source_bucket="Bad_Bucket"), S + "source_bucket: 'Bad_Bucket' is not a valid bucket name"),
        (with_schedule(options={"level": 12}), S + "options.level: 12 is not between 0 and 9"),
        (with_schedule(options={"compression": "zstd"}), S + "options.compression: Input should be"),
        (with_schedule(options={"part_size": "1MiB"}), S + "options.part_size: 1048576 is not between 5 MiB and 5 GiB"),
        (with_schedule(options={"exclude": ["[abc"]}), S + "options.exclude: bad glob '[abc'"),
        (with_schedule(options={"colour": "blue"}), S + "options.colour: unknown option"),
        (with_schedule(options={"schedule": "other"}), S + "options.schedule: unknown option"),  # set by the stack
        (with_schedule(alarm_after_hours=200), S + "alarm_after_hours: must be an integer from 0 (no alarm) to 168"),
        (with_schedule(alarm_after_hours="6"), S + "alarm_after_hours: must be an integer"),
        (with_schedule(options={"dest_key": "x.zip"}), S + "options.dest_key: unknown option (set it at the"),
        (with_schedule(options=["store"]), S + "options: must be an object"),
        (with_schedule(enabled="maybe"), S + "enabled: must be true or false"),
        (with_schedule(cron="cron(0 3 * * ? *)"), S + "cron: unknown key"),
        (with_schedule(name="night ly"), "schedule schedules[0]: name: 'night ly' must be 1-64 letters"),
        (
            {"dest_bucket": "acme-archives", "schedules": [GOOD, GOOD]},
            "schedule schedules[1] ('nightly'): name: 'nightly' is used by another schedule",
        ),
        ({"schedules": [GOOD]}, S + "dest_bucket: the stack's destination bucket has a generated name"),
        ({"schedules": "[{"}, "schedules: not valid JSON"),
        ({"schedules": {"name": "x"}}, "schedules: must be a list"),
        ({"create_dest_bucket": False}, "dest_bucket: required when create_dest_bucket is false"),
        ({"dest_bucket": "a..b"}, "dest_bucket: 'a..b' is not a valid S3 bucket name"),
        ({"dest_prefix": ".bucketzip-staging/x/"}, "dest_prefix: '.bucketzip-staging/x/' overlaps the reserved"),
        ({"dest_kms_key_arn": "alias/archive"}, "dest_kms_key_arn: 'alias/archive' is not a KMS key ARN"),
        ({"source_kms_key_arns": ["nope"]}, "source_kms_key_arns[0]: 'nope' is not a KMS key ARN"),
        ({"sources": ["s3://UPPER/x"]}, "sources[0]: 'UPPER' is not a valid S3 bucket name"),
        ({"step_memory_mb": 64}, "step_memory_mb: 64 is not between 128 and 10240"),
        ({"step_timeout_seconds": "901"}, "step_timeout_seconds: 901 is not between 1 and 900"),
        ({"start_memory_mb": "lots"}, "start_memory_mb: must be an integer"),
        ({"log_retention_days": 10}, "log_retention_days: 10 is not one CloudWatch Logs accepts"),
        ({"alarm_email": "ops"}, "alarm_email: 'ops' is not an email address"),
        ({"bundle": "docker"}, "bundle: 'docker' is not one of pip, copy"),
        ({"bundle": "auto"}, "bundle: 'auto' is not one of pip, copy"),  # removed: it deployed without dependencies
        (
            {"dest_bucket": "acme-archives", "sources": ["s3://acme-archives/backups/2026/"]},
            "sources[0]: s3://acme-archives/backups/2026/ overlaps the destination prefix s3://acme-archives/backups/",
        ),
        (
            {"dest_bucket": "acme-archives", "sources": ["s3://acme-archives/"]},
            "sources[0]: s3://acme-archives/ overlaps the destination prefix",
        ),
        (
            {"dest_bucket": "acme-archives", "dest_prefix": "", "sources": ["s3://acme-archives/photos/"]},
            "sources[0]: s3://acme-archives/photos/ overlaps the destination prefix",  # the whole bucket
        ),
        (
            {"dest_bucket": "acme-archives", "sources": ["s3://acme-archives/.bucketzip-staging/"]},
            "sources[0]: s3://acme-archives/.bucketzip-staging/ overlaps the staging prefix",
        ),
        (
            with_schedule(source_bucket="acme-archives", source_prefix="backups/"),
            S + "source_prefix: s3://acme-archives/backups/ overlaps the destination prefix",
        ),
        (with_schedule(source_bucket="acme-archives"), S + "source_bucket: s3://acme-archives/ overlaps"),
        ({"stack_name": "1bad"}, "stack_name: '1bad' must start with a letter"),
        ({"stack_name": 7}, "stack_name: must be a string, got 7"),
        ({"sources": ["s3://ok-bucket/", ""]}, "sources[1]: must be a non-empty string"),
        ({"staging_expiry_days": True}, "staging_expiry_days: must be an integer, got True"),
        ({"state_ttl_days": "400"}, "state_ttl_days: 400 is not between 1 and 365"),
        ({"cleanup_timeout_seconds": 0}, "cleanup_timeout_seconds: 0 is not between 1 and 900"),
        ({"source_kms_key_arns": "[1]"}, "source_kms_key_arns[0]: must be a string, got 1"),
        ({"point_in_time_recovery": "sometimes"}, "point_in_time_recovery: must be true or false"),
        (
            {"powertools_layer_arn": "AWSLambdaPowertools"},
            "powertools_layer_arn: 'AWSLambdaPowertools' is not a Lambda",
        ),
    ],
)
def test_invalid_context_names_the_field(context, message):
    with pytest.raises(ConfigError) as caught:
        load_config(context)
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 3 * * ? *)",
        "cron(30 1 ? * SUN *)",
        "cron(0/15 8-18 ? * MON-FRI *)",
        "cron(0 0 L * ? *)",
        "cron(0 12 ? * 6#3 *)",
        "cron(0 2 1,15 JAN,JUL ? 2027)",
        "cron(0 4 15W * ? *)",
        "rate(1 day)",
        "rate(12 hours)",
        "rate(5 minutes)",
        "at(2027-01-01T00:00:00)",
    ],
)
def test_valid_schedule_expressions(expression):
    check_schedule_expression(expression)


def test_schedule_fields():
    (schedule,) = load_config(
        with_schedule(
            timezone="Europe/Paris",
            enabled=False,
            description="d",
            options={"exclude": "*.tmp", "loops_per_execution": 100},
        )
    ).schedules
    assert (schedule.name, schedule.expression, schedule.timezone, schedule.enabled, schedule.description) == (
        "nightly",
        "cron(0 3 * * ? *)",
        "Europe/Paris",
        False,
        "d",
    )
    assert schedule.input["exclude"] == "*.tmp" and schedule.input["loops_per_execution"] == 100


@pytest.mark.parametrize(
    "expression, hours",
    [
        ("rate(5 minutes)", 2),  # at least 2 hours
        ("rate(6 hours)", 9),
        ("cron(0 * * * ? *)", 2),  # hourly
        ("cron(0 3 * * ? *)", 36),  # daily: a day and a half
        ("cron(0/15 8-18 ? * MON-FRI *)", None),  # weekdays only: a weekend exceeds what fits
        ("cron(30 1 ? * SUN *)", None),  # weekly: 1.5 weeks exceed CloudWatch's 7 days
        ("rate(3 days)", 108),
        ("at(2027-01-01T00:00:00)", None),  # once: nothing to miss afterwards
    ],
)
def test_no_success_alarm_window_comes_from_the_expression(expression, hours):
    (schedule,) = load_config(with_schedule(schedule=expression)).schedules
    assert schedule.alarm_after_hours == hours


def test_no_success_alarm_window_can_be_set_or_disabled():
    assert load_config(with_schedule(alarm_after_hours=12)).schedules[0].alarm_after_hours == 12
    assert load_config(with_schedule(alarm_after_hours=0)).schedules[0].alarm_after_hours is None


def test_reserved_concurrency_per_function_can_be_turned_off():
    config = load_config({"step_reserved_concurrency": "0", "finish_reserved_concurrency": 20})
    assert config.functions["step"].reserved_concurrency == 0  # no reservation (small accounts)
    assert config.functions["finish"].reserved_concurrency == 20
    assert load_config({}).functions["step"].reserved_concurrency == 10
