"""The Lambda functions (start, step, finish, abort for the state machine; cleanup for the
execution-status rule): Python on arm64, one asset, one least-privilege role EACH (only what
its own code calls: infra/permissions.py), a log group each with a retention, X-Ray tracing."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .config import FUNCTION_NAMES, Config, ConfigError
from .nag import suppress, wildcard_resource_findings
from .packaging import ARCHITECTURE, RUNTIME, lambda_code, refuse_deployment
from .permissions import function_statements
from .retention import retention

SERVICE_NAME = "bucketzip"
ROLE_PURPOSES = {
    "start": "check the source, create the archive's upload, write the run state",
    "step": "read sources, upload parts and the staging tail, commit the run state",
    "finish": "write the directory and manifest, complete the upload, delete the run state",
    "abort": "abort the upload, delete staging objects and the run state",
    "cleanup": "clean up after an execution that stopped, timed out or failed",
    "plan": "list the sources into shards, write the plan under the staging prefix",
    "segment": "read sources, upload one shard's segment into the archive's upload, commit its state",
    "assemble": "take the segments' records over into the run, commit the run state",
}
METRICS_NAMESPACE = "Bucketzip"
# Step and Finish spill the part being built, and the parts being uploaded, to /tmp
# (functions/bucketzip/sink.py), so memory does not grow with the part size. The part
# policy ends with 5 GiB parts (functions/bucketzip/parts.py), so /tmp gets Lambda's
# maximum ephemeral storage (10,240 MB): one 5 GiB part fits, and parts up to ~4.8 GiB
# are built while the previous one uploads.
SPILL_FUNCTIONS = ("step", "finish", "segment", "assemble")
EPHEMERAL_STORAGE_MB = 10240
SPILL_RESERVE_MB = 256  # of /tmp left for anything but parts
LARGEST_PART_MB = 5 * 1024  # bucketzip.config.MAX_PART_SIZE
# Peak RSS at default run settings is ~250 MiB whatever the part size (bench/README.md);
# below this the Step and Finish functions would run out of memory on ordinary runs.
MIN_SPILL_FUNCTION_MEMORY_MB = 1024


def check_spill_settings(config: Config, ephemeral_mb: int = EPHEMERAL_STORAGE_MB) -> None:
    """Refuse at synth a deployment whose Step/Finish cannot hold the policy's largest part."""
    if ephemeral_mb - SPILL_RESERVE_MB < LARGEST_PART_MB:
        raise ConfigError(
            f"ephemeral storage {ephemeral_mb} MB cannot hold the part policy's largest part "
            f"({LARGEST_PART_MB} MB) plus {SPILL_RESERVE_MB} MB"
        )
    for name in SPILL_FUNCTIONS:
        memory = config.functions[name].memory_mb
        if memory < MIN_SPILL_FUNCTION_MEMORY_MB:
            raise ConfigError(
                f"{name}_memory_mb: {memory} MB is below the {MIN_SPILL_FUNCTION_MEMORY_MB} MB "
                f"the {name} function needs at default run settings"
            )


class Functions(Construct):
    def __init__(
        self, scope: Construct, id: str, *, config: Config, table_name: str, table_arn: str, dest_bucket_arn: str
    ) -> None:
        super().__init__(scope, id)
        check_spill_settings(config)
        stack_name = Stack.of(self).stack_name
        self.roles: dict[str, iam.Role] = {}
        for name in FUNCTION_NAMES:
            role = iam.Role(
                self,
                f"{name.title()}Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"bucketzip {name} function: {ROLE_PURPOSES[name]}",
            )
            statements = function_statements(config, name, dest_bucket_arn=dest_bucket_arn, table_arn=table_arn)
            if name == "cleanup":  # the execution input, when too large for the event
                statements.append(
                    iam.PolicyStatement(
                        sid="DescribeExecutions",
                        actions=["states:DescribeExecution"],
                        resources=[execution_arns(self, config.state_machine_name)],
                    )
                )
            for statement in statements:
                role.add_to_policy(statement)
            self._suppressions(role, statements)
            self.roles[name] = role

        code = lambda_code(config.bundle, config.powertools_layer_arn is not None)
        if config.bundle == "copy":
            refuse_deployment(self)
        layers = (
            [lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", config.powertools_layer_arn)]
            if config.powertools_layer_arn
            else None
        )
        environment = {
            "BUCKETZIP_TABLE": table_name,
            "BUCKETZIP_STATE_TTL_DAYS": str(config.state_ttl_days),
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        # Start refuses more workers than segments can run at once (0: no reservation, no cap).
        segments = config.functions["segment"].reserved_concurrency
        max_workers = {"BUCKETZIP_MAX_WORKERS": str(segments)} if segments else {}
        self.by_name: dict[str, lambda_.Function] = {}
        for name in FUNCTION_NAMES:
            settings = config.functions[name]
            log_group = logs.LogGroup(
                self,
                f"{name.title()}Logs",
                log_group_name=f"/aws/lambda/{stack_name}-{name}",
                retention=retention(config.log_retention_days),
                removal_policy=RemovalPolicy.DESTROY,
            )
            self.roles[name].add_to_policy(
                iam.PolicyStatement(
                    sid="WriteLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn],
                )
            )
            spills = name in SPILL_FUNCTIONS
            spill_environment = (
                {"BUCKETZIP_SPILL_BYTES": str((EPHEMERAL_STORAGE_MB - SPILL_RESERVE_MB) * 1024 * 1024)}
                if spills
                else {}
            )
            self.by_name[name] = lambda_.Function(
                self,
                name.title(),
                function_name=f"{stack_name}-{name}",
                description=f"bucketzip {name}",
                runtime=RUNTIME,
                architecture=ARCHITECTURE,
                handler=f"handlers.{name}.handler",
                code=code,
                layers=layers,
                memory_size=settings.memory_mb,
                timeout=Duration.seconds(settings.timeout_seconds),
                reserved_concurrent_executions=settings.reserved_concurrency or None,
                environment={**environment, **spill_environment, **(max_workers if name == "start" else {})},
                ephemeral_storage_size=Size.mebibytes(EPHEMERAL_STORAGE_MB) if spills else None,
                role=self.roles[name],
                log_group=log_group,
                tracing=lambda_.Tracing.ACTIVE,
            )

    def _suppressions(self, role: iam.Role, statements: list[iam.PolicyStatement]) -> None:
        executions = [f for f in wildcard_resource_findings(self, statements) if ":execution:" in f]
        objects = [
            f for f in wildcard_resource_findings(self, statements) if f != "Resource::*" and f not in executions
        ]
        if objects:
            suppress(
                role,
                "AwsSolutions-IAM5",
                "Object-level S3 permissions name objects by prefix (bucket/prefix*): read under each "
                "configured source prefix, write under the destination and staging prefixes only.",
                findings=objects,
            )
        if executions:
            suppress(
                role,
                "AwsSolutions-IAM5",
                "Cleanup describes executions of this one state machine (their ARNs end in the "
                "execution name, unknown before the run) to read an input too large for the event.",
                findings=executions,
            )
        suppress(
            role,
            "AwsSolutions-IAM5",
            "X-Ray trace writes (xray:PutTraceSegments, xray:PutTelemetryRecords) support no "
            "resource-level permissions; AWS documents Resource '*' for them.",
            findings=["Resource::*"],
        )


def execution_arns(scope: Construct, state_machine_name: str) -> str:
    """Every execution of the state machine."""
    return Stack.of(scope).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{state_machine_name}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
