"""EventBridge Scheduler schedules from the `schedules` context list, each starting the
state machine with its execution input. Zero schedules is valid (nothing is created).

No silent miss: each schedule has a dead-letter queue (invocations that failed after the
target's retries) with an alarm on its depth; the group has alarms on Scheduler's
TargetErrorCount and InvocationDroppedCount; each schedule has a "no successful run in N
hours" alarm on its ScheduledRunsSucceeded metric (N from the expression or the
schedule's alarm_after_hours). The scheduler role trusts only this account's schedules of
this group (aws:SourceAccount and aws:SourceArn)."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, TimeZone
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .cleanup import dead_letter_queue, queue_depth_alarm
from .config import Config, Schedule
from .functions import METRICS_NAMESPACE, SERVICE_NAME

SCHEDULER_METRICS = ("TargetErrorCount", "InvocationDroppedCount")


def scheduled_runs_succeeded(name: str, period: Duration) -> cloudwatch.Metric:
    """Finish's per-schedule success count (functions/handlers/finish.py)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name="ScheduledRunsSucceeded",
        dimensions_map={"service": SERVICE_NAME, "schedule": name},
        statistic="Sum",
        period=period,
    )


def scheduler_metric(metric_name: str, group_name: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/Scheduler",
        metric_name=metric_name,
        dimensions_map={"ScheduleGroup": group_name},
        statistic="Sum",
        period=Duration.minutes(5),
    )


class Schedules(Construct):
    def __init__(
        self, scope: Construct, id: str, *, config: Config, state_machine: sfn.IStateMachine, topic: sns.ITopic
    ) -> None:
        super().__init__(scope, id)
        self.schedules: list[scheduler.Schedule] = []
        self.alarms: list[cloudwatch.Alarm] = []
        self.group_name = config.stack_name
        if not config.schedules:
            return
        self.topic = topic
        group = scheduler.ScheduleGroup(
            self, "Group", schedule_group_name=self.group_name, removal_policy=RemovalPolicy.DESTROY
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    # only the schedules of this group may use the role
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:scheduler:{Aws.REGION}:{Aws.ACCOUNT_ID}"
                        f":schedule/{self.group_name}/*"
                    },
                },
            ),
            description="bucketzip schedules: start the archive state machine",
        )
        # The target grants the role states:StartExecution on this state machine only.
        for item in config.schedules:
            self._schedule(item, group, role, state_machine)
        for metric_name in SCHEDULER_METRICS:
            self._alarm(
                metric_name,
                scheduler_metric(metric_name, self.group_name),
                f"EventBridge Scheduler {metric_name} in schedule group {self.group_name}: "
                "a scheduled run was not started.",
                cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                cloudwatch.TreatMissingData.NOT_BREACHING,
            )

    def _schedule(self, item: Schedule, group, role: iam.IRole, state_machine: sfn.IStateMachine) -> None:
        queue = dead_letter_queue(self, f"DeadLetters-{item.name}")
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
                    dead_letter_queue=queue,
                ),
            )
        )
        self.alarms.append(
            queue_depth_alarm(
                self, f"DeadLettersAlarm-{item.name}", queue, f"bucketzip schedule {item.name}", self.topic
            )
        )
        if item.alarm_after_hours and item.enabled:
            self._alarm(
                f"NoSuccess-{item.name}",
                scheduled_runs_succeeded(item.name, Duration.hours(1)),
                f"bucketzip schedule {item.name}: no successful run in {item.alarm_after_hours} hours.",
                cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                cloudwatch.TreatMissingData.BREACHING,  # no run at all is the point
                periods=item.alarm_after_hours,
            )

    def _alarm(self, id: str, metric, description: str, comparison, missing, periods: int = 1) -> None:
        alarm = cloudwatch.Alarm(
            self,
            id,
            alarm_description=description,
            metric=metric,
            threshold=1,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=comparison,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)
