"""The pure parts of parallel segments: names, the shard-bounded listing's stop rule,
directory records and manifest lines rebased by a segment's offset, and the assembly's
piece layout (copy parts on segment part boundaries, 5 MiB..5 GiB; a tail + head part)."""

from __future__ import annotations

import dataclasses
import struct
from datetime import UTC, datetime

import pytest

from bucketzip.assembly import COPY, TAIL, UPLOAD, Piece, layout, next_piece, prefix_crcs
from bucketzip.checksums import crc32_combine
from bucketzip.config import ArchiveRequest
from bucketzip.errors import InputError
from bucketzip.limits import GiB, MiB
from bucketzip.listing import iter_objects
from bucketzip.manifest import entry_line, rebase_lines
from bucketzip.records import DEFLATED, STORED, EntryMeta, central_record, rebase_central
from bucketzip.segments import segment_object_key, segment_run_id, split_segment_id, staging_prefix
from bucketzip.state import Cursor, Listed, RunState, SegmentOf

METAS = [
    EntryMeta("a.txt", 1_700_000_000.5, DEFLATED, 0, True, False, 123, 456, 789),
    EntryMeta("dir/", 0.0, STORED, 10, False, False),
    EntryMeta("日本/x", 4_102_444_800.0, STORED, 3, False, False, 1, 2**33, 2**33),  # 2100: past 32-bit time
    EntryMeta("big", -5e9, DEFLATED, 2**32 + 5, True, True, 5, 6, 7),  # before 1901
    EntryMeta("near", 1.7e9, STORED, 2**31 - 10, False, False, 1, 1, 1),
]
COMMENTS = [b"", b"bucketzip: TRUNCATED: x", b"", b"", b""]


def _records(metas, base=0):
    return b"".join(
        central_record(dataclasses.replace(m, header_offset=m.header_offset + base), comment=c)
        for m, c in zip(metas, COMMENTS, strict=True)
    )


@pytest.mark.parametrize("base", [0, 100, 2**31 - 20, 2**31, 2**32, 2**40])
def test_rebased_records_are_the_records_written_at_the_absolute_offset(base):
    assert rebase_central(_records(METAS), base) == _records(METAS, base)


def test_a_small_offset_becomes_zip64_only_by_its_base():
    small = central_record(METAS[0])
    rebased = rebase_central(small, 3 * GiB)
    assert len(rebased) > len(small)  # the zip64 extra the absolute offset needs
    assert rebase_central(rebased, 0) == rebased
    assert struct.unpack_from("<L", rebased, 42)[0] == 0xFFFFFFFF  # the offset moved to the zip64 extra
    assert struct.pack("<Q", 3 * GiB) in rebased[46 + len("a.txt") :]


def test_rebase_refuses_what_is_not_a_directory():
    with pytest.raises(ValueError, match="no central directory record"):
        rebase_central(b"PK\x03\x04" + bytes(60), 0)


def test_rebased_manifest_lines_move_the_offset_only():
    listed = Listed("k/é", 5, '"e"', datetime(2026, 1, 2, tzinfo=UTC).timestamp())
    lines = entry_line(listed, METAS[0], {"content_type": "text/plain"}) * 2
    rebased = rebase_lines(lines, 7 * GiB)
    meta = dataclasses.replace(METAS[0], header_offset=7 * GiB)
    assert rebased == entry_line(listed, meta, {"content_type": "text/plain"}) * 2


def test_segment_names_and_staging_lie_under_the_parent():
    assert segment_run_id("P-1", 7) == "P-1.s00007"
    assert split_segment_id("P-1.s00007") == ("P-1", 7)
    assert split_segment_id("P-1") is None
    assert staging_prefix("P-1.s00007").startswith(staging_prefix("P-1"))
    assert segment_object_key("P-1", 7).startswith(staging_prefix("P-1"))
    assert not segment_object_key("P-1", 7).startswith(staging_prefix("P-1.s00007"))


def test_segment_state_round_trips_and_uploads_to_its_staging_object():
    request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip", workers=4)
    segment = SegmentOf("P", 3, "k1", "k9", segment_object_key("P", 3))
    state = RunState("P.s00003", request, "u", 0.0, segment=segment, cursor=Cursor(start_after="k1"))
    again = RunState.from_bytes(state.to_bytes())
    assert again.segment == segment and again.upload_key == segment.object_key and again.name_scope == "P"
    assert RunState("P", request, "u", 0.0).upload_key == "a.zip"


@pytest.mark.parametrize("workers", [0, 1001])
def test_workers_out_of_range_are_refused(workers):
    with pytest.raises(InputError, match="workers"):
        ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip", workers=workers)


# -- the assembly's pieces ------------------------------------------------------------


def _layout(pending: int, sizes: list[int]) -> list[Piece]:
    """Every piece of a segment with parts of `sizes`, `pending` tail bytes before it."""
    boundaries, end = [], 0
    for size in sizes:
        end += size
        boundaries.append(end)
    pieces, placed = [], 0
    while placed < end:
        piece = next_piece(placed, pending, end, boundaries)
        pieces.append(piece)
        pending = 0 if piece.kind != TAIL else pending + piece.end - piece.start
        placed = piece.end
    return pieces


def test_a_small_segment_joins_the_tail():
    assert _layout(1 * MiB, [3 * MiB]) == [Piece(TAIL, 0, 3 * MiB)]


def test_tail_and_head_make_one_5_mib_part_then_the_rest_is_copied():
    pieces = _layout(2 * MiB, [5 * MiB, 5 * MiB, 1 * MiB])
    assert pieces == [Piece(UPLOAD, 0, 3 * MiB), Piece(COPY, 3 * MiB, 11 * MiB)]


def test_a_segment_over_5_gib_is_copied_in_several_parts_on_its_part_boundaries():
    pieces = _layout(0, [1 * GiB] * 12 + [3 * MiB])
    assert [(p.kind, p.start, p.end) for p in pieces] == [
        (COPY, 0, 5 * GiB),
        (COPY, 5 * GiB, 10 * GiB),
        (COPY, 10 * GiB, 12 * GiB + 3 * MiB),
    ]
    # Where the last part cannot join a copy (it would pass 5 GiB), it is read into the tail.
    pieces = _layout(0, [5 * GiB, 5 * GiB, 1 * MiB])
    assert [(p.kind, p.start, p.end) for p in pieces] == [
        (COPY, 0, 5 * GiB),
        (COPY, 5 * GiB, 10 * GiB),
        (TAIL, 10 * GiB, 10 * GiB + 1 * MiB),
    ]


def test_copy_parts_after_a_head_reach_5_mib_on_a_later_boundary():
    pieces = _layout(4 * MiB, [5 * MiB] * 3)
    assert pieces == [Piece(UPLOAD, 0, 1 * MiB), Piece(COPY, 1 * MiB, 15 * MiB)]


def test_prefix_crcs_combine_the_recorded_parts():
    parts = [[1, "e1", 3, 0x11111111], [2, "e2", 4, 0x22222222]]
    assert prefix_crcs(parts) == {3: 0x11111111, 7: crc32_combine(0x11111111, 0x22222222, 4)}


# -- a shard's listing (moto) ---------------------------------------------------------


class _Counting:
    def __init__(self, client):
        self.client, self.pages = client, 0

    def list_objects_v2(self, **kwargs):
        self.pages += 1
        return self.client.list_objects_v2(**kwargs)


@pytest.mark.parametrize("page_size", [1, 2, 3, 100])
def test_a_shard_lists_after_start_after_up_to_its_last_key_and_no_page_past_it(s3, bucket_factory, page_size):
    bucket = bucket_factory("src")
    for key in "abcdefghij":
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    request = ArchiveRequest.create(source_bucket=bucket, dest_bucket="dst", dest_key="a.zip", page_size=page_size)
    client = _Counting(s3)
    listed = list(iter_objects(client, request, Cursor(start_after="b"), last_key="f"))
    assert [item.key for item, _ in listed[:-1]] == ["c", "d", "e", "f"]
    assert listed[-1][0] is None and listed[-1][1].exhausted
    assert client.pages == -(-4 // page_size)  # the pages holding c..f; none after
    # Resumed from the cursor after each key: the rest of the shard, exactly.
    for i, (_, cursor) in enumerate(listed[:-1]):
        rest = [item.key for item, _ in iter_objects(s3, request, cursor, last_key="f") if item is not None]
        assert rest == ["c", "d", "e", "f"][i + 1 :]


def test_the_layout_ahead_numbers_the_pieces_as_placing_them_one_by_one_does():
    segments = [
        (3 * MiB, [3 * MiB]),
        (11 * MiB, [5 * MiB, 10 * MiB, 11 * MiB]),
        (12 * GiB, [5 * GiB, 10 * GiB, 12 * GiB]),
    ]
    ahead = list(layout(0, 1 * MiB, 4, segments))
    one_by_one, pending, number = [], 1 * MiB, 4
    for position, (size, ends) in enumerate(segments):
        placed = 0
        while placed < size:
            piece = next_piece(placed, pending, size, ends)
            one_by_one.append((position, piece, 0 if piece.kind == TAIL else number))
            number += piece.kind != TAIL
            pending = pending + piece.end - piece.start if piece.kind == TAIL else 0
            placed = piece.end
    assert ahead == one_by_one
    assert [(p, piece.kind, piece.start, piece.end, n) for p, piece, n in ahead] == [
        (0, TAIL, 0, 3 * MiB, 0),  # 1 + 3 MiB pending
        (1, UPLOAD, 0, 1 * MiB, 4),  # ... + 1 MiB of the head: one 5 MiB part
        (1, COPY, 1 * MiB, 11 * MiB, 5),  # the rest of segment 1, to its end
        (2, COPY, 0, 5 * GiB, 6),
        (2, COPY, 5 * GiB, 10 * GiB, 7),
        (2, COPY, 10 * GiB, 12 * GiB, 8),
    ]
