"""Assembly of a parallel run: its segments' staging objects placed, in plan order, into
the archive's multipart upload (parallel.assemble_step drives it, one commit per piece).

The archive is the segments' bytes one after the other. Pending bytes (the tail: not yet
in a part, always under 5 MiB here) come first; then, for each segment:
- when the tail and the rest of the segment are under 5 MiB together, the rest is read
  (ranged GET) and joins the tail: small segments are read back, nothing else is;
- else a pending tail and the segment's head (its first 5 MiB - tail bytes, read) make
  ONE uploaded part of exactly 5 MiB;
- the rest is copied server-side (UploadPartCopy), each copied part ending on one of the
  segment's own part boundaries and spanning 5 MiB..5 GiB (a segment past 5 GiB takes
  several), until what is left is its last part and under 5 MiB: that is read into the tail.
Every piece's CRC-32 is known without reading what is copied: the segment's recorded parts
carry their CRCs, a copied range ends on a part boundary (the CRC of the segment up to
there is their combination) and starts where the segment's CRC so far is known
(AssemblyProgress.placed_crc), so crc32_suffix gives it.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .checksums import crc32_combine, crc32_header, crc32_suffix
from .copy import CopiedPart, copy_part
from .errors import ArchiveTooLarge, IntegrityError
from .limits import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE
from .s3errors import AWS_ERRORS, translate
from .segments import staging_prefix
from .sink import INLINE_TAIL_BYTES
from .state import RunState, Tail

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

UPLOAD, COPY, TAIL = "upload", "copy", "tail"


@dataclass(frozen=True)
class Piece:
    """The next piece of a segment to place: bytes [start, end) of its staging object,
    uploaded with the pending tail as one part (UPLOAD), copied as a part (COPY), or
    added to the tail (TAIL)."""

    kind: str
    start: int
    end: int


def next_piece(placed: int, pending: int, size: int, boundaries: list[int]) -> Piece:
    """What to place after the first `placed` bytes of a segment of `size` bytes whose
    parts end at `boundaries` (ascending, the last is `size`), with `pending` tail bytes
    waiting before them. Pure: a retried call places exactly the same piece."""
    rest = size - placed
    if pending + rest < MIN_PART_SIZE:
        return Piece(TAIL, placed, size)
    if pending:
        return Piece(UPLOAD, placed, placed + MIN_PART_SIZE - pending)
    ends = [end for end in boundaries if placed < end <= placed + MAX_PART_SIZE]
    if not ends or ends[-1] - placed < MIN_PART_SIZE:
        # Cannot happen with the part policy (its parts 1 and 2 have one size, >= 5 MiB).
        raise IntegrityError(f"no part boundary of the segment lies 5 MiB..5 GiB after byte {placed}")
    return Piece(COPY, placed, ends[-1])


def prefix_crcs(parts: list[list]) -> dict[int, int]:
    """{end offset of each part: CRC-32 of the segment up to there}, from the recorded
    [number, ETag, size, CRC-32] of its parts."""
    crcs, end, crc = {}, 0, 0
    for part in parts:
        crc, end = crc32_combine(crc, part[3], part[2]), end + part[2]
        crcs[end] = crc
    return crcs


def boundaries(parts: list[list]) -> list[int]:
    """End offsets of a segment's recorded parts, ascending."""
    ends, end = [], 0
    for part in parts:
        end += part[2]
        ends.append(end)
    return ends


def layout(
    placed: int, pending: int, next_part: int, segments: list[tuple[int, list[int]]]
) -> Iterator[tuple[int, Piece, int]]:
    """(segment position in `segments`, piece, part number) of every piece from here on:
    the first segment from `placed` on, the others whole; `segments` are (size, part
    boundaries). Pure, like next_piece: the same pieces get the same part numbers in any
    attempt, which is what lets copies run ahead (Copier)."""
    for position, (size, ends) in enumerate(segments):
        while placed < size:
            piece = next_piece(placed, pending, size, ends)
            if piece.kind == TAIL:
                pending += piece.end - piece.start
                yield position, piece, 0
            else:
                pending = 0
                yield position, piece, next_part
                next_part += 1
            placed = piece.end
        placed = 0


class Copier:
    """The UploadPartCopy calls of the pieces ahead, on a pool: assembly places pieces one
    commit at a time, in order, but copies are server-side and independent (their part
    numbers and ranges follow from the committed state alone: `layout`), so the copies of
    the next pieces, of later segments too, run while earlier ones are placed. A piece
    whose copy ran ahead takes its answer; an attempt that dies leaves parts that its retry
    copies again, the same bytes under the same numbers."""

    def __init__(self, s3: S3Client, state: RunState, ahead: int):
        self.s3, self.state, self.ahead = s3, state, ahead
        self.pool = ThreadPoolExecutor(max_workers=max(1, ahead), thread_name_prefix="copy")
        self.futures: dict[tuple[int, int, int], Future[CopiedPart]] = {}

    def plan(self, pieces: Iterable[tuple[RunState, Piece, int]]) -> None:
        """Start the copies among `pieces` (segment, piece, part number), in order, keeping
        at most `ahead` of them running or unclaimed."""
        for segment, piece, number in pieces:
            if len(self.futures) >= self.ahead:
                return
            if piece.kind == COPY and number <= MAX_PARTS and (number, piece.start, piece.end) not in self.futures:
                key = (number, piece.start, piece.end)
                self.futures[key] = self.pool.submit(self._copy, segment, piece, number)

    def copy(self, segment: RunState, piece: Piece, number: int) -> CopiedPart:
        future = self.futures.pop((number, piece.start, piece.end), None)
        return future.result() if future is not None else self._copy(segment, piece, number)

    def _copy(self, segment: RunState, piece: Piece, number: int) -> CopiedPart:
        return copy_piece(self.s3, self.state, segment, piece, number)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def copy_piece(s3: S3Client, state: RunState, segment: RunState, piece: Piece, number: int) -> CopiedPart:
    """Copy a piece of a segment's staging object into part `number` of the archive's upload."""
    return copy_part(
        s3,
        bucket=state.request.dest_bucket,
        key=state.upload_key,
        upload_id=state.upload_id,
        number=number,
        source_bucket=state.request.dest_bucket,
        source_key=segment.upload_key,
        first=piece.start,
        last=piece.end - 1,
        if_match=segment.etag or None,
    )


def place(
    s3: S3Client, state: RunState, segment: RunState, parts: list[list], attempt: str, copier: Copier | None = None
) -> list[list]:
    """Place the next piece of `segment` (a complete segment run) into the upload of
    `state` (its parent), updating the parent's offset, parts, tail and CRC and the
    assembly's position; returns the parts it added ([[number, ETag, size, CRC-32]])."""
    progress = state.assembly
    crcs = prefix_crcs(parts)
    size = segment.offset
    if sum(part[2] for part in parts) != size or crcs.get(size, 0) != segment.crc:
        raise IntegrityError(f"run {segment.run_id}: its recorded parts do not add up to its {size} bytes and CRC")
    pending = state.offset - state.uploaded
    piece = next_piece(progress.placed, pending, size, boundaries(parts))
    source = segment.upload_key
    added: list[list] = []
    if piece.kind == COPY:
        crc = crc32_suffix(crcs[piece.end], progress.placed_crc, piece.end - piece.start)
        number = _next_number(state)
        copied = copier.copy(segment, piece, number) if copier else copy_piece(s3, state, segment, piece, number)
        if copied.crc is not None and copied.crc != crc:
            raise IntegrityError(
                f"run {state.run_id}: part {number} copied from {source} has CRC-32 {copied.crc:08x}, "
                f"its segment's parts say {crc:08x}"
            )
        added.append([number, copied.etag, piece.end - piece.start, crc])
        state.uploaded += piece.end - piece.start
    else:
        data = _read(s3, state, source, segment.etag, piece.start, piece.end)
        crc = zlib.crc32(data)
        if piece.kind == UPLOAD:
            body = read_tail(s3, state) + data
            number = _next_number(state)
            added.append([number, _upload(s3, state, number, body), len(body), zlib.crc32(body)])
            state.uploaded += len(body)
            state.tail = Tail()
        else:
            state.tail = save_tail(s3, state, read_tail(s3, state) + data, attempt)
    state.offset += piece.end - piece.start
    state.crc = crc32_combine(state.crc, crc, piece.end - piece.start)
    progress.placed_crc = crc32_combine(progress.placed_crc, crc, piece.end - piece.start)
    progress.placed = piece.end
    return added


def _next_number(state: RunState) -> int:
    number = state.next_part
    if number > MAX_PARTS:
        raise ArchiveTooLarge(
            f"run {state.run_id}: its segments need more than {MAX_PARTS} parts; plan fewer, larger shards"
        )
    state.next_part += 1
    return number


def _read(s3: S3Client, state: RunState, key: str, etag: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of a staging object (a small piece: under 5 MiB)."""
    if end <= start:
        return b""
    bucket = state.request.dest_bucket
    kwargs: dict[str, Any] = {"IfMatch": etag} if etag else {}
    try:
        data = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", **kwargs)["Body"].read()
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=bucket, role="destination", action="read segment", key=key) from None
    if len(data) != end - start:
        raise IntegrityError(f"s3://{bucket}/{key}: read {len(data)} bytes of {start}..{end - 1}")
    return data


def read_tail(s3: S3Client, state: RunState) -> bytes:
    tail = state.tail
    if tail.staging_key is None:
        return tail.inline
    return _read(s3, state, tail.staging_key, "", 0, tail.length)


def save_tail(s3: S3Client, state: RunState, data: bytes, attempt: str) -> Tail:
    """The pending bytes: inline in the state when small, else staged under the run's prefix."""
    if len(data) <= INLINE_TAIL_BYTES:
        return Tail(inline=data, length=len(data))
    bucket, key = state.request.dest_bucket, f"{staging_prefix(state.run_id)}tail-{attempt or uuid.uuid4().hex}"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=bucket, role="destination", action="stage tail", key=key) from None
    return Tail(staging_key=key, length=len(data))


def _upload(s3: S3Client, state: RunState, number: int, body: bytes) -> str:
    bucket, key = state.request.dest_bucket, state.upload_key
    checksum: dict[str, Any] = {"ChecksumCRC32": crc32_header(zlib.crc32(body))} if state.marked else {}
    try:
        response = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=state.upload_id, PartNumber=number, Body=body, **checksum
        )
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=bucket, role="destination", action=f"upload part {number} of", key=key) from None
    return response["ETag"]
