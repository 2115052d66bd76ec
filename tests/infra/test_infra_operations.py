"""Operating the stack: the cleanup rule on execution status changes, dead-letter queues and
their alarms, the dashboard, the schedule alarms."""

from __future__ import annotations

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
