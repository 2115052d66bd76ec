"""The operator's first look: one CloudWatch dashboard with runs started, succeeded, failed
and suspended; archive bytes and objects per run; Step throughput; step durations against
the Lambda timeout; Lambda errors and throttles; schedule target errors."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .config import Config
from .functions import METRICS_NAMESPACE, SERVICE_NAME
from .schedules import SCHEDULER_METRICS, scheduler_metric

PERIOD = Duration.minutes(5)


def app_metric(name: str, statistic: str = "Sum", label: str | None = None) -> cw.Metric:
    """A metric the handlers publish with Powertools (namespace Bucketzip, dimension service)."""
    return cw.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SERVICE_NAME},
        statistic=statistic,
        period=PERIOD,
        label=label or name,
    )


class Dashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        state_machine: sfn.StateMachine,
        functions: Mapping[str, lambda_.IFunction],
        schedule_group: str | None,
    ) -> None:
        super().__init__(scope, id)
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{config.stack_name}-bucketzip")
        runs = cw.GraphWidget(
            title="Runs",
            width=12,
            left=[
                app_metric("RunsStarted", label="started"),
                app_metric("RunsSucceeded", label="succeeded"),
                state_machine.metric_failed(period=PERIOD, statistic="Sum", label="executions failed"),
                app_metric("RunsAborted", label="aborted"),
                app_metric("RunsSuspended", label="suspended"),
                app_metric("RunsCleanedUp", label="cleaned up by the status rule"),
            ],
        )
        archives = cw.GraphWidget(
            title="Archive per run (bytes, objects)",
            width=12,
            left=[app_metric("ArchiveBytes", "Maximum", "bytes")],
            right=[app_metric("ArchiveEntries", "Maximum", "objects")],
        )
        throughput = cw.GraphWidget(
            title="Step throughput (MB/s)",
            width=12,
            left=[
                cw.MathExpression(
                    expression="throughput / 1000000",
                    using_metrics={"throughput": app_metric("Throughput", "Average")},
                    label="MB/s (average of steps)",
                    period=PERIOD,
                )
            ],
        )
        step_timeout_ms = config.functions["step"].timeout_seconds * 1000
        durations = cw.GraphWidget(
            title="Step and Finish durations vs the Lambda timeout (ms)",
            width=12,
            left=[
                functions[name].metric_duration(period=PERIOD, statistic="Maximum", label=f"{name} max")
                for name in ("step", "finish")
            ],
            left_annotations=[cw.HorizontalAnnotation(value=step_timeout_ms, label="step timeout")],
        )
        errors = cw.GraphWidget(
            title="Lambda errors and throttles",
            width=12,
            left=[fn.metric_errors(period=PERIOD, statistic="Sum", label=f"{n} errors") for n, fn in functions.items()],
            right=[
                fn.metric_throttles(period=PERIOD, statistic="Sum", label=f"{n} throttles")
                for n, fn in functions.items()
            ],
        )
        widgets: list[cw.IWidget] = [runs, archives, throughput, durations, errors]
        if schedule_group:
            widgets.append(
                cw.GraphWidget(
                    title="Schedule target errors",
                    width=12,
                    left=[scheduler_metric(name, schedule_group) for name in SCHEDULER_METRICS],
                )
            )
        for i in range(0, len(widgets), 2):
            self.dashboard.add_widgets(*widgets[i : i + 2])
