"""Run ids and execution names.

A run started by the state machine is named after its execution, so a retried Start
finds the run it already created and the Abort of a failed Start knows what to clean.
Continued executions are named `{run_id}--continued-{generation}` (the state machine's
ContinueAsNew builds that name; `continuation_name` is the same rule in Python). The
suffix is reserved: Start refuses any other execution whose name contains it, so a name
a user picks never takes a continuation's place. Run ids are capped so that the
continuation names of 8-digit generations still fit the 80 characters of an execution name.
"""

from __future__ import annotations

import hashlib
import re

EXECUTION_NAME_LIMIT = 80  # Step Functions StartExecution: name, 1-80 characters
CONTINUATION_MARK = "--continued-"
MAX_GENERATION_DIGITS = 8
MAX_RUN_ID = EXECUTION_NAME_LIMIT - len(CONTINUATION_MARK) - MAX_GENERATION_DIGITS
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def run_id_for_execution(execution_name: str) -> str:
    """The run id of the run an execution (not a continuation) starts."""
    safe = _UNSAFE.sub("_", execution_name) or "run"
    if safe == execution_name and len(safe) <= MAX_RUN_ID:
        return safe
    digest = hashlib.sha256(execution_name.encode("utf-8")).hexdigest()[:16]
    return f"{safe[: MAX_RUN_ID - 17]}-{digest}"


def run_id_of_execution(name: str, execution_input: dict | None) -> str:
    """The run an execution works on: carried in the input of continuations and resumes,
    else from its name."""
    resume = (execution_input or {}).get("resume")
    if isinstance(resume, dict) and isinstance(resume.get("run_id"), str):
        return resume["run_id"]
    if isinstance(resume, str) and resume:  # a user resuming a suspended run: {"resume": "RUN_ID"}
        return resume
    return run_id_for_execution(name)


def continuation_name(run_id: str, generation: int) -> str:
    """The execution name of the run's `generation`-th continuation (as ContinueAsNew names it)."""
    return f"{run_id}{CONTINUATION_MARK}{generation}"


def is_reserved_name(execution_name: str) -> bool:
    """Names carrying the continuation suffix belong to continuations only."""
    return CONTINUATION_MARK in execution_name
