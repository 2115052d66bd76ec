"""EventBridge Scheduler expressions, checked at synth time so a typo fails `cdk synth`
instead of the deployment: cron(6 fields), rate(N unit) or at(yyyy-mm-ddThh:mm:ss); and
the longest gap between two runs of a schedule, which sizes its "no successful run" alarm."""

from __future__ import annotations

import math
import re

_CRON_FIELDS = (  # name, token pattern, low, high
    ("minutes", r"[0-9]+", 0, 59),
    ("hours", r"[0-9]+", 0, 23),
    ("day-of-month", r"[0-9]+W?|L|LW|L-[0-9]+", 1, 31),
    ("month", r"[0-9]+|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC", 1, 12),
    ("day-of-week", r"[0-9]+L?|[0-9]#[1-5]|SUN|MON|TUE|WED|THU|FRI|SAT|L", 1, 7),
    ("year", r"[0-9]{4}", 1970, 2199),
)
_RATE = re.compile(r"([1-9][0-9]*) (minute|minutes|hour|hours|day|days)")
_HOURS_PER_UNIT = {"minute": 1 / 60, "hour": 1.0, "day": 24.0}


def parse_expression(expression: str) -> tuple[str, str]:
    """(kind, body) of cron(...), rate(...) or at(...)."""
    m = re.fullmatch(r"(cron|rate|at)\((.*)\)", expression.strip())
    if not m:
        raise ValueError(f"{expression!r} is not cron(...), rate(...) or at(...)")
    return m.group(1), m.group(2)


def check_schedule_expression(expression: str) -> None:
    """EventBridge Scheduler syntax: cron(6 fields), rate(N unit) or at(yyyy-mm-ddThh:mm:ss)."""
    kind, body = parse_expression(expression)
    {"rate": _check_rate, "at": _check_at, "cron": _check_cron}[kind](expression, body)


def _check_rate(expression: str, body: str) -> None:
    rm = _RATE.fullmatch(body.strip())
    if not rm:
        raise ValueError(f"{expression!r}: expected rate(N minutes|hours|days)")
    if (rm.group(1) == "1") != (not rm.group(2).endswith("s")):
        raise ValueError(f"{expression!r}: use a singular unit for 1 and a plural one otherwise")


def _check_at(expression: str, body: str) -> None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", body.strip()):
        raise ValueError(f"{expression!r}: expected at(yyyy-mm-ddThh:mm:ss)")


def _check_cron(expression: str, body: str) -> None:
    fields = body.split()
    if len(fields) != 6:
        raise ValueError(
            f"{expression!r}: cron needs 6 fields (minutes hours day-of-month month "
            f"day-of-week year), got {len(fields)}"
        )
    for value, spec in zip(fields, _CRON_FIELDS, strict=True):
        _check_cron_field(expression, value, *spec)
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError(f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'")


def _check_cron_field(expression: str, value: str, name: str, token: str, low: int, high: int) -> None:
    if value in ("*", "?"):
        if value == "?" and name not in ("day-of-month", "day-of-week"):
            raise ValueError(f"{expression!r}: '?' is only allowed in day-of-month or day-of-week")
        return
    for part in value.split(","):
        base, _, step = part.partition("/")
        if step and not step.isdigit():
            raise ValueError(f"{expression!r}: bad step {part!r} in {name}")
        ends = ["*"] if base == "*" else base.split("-") if not base.startswith("L-") else [base]
        for end in ends:
            _check_cron_value(expression, end, name, token, low, high)


def _check_cron_value(expression: str, end: str, name: str, token: str, low: int, high: int) -> None:
    if end == "*":
        return
    if not re.fullmatch(token, end.upper()):
        raise ValueError(f"{expression!r}: bad {name} value {end!r}")
    digits = re.match(r"[0-9]+", end)
    if digits and end[0].isdigit() and not (low <= int(digits.group()) <= high):
        raise ValueError(f"{expression!r}: {name} value {end!r} is not between {low} and {high}")


def longest_gap_hours(expression: str) -> float | None:
    """An upper bound of the time between two runs (None: a one-time at(...) schedule).
    rate(): its period. cron(): by the coarsest field that is restricted: a month or
    day-of-month restriction, a month (31 days, more if months are skipped: a year); a
    day-of-week, a week; an hour, a day; else an hour (minutes only)."""
    kind, body = parse_expression(expression)
    if kind == "at":
        return None
    if kind == "rate":
        count, unit = body.split()
        return int(count) * _HOURS_PER_UNIT[unit.rstrip("s")]
    minutes, hours, day_of_month, month, day_of_week, year = body.split()
    if year != "*" or month != "*":
        return 366 * 24.0
    if day_of_month not in ("*", "?"):
        return 31 * 24.0
    if day_of_week not in ("*", "?"):
        return 7 * 24.0
    if hours != "*":
        return 24.0
    return 1.0


def no_success_alarm_hours(expression: str) -> int | None:
    """N of the "no successful run in N hours" alarm: the longest gap plus half of it (the run
    itself and some lateness), at least 2 hours. None when no alarm fits: a one-time
    schedule, or a window beyond CloudWatch's 7-day evaluation range (set `alarm_after_hours`)."""
    gap = longest_gap_hours(expression)
    if gap is None:
        return None
    hours = max(2, math.ceil(gap * 1.5))
    return hours if hours <= MAX_ALARM_HOURS else None


MAX_ALARM_HOURS = 7 * 24  # CloudWatch: evaluation periods x period at most 7 days
