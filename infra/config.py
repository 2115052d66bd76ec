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

from .schedule_expression import MAX_ALARM_HOURS, check_schedule_expression, no_success_alarm_hours  # noqa: E402

BUNDLE_MODES = ("pip", "copy")  # infra/packaging.py: pip is the only deployable asset
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
FUNCTION_NAMES = ("start", "step", "finish", "abort", "cleanup")
# name: (memory MB, timeout seconds); the step and finish run to the 15-minute Lambda maximum.
FUNCTION_DEFAULTS = {
    "start": (512, 120),
    "step": (2048, 900),
    "finish": (1024, 900),
    "abort": (512, 300),
    "cleanup": (512, 300),
}
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

_STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,59}$")
_SCHEDULE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_KMS_KEY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_LAYER_ARN_RE = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]+:\d+$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(ValueError):
    """A context value is missing or wrong; the message names the key."""


@dataclass(frozen=True)
class FunctionSettings:
    memory_mb: int
    timeout_seconds: int


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
    """Build the Config from a context getter (`node.try_get_context`) or a plain dict."""
    get = context.get if isinstance(context, Mapping) else context
    d = Config()

    stack_name = _string(get("stack_name"), "stack_name", d.stack_name)
    if not _STACK_NAME_RE.match(stack_name):
        raise ConfigError(
            f"stack_name: {stack_name!r} must start with a letter and contain only "
            "letters, digits and '-' (at most 60 characters)"
        )
    bundle = _string(get("bundle"), "bundle", d.bundle)
    if bundle not in BUNDLE_MODES:
        raise ConfigError(f"bundle: {bundle!r} is not one of {', '.join(BUNDLE_MODES)}")

    dest_bucket = _optional_string(get("dest_bucket"), "dest_bucket")
    if dest_bucket is not None:
        _check_bucket(dest_bucket, "dest_bucket")
    create = _bool(get("create_dest_bucket"), "create_dest_bucket", d.create_dest_bucket)
    if not create and dest_bucket is None:
        raise ConfigError(
            "dest_bucket: required when create_dest_bucket is false (name the existing bucket the archives go to)"
        )
    dest_prefix = _string(get("dest_prefix"), "dest_prefix", d.dest_prefix).lstrip("/")
    if dest_prefix.startswith(STAGING_PREFIX) or STAGING_PREFIX.startswith(dest_prefix or "\0"):
        raise ConfigError(f"dest_prefix: {dest_prefix!r} overlaps the reserved staging prefix {STAGING_PREFIX!r}")
    dest_kms = _optional_string(get("dest_kms_key_arn"), "dest_kms_key_arn")
    if dest_kms is not None:
        _check_kms(dest_kms, "dest_kms_key_arn")
    source_kms = tuple(_string_list(get("source_kms_key_arns"), "source_kms_key_arns"))
    for i, arn in enumerate(source_kms):
        _check_kms(arn, f"source_kms_key_arns[{i}]")

    functions = {}
    for name in FUNCTION_NAMES:
        memory, timeout = FUNCTION_DEFAULTS[name]
        memory = _int(get(f"{name}_memory_mb"), f"{name}_memory_mb", memory, 128, 10240)
        timeout = _int(get(f"{name}_timeout_seconds"), f"{name}_timeout_seconds", timeout, 1, 900)
        functions[name] = FunctionSettings(memory, timeout)

    layer = _optional_string(get("powertools_layer_arn"), "powertools_layer_arn")
    if layer is not None and not _LAYER_ARN_RE.match(layer):
        raise ConfigError(f"powertools_layer_arn: {layer!r} is not a Lambda layer version ARN")
    retention = _int(get("log_retention_days"), "log_retention_days", d.log_retention_days, 1, 3653)
    if retention not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"log_retention_days: {retention} is not one CloudWatch Logs accepts "
            f"({', '.join(map(str, LOG_RETENTION_DAYS))})"
        )
    email = _optional_string(get("alarm_email"), "alarm_email")
    if email is not None and not _EMAIL_RE.match(email):
        raise ConfigError(f"alarm_email: {email!r} is not an email address")

    sources = [_parse_source(s, f"sources[{i}]") for i, s in enumerate(_string_list(get("sources"), "sources"))]
    for i, (bucket, prefix) in enumerate(sources):
        overlap = destination_overlap(bucket, prefix, dest_bucket, dest_prefix)
        if overlap:
            raise ConfigError(f"sources[{i}]: {overlap}")
    schedules = _parse_schedules(get("schedules"), dest_bucket, dest_prefix)
    sources += [(s.input["source_bucket"], s.input.get("source_prefix", "")) for s in schedules]

    return Config(
        stack_name=stack_name,
        bundle=bundle,
        dest_bucket=dest_bucket,
        create_dest_bucket=create,
        dest_prefix=dest_prefix,
        dest_kms_key_arn=dest_kms,
        staging_expiry_days=_int(get("staging_expiry_days"), "staging_expiry_days", d.staging_expiry_days, 1, 3650),
        abort_incomplete_upload_days=_int(
            get("abort_incomplete_upload_days"), "abort_incomplete_upload_days", d.abort_incomplete_upload_days, 1, 3650
        ),
        sources=tuple(dict.fromkeys(sources)),
        source_kms_key_arns=source_kms,
        point_in_time_recovery=_bool(get("point_in_time_recovery"), "point_in_time_recovery", d.point_in_time_recovery),
        state_ttl_days=_int(get("state_ttl_days"), "state_ttl_days", d.state_ttl_days, 1, 365),
        functions=functions,
        powertools_layer_arn=layer,
        log_retention_days=retention,
        alarm_email=email,
        schedules=tuple(schedules),
    )


# ---------------------------------------------------------------- schedules


def _parse_schedules(raw: Any, dest_bucket: str | None, dest_prefix: str) -> list[Schedule]:
    items = _json_value(raw, "schedules", list, [])
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
    _check_bucket(bucket, key)
    return bucket, prefix


def _check_bucket(name: str, key: str) -> None:
    if not _BUCKET_RE.match(name) or ".." in name:
        raise ConfigError(f"{key}: {name!r} is not a valid S3 bucket name")


def _check_kms(arn: str, key: str) -> None:
    if not _KMS_KEY_ARN_RE.match(arn):
        raise ConfigError(
            f"{key}: {arn!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; "
            "aliases cannot be used in IAM policies)"
        )


def _json_value(raw: Any, key: str, kind: type, default: Any) -> Any:
    if raw is None:
        return default
    if isinstance(raw, str) and kind is not str:
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{key}: not valid JSON ({exc})") from None
    if not isinstance(raw, kind):
        raise ConfigError(f"{key}: must be a {kind.__name__}, got {raw!r}")
    return raw


def _string(raw: Any, key: str, default: str) -> str:
    if raw is None:
        return default
    if not isinstance(raw, str):
        raise ConfigError(f"{key}: must be a string, got {raw!r}")
    return raw


def _optional_string(raw: Any, key: str) -> str | None:
    value = _string(raw, key, "")
    return None if value in ("", "null", "none") else value


def _string_list(raw: Any, key: str) -> list[str]:
    if isinstance(raw, str) and not raw.lstrip().startswith("["):
        raw = [s for s in raw.split(",") if s]
    items = _json_value(raw, key, list, [])
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{key}[{i}]: must be a non-empty string, got {item!r}")
    return items


def _bool(raw: Any, key: str, default: bool) -> bool:
    if raw is None:
        return default
    if isinstance(raw, str) and raw.lower() in ("true", "false", "yes", "no", "1", "0"):
        return raw.lower() in ("true", "yes", "1")
    if not isinstance(raw, bool):
        raise ConfigError(f"{key}: must be true or false, got {raw!r}")
    return raw


def _int(raw: Any, key: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, str) and re.fullmatch(r"-?[0-9]+", raw.strip()):
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigError(f"{key}: must be an integer, got {raw!r}")
    if not low <= raw <= high:
        raise ConfigError(f"{key}: {raw} is not between {low} and {high}")
    return raw
