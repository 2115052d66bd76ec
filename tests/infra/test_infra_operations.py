"""Operating the stack: the cleanup rule on execution status changes, dead-letter queues and
their alarms, the dashboard, the schedule alarms."""

from __future__ import annotations

import json

from infra_support import render


def test_status_change_rule_invokes_cleanup_for_stopped_timed_out_and_failed_runs(any_synth):
    _, rule = any_synth.one("AWS::Events::Rule")
    props = rule["Properties"]
    pattern = props["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert [render(a) for a in pattern["detail"]["stateMachineArn"]] == ["${ArchiveStateMachine}"]
    (target,) = props["Targets"]
    assert render(target["Arn"]) == "${FunctionsCleanup.Arn}"
    assert render(target["DeadLetterConfig"]["Arn"]) == "${CleanupDeadLetters.Arn}"
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 3

    functions = {
        render(f["Properties"]["Role"]): f["Properties"]["Handler"]
        for f in any_synth.resources("AWS::Lambda::Function").values()
    }
    assert functions["${FunctionsCleanupRole.Arn}"] == "handlers.cleanup.handler"
    _, invoke = any_synth.one("AWS::Lambda::EventInvokeConfig")
    destination = invoke["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert render(destination) == "${CleanupDeadLetters.Arn}"


def test_cleanup_dead_letters_raise_an_alarm(any_synth):
    alarms = [
        a["Properties"]
        for a in any_synth.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]
    queues = {render(d["Value"]) for a in alarms for d in a["Dimensions"]}
    assert "${CleanupDeadLetters.QueueName}" in queues
    for alarm in alarms:
        assert alarm["Threshold"] == 1 and [render(a) for a in alarm["AlarmActions"]] == ["${AlarmsTopic}"]


def alarms_by_metric(synth) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for alarm in synth.resources("AWS::CloudWatch::Alarm").values():
        out.setdefault(alarm["Properties"]["MetricName"], []).append(alarm["Properties"])
    return out


def dimensions(alarm: dict) -> dict:
    return {d["Name"]: render(d["Value"]) for d in alarm["Dimensions"]}


def test_every_schedule_has_a_dead_letter_queue_with_a_depth_alarm(main):
    queues = {}
    for schedule in main.resources("AWS::Scheduler::Schedule").values():
        props = schedule["Properties"]
        queues[props["Name"]] = render(props["Target"]["DeadLetterConfig"]["Arn"])
        assert props["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 3
    assert set(queues) == {"photos-nightly", "logs-weekly"} and len(set(queues.values())) == 2
    depth = {dimensions(a)["QueueName"] for a in alarms_by_metric(main)["ApproximateNumberOfMessagesVisible"]}
    for arn in queues.values():
        assert arn.replace(".Arn}", ".QueueName}") in depth


def test_scheduler_target_errors_and_dropped_invocations_alarm(main, existing):
    alarms = alarms_by_metric(main)
    for metric in ("TargetErrorCount", "InvocationDroppedCount"):
        (alarm,) = alarms[metric]
        assert alarm["Namespace"] == "AWS/Scheduler" and dimensions(alarm) == {"ScheduleGroup": "Bucketzip"}
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert [render(a) for a in alarm["AlarmActions"]] == ["${AlarmsTopic}"]
    assert "TargetErrorCount" not in alarms_by_metric(existing)  # no schedules, no schedule alarms


def test_no_successful_run_alarm_per_schedule(main):
    (alarm,) = alarms_by_metric(main)["ScheduledRunsSucceeded"]  # the weekly schedule's window exceeds 7 days
    assert alarm["Namespace"] == "Bucketzip"
    assert dimensions(alarm) == {"service": "bucketzip", "schedule": "photos-nightly"}
    # daily cron: no success in 36 hours (36 one-hour periods, all without a success)
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3600, 36, 36)
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 1
    assert alarm["TreatMissingData"] == "breaching" and alarm["Statistic"] == "Sum"


def test_scheduled_runs_name_their_schedule(main):
    for schedule in main.resources("AWS::Scheduler::Schedule").values():
        props = schedule["Properties"]
        assert json.loads(props["Target"]["Input"])["schedule"] == props["Name"]


def test_scheduler_role_trusts_only_this_groups_schedules(main):
    (role,) = [r for k, r in main.resources("AWS::IAM::Role").items() if k.startswith("SchedulesRole")]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert render(trust["Condition"]["ArnLike"]["aws:SourceArn"]) == (
        "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/Bucketzip/*"
    )
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_dashboard_shows_runs_archives_throughput_durations_errors_and_schedules(main, existing):
    for synth, schedules in ((main, True), (existing, False)):
        _, dashboard = synth.one("AWS::CloudWatch::Dashboard")
        body = dashboard["Properties"]["DashboardBody"]
        text = json.dumps(body)  # a Fn::Join of the widget JSON and resolved names
        for metric in ("RunsStarted", "RunsSucceeded", "ExecutionsFailed", "RunsSuspended", "RunsAborted"):
            assert metric in text, metric
        assert "ArchiveBytes" in text and "ArchiveEntries" in text
        assert "Throughput" in text and "throughput / 1000000" in text
        assert "Duration" in text and "step timeout" in text and "900000" in text
        assert "Errors" in text and "Throttles" in text
        assert ("TargetErrorCount" in text and "InvocationDroppedCount" in text) == schedules
