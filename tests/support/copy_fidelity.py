"""Two documented S3 behaviours of UploadPartCopy that moto 5.2.5 lacks, patched into the
in-process moto server (tests/conftest.py runs it in this process) for the tests that
need them:

- `x-amz-copy-source-if-match`: S3 refuses the copy with 412 PreconditionFailed when the
  source's ETag differs (moto ignores the header and copies whatever is there);
- CopyPartResult.ChecksumCRC32: "present if the multipart upload request was created with
  the CRC32 checksum algorithm" (S3 API Reference, CopyPartResult); moto never sends it.
"""

from __future__ import annotations

import base64
import contextlib
import zlib
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote, urlparse

import moto.s3.responses as moto_responses
from moto.s3.exceptions import PreconditionFailed


@contextlib.contextmanager
def s3_copy_fidelity(*, if_match: bool = True, crc: bool = True) -> Iterator[None]:
    original = moto_responses.S3Response.upload_part_copy

    def upload_part_copy(self):  # type: ignore[no-untyped-def]
        expected = self.headers.get("x-amz-copy-source-if-match")
        if if_match and expected:
            source = self.headers.get("x-amz-copy-source")
            source = source.decode() if isinstance(source, bytes) else source
            parsed = urlparse(source)
            bucket, key = unquote(parsed.path).lstrip("/").split("/", 1)
            version = parse_qs(parsed.query).get("versionId", [None])[0]
            obj = self.backend.get_object(bucket, key, version_id=version)
            if obj is not None and obj.etag.strip('"') != expected.strip('"'):
                raise PreconditionFailed("x-amz-copy-source-If-Match")
        status, headers, body = original(self)
        if crc and status == 200:
            multipart = self.backend.get_bucket(self.bucket_name).multiparts[self._get_param("uploadId")]
            if multipart.metadata.get("x-amz-checksum-algorithm") == "CRC32":
                part = multipart.parts[self._get_int_param("partNumber")]
                value = base64.b64encode(zlib.crc32(part.value).to_bytes(4, "big")).decode()
                text = body.decode() if isinstance(body, bytes) else body
                text = text.replace("</ETag>", f"</ETag><ChecksumCRC32>{value}</ChecksumCRC32>", 1)
                body = text.encode() if isinstance(body, bytes) else text
                headers["content-length"] = str(len(body))
        return status, headers, body

    moto_responses.S3Response.upload_part_copy = upload_part_copy  # type: ignore[method-assign]
    try:
        yield
    finally:
        moto_responses.S3Response.upload_part_copy = original  # type: ignore[method-assign]
