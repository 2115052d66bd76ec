"""checkov (a second opinion on the template, run by tests/infra/test_infra_checks.py): the
checks this stack answers differently, each with its one-line reason, written into the
template's metadata (Metadata.checkov.skip) by an aspect, per resource type. Everything
else checkov reports fails the tests."""

from __future__ import annotations

import jsii
from aws_cdk import CfnResource, IAspect
from constructs import IConstruct

SKIPS: dict[str, dict[str, str]] = {
    "AWS::Lambda::Function": {
        "CKV_AWS_116": "Invoked synchronously by Step Functions (a DLQ applies to async invokes only); "
        "Cleanup's async failures go to its SQS queue through an EventInvokeConfig destination.",
        "CKV_AWS_117": "Calls only S3, DynamoDB and Step Functions public endpoints; no private resources, "
        "and a VPC would add NAT or endpoint costs to every byte archived.",
        "CKV_AWS_173": "The environment holds no secrets: table name, TTL, Powertools settings, spill budget.",
    },
    "AWS::Logs::LogGroup": {
        "CKV_AWS_158": "Logs hold run ids, keys and counts, no object data; CloudWatch Logs encrypts them at "
        "rest; a customer key would cost $1/month and a key policy per deployment.",
    },
    "AWS::DynamoDB::Table": {
        "CKV_AWS_119": "Run state (keys, offsets, CRCs, part ETags) is encrypted at rest with the AWS owned key; "
        "it holds no object data.",
        "CKV_AWS_28": "Run state is transient (TTL, deleted at the end of each run); point_in_time_recovery "
        "turns PITR on for those who want it.",
    },
    "AWS::S3::Bucket": {
        "CKV_AWS_18": "Server access logging needs a second bucket; the archiver's access is traced by "
        "Step Functions, Lambda logs and CloudTrail.",
    },
    "AWS::SNS::Topic": {
        "CKV_AWS_26": "Alarm notifications carry no data beyond names; CloudWatch alarms cannot publish "
        "to a topic encrypted with the AWS managed SNS key.",
    },
    "AWS::SQS::Queue": {
        "CKV_AWS_27": "Encrypted at rest with SQS-managed SSE (SqsManagedSseEnabled); checkov only "
        "recognizes a KMS key.",
    },
}
NO_RESERVATION = {"CKV_AWS_115": "Reserved concurrency set to 0 (none) in the context (<fn>_reserved_concurrency)."}


@jsii.implements(IAspect)
class CheckovSkips:
    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, CfnResource):
            return
        skips = dict(SKIPS.get(node.cfn_resource_type, {}))
        if node.cfn_resource_type == "AWS::Lambda::Function" and not getattr(
            node, "reserved_concurrent_executions", None
        ):
            skips.update(NO_RESERVATION)
        if skips:
            node.add_metadata("checkov", {"skip": [{"id": k, "comment": v} for k, v in sorted(skips.items())]})
