"""The archive workflow: statemachine/archive.asl.json, deployed as written, its
${...FunctionArn} placeholders filled by CloudFormation definition substitutions and its
${...TaskTimeoutSeconds} placeholders (whole JSON strings) replaced at synth by numbers:
each function's timeout plus a small margin."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bucketzip.local.definition import render_numbers, task_timeout_seconds

from .config import ASL_PATH, STAGING_PREFIX, Config
from .nag import suppress, wildcard_resource_findings
from .retention import retention

# ASL placeholder -> function name (infra.config.FUNCTION_NAMES)
SUBSTITUTIONS = {
    "StartFunctionArn": "start",
    "StepFunctionArn": "step",
    "FinishFunctionArn": "finish",
    "AbortFunctionArn": "abort",
    "PlanFunctionArn": "plan",
    "SegmentFunctionArn": "segment",
    "AssembleFunctionArn": "assemble",
}


def task_timeouts(config: Config) -> dict[str, int]:
    """${StepTaskTimeoutSeconds} etc.: each function's timeout plus a small margin."""
    return {
        f"{name.title()}TaskTimeoutSeconds": task_timeout_seconds(config.functions[name].timeout_seconds)
        for name in SUBSTITUTIONS.values()
    }


def definition_text(config: Config) -> str:
    """The ASL file with its numeric placeholders ("${Name}", quotes included) replaced."""
    return render_numbers(ASL_PATH.read_text(), task_timeouts(config))


def state_machine_arn(scope: Construct, name: str) -> str:
    """The ARN from the fixed name: lets the role allow continue-as-new without a cycle."""
    return Stack.of(scope).format_arn(
        service="states", resource="stateMachine", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
    )


class ArchiveStateMachine(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        functions: Mapping[str, lambda_.IFunction],
        dest_bucket_arn: str,
    ) -> None:
        super().__init__(scope, id)
        log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{config.state_machine_name}",
            retention=retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=config.state_machine_name,
            definition_body=sfn.DefinitionBody.from_string(definition_text(config)),
            definition_substitutions={
                placeholder: functions[name].function_arn for placeholder, name in SUBSTITUTIONS.items()
            },
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        role = self.state_machine.role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="InvokeFunctions",
                actions=["lambda:InvokeFunction"],
                resources=[functions[name].function_arn for name in SUBSTITUTIONS.values()],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ContinueAsNew",
                actions=["states:StartExecution"],
                resources=[state_machine_arn(self, config.state_machine_name)],
            )
        )
        # startExecution.sync:2 waits for the continuation: it describes it, stops it when this
        # execution is stopped, and learns of its end through a Step Functions-managed rule.
        stack = Stack.of(self)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="FollowContinuation",
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[
                    stack.format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"{config.state_machine_name}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        # The Segments Distributed Map: its child executions are executions of this state
        # machine (StartExecution above) named <state machine>/<map run>:<id>; it describes and
        # stops them; its ItemReader reads plan.json (bucketzip.plan.plan_key) in the destination.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="MapChildExecutions",
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[
                    stack.format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"{config.state_machine_name}/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        plan_statement = iam.PolicyStatement(
            sid="ReadPlan", actions=["s3:GetObject"], resources=[f"{dest_bucket_arn}/{STAGING_PREFIX}*/plan.json"]
        )
        role.add_to_principal_policy(plan_statement)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ContinuationEvents",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(
                        service="events",
                        resource="rule",
                        resource_name="StepFunctionsGetEventsForStepFunctionsExecutionRule",
                    )
                ],
            )
        )
        suppress(
            role,
            "AwsSolutions-IAM5",
            "startExecution.sync:2 follows a continuation it starts: executions of this one state machine "
            "only (execution ARNs end in the execution name, unknown before the run).",
            findings=[
                "Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
                f"{config.state_machine_name}:*"
            ],
        )
        suppress(
            role,
            "AwsSolutions-IAM5",
            "The Segments Distributed Map runs its children as executions of this one state machine "
            "(named <state machine>/<map run>:<id>, unknown before the run) and reads each run's "
            "plan.json under the staging prefix (the run id is in the key).",
            findings=[
                "Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
                f"{config.state_machine_name}/*",
                *wildcard_resource_findings(self, [plan_statement]),
            ],
        )
        suppress(
            role,
            "AwsSolutions-IAM5",
            "CloudWatch Logs delivery (logs:CreateLogDelivery and friends) and X-Ray trace "
            "writes support no resource-level permissions; AWS documents Resource '*' for both.",
            findings=["Resource::*"],
        )

    @property
    def arn(self) -> str:
        return self.state_machine.state_machine_arn
