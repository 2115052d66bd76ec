"""Run ids and execution names.

A run started by the state machine is named after its execution, so a retried Start
finds the run it already created and the Abort of a failed Start knows what to clean.
Continued executions are named `{run_id}-{generation}`, hence the 64-character cap
(execution names are at most 80 characters).
"""

from __future__ import annotations

import hashlib
import re

MAX_RUN_ID = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def run_id_for_execution(execution_name: str) -> str:
    """The run id of the run an execution (not a continuation) starts."""
    safe = _UNSAFE.sub("_", execution_name) or "run"
    if safe == execution_name and len(safe) <= MAX_RUN_ID:
        return safe
    digest = hashlib.sha256(execution_name.encode("utf-8")).hexdigest()[:16]
    return f"{safe[: MAX_RUN_ID - 17]}-{digest}"


def run_id_of_execution(name: str, execution_input: dict | None) -> str:
    """The run an execution works on: carried in the input of continuations, else from its name."""
    resume = (execution_input or {}).get("resume")
    if isinstance(resume, dict) and isinstance(resume.get("run_id"), str):
        return resume["run_id"]
    return run_id_for_execution(name)
