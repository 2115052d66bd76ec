"""Nothing escapes cleanup: an EventBridge rule on "Step Functions Execution Status Change"
(ABORTED, TIMED_OUT, FAILED) of the archive state machine invokes the cleanup function
(functions/handlers/cleanup.py) for that execution's run. It catches what the state
machine's own Catch -> Abort cannot: StopExecution, execution timeouts, States.Runtime and
States.DataLimitExceeded (which skip Catch), and an Abort that itself failed.

Events the rule could not deliver, and invocations that failed after Lambda's retries, land
in a dead-letter queue whose depth raises an alarm."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .nag import suppress

CLEANED_STATUSES = ["ABORTED", "TIMED_OUT", "FAILED"]  # handlers.cleanup.CLEANED_STATUSES
DEAD_LETTER_RETENTION = Duration.days(14)  # SQS maximum: time to look and redrive


def dead_letter_queue(scope: Construct, id: str) -> sqs.Queue:
    queue = sqs.Queue(
        scope,
        id,
        retention_period=DEAD_LETTER_RETENTION,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )
    suppress(
        queue,
        "AwsSolutions-SQS3",
        "This queue is itself a dead-letter queue: its messages stay 14 days and its depth raises an alarm.",
    )
    return queue


def queue_depth_alarm(scope: Construct, id: str, queue: sqs.Queue, what: str, topic: sns.ITopic) -> cloudwatch.Alarm:
    alarm = cloudwatch.Alarm(
        scope,
        id,
        alarm_description=f"{what}: messages in the dead-letter queue {queue.queue_name}; read them, fix, redrive.",
        metric=queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum"),
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    alarm.add_alarm_action(actions.SnsAction(topic))
    return alarm


class Cleanup(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        state_machine: sfn.IStateMachine,
        function: lambda_.IFunction,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, id)
        self.dead_letters = dead_letter_queue(self, "DeadLetters")
        self.rule = events.Rule(
            self,
            "Rule",
            description="bucketzip: clean up the run of an execution that stopped, timed out or failed",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={"status": CLEANED_STATUSES, "stateMachineArn": [state_machine.state_machine_arn]},
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                function,
                dead_letter_queue=self.dead_letters,
                retry_attempts=8,
                max_event_age=Duration.hours(24),
            )
        )
        # The function runs asynchronously: failures after Lambda's own retries go to the same queue.
        lambda_.EventInvokeConfig(
            self,
            "Invoke",
            function=function,
            retry_attempts=2,
            on_failure=destinations.SqsDestination(self.dead_letters),
        )
        self.alarm = queue_depth_alarm(self, "DeadLettersAlarm", self.dead_letters, "bucketzip cleanup", topic)
