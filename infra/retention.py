"""CloudWatch Logs retention from a number of days (context `log_retention_days`)."""

from aws_cdk import aws_logs as logs

from .config import LOG_RETENTION_DAYS

_BY_DAYS = dict(
    zip(LOG_RETENTION_DAYS, [m for m in logs.RetentionDays if m is not logs.RetentionDays.INFINITE], strict=True)
)


def retention(days: int) -> logs.RetentionDays:
    return _BY_DAYS[days]
