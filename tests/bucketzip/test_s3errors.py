"""The one AWS error translator (bucketzip.s3errors), fed real botocore exceptions:
transient faults become RetryableError naming what failed; permanent ones keep their
own class; the DynamoDB store and a source GET use it."""

from __future__ import annotations

import tempfile

import boto3
import botocore.exceptions as bce
import pytest
import urllib3
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from bucketzip import engine
from bucketzip.config import ArchiveRequest
from bucketzip.deadline import Deadline
from bucketzip.errors import (
    AccessDenied,
    ArchiveChanged,
    ArchiveNotFound,
    BucketzipError,
    DestinationExists,
    DestinationNotFound,
    ReadFailed,
    RetryableError,
    RunNotFound,
    SourceNotFound,
    StaleState,
)
from bucketzip.s3errors import is_transient, translate, translate_dynamodb
from bucketzip.state import RunState
from bucketzip.store_dynamodb import DynamoStateStore
from bucketzip.store_local import LocalStateStore
from support.seed import seed_bucket

CANCELLED = "Transaction cancelled, please refer cancellation reasons for specific reasons"
URL = "https://s3.eu-west-1.amazonaws.com/src/photos/a.jpg"


def client_error(code: str, status: int, operation: str = "GetObject", message: str = "", **extra) -> ClientError:
    """A ClientError as botocore builds it from a service's error response."""
    response = {
        "Error": {"Code": code, "Message": message or f"{code} happened"},
        "ResponseMetadata": {"RequestId": "R", "HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 4},
        **extra,
    }
    return ClientError(response, operation)  # type: ignore[arg-type]  # a literal response dict


TRANSPORT_FAULTS = [
    bce.ResponseStreamingError(error="Connection broken: IncompleteRead(12 bytes read, 100 more expected)"),
    bce.ReadTimeoutError(endpoint_url=URL),
    bce.ConnectTimeoutError(endpoint_url=URL),
    bce.EndpointConnectionError(endpoint_url=URL),
    bce.ConnectionClosedError(endpoint_url=URL),
    bce.ProxyConnectionError(proxy_url="http://proxy:3128", error="refused"),
    bce.SSLError(endpoint_url=URL, error="EOF occurred in violation of protocol"),
    bce.IncompleteReadError(actual_bytes=12, expected_bytes=112),
    bce.FlexibleChecksumError(error_msg="Expected checksum X did not match calculated checksum Y"),
    bce.HTTPClientError(error="connection reset by peer"),
    bce.CredentialRetrievalError(provider="container-role", error_msg="timed out"),
    ConnectionResetError(104, "Connection reset by peer"),  # unwrapped socket faults
    TimeoutError("timed out"),
    OSError(113, "No route to host"),
    urllib3.exceptions.ProtocolError("Connection broken", ConnectionResetError(104, "reset")),
]
S3_TRANSIENT = [
    client_error("SlowDown", 503),
    client_error("InternalError", 500),
    client_error("ServiceUnavailable", 503),
    client_error("RequestTimeout", 400),
    client_error("503", 503, "HeadObject", message="Service Unavailable"),
    client_error("SomethingNew", 502),  # any 5xx
]
DYNAMODB_TRANSIENT = [
    client_error("ProvisionedThroughputExceededException", 400, "PutItem"),
    client_error("ThrottlingException", 400, "Query"),
    client_error("RequestLimitExceeded", 400, "GetItem"),
    client_error("TransactionConflictException", 400, "PutItem"),
    client_error("InternalServerError", 500, "Query"),
    client_error("ServiceUnavailable", 503, "GetItem"),
    client_error(
        "TransactionCanceledException",
        400,
        "TransactWriteItems",
        message=f"{CANCELLED} [None, TransactionConflict]",
        CancellationReasons=[{"Code": "None"}, {"Code": "TransactionConflict", "Message": "conflict"}],
    ),
]


@pytest.mark.parametrize("exc", TRANSPORT_FAULTS + S3_TRANSIENT, ids=lambda e: type(e).__name__ + str(e)[:20])
def test_transient_s3_faults_are_retryable_and_name_the_object(exc):
    assert is_transient(exc)
    error = translate(exc, bucket="src", role="source", action="get object", key="photos/a.jpg")
    assert type(error) is RetryableError
    assert "get object s3://src/photos/a.jpg failed (transient)" in str(error)


@pytest.mark.parametrize("exc", DYNAMODB_TRANSIENT + TRANSPORT_FAULTS[:3], ids=lambda e: str(e)[:40])
def test_transient_dynamodb_faults_are_retryable_and_name_the_run(exc):
    error = translate_dynamodb(exc, table="state", action="put_item", run_id="RUN-1")
    assert type(error) is RetryableError
    assert "put_item on table 'state' for run RUN-1" in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        bce.ParamValidationError(report="Invalid bucket name"),
        bce.NoCredentialsError(),
        bce.NoRegionError(),
        bce.UnknownServiceError(service_name="s4", known_service_names="s3"),
        bce.StubAssertionError(operation_name="GetObject", reason="unexpected"),
        client_error("InvalidArgument", 400),
        client_error("ValidationException", 400, "PutItem"),
        client_error(
            "TransactionCanceledException",
            400,
            "TransactWriteItems",
            CancellationReasons=[{"Code": "ConditionalCheckFailed"}, {"Code": "None"}],
        ),
    ],
    ids=lambda e: type(e).__name__ + str(e)[:20],
)
def test_what_a_retry_cannot_fix_is_permanent(exc):
    assert not is_transient(exc)
    error = translate(exc, bucket="src", role="source", action="get object", key="k")
    assert isinstance(error, BucketzipError) and not isinstance(error, RetryableError)
    assert not isinstance(translate_dynamodb(exc, table="t", action="put_item"), RetryableError)


def test_cancellation_reasons_are_read_from_the_message_when_not_structured():
    exc = client_error(
        "TransactionCanceledException",
        400,
        "TransactWriteItems",
        message=f"{CANCELLED} [ThrottlingError]",
    )
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc,role,key,cls,words",
    [
        (client_error("NoSuchBucket", 404, "ListObjectsV2"), "source", None, SourceNotFound, "source bucket 'b'"),
        (client_error("NoSuchBucket", 404, "PutObject"), "destination", "k", DestinationNotFound, "does not exist"),
        (client_error("404", 404, "HeadBucket"), "destination", None, DestinationNotFound, "does not exist"),
        (client_error("NoSuchBucket", 404), "archive", "k", ArchiveNotFound, "s3://b/k: no such bucket"),
        (client_error("NoSuchKey", 404), "archive", "k", ArchiveNotFound, "s3://b/k: no such object"),
        (client_error("404", 404, "HeadObject"), "archive", "k", ArchiveNotFound, "no such object"),
        (client_error("AccessDenied", 403), "source", "k", AccessDenied, "access denied: get s3://b/k"),
        (client_error("403", 403, "HeadObject"), "archive", "k", AccessDenied, "access denied"),
        (client_error("PreconditionFailed", 412), "archive", "k", ArchiveChanged, "changed while it was being read"),
        (client_error("PreconditionFailed", 412, "PutObject"), "destination", "k", DestinationExists, "s3://b/k"),
        (client_error("InvalidRange", 416), "archive", "k", ReadFailed, "InvalidRange"),
        (
            client_error("InvalidPart", 400, "CompleteMultipartUpload"),
            "destination",
            "k",
            BucketzipError,
            "InvalidPart",
        ),
    ],
)
def test_permanent_s3_errors_get_the_class_of_the_role(exc, role, key, cls, words):
    error = translate(exc, bucket="b", role=role, action="get", key=key)
    assert type(error) is cls and words in str(error)


def test_dynamodb_permanent_errors():
    denied = translate_dynamodb(client_error("AccessDeniedException", 400, "GetItem"), table="t", action="get_item")
    assert type(denied) is AccessDenied and "'t'" in str(denied)
    missing = translate_dynamodb(client_error("ResourceNotFoundException", 400, "GetItem"), table="t", action="x")
    assert type(missing) is RunNotFound and "table 't' does not exist" in str(missing)


def test_our_own_errors_pass_through():
    original = StaleState("lost")
    assert translate(original, bucket="b", role="source", action="x") is original
    assert translate_dynamodb(original, table="t", action="x") is original


# -- the DynamoDB store answers through it -------------------------------------------


def _stubbed_store() -> tuple[DynamoStateStore, Stubber]:
    client = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return DynamoStateStore("state", client=client), Stubber(client)


def _state() -> RunState:
    request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip")
    return RunState(run_id="RUN-1", request=request, upload_id="U", started_at=0.0, version=3)


@pytest.mark.parametrize(
    "reasons,cls",
    [(["ConditionalCheckFailed", "None"], StaleState), (["None", "TransactionConflict"], RetryableError)],
)
def test_a_commit_tells_a_lost_fencing_race_from_a_transaction_conflict(reasons, cls):
    store, stubber = _stubbed_store()
    stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        service_message=f"{CANCELLED} [{', '.join(reasons)}]",
        modeled_fields={"CancellationReasons": [{"Code": r} for r in reasons]},
    )
    state = _state()
    with stubber, pytest.raises(cls, match="RUN-1"):
        store.commit(state, 3, "attempt", 1)
    assert state.version == 3  # not committed: the in-memory state did not move on


@pytest.mark.parametrize(
    "method,call",
    [
        ("get_item", lambda store: store.load("RUN-1")),
        ("put_item", lambda store: store.put_fragment("RUN-1", "attempt", b"x")),
        ("query", lambda store: list(store.iter_fragments("RUN-1"))),
        ("put_item", lambda store: store.record_result("RUN-1", {})),
    ],
)
def test_store_throttling_is_retryable_and_names_the_run(method, call):
    store, stubber = _stubbed_store()
    stubber.add_client_error(method, service_error_code="ProvisionedThroughputExceededException", http_status_code=400)
    with stubber, pytest.raises(RetryableError, match=f"DynamoDB {method} on table 'state' for run RUN-1"):
        call(store)


def test_unprocessed_deletes_back_off_then_are_retryable(monkeypatch):
    import bucketzip.store_dynamodb as store_dynamodb

    sleeps: list[float] = []
    monkeypatch.setattr(store_dynamodb.time, "sleep", sleeps.append)
    store, stubber = _stubbed_store()
    item = {"run_id": {"S": "RUN-1"}, "sk": {"S": "state"}}
    stubber.add_response("query", {"Items": [item]})
    unprocessed = {"UnprocessedItems": {"state": [{"DeleteRequest": {"Key": item}}]}}
    for _ in range(store_dynamodb.UNPROCESSED_ATTEMPTS):
        stubber.add_response("batch_write_item", unprocessed)
    with stubber, pytest.raises(RetryableError, match="1 deletes still unprocessed"):
        store.delete_run("RUN-1")
    assert len(sleeps) == store_dynamodb.UNPROCESSED_ATTEMPTS and sleeps == sorted(sleeps)


def test_store_throttled_while_deleting_is_retryable():
    store, stubber = _stubbed_store()
    stubber.add_response("query", {"Items": [{"run_id": {"S": "RUN-1"}, "sk": {"S": "state"}}]})
    stubber.add_client_error("batch_write_item", service_error_code="ThrottlingException", http_status_code=400)
    with stubber, pytest.raises(RetryableError, match="batch_write_item"):
        store.delete_run("RUN-1")


# -- a source GET whose body keeps breaking ------------------------------------------


class BreakingBodies:
    """An S3 client whose GetObject bodies for `key` break after the headers arrived,
    the way a reset connection does (botocore raises ResponseStreamingError)."""

    def __init__(self, s3, key: str):
        self._s3, self._key = s3, key

    def get_object(self, **kwargs):
        response = self._s3.get_object(**kwargs)
        if kwargs["Key"] == self._key:
            response["Body"].close()

            class Broken:
                def read(self, *args):
                    raise bce.ResponseStreamingError(error="Connection broken: connection reset by peer")

                def close(self):
                    pass

            response["Body"] = Broken()
        return response

    def __getattr__(self, name):
        return getattr(self._s3, name)


def test_a_source_body_that_keeps_breaking_is_retryable_and_names_the_object(s3, bucket_factory):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a.txt": b"a" * 100, "b/broken.bin": b"b" * 100})
    request = ArchiveRequest.create(source_bucket=source, dest_bucket=dest, dest_key="x.zip", part_size="5MiB")
    with tempfile.TemporaryDirectory() as state_dir:
        store = LocalStateStore(state_dir)
        client = BreakingBodies(s3, "b/broken.bin")
        progress = engine.start_run(client, store, request)
        with pytest.raises(RetryableError, match=f"s3://{source}/b/broken.bin") as raised:
            engine.run_step(client, store, progress.run_id, Deadline(60))
        assert "ResponseStreamingError" in str(raised.value)
        # nothing was committed: the run is intact and resumes from its last commit
        assert store.load(progress.run_id).entries == 0
