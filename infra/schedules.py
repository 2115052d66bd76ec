"""EventBridge Scheduler schedules from the `schedules` context list, each starting the
state machine with its execution input. Zero schedules is valid (nothing is created)."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .config import Config


class Schedules(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, state_machine: sfn.IStateMachine) -> None:
        super().__init__(scope, id)
        self.schedules: list[scheduler.Schedule] = []
        if not config.schedules:
            return
        group = scheduler.ScheduleGroup(
            self, "Group", schedule_group_name=config.stack_name, removal_policy=RemovalPolicy.DESTROY
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="bucketzip schedules: start the archive state machine",
        )
        # The target grants the role states:StartExecution on this state machine only.
        for item in config.schedules:
            self.schedules.append(
                scheduler.Schedule(
                    self,
                    f"Schedule-{item.name}",
                    schedule_name=item.name,
                    schedule_group=group,
                    description=item.description,
                    enabled=item.enabled,
                    schedule=scheduler.ScheduleExpression.expression(item.expression, TimeZone.of(item.timezone)),
                    target=targets.StepFunctionsStartExecution(
                        state_machine,
                        input=scheduler.ScheduleTargetInput.from_object(item.input),
                        role=role,
                        retry_attempts=3,
                        max_event_age=Duration.hours(1),
                    ),
                )
            )
