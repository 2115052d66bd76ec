"""Fuzz: mutated archives, served from memory, through ls / verify / extract logic.

Whatever the bytes, the readers must end quickly with a result or a BucketzipError
subclass: no other exception, no hang (hypothesis deadline + pytest-timeout), no file
outside the destination directory.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reading_helpers import zip_with_python, zip_with_zipstream

from bucketzip.errors import BucketzipError
from bucketzip.reading import Archive, BytesRangeReader, extract, list_archive, verify


def _zip64_python() -> bytes:
    """Python zipfile with zip64 local extras, plus zip64 end records spliced in."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("big.txt", "w", force_zip64=True) as f:
            f.write(b"zip64 " * 50)
        z.writestr("dir/", b"")
    data = buf.getvalue()
    end = data.rfind(b"PK\x05\x06")
    _, _, _, n, total, cd_size, cd_offset, _ = struct.unpack_from("<4s4H2LH", data, end)
    z64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, total, cd_size, cd_offset)
    loc = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:end] + z64 + loc + eocd


FILES = {"a.txt": b"alpha beta gamma " * 20, "d/": b"", "d/b.bin": bytes(range(256)), "e": b""}
BASES = {
    "zipstream-deflate": zip_with_zipstream(FILES),
    "zipstream-stored": zip_with_zipstream({"s.txt": b"stored data " * 10, "t": b"t"}, 0),
    "python": zip_with_python(FILES),
    "python-zip64": _zip64_python(),
}
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF]
BIG = [0, 1, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 2**32 + 1, 2**63, 2**64 - 1]


@st.composite
def mutated(draw):
    base = draw(st.sampled_from(sorted(BASES)))
    data = bytearray(BASES[base])
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.sampled_from(INTERESTING) | st.integers(0, 255))
    # overwrite a 2/4/8-byte field with an extreme value, near a record signature
    if draw(st.booleans()):
        sigs = [i for i in range(len(data) - 3) if data[i : i + 2] == b"PK" and data[i + 2] in (1, 3, 5, 6, 7)]
        if sigs:
            at = draw(st.sampled_from(sigs)) + draw(st.integers(0, 56))
            width = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from(BIG)) % (1 << (8 * width))
            if at + width <= len(data):
                data[at : at + width] = value.to_bytes(width, "little")
    kind = draw(st.sampled_from(["none", "none", "truncate", "insert", "delete"]))
    if kind == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=40))
    elif kind == "delete" and data:
        at = draw(st.integers(0, len(data) - 1))
        del data[at : at + draw(st.integers(1, 40))]
    return bytes(data)


def exercise(data: bytes) -> None:
    # ls
    try:
        archive = Archive(BytesRangeReader(data))
        listed = [item.as_dict() for item in list_archive(archive)]
        assert all(isinstance(r["name"], str) for r in listed)
        decoded_ok = True
        for entry in archive.entries():
            try:
                total = sum(len(chunk) for chunk in archive.open_entry(entry))
                assert total == entry.size
            except BucketzipError:
                decoded_ok = False
    except BucketzipError:
        decoded_ok = False

    # verify never raises on archive content: every problem is in the report
    report, entries = verify(BytesRangeReader(data))
    assert report.ok in (True, False)
    if report.ok:
        assert decoded_ok, "verify passed an archive whose entries do not decode"

    # extract: nothing outside the destination, only BucketzipError
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "dest"
        try:
            extract(Archive(BytesRangeReader(data)), dest, workers=2)
        except BucketzipError:
            pass
        assert [p.name for p in Path(tmp).iterdir()] in ([], ["dest"])
        for path in dest.rglob("*") if dest.exists() else ():
            assert not path.is_symlink()
            assert os.path.realpath(path).startswith(os.path.realpath(dest) + os.sep)


@pytest.mark.timeout(180)
@settings(
    max_examples=300,
    deadline=3000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_mutated_archives_never_crash_or_hang(data):
    exercise(data)


@pytest.mark.parametrize("base", sorted(BASES))
def test_unmutated_bases_are_sound(base):
    report, _ = verify(BytesRangeReader(BASES[base]))
    assert report.ok, report.problems


@settings(max_examples=100, deadline=3000, database=None)
@given(st.binary(max_size=400))
def test_random_bytes(data):
    exercise(data)
    exercise(data + BASES["python"][-22:])  # garbage with a plausible end record
