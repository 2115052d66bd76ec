"""The ASL definition (statemachine/archive.asl.json) and its ${Placeholders}."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

PLACEHOLDERS = ("StartFunctionArn", "StepFunctionArn", "FinishFunctionArn", "AbortFunctionArn")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def definition_path() -> Path:
    """statemachine/archive.asl.json of this checkout ($BUCKETZIP_ASL overrides)."""
    override = os.environ.get("BUCKETZIP_ASL")
    path = Path(override) if override else Path(__file__).resolve().parents[3] / "statemachine" / "archive.asl.json"
    if not path.is_file():
        raise FileNotFoundError(f"state machine definition not found at {path} (set BUCKETZIP_ASL)")
    return path


def render_definition(substitutions: dict[str, str], path: Path | None = None) -> str:
    """The definition with every ${Name} replaced, as CDK's DefinitionSubstitutions does."""
    text = (path or definition_path()).read_text(encoding="utf-8")
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(substitutions))
    if missing:
        raise KeyError(f"no substitution for {', '.join(missing)}")
    rendered = _PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)
    json.loads(rendered)  # still valid JSON
    return rendered
