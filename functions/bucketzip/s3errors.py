"""The one translator from botocore errors (S3 and DynamoDB) to bucketzip errors.

Every AWS call site catches `AWS_ERRORS`, answers the few codes that mean something
there (a vanished source object is skipped, an existing key is "taken", a failed
condition is a lost fencing race) and hands everything else to `translate` (S3) or
`translate_dynamodb`. The classification lives here and only here:

- transient faults become RetryableError, whose message names the object, item or
  operation: every dropped connection, timeout or broken body (the BotoCoreError
  family, except configuration/validation errors a retry cannot fix), S3 SlowDown,
  RequestTimeout and 5xx, DynamoDB throttling, transaction conflicts and 5xx. They
  reach us after botocore's own retries, so the caller retries the step from its
  last commit (Step Functions Retry, or the CLI driver) and suspends when that fails;
- not found, access denied and failed preconditions become the error class of the
  role the bucket plays (source, destination, or an archive being read);
- anything else is a permanent BucketzipError naming the code.
"""

from __future__ import annotations

from typing import Literal

import botocore.exceptions as bce
from botocore.exceptions import BotoCoreError, ClientError

from .errors import (
    AccessDenied,
    ArchiveChanged,
    ArchiveNotFound,
    BucketzipError,
    DestinationExists,
    DestinationNotFound,
    ObjectChanged,
    ReadFailed,
    RetryableError,
    RunNotFound,
    SourceNotFound,
)

# What an AWS call can raise besides our own errors: catch these at call sites.
AWS_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError)

Role = Literal["source", "destination", "archive"]

# S3 error codes (S3 API Reference, "Error responses": List of error codes) that are
# worth retrying; any 5xx status is too.
S3_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",  # the clock is corrected by botocore on retry
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "OperationAborted",  # "A conflicting conditional operation is in progress ... try again"
        "ConditionalRequestConflict",  # 409: a concurrent conditional write is in flight; "retry"
        "500",
        "502",
        "503",
        "504",
    }
)
# DynamoDB error codes (DynamoDB Developer Guide, "Error handling with DynamoDB":
# the ones marked "OK to retry?: Yes"). botocore already retried them; a step retry
# after backoff is the next level.
DYNAMODB_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionConflict",
        "TransactionInProgressException",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)
# TransactionCanceledException reasons (DynamoDB API Reference, TransactWriteItems)
# that a retry can cure; "ConditionalCheckFailed" is a lost fencing race instead.
TRANSIENT_CANCELLATION_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})

# Codes that say "this object is not (or no longer) what was listed": a source object
# that is skipped with a reason, not an error of the run.
GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "PreconditionFailed", "412", "InvalidObjectState"})
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NotFound", "404"})
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "403",
        "Forbidden",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
    }
)
PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})


def _botocore_classes(*names: str) -> tuple[type[BaseException], ...]:
    # getattr: a botocore release that drops one of these must not break the import
    return tuple(cls for name in names if isinstance(cls := getattr(bce, name, None), type))


# The BotoCoreError family is transport trouble (ResponseStreamingError, ReadTimeoutError,
# ConnectTimeoutError, EndpointConnectionError, ConnectionClosedError, IncompleteReadError,
# checksum mismatches, credential endpoint blips, ...) EXCEPT these: the request or the
# configuration is wrong, and no retry changes that.
PERMANENT_BOTOCORE = _botocore_classes(
    "ParamValidationError",
    "ValidationError",
    "NoCredentialsError",
    "PartialCredentialsError",
    "UnknownCredentialError",
    "NoRegionError",
    "BaseEndpointResolverError",
    "EndpointProviderError",
    "InvalidEndpointConfigurationError",
    "DataNotFoundError",
    "ProfileNotFound",
    "ConfigNotFound",
    "ConfigParseError",
    "InvalidConfigError",
    "InvalidRetryConfigurationError",
    "InvalidS3AddressingStyleError",
    "InvalidChecksumConfigError",
    "InvalidDNSNameError",
    "UnsupportedS3ConfigurationError",
    "UnsupportedS3ArnError",
    "UnknownClientMethodError",
    "OperationNotPageableError",
    "MissingParametersError",
    "MissingDependencyException",
    "UnknownSignatureVersionError",
    "UnsupportedSignatureVersionError",
    "RefreshWithMFAUnsupportedError",
    "SSOError",
    "LoginError",
    "StubResponseError",  # botocore's Stubber in tests: an assertion, never a fault
)


def _urllib3_transport() -> tuple[type[BaseException], ...]:
    try:
        from urllib3.exceptions import ProtocolError, ReadTimeoutError
    except ImportError:  # pragma: no cover - botocore depends on urllib3
        return ()
    return (ProtocolError, ReadTimeoutError)


_URLLIB3_TRANSPORT = _urllib3_transport()


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("" for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def cancellation_reasons(exc: BaseException) -> list[str]:
    """The per-item reason codes of a DynamoDB TransactionCanceledException."""
    if not isinstance(exc, ClientError):
        return []
    reasons = exc.response.get("CancellationReasons")
    if reasons:
        return [str(reason.get("Code", "None")) for reason in reasons]
    # without the structured list, the message ends with it: "... reasons [None, TransactionConflict]"
    message = str(exc.response.get("Error", {}).get("Message", ""))
    listed = message[message.rfind("[") + 1 : message.rfind("]")] if message.endswith("]") else ""
    return [reason.strip() for reason in listed.split(",") if reason.strip()]


def is_transient(exc: BaseException) -> bool:
    """A fault a later retry can cure (see the module docstring)."""
    if isinstance(exc, BotoCoreError):
        return not isinstance(exc, PERMANENT_BOTOCORE)
    if isinstance(exc, (OSError, *_URLLIB3_TRANSPORT)):
        # a socket fault that reached us without botocore's wrapping (a reset, a timeout,
        # EHOSTUNREACH while a body streams): callers pass what a request or its body raised
        return True
    if not isinstance(exc, ClientError):
        return False
    code = error_code(exc)
    if code in S3_TRANSIENT_CODES or code in DYNAMODB_TRANSIENT_CODES or http_status(exc) >= 500:
        return True
    if code == "TransactionCanceledException":
        reasons = set(cancellation_reasons(exc)) - {"None"}
        return bool(reasons) and reasons <= TRANSIENT_CANCELLATION_REASONS
    return False


def _detail(exc: BaseException) -> str:
    code = error_code(exc)
    if not code:
        return f"{type(exc).__name__}: {exc}"
    message = str(exc.response.get("Error", {}).get("Message") or "") if isinstance(exc, ClientError) else ""
    return f"{code}: {message}" if message and message != code else code


def translate(exc: BaseException, *, bucket: str, role: Role, action: str, key: str | None = None) -> BucketzipError:
    """The bucketzip error for a failed S3 call. `role` is what the bucket is to this
    run: "source", "destination" (archive, manifest, staging, restored objects) or
    "archive" (an archive or manifest being read back); it picks the error class.
    `action` says what was being done ("get object", "upload part 7"), `key` which
    object (None: the call was about the bucket)."""
    if isinstance(exc, BucketzipError):
        return exc
    code, status = error_code(exc), http_status(exc)
    where = f"s3://{bucket}/{key}" if key is not None else f"{role} bucket {bucket!r}"
    doing = f"{action} {where}" if key is not None else f"{action} on {where}"
    if is_transient(exc):
        return RetryableError(f"{doing} failed (transient): {_detail(exc)}")
    bucket_missing = code == "NoSuchBucket" or (key is None and (code in NOT_FOUND_CODES or status == 404))
    if bucket_missing:
        if role == "archive":
            return ArchiveNotFound(f"{where}: no such bucket")
        cls = SourceNotFound if role == "source" else DestinationNotFound
        return cls(f"{role} bucket {bucket!r} does not exist")
    if code in ACCESS_DENIED_CODES or status == 403:
        return AccessDenied(f"access denied: {doing} ({code or status})")
    if code in NOT_FOUND_CODES or status == 404:
        if role == "archive":
            return ArchiveNotFound(f"{where}: no such object")
        return BucketzipError(f"{doing} failed: no such object ({code or status})")
    if code in PRECONDITION_CODES or status == 412:
        if role == "archive":
            return ArchiveChanged(f"{where}: the object changed while it was being read")
        if role == "destination":
            return DestinationExists(f"{where} was created by someone else meanwhile (overwrite was not asked)")
        return ObjectChanged(f"{where} changed after it was listed")
    if role == "archive":
        return ReadFailed(f"{doing} failed: {_detail(exc)}")
    return BucketzipError(f"{doing} failed: {_detail(exc)}")


def translate_dynamodb(exc: BaseException, *, table: str, action: str, run_id: str | None = None) -> BucketzipError:
    """The bucketzip error for a failed DynamoDB call on the state table. Callers first
    answer the condition failures that mean something to them (RunExists, StaleState)."""
    if isinstance(exc, BucketzipError):
        return exc
    code = error_code(exc)
    doing = f"DynamoDB {action} on table {table!r}" + (f" for run {run_id}" if run_id else "")
    if is_transient(exc):
        return RetryableError(f"{doing} failed (transient): {_detail(exc)}")
    if code in ACCESS_DENIED_CODES or http_status(exc) == 403:
        return AccessDenied(f"access denied: {doing} ({code})")
    if code == "ResourceNotFoundException":
        return RunNotFound(f"DynamoDB table {table!r} does not exist")
    return BucketzipError(f"{doing} failed: {_detail(exc)}")
