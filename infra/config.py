"""The deployment settings, read from the CDK context (cdk.json or `cdk deploy -c key=value`)
and validated before any construct is built: a bad value fails synth with a message naming
the key (and the schedule) at fault.

Values given with `-c` arrive as strings; booleans, numbers, lists and objects are parsed
from them (lists and objects as JSON)."""

from __future__ import annotations

import json
import re
import sys
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
ASL_PATH = ROOT / "statemachine" / "archive.asl.json"

# The execution input is validated by the Start function (handlers.models.ExecutionInput,
# then the engine's ArchiveRequest); schedules are checked with the same code at synth time,
# so a schedule that deploys is one the Start function accepts.
if str(FUNCTIONS_DIR) not in sys.path:
    sys.path.insert(0, str(FUNCTIONS_DIR))
from pydantic import ValidationError  # noqa: E402

from bucketzip.config import STAGING_PREFIX, ArchiveRequest  # noqa: E402
from bucketzip.errors import InputError  # noqa: E402
from bucketzip.keys import render_key  # noqa: E402
from handlers.models import ExecutionInput  # noqa: E402

from .context import (  # noqa: E402, F401 - re-exported: the infra modules import them from here
    BUNDLE_MODES,
    FUNCTION_DEFAULTS,
    FUNCTION_NAMES,
    KEYS,
    LOG_RETENTION_DAYS,
    Context,
    FunctionContext,
    bucket_problem,
    validated,
)
from .errors import ConfigError  # noqa: E402
from .schedule_expression import MAX_ALARM_HOURS, check_schedule_expression, no_success_alarm_hours  # noqa: E402

SCHEDULE_KEYS = (
    "name",
    "schedule",
    "timezone",
    "description",
    "enabled",
    "source_bucket",
    "source_prefix",
    "dest_bucket",
    "dest_key",
    "options",
    "alarm_after_hours",
)
REQUIRED_SCHEDULE_KEYS = ("name", "schedule", "source_bucket", "dest_bucket", "dest_key")
# Execution-input fields a schedule sets at its top level; every other input field goes in options.
TOP_LEVEL_INPUT = ("source_bucket", "source_prefix", "dest_bucket", "dest_key")

_SCHEDULE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class FunctionSettings:
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int = 0  # 0: none


@dataclass(frozen=True)
class Schedule:
    name: str
    expression: str  # cron(...), rate(...) or at(...)
    timezone: str
    enabled: bool
    description: str
    input: dict  # the execution input, exactly as the Start function receives it
    # "no successful run in N hours" alarm: N (None: no alarm; derived from the expression
    # unless the schedule sets alarm_after_hours, 0 meaning no alarm)
    alarm_after_hours: int | None = None


@dataclass(frozen=True)
class Config:
    stack_name: str = "Bucketzip"
    bundle: str = "pip"
    dest_bucket: str | None = None  # None: the stack creates a bucket with a generated name
    create_dest_bucket: bool = True
    dest_prefix: str = "backups/"
    dest_kms_key_arn: str | None = None
    staging_expiry_days: int = 7
    abort_incomplete_upload_days: int = 7
    sources: tuple[tuple[str, str], ...] = ()  # (bucket, prefix), from `sources` and schedules
    source_kms_key_arns: tuple[str, ...] = ()
    point_in_time_recovery: bool = False
    state_ttl_days: int = 14
    functions: Mapping[str, FunctionSettings] = field(default_factory=dict)
    powertools_layer_arn: str | None = None
    log_retention_days: int = 30
    alarm_email: str | None = None
    schedules: tuple[Schedule, ...] = ()

    @property
    def state_machine_name(self) -> str:
        return f"{self.stack_name}-archive"

    def source_prefixes(self) -> dict[str, list[str]]:
        """bucket -> sorted distinct prefixes ('' is the whole bucket and absorbs the rest)."""
        grouped: dict[str, set[str]] = {}
        for bucket, prefix in self.sources:
            grouped.setdefault(bucket, set()).add(prefix)
        return {b: ([""] if "" in p else sorted(p)) for b, p in sorted(grouped.items())}


def cdk_json_context() -> dict:
    """The `context` of the repository's cdk.json (defaults and feature flags)."""
    return json.loads((ROOT / "cdk.json").read_text()).get("context", {})


def load_config(context: Callable[[str], Any] | Mapping[str, Any]) -> Config:
    """Build the Config from a context getter (`node.try_get_context`) or a plain dict: the
    keys' types and checks are the pydantic models of infra/context.py; here, what spans keys."""
    get = context.get if isinstance(context, Mapping) else context
    values = {key: value for key in KEYS if (value := get(key)) is not None}
    ctx = validated(Context, values).check()
    settings = validated(FunctionContext, values)
    functions = {
        name: FunctionSettings(
            getattr(settings, f"{name}_memory_mb"),
            getattr(settings, f"{name}_timeout_seconds"),
            getattr(settings, f"{name}_reserved_concurrency"),
        )
        for name in FUNCTION_NAMES
    }
    sources = [_parse_source(s, f"sources[{i}]") for i, s in enumerate(ctx.sources)]
    for i, (bucket, prefix) in enumerate(sources):
        overlap = destination_overlap(bucket, prefix, ctx.dest_bucket, ctx.dest_prefix)
        if overlap:
            raise ConfigError(f"sources[{i}]: {overlap}")
    schedules = _parse_schedules(ctx.schedules, ctx.dest_bucket, ctx.dest_prefix)
    sources += [(s.input["source_bucket"], s.input.get("source_prefix", "")) for s in schedules]
    return Config(
        stack_name=ctx.stack_name,
        bundle=ctx.bundle,
        dest_bucket=ctx.dest_bucket,
        create_dest_bucket=ctx.create_dest_bucket,
        dest_prefix=ctx.dest_prefix,
        dest_kms_key_arn=ctx.dest_kms_key_arn,
        staging_expiry_days=ctx.staging_expiry_days,
        abort_incomplete_upload_days=ctx.abort_incomplete_upload_days,
        sources=tuple(dict.fromkeys(sources)),
        source_kms_key_arns=tuple(ctx.source_kms_key_arns),
        point_in_time_recovery=ctx.point_in_time_recovery,
        state_ttl_days=ctx.state_ttl_days,
        functions=functions,
        powertools_layer_arn=ctx.powertools_layer_arn,
        log_retention_days=ctx.log_retention_days,
        alarm_email=ctx.alarm_email,
        schedules=tuple(schedules),
    )


# ---------------------------------------------------------------- schedules


def _parse_schedules(items: list, dest_bucket: str | None, dest_prefix: str) -> list[Schedule]:
    schedules, seen = [], set()
    for i, item in enumerate(items):
        label = f"schedules[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{label}: must be an object, got {type(item).__name__}")
        name = item.get("name")
        if isinstance(name, str) and _SCHEDULE_NAME_RE.match(name):
            label = f"{label} ({name!r})"
        schedule = _parse_schedule(item, label, dest_bucket, dest_prefix)
        if schedule.name in seen:
            raise ConfigError(f"schedule {label}: name: {schedule.name!r} is used by another schedule")
        seen.add(schedule.name)
        schedules.append(schedule)
    return schedules


def _parse_schedule(item: dict, label: str, dest_bucket: str | None, dest_prefix: str) -> Schedule:
    """One `schedules` entry, checked piece by piece; errors name the schedule and the key."""
    check = _ScheduleCheck(item, label)
    check.keys()
    check.name_expression_timezone()
    check.destination(dest_bucket, dest_prefix)
    run_input = check.run_input()
    check.accepted_by_the_engine(run_input)
    alarm_hours = check.alarm_after_hours()
    enabled = item.get("enabled", True)
    return Schedule(
        name=item["name"],
        expression=item["schedule"],
        timezone=item.get("timezone") or "UTC",
        enabled=enabled,
        description=item.get("description") or f"bucketzip run {item['name']}",
        input={**run_input, "schedule": item["name"]},  # the run's success is counted per schedule
        alarm_after_hours=alarm_hours or None,
    )


_STRING_SCHEDULE_KEYS = (
    "name",
    "schedule",
    "source_bucket",
    "dest_bucket",
    "dest_key",
    "source_prefix",
    "timezone",
    "description",
)
# Execution-input fields a schedule may set in `options` (schedule: set by the stack).
_OPTION_FIELDS = [f for f in ExecutionInput.model_fields if f not in TOP_LEVEL_INPUT and f != "schedule"]


class _ScheduleCheck:
    def __init__(self, item: dict, label: str) -> None:
        self.item, self.label = item, label

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"schedule {self.label}: {key}: {message}")

    def keys(self) -> None:
        """Known keys only, the required ones present, the string ones strings."""
        item = self.item
        unknown = sorted(set(item) - set(SCHEDULE_KEYS))
        if unknown:
            known = ", ".join(SCHEDULE_KEYS)
            raise self.fail(unknown[0], f"unknown key (known: {known}; execution options go in 'options')")
        for key in REQUIRED_SCHEDULE_KEYS:
            if item.get(key) in (None, ""):
                raise self.fail(key, "is required")
        for key in _STRING_SCHEDULE_KEYS:
            if key in item and not isinstance(item[key], str):
                raise self.fail(key, f"must be a string, got {item[key]!r}")

    def name_expression_timezone(self) -> None:
        item = self.item
        if not _SCHEDULE_NAME_RE.match(item["name"]):
            raise self.fail("name", f"{item['name']!r} must be 1-64 letters, digits, '-', '_' or '.'")
        try:
            check_schedule_expression(item["schedule"])
        except ValueError as exc:
            raise self.fail("schedule", str(exc)) from None
        timezone = item.get("timezone") or "UTC"
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise self.fail("timezone", f"{timezone!r} is not an IANA time zone (e.g. 'Europe/Paris')") from None
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise self.fail("enabled", f"must be true or false, got {enabled!r}")

    def destination(self, dest_bucket: str | None, dest_prefix: str) -> None:
        """Into the stack's destination, under its prefix, not from it."""
        item = self.item
        if dest_bucket is None:
            raise self.fail(
                "dest_bucket",
                "the stack's destination bucket has a generated name; set the "
                "dest_bucket context key to schedule runs into it",
            )
        if item["dest_bucket"] != dest_bucket:
            raise self.fail(
                "dest_bucket",
                f"{item['dest_bucket']!r} is not the stack's destination bucket "
                f"{dest_bucket!r} (the functions may write only there)",
            )
        literal = item["dest_key"].split("{", 1)[0].lstrip("/")  # the part no placeholder can change
        if not literal.startswith(dest_prefix):
            raise self.fail(
                "dest_key",
                f"{item['dest_key']!r} must start with the destination prefix "
                f"{dest_prefix!r} (the functions may write only there)",
            )
        overlap = destination_overlap(item["source_bucket"], item.get("source_prefix", ""), dest_bucket, dest_prefix)
        if overlap:
            raise self.fail("source_prefix" if item.get("source_prefix") else "source_bucket", overlap)

    def run_input(self) -> dict:
        """The execution input: the top-level fields plus the known options."""
        options = self.item.get("options", {})
        if not isinstance(options, dict):
            raise self.fail("options", f"must be an object, got {options!r}")
        for key in options:
            if key not in _OPTION_FIELDS:
                where = (
                    "set it at the schedule's top level"
                    if key in TOP_LEVEL_INPUT
                    else f"known: {', '.join(_OPTION_FIELDS)}"
                )
                raise self.fail(f"options.{key}", f"unknown option ({where})")
        return {**{k: self.item[k] for k in TOP_LEVEL_INPUT if k in self.item}, **options}

    def accepted_by_the_engine(self, run_input: dict) -> None:
        """Validated as the Start function will: the input model, then the engine's request."""
        try:
            model = ExecutionInput.model_validate(run_input)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = str(error["loc"][0]) if error["loc"] else "options"
            raise self.fail(self._field_key(key), f"{error['msg']} (got {error.get('input')!r})") from None
        fields = model.model_dump(exclude_unset=True, exclude={"loops_per_execution", "schedule"})
        try:
            fields["dest_key"] = render_key(
                self.item["dest_key"],
                source_bucket=self.item["source_bucket"],
                source_prefix=self.item.get("source_prefix", ""),
                run_id="check",
            )
            ArchiveRequest.create(**fields)
        except (InputError, TypeError) as exc:
            key, sep, rest = str(exc).partition(": ")
            if sep and key in ExecutionInput.model_fields:
                raise self.fail(self._field_key(key), rest) from None
            raise ConfigError(f"schedule {self.label}: {exc}") from None

    def alarm_after_hours(self) -> int | None:
        hours = self.item.get("alarm_after_hours", no_success_alarm_hours(self.item["schedule"]))
        if hours is None or (type(hours) is int and 0 <= hours <= MAX_ALARM_HOURS):
            return hours
        raise self.fail(
            "alarm_after_hours", f"must be an integer from 0 (no alarm) to {MAX_ALARM_HOURS}, got {hours!r}"
        )

    @staticmethod
    def _field_key(name: str) -> str:
        return name if name in TOP_LEVEL_INPUT else f"options.{name}"


# ---------------------------------------------------------------- value parsing


def destination_overlap(bucket: str, prefix: str, dest_bucket: str | None, dest_prefix: str) -> str | None:
    """Why a source (bucket, prefix) must not be archived into this destination, or None: a run
    would archive its own archives, manifests and staging objects (and, growing, never end)."""
    if bucket != dest_bucket:
        return None
    for what, written in (("destination prefix", dest_prefix), ("staging prefix", STAGING_PREFIX)):
        if prefix.startswith(written) or written.startswith(prefix):
            shown = f"s3://{bucket}/{prefix}"
            return f"{shown} overlaps the {what} s3://{dest_bucket}/{written} the archives are written under"
    return None


def _parse_source(value: str, key: str) -> tuple[str, str]:
    text = value[5:] if value.startswith("s3://") else value
    bucket, _, prefix = text.partition("/")
    problem = bucket_problem(bucket)
    if problem:
        raise ConfigError(f"{key}: {problem}")
    return bucket, prefix
