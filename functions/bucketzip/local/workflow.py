"""LocalWorkflow: the real state machine, executed by moto, with the Lambda tasks
dispatched to the in-process handlers. Used by `bucketzip demo` and the tests.

    with embedded_moto_server() as url:
        create the buckets and the DynamoDB table ...
        with LocalWorkflow(url, table) as wf:
            outcome = wf.run({"source_bucket": ..., "dest_bucket": ..., "dest_key": ...})

Deviations from AWS, all in moto and documented here:
- moto only executes state machines with config `stepfunctions.execute_state_machine`
  (set through POST /moto-api/config), and its interpreter reaches Lambda and Step
  Functions at http://localhost:$MOTO_PORT (set to the server's port);
- Lambda invocations run the handlers in this process (see `lambdas`);
- a few interpreter gaps are patched (see `moto_patches`), and `retry_time_scale`
  shrinks the Retry waits (moto sleeps for real) for fast tests.
"""

from __future__ import annotations

import functools
import io
import json
import os
import time
import uuid
import zipfile
from dataclasses import dataclass, field

import boto3

from ..cli.executions import ExecutionOutcome, follow, start_execution
from . import lambdas, moto_patches
from .definition import render_definition, task_timeout_seconds
from .server import enable_state_machine_execution

HANDLERS = {
    "StartFunctionArn": ("start", "handlers.start.handler"),
    "StepFunctionArn": ("step", "handlers.step.handler"),
    "FinishFunctionArn": ("finish", "handlers.finish.handler"),
    "AbortFunctionArn": ("abort", "handlers.abort.handler"),
    "PlanFunctionArn": ("plan", "handlers.plan.handler"),
    "SegmentFunctionArn": ("segment", "handlers.segment.handler"),
    "AssembleFunctionArn": ("assemble", "handlers.assemble.handler"),
}
ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
            }
        ],
    }
)
# Environment of the in-process handlers (plus BUCKETZIP_TABLE and `environment`).
LOCAL_HANDLER_ENV = {
    "POWERTOOLS_SERVICE_NAME": "bucketzip",
    "POWERTOOLS_METRICS_NAMESPACE": "bucketzip",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@dataclass
class LocalWorkflow:
    endpoint_url: str
    table: str
    name: str = "bucketzip"
    lambda_timeout: float = 900.0
    # the Tasks' TimeoutSeconds by function ("step": 3); default: a little above lambda_timeout
    task_timeouts: dict[str, int] = field(default_factory=dict)
    retry_time_scale: float = 1.0
    environment: dict[str, str] = field(default_factory=dict)
    state_machine_arn: str = ""
    function_names: dict[str, str] = field(default_factory=dict)  # "step" -> moto function name

    def __enter__(self) -> LocalWorkflow:
        self.setup()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @functools.cached_property
    def sfn(self):
        return boto3.client("stepfunctions", endpoint_url=self.endpoint_url)

    def setup(self) -> None:
        enable_state_machine_execution(self.endpoint_url)
        moto_patches.apply()
        moto_patches.set_retry_time_scale(self.retry_time_scale)
        env = {**LOCAL_HANDLER_ENV, "BUCKETZIP_TABLE": self.table, **self.environment}
        self._saved_env = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # in-process handlers share this process's environment
        role_arn = self._role()
        awslambda = boto3.client("lambda", endpoint_url=self.endpoint_url)
        substitutions: dict[str, str | int] = {}
        for placeholder, (short, handler) in HANDLERS.items():
            function_name = f"{self.name}-{short}"
            arn = awslambda.create_function(
                FunctionName=function_name,
                Runtime="python3.11",
                Role=role_arn,
                Handler=handler,
                Code={"ZipFile": _placeholder_zip()},
                Timeout=int(self.lambda_timeout),
                Environment={"Variables": env},
            )["FunctionArn"]
            lambdas.register(lambdas.Registration(function_name, arn, handler, self.lambda_timeout))
            self.function_names[short] = function_name
            substitutions[placeholder] = arn
            substitutions[f"{short.title()}TaskTimeoutSeconds"] = self.task_timeouts.get(
                short, task_timeout_seconds(self.lambda_timeout)
            )
        self._arns = {short: str(substitutions[placeholder]) for placeholder, (short, _) in HANDLERS.items()}
        self.state_machine_arn = self.sfn.create_state_machine(
            name=self.name,
            roleArn=role_arn,
            definition=render_definition(substitutions),
        )["stateMachineArn"]

    def close(self) -> None:
        for arn in getattr(self, "_arns", {}).values():
            lambdas.unregister(arn)
        for key, value in getattr(self, "_saved_env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def intercept(self, short_name: str, interceptor: lambdas.Interceptor | None) -> None:
        """Route invocations of "start"/"step"/"finish"/"abort"/"plan"/"segment"/"assemble" through
        interceptor(event, context, call)."""
        lambdas.register(
            lambdas.Registration(
                self.function_names[short_name],
                self._arns[short_name],
                f"handlers.{short_name}.handler",
                self.lambda_timeout,
                interceptor,
            )
        )

    def invocations(self, short_name: str) -> list[lambdas.Invocation]:
        return lambdas.invocations(self.function_names[short_name])

    def start(self, execution_input: dict, name: str | None = None) -> str:
        return start_execution(
            self.sfn, self.state_machine_arn, execution_input, name or f"run-{uuid.uuid4().hex[:12]}"
        )

    def wait(self, execution_arn: str, timeout: float = 300.0) -> ExecutionOutcome:
        """Wait for the execution and every execution it continues as."""
        deadline = time.monotonic() + timeout

        def tick(update) -> None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{update.execution_arn} still {update.status} after {timeout}s")

        return follow(self.sfn, execution_arn, on_update=tick, poll_seconds=0.05)

    def run(self, execution_input: dict, name: str | None = None, timeout: float = 300.0) -> ExecutionOutcome:
        return self.wait(self.start(execution_input, name), timeout)

    def history(self, execution_arn: str) -> list[dict]:
        events: list[dict] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events.extend(page["events"])
        return events

    def _role(self) -> str:
        iam = boto3.client("iam", endpoint_url=self.endpoint_url)
        role_name = f"{self.name}-role"
        try:
            return iam.get_role(RoleName=role_name)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            return iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]


def _placeholder_zip() -> bytes:
    """moto wants a code package; the code actually run is this process's `handlers`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "bucketzip handlers are dispatched in-process\n")
    return buffer.getvalue()
