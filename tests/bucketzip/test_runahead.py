"""Run-ahead bounded in objects (issue 9, req. 4): empty objects cannot queue unbounded
GETs (nor listing pages) ahead of the writer."""

from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime

from bucketzip.config import ArchiveRequest
from bucketzip.fetch import GET_FLOOR_BYTES, Prefetcher
from bucketzip.listing import iter_objects
from bucketzip.state import Cursor

OBJECTS = 5_000


class EmptyObjects:
    """A source of 5,000 empty objects that counts GETs and LIST calls."""

    def __init__(self):
        self.gets = self.lists = 0
        self.lock = threading.Lock()
        self.keys = [f"k{i:05d}" for i in range(OBJECTS)]

    def list_objects_v2(self, **kwargs):
        self.lists += 1
        start = int(kwargs.get("ContinuationToken") or 0)
        end = min(start + kwargs["MaxKeys"], OBJECTS)
        when = datetime(2026, 1, 1, tzinfo=UTC)
        page = {
            "IsTruncated": end < OBJECTS,
            "Contents": [{"Key": k, "Size": 0, "ETag": '"e"', "LastModified": when} for k in self.keys[start:end]],
        }
        if end < OBJECTS:
            page["NextContinuationToken"] = str(end)
        return page

    def get_object(self, **kwargs):
        with self.lock:
            self.gets += 1
        return {"Body": io.BytesIO(b""), "ContentLength": 0}


def test_empty_objects_do_not_queue_unbounded_gets_or_pages():
    s3 = EmptyObjects()
    request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip", page_size=100)
    prefetcher = Prefetcher(s3, request, None, iter_objects(s3, request, Cursor()))
    try:
        chunks = prefetcher.chunks()
        next(chunks)  # the writer takes one chunk, then stalls
        time.sleep(1.0)  # the planner runs ahead as far as it may
        cap = request.effective_prefetch_bytes // GET_FLOOR_BYTES
        assert s3.gets <= cap + 1, s3.gets  # before: all 5,000 GETs were queued at once
        assert s3.lists <= cap // 100 + 2, s3.lists  # before: all 50 pages were listed
    finally:
        prefetcher.close()
