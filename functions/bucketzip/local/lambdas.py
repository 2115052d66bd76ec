"""Dispatch moto's Lambda Invoke to handlers running in this process (no Docker).

moto's Step Functions interpreter invokes Lambda tasks through boto3 against the moto
server; the server calls `LambdaBackend.invoke`. `install()` wraps that method: for a
function registered here it imports the handler (`"handlers.step.handler"`), calls it
with the event and a `LambdaContext`, and answers like the Lambda service: the JSON
result, or for an exception `{"errorType": <class name>, "errorMessage", ...}` with
the `X-Amz-Function-Error: Unhandled` header, which Step Functions turns into the
error name its Retry/Catch match. An interceptor raising `ServiceError` makes the
Invoke call fail instead (throttling). Other functions go to moto's own invoke.

The function timeout is not enforced; the handler sees it as the remaining time.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# (event, context, call) -> result, where call(event, context) runs the real handler.
Interceptor = Callable[[dict, "LambdaContext", Callable[[dict, "LambdaContext"], Any]], Any]


class ServiceError(Exception):
    """Raise from an interceptor to make the Invoke API call itself fail, as the Lambda
    service does when throttling (Step Functions sees Lambda.TooManyRequestsException)."""

    def __init__(self, code: str = "TooManyRequestsException", status: int = 429, message: str = "Rate exceeded"):
        super().__init__(message)
        self.code, self.status = code, status


@dataclass
class LambdaContext:
    """What the Python runtime passes as `context` (the parts handlers and Powertools use)."""

    function_name: str
    invoked_function_arn: str
    timeout_seconds: float = 900.0
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic, repr=False)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


@dataclass
class Registration:
    function_name: str
    function_arn: str
    handler: str  # "package.module.function"
    timeout_seconds: float = 900.0
    interceptor: Interceptor | None = None


@dataclass
class Invocation:
    function_name: str
    event: Any
    result: Any = None
    error_type: str | None = None
    seconds: float = 0.0


_lock = threading.Lock()
_registry: dict[str, Registration] = {}  # function ARN -> registration
_invocations: list[Invocation] = []
_original_invoke: Callable[..., Any] | None = None


def install() -> None:
    """Wrap moto's LambdaBackend.invoke (once per process)."""
    global _original_invoke
    from moto.awslambda.models import LambdaBackend

    with _lock:
        if _original_invoke is None:
            _original_invoke = LambdaBackend.invoke
            LambdaBackend.invoke = _invoke  # type: ignore[method-assign]  # the emulator's patch point


def register(registration: Registration) -> None:
    install()
    with _lock:
        _registry[registration.function_arn] = registration


def unregister(function_arn: str) -> None:
    with _lock:
        _registry.pop(function_arn, None)


def invocations(function_name: str | None = None) -> list[Invocation]:
    """Invocations dispatched so far (optionally of one function), oldest first."""
    with _lock:
        return [i for i in _invocations if function_name in (None, i.function_name)]


def clear_invocations() -> None:
    with _lock:
        _invocations.clear()


def resolve(handler: str) -> Callable:
    module, _, name = handler.rpartition(".")
    return getattr(importlib.import_module(module), name)


def call(registration: Registration, event: Any) -> tuple[Any, str | None]:
    """Run the handler like the Lambda runtime; returns (payload, function_error_or_None)."""
    context = LambdaContext(registration.function_name, registration.function_arn, registration.timeout_seconds)

    def run(evt: Any, ctx: LambdaContext) -> Any:
        return resolve(registration.handler)(evt, ctx)

    record = Invocation(registration.function_name, event)
    started = time.monotonic()
    try:
        if registration.interceptor is not None:
            payload = registration.interceptor(event, context, run)
        else:
            payload = run(event, context)
        error = None
        record.result = payload
    except ServiceError as exc:
        record.error_type = f"Lambda.{exc.code}"
        with _lock:
            _invocations.append(record)
        raise
    except Exception as exc:  # the runtime reports every exception as a function error
        payload = {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "requestId": context.aws_request_id,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
        error = "Unhandled"
        record.error_type = payload["errorType"]
    record.seconds = time.monotonic() - started
    with _lock:
        _invocations.append(record)
    return payload, error


def _invoke(self, function_name, qualifier, body, headers, response_headers):
    fn = self.get_function(function_name, qualifier)
    with _lock:
        registration = _registry.get(fn.function_arn)
    if registration is None:
        if _original_invoke is None:  # install() keeps moto's invoke before patching it
            raise RuntimeError("moto's Lambda invoke is patched but the original was not kept")
        return _original_invoke(self, function_name, qualifier, body, headers, response_headers)
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    event = json.loads(body) if body else {}
    try:
        payload, error = call(registration, event)
    except ServiceError as exc:
        from moto.awslambda.exceptions import LambdaClientError

        failure = LambdaClientError(exc.code, str(exc))
        failure.code = exc.status
        raise failure from None
    if error:
        response_headers["x-amz-function-error"] = error
    encoded = json.dumps(payload).encode("utf-8")
    response_headers["Content-Length"] = str(len(encoded))
    return encoded
