"""The listing cursor: continuation token + index in the page, exact across resumes, with
StartAfter as the fallback when a token is refused or no longer names the same page."""

from __future__ import annotations

import dataclasses
from urllib.parse import quote

from botocore.awsrequest import AWSResponse

from bucketzip.clients import s3_client
from bucketzip.config import ArchiveRequest
from bucketzip.listing import iter_objects
from bucketzip.state import Cursor
from support.seed import seed_bucket

KEYS = [f"k{i:03d}" for i in range(23)] + ["skip.tmp", "z/last"]


def _request(bucket):
    return ArchiveRequest.create(
        source_bucket=bucket, dest_bucket=bucket, dest_key="out.zip", page_size=5, exclude=["*.tmp"]
    )


def _recording_client(calls):
    client = s3_client()
    client.meta.events.register(
        "provide-client-params.s3.ListObjectsV2", lambda params, **_: calls.append(dict(params))
    )
    return client


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


def _refusing_token(client, token: str):
    """Answer a ListObjectsV2 carrying `token` as S3 does (400 InvalidArgument). The
    emulator answers 500 instead, which the client retries with backoff for a minute."""
    body = b"<Error><Code>InvalidArgument</Code><Message>The continuation token provided is incorrect</Message></Error>"

    def refuse(request, **_):
        if f"continuation-token={quote(token, safe='')}" in request.url:
            return AWSResponse(request.url, 400, {"Content-Type": "application/xml"}, _Raw(body))
        return None

    client.meta.events.register("before-send.s3.ListObjectsV2", refuse)
    return client


def _resume_everywhere(client, request):
    """Walk the listing, stopping and resuming from the saved cursor after every object."""
    cursor, seen = Cursor(), []
    while not cursor.exhausted:
        listed, cursor = next(iter_objects(client, request, cursor))
        if listed is not None:
            seen.append(listed.key)
    return seen


def test_resuming_after_every_object_is_exact_and_uses_the_token(s3, bucket_factory):
    bucket = bucket_factory("list")
    seed_bucket(s3, bucket, {key: b"x" for key in KEYS})
    calls = []
    seen = _resume_everywhere(_recording_client(calls), _request(bucket))
    assert seen == [k for k in KEYS if not k.endswith(".tmp")]
    assert any("ContinuationToken" in c for c in calls)
    assert not any("StartAfter" in c for c in calls)  # the token named the same page every time


def test_a_refused_token_falls_back_to_start_after(s3, bucket_factory):
    bucket = bucket_factory("list")
    seed_bucket(s3, bucket, {key: b"x" for key in KEYS})
    request = _request(bucket)
    stream = iter_objects(s3, request, Cursor())
    for _ in range(7):
        _, cursor = next(stream)
    assert cursor.token and cursor.index > 0
    broken = dataclasses.replace(cursor, token="not-a-token-S3-knows")
    calls = []
    client = _refusing_token(_recording_client(calls), broken.token)
    rest = [listed.key for listed, _ in iter_objects(client, request, broken) if listed]
    assert rest == [k for k in KEYS if not k.endswith(".tmp")][7:]
    assert calls[0].get("ContinuationToken") == "not-a-token-S3-knows"
    assert calls[1].get("StartAfter") == cursor.last_key


def test_a_page_that_moved_under_the_token_is_detected(s3, bucket_factory):
    bucket = bucket_factory("list")
    seed_bucket(s3, bucket, {key: b"x" for key in KEYS})
    request = _request(bucket)
    _, cursor = next(iter_objects(s3, request, Cursor()))
    cursor = dataclasses.replace(cursor, last_key="k000-not-what-the-page-says")
    rest = [listed.key for listed, _ in iter_objects(s3, request, cursor) if listed]
    assert rest[0] == "k001"  # resumed after last_key via StartAfter, nothing skipped
