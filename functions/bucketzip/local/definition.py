"""The ASL definition (statemachine/archive.asl.json) and its ${Placeholders}.

Function ARNs are strings, substituted in place as CloudFormation's
DefinitionSubstitutions do. Task timeouts are numbers: their placeholders are whole JSON
strings ("TimeoutSeconds": "${StepTaskTimeoutSeconds}", so the file stays valid JSON)
replaced, quotes included, by the number (infra/state_machine.py does the same at synth).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

# The functions the definition invokes (Plan, Segment, Assemble: the parallel path).
FUNCTIONS = ("Start", "Step", "Finish", "Abort", "Plan", "Segment", "Assemble")
FUNCTION_PLACEHOLDERS = tuple(f"{name}FunctionArn" for name in FUNCTIONS)
TIMEOUT_PLACEHOLDERS = tuple(f"{name}TaskTimeoutSeconds" for name in FUNCTIONS)
PLACEHOLDERS = FUNCTION_PLACEHOLDERS + TIMEOUT_PLACEHOLDERS
# A Task waits this much longer than its function's timeout: the function's own timeout
# (Sandbox.Timedout) comes first; the Task timeout (States.Timeout) catches a lost invocation.
TASK_TIMEOUT_MARGIN_SECONDS = 30
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def task_timeout_seconds(function_timeout_seconds: float) -> int:
    return int(function_timeout_seconds) + TASK_TIMEOUT_MARGIN_SECONDS


def definition_path() -> Path:
    """statemachine/archive.asl.json of this checkout ($BUCKETZIP_ASL overrides)."""
    override = os.environ.get("BUCKETZIP_ASL")
    path = Path(override) if override else Path(__file__).resolve().parents[3] / "statemachine" / "archive.asl.json"
    if not path.is_file():
        raise FileNotFoundError(f"state machine definition not found at {path} (set BUCKETZIP_ASL)")
    return path


def render_numbers(text: str, numbers: dict[str, int]) -> str:
    """Replace each "${Name}" JSON string (quotes included) by its number."""
    for name, value in numbers.items():
        text = text.replace(f'"${{{name}}}"', str(int(value)))
    return text


def render_definition(substitutions: dict[str, str | int], path: Path | None = None) -> str:
    """The definition with every ${Name} replaced, as CDK's DefinitionSubstitutions does
    (numbers replace their quoted placeholder)."""
    text = (path or definition_path()).read_text(encoding="utf-8")
    text = render_numbers(text, {k: v for k, v in substitutions.items() if isinstance(v, int)})
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(substitutions))
    if missing:
        raise KeyError(f"no substitution for {', '.join(missing)}")
    rendered = _PLACEHOLDER.sub(lambda m: str(substitutions[m.group(1)]), text)
    json.loads(rendered)  # still valid JSON
    return rendered
