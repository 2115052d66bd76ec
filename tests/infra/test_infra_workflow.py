"""The deployed workflow is statemachine/archive.asl.json itself, placeholders filled by
CloudFormation; the schedules start it with exactly the configured execution input."""

from __future__ import annotations

import json
import re

from infra_support import render

from infra.config import ASL_PATH, FUNCTION_DEFAULTS

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
SUBSTITUTIONS = {
    "StartFunctionArn": "start",
    "StepFunctionArn": "step",
    "FinishFunctionArn": "finish",
    "AbortFunctionArn": "abort",
    "PlanFunctionArn": "plan",
    "SegmentFunctionArn": "segment",
    "AssembleFunctionArn": "assemble",
}


def machine(synth) -> dict:
    _, resource = synth.one("AWS::StepFunctions::StateMachine")
    return resource["Properties"]


def task_timeouts(step_timeout: int = FUNCTION_DEFAULTS["step"][1]) -> dict[str, int]:
    """Each function's timeout (defaults, step's as given) plus the 30-second margin."""
    seconds = {name: timeout for name, (_, timeout) in FUNCTION_DEFAULTS.items()} | {"step": step_timeout}
    return {f"{name.title()}TaskTimeoutSeconds": seconds[name] + 30 for name in SUBSTITUTIONS.values()}


def test_definition_is_the_asl_file(any_synth):
    definition = machine(any_synth)["DefinitionString"]
    assert isinstance(definition, str), "the ASL must be deployed as written, not rebuilt by CDK"
    asl = ASL_PATH.read_text()
    for placeholder, seconds in task_timeouts().items():
        asl = asl.replace(f'"${{{placeholder}}}"', str(seconds))
    assert json.loads(definition) == json.loads(asl)


def test_every_lambda_task_times_out_30_seconds_after_its_function(main):
    states = json.loads(machine(main)["DefinitionString"])["States"]
    timeouts = {name: states[name]["TimeoutSeconds"] for name in ("Start", "Step", "Finish", "Abort")}
    assert timeouts == {"Start": 150, "Step": 930, "Finish": 930, "Abort": 330}
    assert all(isinstance(s.get("TimeoutSeconds"), int) for s in states.values() if s["Type"] == "Task")
    # from the function settings, not fixed in the file
    from infra.config import load_config
    from infra.state_machine import task_timeouts as timeouts_of

    assert timeouts_of(load_config({"step_timeout_seconds": 300}))["StepTaskTimeoutSeconds"] == 330


def test_same_file_and_rendering_as_the_workflow_tests(any_synth, monkeypatch):
    """The local workflow harness (moto) executes this very file, filled the same way."""
    monkeypatch.delenv("BUCKETZIP_ASL", raising=False)
    from bucketzip.local.definition import definition_path, render_definition

    assert definition_path().resolve() == ASL_PATH.resolve()
    arns = {name: f"arn:aws:lambda:eu-west-1:111122223333:function:{name}" for name in SUBSTITUTIONS}
    deployed = PLACEHOLDER.sub(lambda m: arns[m.group(1)], machine(any_synth)["DefinitionString"])
    assert json.loads(deployed) == json.loads(render_definition({**arns, **task_timeouts()}))


def test_every_placeholder_is_substituted_with_its_function(any_synth):
    props = machine(any_synth)
    definition, substitutions = props["DefinitionString"], props["DefinitionSubstitutions"]
    assert set(PLACEHOLDER.findall(definition)) == set(SUBSTITUTIONS) == set(substitutions)
    handlers = {k: v["Properties"]["Handler"] for k, v in any_synth.resources("AWS::Lambda::Function").items()}
    for placeholder, name in SUBSTITUTIONS.items():
        (logical_id, attribute) = substitutions[placeholder]["Fn::GetAtt"]
        assert attribute == "Arn" and handlers[logical_id] == f"handlers.{name}.handler"
    resolved = PLACEHOLDER.sub(lambda m: f"arn:aws:lambda:eu-west-1:111122223333:function:{m.group(1)}", definition)
    assert "${" not in resolved
    states = json.loads(resolved)["States"]
    for name, state in states.items():
        if state["Type"] == "Task":
            assert state["Resource"].startswith(("arn:aws:lambda:", "arn:aws:states:::states:startExecution")), name


def test_continue_as_new_targets_own_state_machine_via_context(any_synth):
    states = json.loads(machine(any_synth)["DefinitionString"])["States"]
    starts = [s for s in states.values() if s.get("Resource", "").startswith("arn:aws:states:::states:startExecution")]
    assert starts, "the ASL continues as new with states:startExecution"
    for state in starts:
        assert state["Resource"] == "arn:aws:states:::states:startExecution.sync:2"  # waits for the run's end
        assert state["Parameters"]["StateMachineArn.$"] == "$$.StateMachine.Id"


def schedules(synth) -> dict[str, dict]:
    return {s["Properties"]["Name"]: s["Properties"] for s in synth.resources("AWS::Scheduler::Schedule").values()}


def test_schedules(main):
    found = schedules(main)
    assert set(found) == {"photos-nightly", "logs-weekly"}
    photos, logs = found["photos-nightly"], found["logs-weekly"]
    assert (photos["ScheduleExpression"], photos["ScheduleExpressionTimezone"], photos["State"]) == (
        "cron(0 3 * * ? *)",
        "Europe/Paris",
        "ENABLED",
    )
    assert (logs["ScheduleExpression"], logs["ScheduleExpressionTimezone"], logs["State"]) == (
        "cron(30 1 ? * SUN *)",
        "UTC",
        "DISABLED",
    )
    assert logs["Description"] == "Weekly application logs"
    for props in found.values():
        assert props["GroupName"] == "Bucketzip"
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
        target = props["Target"]
        assert render(target["Arn"]) == "${ArchiveStateMachine}"
        assert render(target["RoleArn"]) == "${SchedulesRole.Arn}"
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}


def test_schedule_input_is_the_execution_input(main):
    found = schedules(main)
    assert json.loads(found["photos-nightly"]["Target"]["Input"]) == {
        "source_bucket": "acme-photos",
        "dest_bucket": "acme-archives",
        "dest_key": "backups/{source_bucket}/{date:%Y-%m-%d}.zip",
        "exclude": ["*.tmp", "cache/*"],
        "compression": "auto",
        "concurrency": 16,
        "schedule": "photos-nightly",  # the run's success is counted per schedule
    }
    assert json.loads(found["logs-weekly"]["Target"]["Input"]) == {
        "source_bucket": "acme-logs",
        "source_prefix": "app/",
        "dest_bucket": "acme-archives",
        "dest_key": "backups/logs/{date:%G-W%V}.zip",
        "compression": "deflate",
        "level": 9,
        "part_size": "64MiB",
        "overwrite": True,
        "schedule": "logs-weekly",
    }


def test_schedule_input_is_accepted_by_the_engine(main):
    """As the Start function reads it: the execution input model, then the engine's request."""
    from bucketzip.config import ArchiveRequest
    from handlers.models import ExecutionInput

    for props in schedules(main).values():
        execution_input = ExecutionInput.model_validate(json.loads(props["Target"]["Input"]))
        ArchiveRequest.create(**execution_input.model_dump(exclude_unset=True, exclude={"schedule"}))


def test_zero_schedules_is_valid(existing):
    assert not existing.resources("AWS::Scheduler::Schedule")
    assert not existing.resources("AWS::Scheduler::ScheduleGroup")
