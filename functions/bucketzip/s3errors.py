"""Turn botocore errors into bucketzip errors that name the problem."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from .errors import AccessDenied, BucketzipError, DestinationNotFound, RetryableError, SourceNotFound

RETRYABLE_CODES = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "503",
    "500",
}
GONE_CODES = {"NoSuchKey", "NoSuchVersion", "404", "PreconditionFailed", "412", "InvalidObjectState"}


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def translate(exc: BaseException, *, bucket: str, role: str, action: str) -> BucketzipError:
    """`role` is "source" or "destination": it picks the not-found error and the wording."""
    if isinstance(exc, BucketzipError):
        return exc
    code = error_code(exc)
    if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and action == "head_bucket"):
        cls = SourceNotFound if role == "source" else DestinationNotFound
        return cls(f"{role} bucket {bucket!r} does not exist")
    if code in (
        "AccessDenied",
        "403",
        "Forbidden",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
    ):
        return AccessDenied(f"access denied: {action} on {role} bucket {bucket!r} ({code})")
    if code in RETRYABLE_CODES or status(exc) >= 500 or isinstance(exc, BotoCoreError):
        return RetryableError(f"{action} on {role} bucket {bucket!r} failed, retry: {code or exc}")
    return BucketzipError(f"{action} on {role} bucket {bucket!r} failed: {code or exc}")
