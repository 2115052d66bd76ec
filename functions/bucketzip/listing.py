"""Resumable, exact listing of the selected source objects.

ListObjectsV2 pages in key order; the cursor is (continuation token of the page, index
in it). On resume the same page is asked for again and the key before the index is
checked; if S3 no longer accepts the token or the page moved, listing restarts with
StartAfter=last key, which is exact too (keys are unique and ordered).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .config import STAGING_PREFIX, ArchiveRequest, key_selected
from .manifest import manifest_key
from .s3errors import AWS_ERRORS, translate
from .state import Cursor, Listed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ListObjectsV2OutputTypeDef, ObjectTypeDef


def own_keys(request: ArchiveRequest) -> tuple[str, ...]:
    """Keys bucketzip itself writes, never archived when they sit under the source."""
    if request.source_bucket != request.dest_bucket:
        return ()
    return (request.dest_key, manifest_key(request.dest_key))


def is_own_key(key: str, request: ArchiveRequest) -> bool:
    if request.source_bucket != request.dest_bucket:
        return False
    return key.startswith(STAGING_PREFIX) or key in own_keys(request)


def _page(s3: S3Client, request: ArchiveRequest, cursor: Cursor) -> ListObjectsV2OutputTypeDef:
    kwargs: dict[str, Any] = {
        "Bucket": request.source_bucket,
        "Prefix": request.source_prefix,
        "MaxKeys": request.page_size,
    }
    if cursor.token:
        kwargs["ContinuationToken"] = cursor.token
    elif cursor.start_after:
        kwargs["StartAfter"] = cursor.start_after
    return s3.list_objects_v2(**kwargs)


def _listed(item: ObjectTypeDef) -> Listed:
    return Listed(
        key=item["Key"],
        size=int(item.get("Size", 0)),
        etag=item.get("ETag", ""),
        last_modified=item["LastModified"].timestamp(),
        storage_class=item.get("StorageClass"),
    )


def iter_objects(
    s3: S3Client, request: ArchiveRequest, cursor: Cursor, last_key: str | None = None, page_ends: bool = False
) -> Iterator[tuple[Listed, Cursor]]:
    """Selected objects from `cursor` on, each with the cursor just after it; then
    `(None, exhausted cursor)` when the listing ends: at its end, or after `last_key` (a
    segment's shard: it starts at the cursor's StartAfter and ends with that key).
    With `page_ends`, also `(None, cursor at the next page)` before each next page is
    fetched: a caller can stop there on time even when a filter selects few keys (pages
    without one yield nothing else), and its resume lists no page twice."""
    cursor = dataclasses.replace(cursor)
    if cursor.exhausted:
        return
    page = _resume_page(s3, request, cursor)
    while True:
        contents = page.get("Contents", [])
        while cursor.index < len(contents):
            item = contents[cursor.index]
            # S3 lists in UTF-8 byte order, which is code point order: str comparison.
            if last_key is not None and item["Key"] > last_key:
                break
            cursor.index += 1
            cursor.last_key = item["Key"]
            if not is_own_key(item["Key"], request) and key_selected(item["Key"], request):
                yield _listed(item), dataclasses.replace(cursor)
            if item["Key"] == last_key:
                break
        token: str | None = page.get("NextContinuationToken")
        if cursor.index < len(contents) or (last_key is not None and cursor.last_key == last_key):
            token = None  # past the shard's last key: no page after it is read
        if not page.get("IsTruncated") or not token:
            cursor.exhausted = True
            yield None, dataclasses.replace(cursor)  # type: ignore[misc]  # end marker
            return
        cursor.token, cursor.start_after, cursor.index = token, None, 0
        if page_ends:
            yield None, dataclasses.replace(cursor)  # type: ignore[misc]  # page end marker
        page = _call(s3, request, cursor)


def _call(s3: S3Client, request: ArchiveRequest, cursor: Cursor) -> ListObjectsV2OutputTypeDef:
    try:
        return _page(s3, request, cursor)
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=request.source_bucket, role="source", action="list objects") from None


def _resume_page(s3: S3Client, request: ArchiveRequest, cursor: Cursor) -> ListObjectsV2OutputTypeDef:
    try:
        page = _page(s3, request, cursor)
    except AWS_ERRORS as exc:
        if not cursor.token:
            raise translate(exc, bucket=request.source_bucket, role="source", action="list objects") from None
        # Tokens are opaque and may expire (S3: 400 InvalidArgument; emulators differ).
        # StartAfter is exact too; if S3 itself is failing, that call fails as well.
        page = None
    if page is not None and cursor.index > 0:
        contents = page.get("Contents", [])
        if len(contents) < cursor.index or contents[cursor.index - 1]["Key"] != cursor.last_key:
            page = None  # the token no longer names the page we were in
    if page is None:
        cursor.token, cursor.start_after, cursor.index = None, cursor.last_key, 0
        page = _call(s3, request, cursor)
    return page
