"""The two fingerprints S3 keeps of a multipart object, computed on our side so that a
run can prove the object at its key is the archive it produced (finish.proven)."""

from __future__ import annotations

import base64
import hashlib


def crc32_header(crc: int) -> str:
    """A CRC-32 as S3 writes it in x-amz-checksum-crc32: base64 of the 4 big-endian bytes."""
    return base64.b64encode((crc & 0xFFFFFFFF).to_bytes(4, "big")).decode()


def multipart_etag(part_etags: list[str]) -> str | None:
    """The ETag S3 gives a multipart object whose parts had these ETags: MD5 of the
    concatenated binary part MD5s, then "-N". None when a part ETag is not an MD5 (SSE-KMS
    and SSE-C objects): those are proven by their full-object CRC-32 instead."""
    digests = []
    for etag in part_etags:
        text = etag.strip('"')
        if len(text) != 32:
            return None
        try:
            digests.append(bytes.fromhex(text))
        except ValueError:
            return None
    return f'"{hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"'
