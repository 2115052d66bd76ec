"""The run-state table: one item per run plus its fragment items, all expiring by TTL.
Its schema is bucketzip.state_table's, shared with the store, the local demo and the tests."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from bucketzip.state_table import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE

from .nag import suppress


class StateTable(Construct):
    def __init__(self, scope: Construct, id: str, *, point_in_time_recovery: bool) -> None:
        super().__init__(scope, id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=point_in_time_recovery
            ),
            # Only in-flight run state lives here; it is worthless once its run has ended.
            removal_policy=RemovalPolicy.DESTROY,
        )
        if not point_in_time_recovery:
            suppress(
                self.table,
                "AwsSolutions-DDB3",
                "The table holds only in-flight run state that expires by TTL; a lost run is "
                "re-run from its source. Point-in-time recovery is opt-in (point_in_time_recovery).",
            )
