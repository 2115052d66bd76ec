"""Failure alarms: any failed, timed-out or aborted execution notifies an SNS topic
(optionally subscribed by email)."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .nag import suppress


class FailureAlarms(Construct):
    def __init__(self, scope: Construct, id: str, *, state_machine: sfn.StateMachine, email: str | None) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(self, "Topic", display_name="bucketzip failures", enforce_ssl=True)
        # An explicit topic policy replaces the default one: let CloudWatch alarms of this account publish.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarms",
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        suppress(
            self.topic,
            "AwsSolutions-SNS2",
            "Alarm notifications carry no data beyond the state machine name; the AWS-managed SNS "
            "key cannot be used by CloudWatch alarms and a customer key costs $1/month.",
        )

        self.alarms = []
        for name, what, metric in (
            ("Failed", "failed", state_machine.metric_failed),
            ("TimedOut", "timed out", state_machine.metric_timed_out),
            ("Aborted", "was aborted", state_machine.metric_aborted),
        ):
            alarm = cloudwatch.Alarm(
                self,
                name,
                alarm_description=f"A bucketzip archive execution {what}; see the Step Functions console.",
                metric=metric(period=Duration.minutes(5), statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(actions.SnsAction(self.topic))
            self.alarms.append(alarm)
