"""The pure parts of parallel segments: names, the shard-bounded listing's stop rule,
directory records and manifest lines rebased by a segment's offset, and where assembly
puts each segment (segment_bases: segments with parts of their own in shard order, then
the relocated ones, too small for a part of their own)."""

from __future__ import annotations

import dataclasses
import struct
from datetime import UTC, datetime

import pytest

from bucketzip.config import ArchiveRequest
from bucketzip.errors import InputError, IntegrityError
from bucketzip.finish import check_parts
from bucketzip.limits import GiB, MiB
from bucketzip.listing import iter_objects
from bucketzip.manifest import entry_line, rebase_lines
from bucketzip.parallel import is_relocated, segment_bases
from bucketzip.records import DEFLATED, STORED, EntryMeta, central_record, rebase_central
from bucketzip.segments import segment_run_id, split_segment_id, staging_prefix
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


def test_segment_state_round_trips_and_uploads_into_the_archive():
    request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip", workers=4)
    segment = SegmentOf("P", 3, "k1", "k9", 120, 180, 8 * MiB)
    state = RunState("P.s00003", request, "u", 0.0, segment=segment, cursor=Cursor(start_after="k1"), next_part=120)
    again = RunState.from_bytes(state.to_bytes())
    assert again.segment == segment and again.name_scope == "P" and again.next_part == 120
    assert again.upload_key == "a.zip" == RunState("P", request, "u", 0.0).upload_key  # the parent's upload


@pytest.mark.parametrize("workers", [0, 1001])
def test_workers_out_of_range_are_refused(workers):
    with pytest.raises(InputError, match="workers"):
        ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip", workers=workers)


# -- where assembly puts each segment ----------------------------------------------------


def _segment(offset: int, uploaded: int) -> RunState:
    request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip", workers=4)
    return RunState("P.s00000", request, "u", 0.0, offset=offset, uploaded=uploaded)


def test_a_segment_is_relocated_when_it_has_bytes_but_no_part():
    assert is_relocated(_segment(1, 0)) and is_relocated(_segment(5 * MiB - 1, 0))
    assert not is_relocated(_segment(0, 0))  # empty: nothing to place anywhere
    assert not is_relocated(_segment(5 * MiB, 5 * MiB))  # its own (final) part
    assert not is_relocated(_segment(12 * MiB, 12 * MiB))


def test_segment_bases_place_the_segments_with_parts_first_then_the_relocated_ones_in_shard_order():
    sizes = [(3 * MiB, 0), (7 * MiB, 7 * MiB), (0, 0), (1000, 0), (5 * MiB, 5 * MiB), (2 * GiB, 2 * GiB)]
    bases = segment_bases([_segment(offset, uploaded) for offset, uploaded in sizes])
    placed = 7 * MiB + 5 * MiB + 2 * GiB
    assert bases == [placed, 0, 7 * MiB, placed + 3 * MiB, 7 * MiB, 12 * MiB]
    assert segment_bases([_segment(6 * MiB, 6 * MiB), _segment(6 * MiB, 6 * MiB)]) == [0, 6 * MiB]  # one worker's
    assert segment_bases([]) == []


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


# -- finish's part check with a parallel run's gaps ----------------------------------------


class _Parts:
    """list_parts of a fake upload holding `held` (number -> ETag), one page of two."""

    def __init__(self, held: dict[int, str]):
        self.held = held

    def list_parts(self, *, PartNumberMarker=0, **_):
        numbers = sorted(n for n in self.held if n > PartNumberMarker)
        page = [{"PartNumber": n, "ETag": self.held[n]} for n in numbers[:2]]
        more = len(numbers) > 2
        return {"Parts": page, "IsTruncated": more, **({"NextPartNumberMarker": numbers[1]} if more else {})}


def test_finish_accepts_gaps_between_the_segments_ranges_but_not_repeated_or_changed_parts():
    request = ArchiveRequest.create(source_bucket="src", dest_bucket="dst", dest_key="a.zip", workers=4)
    state = RunState("P", request, "u", 0.0, offset=5 * MiB + 6 * MiB + 100)
    parts = [[1, "e1", 5 * MiB, 0], [403, "e403", 6 * MiB, 0], [9001, "e9001", 100, 0]]
    s3 = _Parts({1: "e1", 2: "stray", 403: "e403", 9001: "e9001"})  # a stray part: not completed
    check_parts(s3, state, parts)
    with pytest.raises(IntegrityError, match="recorded part numbers are not ascending"):
        check_parts(s3, state, [*parts[:2], [403, "e403", 0, 0], parts[2]])
    with pytest.raises(IntegrityError, match=r"parts \[403\] in S3 differ"):
        check_parts(_Parts({1: "e1", 403: "other", 9001: "e9001"}), state, parts)
