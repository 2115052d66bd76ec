"""The CDK context as a pydantic model: each key's type, default and check, and the values
`-c key=value` passes as strings (booleans, integers, null, JSON or comma-separated lists).
A bad value raises ConfigError naming the key: `step_memory_mb: 64 is not between 128 and
10240`. Cross-key checks (a source inside the destination, schedules) stay in config.py."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from bucketzip.config import STAGING_PREFIX

from .errors import ConfigError

BUNDLE_MODES = ("pip", "copy")  # infra/packaging.py: pip is the only deployable asset
# fmt: off
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)
# fmt: on
FUNCTION_NAMES = ("start", "step", "finish", "abort", "cleanup", "plan", "segment", "assemble")
# name: (memory MB, timeout seconds); the loop functions run to the 15-minute Lambda maximum.
# plan, segment, assemble: the parallel path (execution input "workers" > 1); a segment
# does what a step does, on its shard.
FUNCTION_DEFAULTS = {
    "start": (512, 120),
    "step": (2048, 900),
    "finish": (1024, 900),
    "abort": (512, 300),
    "cleanup": (512, 300),
    "plan": (1024, 900),
    "segment": (2048, 900),
    "assemble": (1024, 900),
}

_STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,59}$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_KMS_KEY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_LAYER_ARN_RE = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]+:\d+$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# ------------------------------------------------------------ `-c` strings, before validation


def _cli_bool(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    return value


def _cli_int(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    return value


def _cli_null(value: Any) -> Any:
    return None if value in ("", "null", "none") else value


def _cli_list(value: Any) -> Any:
    """A JSON list, or comma-separated values."""
    if isinstance(value, str):
        return _cli_json(value) if value.lstrip().startswith("[") else [s for s in value.split(",") if s]
    return value


def _cli_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
    return value


# ------------------------------------------------------------ checks, after validation


def _between(low: int, high: int):
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"{value} is not between {low} and {high}")
        return value

    return AfterValidator(check)


def _matching(pattern: re.Pattern, what: str):
    def check(value: str | None) -> str | None:
        if value is not None and not pattern.match(value):
            raise ValueError(f"{value!r} {what}")
        return value

    return AfterValidator(check)


def bucket_problem(name: str) -> str | None:
    if not _BUCKET_RE.match(name) or ".." in name:
        return f"{name!r} is not a valid S3 bucket name"
    return None


def _bucket_name(value: str | None) -> str | None:
    problem = None if value is None else bucket_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _one_of(choices: tuple):
    def check(value):
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(map(str, choices))}")
        return value

    return AfterValidator(check)


def _retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(f"{days} is not one CloudWatch Logs accepts ({', '.join(map(str, LOG_RETENTION_DAYS))})")
    return days


STACK_NAME_RULE = "must start with a letter and contain only letters, digits and '-' (at most 60 characters)"
KMS = "is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; aliases cannot be used in IAM policies)"
Bool = Annotated[bool, BeforeValidator(_cli_bool)]
Str = Annotated[str, Field(strict=True)]
OptionalStr = Annotated[Str | None, BeforeValidator(_cli_null)]
KmsArn = Annotated[Str, _matching(_KMS_KEY_ARN_RE, KMS)]


def Int(low: int, high: int):  # noqa: N802 - a type
    return Annotated[int, Field(strict=True), BeforeValidator(_cli_int), _between(low, high)]


StrictInt = Annotated[int, Field(strict=True), BeforeValidator(_cli_int)]
Days = Annotated[StrictInt, _between(1, 3650)]
TtlDays = Annotated[StrictInt, _between(1, 365)]


class Context(BaseModel):
    """The bucketzip keys of the CDK context (README: Configure and deploy)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    stack_name: Annotated[
        Str,
        _matching(
            _STACK_NAME_RE, "must start with a letter and contain only letters, digits and '-' (at most 60 characters)"
        ),
    ] = "Bucketzip"
    bundle: Annotated[Str, _one_of(BUNDLE_MODES)] = "pip"
    dest_bucket: Annotated[OptionalStr, AfterValidator(_bucket_name)] = None
    create_dest_bucket: Bool = True
    dest_prefix: Annotated[Str, AfterValidator(lambda v: v.lstrip("/"))] = "backups/"
    dest_kms_key_arn: Annotated[OptionalStr, _matching(_KMS_KEY_ARN_RE, KMS)] = None
    source_kms_key_arns: Annotated[list[KmsArn], BeforeValidator(_cli_list)] = []
    sources: Annotated[list[Annotated[Str, Field(min_length=1)]], BeforeValidator(_cli_list)] = []
    schedules: Annotated[list[Any], BeforeValidator(_cli_json)] = []
    staging_expiry_days: Days = 7
    abort_incomplete_upload_days: Days = 7
    point_in_time_recovery: Bool = False
    state_ttl_days: TtlDays = 14
    powertools_layer_arn: Annotated[OptionalStr, _matching(_LAYER_ARN_RE, "is not a Lambda layer version ARN")] = None
    log_retention_days: Annotated[int, Field(strict=True), BeforeValidator(_cli_int), AfterValidator(_retention)] = 30
    alarm_email: Annotated[OptionalStr, _matching(_EMAIL_RE, "is not an email address")] = None

    def check(self) -> Context:
        """Checks across keys."""
        if not self.create_dest_bucket and self.dest_bucket is None:
            raise ConfigError(
                "dest_bucket: required when create_dest_bucket is false (name the existing bucket the archives go to)"
            )
        prefix = self.dest_prefix
        if prefix.startswith(STAGING_PREFIX) or STAGING_PREFIX.startswith(prefix or "\0"):
            raise ConfigError(f"dest_prefix: {prefix!r} overlaps the reserved staging prefix {STAGING_PREFIX!r}")
        return self


# Reserved concurrency per function: a cap (no run needs more than one Step at a time; this
# bounds concurrent runs and parallel workers) and a guarantee. 0: no reservation (accounts
# whose concurrency limit is 10 cannot reserve any). The segment function's is also the
# largest "workers" Start accepts (BUCKETZIP_MAX_WORKERS): more could only wait on throttling.
RESERVED_CONCURRENCY = {
    "start": 5,
    "step": 10,
    "finish": 5,
    "abort": 5,
    "cleanup": 5,
    "plan": 5,
    "segment": 100,
    "assemble": 5,
}
# Per function: <name>_memory_mb (128-10240), <name>_timeout_seconds (1-900) and
# <name>_reserved_concurrency (0-1000).
FunctionContext = create_model(  # type: ignore[call-overload]
    "FunctionContext",
    __config__=ConfigDict(extra="ignore", frozen=True, strict=True),
    **{
        key: (kind, default)
        for name, (memory, timeout) in FUNCTION_DEFAULTS.items()
        for key, kind, default in (
            (f"{name}_memory_mb", Int(128, 10240), memory),
            (f"{name}_timeout_seconds", Int(1, 900), timeout),
            (f"{name}_reserved_concurrency", Int(0, 1000), RESERVED_CONCURRENCY[name]),
        )
    },
)
KEYS = tuple(Context.model_fields) + tuple(FunctionContext.model_fields)


def validated(model: type[BaseModel], values: dict) -> Any:
    """model(**values), or ConfigError naming the first bad key: `sources[2]: ...`."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(describe(exc.errors()[0])) from None


def describe(error: Any) -> str:
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    value = error.get("input")
    kind = error["type"]
    if kind == "value_error":
        message = str(error["ctx"]["error"])
    elif kind.startswith("int") or kind == "int_type":
        message = f"must be an integer, got {value!r}"
    elif kind.startswith("bool"):
        message = f"must be true or false, got {value!r}"
    elif kind.startswith("string"):
        message = (
            f"must be a non-empty string, got {value!r}"
            if kind == "string_too_short"
            else (f"must be a string, got {value!r}")
        )
    elif kind.startswith("list"):
        message = f"must be a list, got {value!r}"
    else:
        message = f"{error['msg']} (got {value!r})"
    return f"{key}: {message}"
