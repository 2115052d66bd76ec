"""Events the state machine sends to the handlers, and the execution input.

The execution input is documented in the README ("Execution input")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bucketzip.config import MAX_WORKERS

MAX_LOOPS_PER_EXECUTION = 2000  # ~9 history events per loop: 18,000 of the 25,000 allowed, room for retries


class ExecutionInput(BaseModel):
    """What a user (console, schedule, parent workflow, `bucketzip start`) passes."""

    model_config = ConfigDict(extra="forbid")

    source_bucket: str
    dest_bucket: str
    dest_key: str = Field(description="key template: {source_bucket} {source_prefix} {run_id} {date:FMT}")
    source_prefix: str = ""
    include: list[str] | str = []
    exclude: list[str] | str = []
    compression: Literal["auto", "store", "deflate"] = "auto"
    level: int | None = None
    part_size: int | str | None = None
    concurrency: int | None = None
    overwrite: bool = False
    strict: bool = False
    chunk_size: int | str | None = None
    step_bytes: int | str | None = None
    prefetch_bytes: int | str | None = None
    page_size: int | None = None
    # > 1: the parallel path (plan, a Distributed Map of segments, assembly), the Map's
    # MaxConcurrency; 1: one Step loop. Checked here too, so the error names the input's field.
    workers: int = Field(1, ge=1, le=MAX_WORKERS)
    shard_bytes: int | str | None = None  # target bytes per shard (None: the planner decides)
    loops_per_execution: int | None = Field(None, ge=1, le=MAX_LOOPS_PER_EXECUTION)
    # Set by the stack's schedules: the schedule's name, a metric dimension of the run's
    # success (the per-schedule "no successful run in N hours" alarm). Not part of the archive.
    schedule: str | None = Field(None, min_length=1, max_length=64)


class Resume(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1)
    generation: int = Field(0, ge=0)
    loops_per_execution: int | None = Field(None, ge=1, le=MAX_LOOPS_PER_EXECUTION)
    schedule: str | None = None  # carried from the first execution (ExecutionInput.schedule)


class ResumeInput(BaseModel):
    """Input of an execution that continues a run: {"resume": {...}} written by ContinueAsNew.
    A user resuming a suspended run writes {"resume": "RUN_ID"} (start.py reads it as
    {"resume": {"run_id": RUN_ID, "generation": <now>}})."""

    model_config = ConfigDict(extra="forbid")

    resume: Resume


class StartEvent(BaseModel):
    input: dict[str, Any]
    execution_name: str = Field(min_length=1)
    execution_start_time: datetime | None = None


class StepEvent(BaseModel):
    run_id: str = Field(min_length=1)
    execution_name: str | None = None
    previous: dict[str, Any] | None = None  # the progress before this step (for metrics)


class FinishEvent(BaseModel):
    run_id: str = Field(min_length=1)
    execution_name: str | None = None
    schedule: str | None = None  # the schedule that started the run, if one did


class PlanEvent(BaseModel):
    run_id: str = Field(min_length=1)
    execution_name: str | None = None


class SegmentEvent(BaseModel):
    """A child of the Distributed Map: one shard of the parent run `run_id`."""

    action: Literal["start", "step", "finish"]
    run_id: str = Field(min_length=1)  # the PARENT run
    index: int = Field(ge=0)  # the shard (plan.json item)
    execution_name: str | None = None


class SegmentResult(BaseModel):
    """What a Map child reports back: {} when its segment is complete, else the error that
    ended it (transient: it outlasted the retries) -- small, the Map collects one per shard."""

    model_config = ConfigDict(extra="forbid")

    index: int | None = None
    Error: str | None = None  # noqa: N815 - Step Functions' field name
    transient: bool = False


class SegmentsEvent(BaseModel):
    """The parent's check of the Map's results (null: a child that failed outside its Catch)."""

    action: Literal["check"]
    run_id: str = Field(min_length=1)
    results: list[SegmentResult | None]


class AssembleEvent(BaseModel):
    run_id: str = Field(min_length=1)
    execution_name: str | None = None


class AbortEvent(BaseModel):
    execution_name: str = Field(min_length=1)
    execution_input: Any = None  # $$.Execution.Input
    error: dict[str, Any] | None = None  # {"Error", "Cause"} that sent the run to Abort
    suspend: bool = False  # from Suspend: keep the run (transient failure), do not abort it


class ExecutionStatusDetail(BaseModel):
    """`detail` of an EventBridge "Step Functions Execution Status Change" event."""

    executionArn: str = Field(min_length=1)  # noqa: N815 - the event's field names
    stateMachineArn: str = ""  # noqa: N815
    name: str = Field(min_length=1)
    status: str
    input: str | None = None  # the execution input as JSON text; null when too large to include


class ExecutionStatusChange(BaseModel):
    """The cleanup rule's event (EventBridge envelope; only the fields used)."""

    source: Literal["aws.states"]
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    detail: ExecutionStatusDetail
