"""The bucketzip stack: state table, functions, state machine, schedules, alarms, and the
destination bucket (created or existing), composed from the constructs of this package."""

from __future__ import annotations

import json

from aws_cdk import Aspects, CfnOutput, Stack
from constructs import Construct

from .alarms import FailureAlarms
from .checkov import CheckovSkips
from .cleanup import Cleanup
from .config import Config
from .dashboard import Dashboard
from .destination import Destination
from .functions import Functions
from .schedules import Schedules
from .state_machine import ArchiveStateMachine
from .table import StateTable


class BucketzipStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: Config, **kwargs) -> None:
        super().__init__(scope, id, description="bucketzip: archive S3 buckets into one zip, on a schedule", **kwargs)
        self.config = config
        self.table = StateTable(self, "State", point_in_time_recovery=config.point_in_time_recovery).table
        self.destination = Destination(self, "Destination", config=config)
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            table_name=self.table.table_name,
            table_arn=self.table.table_arn,
            dest_bucket_arn=self.destination.bucket_arn,
        )
        self.workflow = ArchiveStateMachine(
            self,
            "Archive",
            config=config,
            functions=self.functions.by_name,
            dest_bucket_arn=self.destination.bucket_arn,
        )
        self.alarms = FailureAlarms(self, "Alarms", state_machine=self.workflow.state_machine, email=config.alarm_email)
        self.schedules = Schedules(
            self, "Schedules", config=config, state_machine=self.workflow.state_machine, topic=self.alarms.topic
        )
        self.dashboard = Dashboard(
            self,
            "Dashboard",
            config=config,
            state_machine=self.workflow.state_machine,
            functions=self.functions.by_name,
            schedule_group=self.schedules.group_name if config.schedules else None,
        )
        self.cleanup = Cleanup(
            self,
            "Cleanup",
            state_machine=self.workflow.state_machine,
            function=self.functions.by_name["cleanup"],
            topic=self.alarms.topic,
        )
        self._outputs()
        Aspects.of(self).add(CheckovSkips())

    def _outputs(self) -> None:
        config = self.config
        bucket, prefix = config.sources[0] if config.sources else ("SOURCE-BUCKET", "PREFIX/")
        source = f"s3://{bucket}/{prefix}"
        dest = f"s3://{self.destination.bucket_name}/{config.dest_prefix}{bucket}.zip"
        CfnOutput(self, "StateMachineArn", value=self.workflow.arn, description="The archive state machine")
        CfnOutput(self, "TableName", value=self.table.table_name, description="Run state table")
        CfnOutput(
            self,
            "DestinationBucket",
            value=self.destination.bucket_name,
            description=f"Archives go under {config.dest_prefix or '/'} in this bucket",
        )
        if not config.create_dest_bucket:
            CfnOutput(
                self,
                "AbortIncompleteUploadsRule",
                description="Add this lifecycle rule to the existing destination bucket (README: Deploy)",
                value=json.dumps(abort_incomplete_uploads_rule(config.abort_incomplete_upload_days)),
            )
        CfnOutput(self, "AlarmTopicArn", value=self.alarms.topic.topic_arn, description="Failure notifications")
        CfnOutput(
            self,
            "StartCommand",
            description="Start a run by hand",
            value=f"bucketzip start --state-machine {self.workflow.arn} --source {source} --dest {dest}",
        )


def abort_incomplete_uploads_rule(days: int) -> dict:
    """The S3 lifecycle rule (PutBucketLifecycleConfiguration form) for an existing bucket."""
    return {
        "ID": "abort-incomplete-multipart-uploads",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
    }
