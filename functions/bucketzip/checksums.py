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


# CRC-32 arithmetic over GF(2) (as zlib's crc32_combine, which Python's zlib does not
# expose): the CRC of a concatenation from the CRCs of its pieces, without their bytes.
# Parallel segments and server-side copies know the CRC of byte ranges they never read
# (assembly combines the segments'; a copied entry its copied parts').
_CRC32_POLY = 0xEDB88320  # reflected polynomial of zlib's CRC-32


def _multiply(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial (reflected bit order)."""
    product, m = 0, 1 << 31
    while m:
        if a & m:
            product ^= b
            if (a & (m - 1)) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ _CRC32_POLY if b & 1 else b >> 1
    return product


_X2N = [1 << 30]  # x^(2^k) mod p, for k = 0, 1, ...: x^1 is 1 << 30 in reflected order
for _ in range(63):
    _X2N.append(_multiply(_X2N[-1], _X2N[-1]))


def _x8n(n: int) -> int:
    """x^(8n) mod p: shifting a CRC past n zero bytes."""
    power, k = 1 << 31, 3  # 1 << 31 is x^0
    while n:
        if n & 1:
            power = _multiply(_X2N[k & 63], power)
        n >>= 1
        k += 1
    return power


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A + B from crc32(A), crc32(B) and len(B)."""
    return _multiply(_x8n(length2), crc1 & 0xFFFFFFFF) ^ (crc2 & 0xFFFFFFFF)
