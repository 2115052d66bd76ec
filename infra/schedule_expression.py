"""EventBridge Scheduler expressions, checked at synth time so a typo fails `cdk synth`
instead of the deployment: cron(6 fields), rate(N unit) or at(yyyy-mm-ddThh:mm:ss)."""

from __future__ import annotations

import re

_CRON_FIELDS = (  # name, token pattern, low, high
    ("minutes", r"[0-9]+", 0, 59),
    ("hours", r"[0-9]+", 0, 23),
    ("day-of-month", r"[0-9]+W?|L|LW|L-[0-9]+", 1, 31),
    ("month", r"[0-9]+|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC", 1, 12),
    ("day-of-week", r"[0-9]+L?|[0-9]#[1-5]|SUN|MON|TUE|WED|THU|FRI|SAT|L", 1, 7),
    ("year", r"[0-9]{4}", 1970, 2199),
)


def check_schedule_expression(expression: str) -> None:
    """EventBridge Scheduler syntax: cron(6 fields), rate(N unit) or at(yyyy-mm-ddThh:mm:ss)."""
    m = re.fullmatch(r"(cron|rate|at)\((.*)\)", expression.strip())
    if not m:
        raise ValueError(f"{expression!r} is not cron(...), rate(...) or at(...)")
    kind, body = m.groups()
    if kind == "rate":
        rm = re.fullmatch(r"([1-9][0-9]*) (minute|minutes|hour|hours|day|days)", body.strip())
        if not rm:
            raise ValueError(f"{expression!r}: expected rate(N minutes|hours|days)")
        if (rm.group(1) == "1") != (not rm.group(2).endswith("s")):
            raise ValueError(f"{expression!r}: use a singular unit for 1 and a plural one otherwise")
        return
    if kind == "at":
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", body.strip()):
            raise ValueError(f"{expression!r}: expected at(yyyy-mm-ddThh:mm:ss)")
        return
    fields = body.split()
    if len(fields) != 6:
        raise ValueError(
            f"{expression!r}: cron needs 6 fields (minutes hours day-of-month month "
            f"day-of-week year), got {len(fields)}"
        )
    for value, (name, token, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        if value in ("*", "?"):
            if value == "?" and name not in ("day-of-month", "day-of-week"):
                raise ValueError(f"{expression!r}: '?' is only allowed in day-of-month or day-of-week")
            continue
        for part in value.split(","):
            base, _, step = part.partition("/")
            if step and not step.isdigit():
                raise ValueError(f"{expression!r}: bad step {part!r} in {name}")
            ends = ["*"] if base == "*" else base.split("-") if not base.startswith("L-") else [base]
            for end in ends:
                if end == "*":
                    continue
                if not re.fullmatch(token, end.upper()):
                    raise ValueError(f"{expression!r}: bad {name} value {end!r}")
                digits = re.match(r"[0-9]+", end)
                if digits and end[0].isdigit() and not (low <= int(digits.group()) <= high):
                    raise ValueError(f"{expression!r}: {name} value {end!r} is not between {low} and {high}")
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError(f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'")
