"""Start and follow executions of the bucketzip state machine (deployed, or in moto).

An execution that reaches its loop budget starts its continuation with
startExecution.sync:2 and waits for it, so the first execution ends with the outcome of the
whole run. `follow` polls that execution and reports the execution currently working (the
latest continuation, named by `run_ids.continuation_name`), so progress shows as it goes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..run_ids import continuation_name, run_id_of_execution

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from ..store import StateStore

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
SEGMENTS_PHASE = "segments"  # bucketzip.state.SEGMENTS: the Distributed Map runs


@dataclass
class ExecutionUpdate:
    """One poll: the execution being followed, its status, and the run's progress if known."""

    execution_arn: str
    status: str
    run_id: str
    progress: object = None  # bucketzip.results.Progress, when the run state exists
    segments: list = field(default_factory=list)  # a parallel run's segments' Progress, while they run


@dataclass
class ExecutionOutcome:
    status: str  # of the run: the first execution ends with the outcome of its continuations
    execution_arn: str  # the last execution of the chain (the one that did the last work)
    executions: list[str] = field(default_factory=list)
    output: dict | None = None
    error: str | None = None
    cause: str | None = None
    run_id: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def exit_code(self) -> int:
        """0 when the run succeeded, 1 when it FAILED, TIMED_OUT or was ABORTED."""
        return 0 if self.succeeded else 1


def start_execution(sfn: SFNClient, state_machine_arn: str, execution_input: dict, name: str) -> str:
    """StartExecution; returns the execution ARN."""
    return sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(execution_input))[
        "executionArn"
    ]


def follow(
    sfn: SFNClient,
    execution_arn: str,
    *,
    on_update: Callable[[ExecutionUpdate], None] | None = None,
    progress_of: Callable[[str], object] | None = None,
    segments_of: Callable[[str], list] | None = None,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ExecutionOutcome:
    """Poll the execution until the run ends (its continuations end first). While a parallel
    run is in its "segments" phase, `segments_of(run_id)` gives each segment's progress."""
    chain = [execution_arn]
    while True:
        description = sfn.describe_execution(executionArn=execution_arn)
        status = description["status"]
        run_id = run_id_of_execution(description["name"], _json(description.get("input")))
        chain = continuations(sfn, chain, run_id)
        progress = progress_of(run_id) if progress_of else None
        running = segments_of is not None and getattr(progress, "phase", None) == SEGMENTS_PHASE
        segments = segments_of(run_id) if running and segments_of else []
        if on_update:
            on_update(ExecutionUpdate(chain[-1], status, run_id, progress, segments))
        if status not in TERMINAL:
            sleep(poll_seconds)
            continue
        output = _json(description.get("output"))
        return ExecutionOutcome(
            status,
            chain[-1],
            chain,
            output if isinstance(output, dict) else None,
            description.get("error"),
            description.get("cause"),
            run_id,
        )


def continuations(sfn: SFNClient, chain: list[str], run_id: str) -> list[str]:
    """`chain` (the first execution, then continuations found so far) extended with the
    continuations started since: each is named after the run and its generation."""
    chain = list(chain)
    base = chain[0].rsplit(":", 1)[0]  # arn:...:execution:<state machine>
    while True:
        candidate = f"{base}:{continuation_name(run_id, len(chain))}"
        try:
            sfn.describe_execution(executionArn=candidate)
        except sfn.exceptions.ExecutionDoesNotExist:
            return chain
        chain.append(candidate)


def store_progress(store: StateStore) -> Callable[[str], object]:
    """progress_of(run_id) from the run state, None when there is none (finished, aborted)."""
    from bucketzip import engine
    from bucketzip.errors import RunNotFound

    def progress_of(run_id: str):
        try:
            return engine.get_progress(store, run_id)
        except (RunNotFound, NotImplementedError):
            return None

    return progress_of


def store_segments(store: StateStore) -> Callable[[str], list]:
    """segments_of(run_id): the progress of each segment of a parallel run ([] when none)."""
    from bucketzip import parallel
    from bucketzip.errors import RunNotFound

    def segments_of(run_id: str) -> list:
        try:
            return list(parallel.segment_progress(store, run_id))
        except RunNotFound:
            return []

    return segments_of


def table_of_execution(sfn: SFNClient, awslambda, execution_arn: str) -> str | None:
    """The DynamoDB table of a deployed stack: BUCKETZIP_TABLE of its Start function."""
    state_machine_arn = sfn.describe_execution(executionArn=execution_arn)["stateMachineArn"]
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=state_machine_arn)["definition"])
    function = definition.get("States", {}).get("Start", {}).get("Resource", "")
    if not function.startswith("arn:aws:lambda:"):
        return None
    config = awslambda.get_function_configuration(FunctionName=function)
    return config.get("Environment", {}).get("Variables", {}).get("BUCKETZIP_TABLE")


def _json(text: str | None):
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
