"""A boto3 S3 client proxy that counts what passes through the worker: bytes read
(GetObject bodies), bytes uploaded (UploadPart, PutObject bodies) and server-side copies
(UploadPartCopy calls and their bytes), per bucket. Thread-safe: the engine calls from
its fetch and upload pools."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class _Body:
    def __init__(self, body: Any, count):
        self._body, self._count = body, count

    def read(self, *args: Any) -> bytes:
        data = self._body.read(*args)
        self._count(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)


class CountingS3:
    def __init__(self, client: Any):
        self._client = client
        self.read: Counter[str] = Counter()  # bucket -> bytes read
        self.uploaded: Counter[str] = Counter()  # bucket -> bytes uploaded
        self.copied: Counter[str] = Counter()  # bucket -> bytes placed by UploadPartCopy
        self.calls: Counter[str] = Counter()  # operation -> calls
        self.copies: Counter[str] = Counter()  # source key -> UploadPartCopy calls
        self._lock = threading.Lock()

    def _add(self, counter: Counter[str], key: str, n: int) -> None:
        with self._lock:
            counter[key] += n

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if not callable(target) or name in ("get_paginator", "meta", "exceptions", "can_paginate"):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self._add(self.calls, name, 1)
            bucket = kwargs.get("Bucket", "")
            if name in ("upload_part", "put_object"):
                body = kwargs.get("Body", b"")
                size = kwargs.get("ContentLength")
                self._add(self.uploaded, bucket, size if size is not None else len(body))
            response = target(*args, **kwargs)
            if name == "get_object":
                response["Body"] = _Body(response["Body"], lambda n: self._add(self.read, bucket, n))
            elif name == "upload_part_copy":
                first, last = kwargs["CopySourceRange"].split("=")[1].split("-")
                self._add(self.copied, bucket, int(last) - int(first) + 1)
                self._add(self.copies, kwargs["CopySource"]["Key"], 1)
            return response

        return call
