"""Minimal patches to moto 5.2's Step Functions interpreter, where it departs from AWS
in ways the bucketzip definition relies on. Applied once, in-process, by LocalWorkflow.

1. `arn:aws:states:::states:startExecution`: moto passes the ASL's PascalCase
   parameters (StateMachineArn, Name, Input) to boto3 unchanged (boto3 wants
   stateMachineArn, name, input) and returns boto3's camelCase result
   (executionArn) where AWS returns ExecutionArn/StartDate. Both are normalised.
2. Fail with ErrorPath: re-raising a caught `States.*` error (States.Runtime,
   States.TaskFailed...) crashes moto ("Custom Error Names MUST NOT begin with
   'States.'"); AWS fails the execution with that error. Such names are kept as is.
3. A Lambda task (function ARN as Resource) whose Invoke call fails (throttling,
   5xx) is reported by moto as error "Exception"; AWS reports Lambda.<ErrorCode>
   (Lambda.TooManyRequestsException...), which the definition's Retry matches.
4. StartExecution of a state machine that has a running execution fails in moto
   (it deep-copies the state machine, running executions and their locks included).
   Executions are shared by reference instead of copied.
5. StartExecution without a name: moto names the execution "None"; AWS generates
   a UUID (parent workflows usually omit Name). A UUID is generated.
6. Retry waits: moto sleeps for real; `set_retry_time_scale` shrinks them for tests.
7. Speed only: the interpreter parses every JSONPath it evaluates (Parameters, Choice
   Variables, ResultPath...) with jsonpath_ng's `parse`, which builds the parser's LALR
   tables afresh on each call (~10 ms; 40% of a parallel run's CPU). Parsed paths are
   cached by their text: the expression trees are never modified after parsing.
"""

from __future__ import annotations

import datetime
import functools
import threading
import time as _time
from types import SimpleNamespace

_lock = threading.Lock()
_applied = False


def apply() -> None:
    global _applied
    with _lock:
        if _applied:
            return
        _patch_sfn_integration()
        _patch_fail_state()
        _patch_execution_copy()
        _patch_lambda_service_errors()
        _patch_execution_names()
        _patch_json_path_parsing()
        _applied = True


def set_retry_time_scale(scale: float) -> None:
    """Scale moto's Retry waits (1.0: as written in the ASL; 0.001: tests)."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    scaled = SimpleNamespace(sleep=lambda seconds: _time.sleep(seconds * scale))
    retrier_decl.time = _time if scale == 1.0 else scaled  # type: ignore[assignment]  # patching moto (module docstring)


def _patch_sfn_integration() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn as sfn,
    )

    cls = sfn.StateTaskServiceSfn
    original_parameters, original_response = cls._normalise_parameters, cls._normalise_response

    def normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        original_parameters(self, parameters, boto_service_name, service_action_name)
        for key in [k for k in parameters if k[:1].isupper()]:
            parameters[key[0].lower() + key[1:]] = parameters.pop(key)

    def normalise_response(self, response, boto_service_name=None, service_action_name=None):
        original_response(self, response, boto_service_name, service_action_name)
        if isinstance(response, dict):
            for key in [k for k in response if k[:1].islower()]:
                value = response.pop(key)
                if isinstance(value, datetime.datetime):
                    value = value.isoformat()
                response[key[0].upper() + key[1:]] = value

    cls._normalise_parameters = normalise_parameters  # type: ignore[method-assign]  # patching moto (module docstring)
    cls._normalise_response = normalise_response  # type: ignore[method-assign]  # patching moto (module docstring)


def _patch_fail_state() -> None:
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.state.fail import state_fail

    class FailErrorName(CustomErrorName):
        def __init__(self, error_name):
            if isinstance(error_name, str) and error_name.startswith("States."):
                super(CustomErrorName, self).__init__(error_name=error_name)
            else:
                super().__init__(error_name)

    state_fail.CustomErrorName = FailErrorName  # type: ignore[misc]  # only the Fail state's binding


def _patch_execution_copy() -> None:
    from moto.stepfunctions.parser.backend.execution import Execution

    Execution.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]  # patching moto (module docstring)


def _patch_lambda_service_errors() -> None:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    from ..s3errors import error_code

    original = StateTaskLambda._from_error

    def from_error(self, env, ex):
        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        error = f"Lambda.{error_code(ex)}"
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(error),
            event_type=HistoryEventType.LambdaFunctionFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]  # moto's TypedDict lists every kind
                lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(
                    error=error, cause=ex.response["Error"].get("Message", "")
                )
            ),
        )

    StateTaskLambda._from_error = from_error  # type: ignore[method-assign]  # patching moto (module docstring)


def _patch_execution_names() -> None:
    import uuid

    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(self, state_machine_arn, name=None, execution_input=None, trace_header=None):
        return original(self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]  # patching moto (module docstring)


def _patch_json_path_parsing() -> None:
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    # Each module's own binding of `parse` (json_path: jsonpath_ng.ext's; result_path: jsonpath_ng's).
    json_path.parse = functools.lru_cache(maxsize=4096)(json_path.parse)  # patching moto (module docstring)
    result_path.parse = functools.lru_cache(maxsize=4096)(result_path.parse)  # patching moto (module docstring)
