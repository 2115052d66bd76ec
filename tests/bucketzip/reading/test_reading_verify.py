"""`verify` against the moto server: sound archives pass; flipped bytes, truncation,
structural lies, a disagreeing manifest and source drift are all reported."""

from __future__ import annotations

import json
import os

import pytest
import zipstream
from reading_helpers import (
    have,
    manifest_lines_for,
    raw_zip,
    upload_zip,
    zip_with_7z,
    zip_with_infozip,
    zip_with_python,
    zip_with_zipstream,
)

from bucketzip.reading import BytesRangeReader, verify

FILES = {
    "notes.txt": b"some notes\n" * 2000,
    "dir/": b"",
    "dir/random.bin": os.urandom(100_000),
    "dir/zeros.bin": bytes(300_000),
    "empty": b"",
    "ünï/ß.txt": b"unicode",
}

WRITERS = [
    pytest.param(zip_with_python, id="python-zipfile"),
    pytest.param(zip_with_zipstream, id="zipstream-ng"),
    pytest.param(lambda f: zip_with_zipstream(f, zipstream.ZIP_STORED), id="zipstream-stored"),
    pytest.param(zip_with_infozip, id="info-zip", marks=pytest.mark.skipif(not have("zip"), reason="no zip")),
    pytest.param(zip_with_7z, id="7-zip", marks=pytest.mark.skipif(not have("7z"), reason="no 7z")),
]


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("PROBLEM")]


@pytest.mark.parametrize("maker", WRITERS)
def test_sound_archives_pass(maker, s3, bucket_factory, run_cli):
    bucket = bucket_factory("verify")
    data = maker(FILES)
    upload_zip(s3, bucket, "ok.zip", data, manifest_lines_for(data, bucket=bucket, key="ok.zip"))
    code, out, err = run_cli("verify", f"s3://{bucket}/ok.zip")
    assert code == 0, out + err
    assert problems(out) == []
    assert out.splitlines()[-1].startswith(f"OK s3://{bucket}/ok.zip: ")
    assert "manifest" in out.splitlines()[-1]


def test_verify_reads_the_archive_once(s3, bucket_factory):
    from bucketzip.reading import verify_s3

    bucket = bucket_factory("verify")
    data = zip_with_zipstream(FILES)
    upload_zip(s3, bucket, "ok.zip", data)
    report = verify_s3(s3, bucket, "ok.zip")
    assert report.ok and report.checked == len(FILES)
    assert report.data_bytes == sum(map(len, FILES.values()))
    assert report.requests <= 3
    assert len(data) <= report.bytes_read <= len(data) + 70 * 1024
    assert "no manifest beside the archive" in report.notes


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("compression", [zipstream.ZIP_STORED, zipstream.ZIP_DEFLATED])
def test_single_flipped_byte_in_an_entry(compression, s3, bucket_factory, run_cli):
    bucket = bucket_factory("verify")
    data = zip_with_zipstream(FILES, compression)
    # a byte in the middle of dir/random.bin's data
    at = data.index(b"dir/random.bin") + len("dir/random.bin") + 50_000
    upload_zip(s3, bucket, "flip.zip", _flip(data, at), manifest_lines_for(data, bucket=bucket, key="flip.zip"))
    code, out, _ = run_cli("verify", f"s3://{bucket}/flip.zip")
    assert code == 1
    found = problems(out)
    assert len(found) == 1, out
    assert found[0].startswith("PROBLEM [entry] dir/random.bin: ")
    assert "CRC-32" in found[0] or "corrupt" in found[0]
    assert out.splitlines()[-1].startswith(f"FAILED s3://{bucket}/flip.zip: 1 problem")


def test_flipped_bytes_anywhere_are_noticed():
    """Every single-byte flip outside slack fields (times, versions, attributes, extras)
    is reported by verify; none crashes it."""
    data = zip_with_zipstream({"a.txt": b"alpha " * 30, "b": b"beta"})
    clean, _ = verify(BytesRangeReader(data))
    assert clean.ok
    missed = []
    for at in range(len(data)):
        report, _ = verify(BytesRangeReader(_flip(data, at)))
        if report.ok:
            missed.append(at)
    # bytes whose change is harmless to integrity: version made by/needed, DOS time and
    # date, internal/external attributes, extra-field payloads (timestamps), zip64
    # ... a few dozen at most; data, CRCs, sizes, names and offsets are all covered
    assert len(missed) < len(data) // 3, (len(missed), len(data))


@pytest.mark.parametrize("cut", [1, 22, 1000, "half"])
def test_truncated_archive(cut, s3, bucket_factory, run_cli):
    bucket = bucket_factory("verify")
    data = zip_with_zipstream(FILES)
    n = len(data) // 2 if cut == "half" else cut
    upload_zip(s3, bucket, "cut.zip", data[:-n])
    code, out, err = run_cli("verify", f"s3://{bucket}/cut.zip")
    assert code == 1
    assert problems(out) and "FAILED" in out.splitlines()[-1]
    # ls fails with a clear one-line error too
    code, _, err = run_cli("ls", f"s3://{bucket}/cut.zip")
    assert code == 1 and err.startswith("bucketzip: error: ") and err.count("\n") == 1


def test_manifest_that_disagrees(s3, bucket_factory, run_cli):
    bucket = bucket_factory("verify")
    data = zip_with_zipstream(FILES)
    lines = manifest_lines_for(data, bucket=bucket, key="m.zip")
    lines[1]["crc32"] ^= 1  # notes.txt
    lines[3]["size"] += 1  # dir/random.bin
    lines[4]["method"] = "store"  # dir/zeros.bin
    del lines[5]  # empty: missing from the manifest
    lines.append({**lines[2], "name": "ghost.txt", "key": "ghost.txt"})
    upload_zip(s3, bucket, "m.zip", data, lines)
    code, out, _ = run_cli("verify", f"s3://{bucket}/m.zip")
    assert code == 1
    found = "\n".join(problems(out))
    assert "[manifest] notes.txt: manifest CRC" in found
    assert "[manifest] dir/random.bin: manifest size" in found
    assert "[manifest] dir/zeros.bin: manifest method store differs from the archive's deflate" in found
    assert "[manifest] empty: entry is not in the manifest" in found
    assert "[manifest] ghost.txt: manifest entry (line 7) is not in the archive" in found
    assert "[entry]" not in found  # the archive itself is sound
    code, out, _ = run_cli("verify", "--no-manifest", f"s3://{bucket}/m.zip")
    assert code == 0, out


def test_unparsable_manifest(s3, bucket_factory, run_cli):
    bucket = bucket_factory("verify")
    data = zip_with_zipstream(FILES)
    upload_zip(s3, bucket, "m.zip", data, ['{"type": "archive", "format": "bucketzip-manifest/1"}', "{not json"])
    code, out, _ = run_cli("verify", f"s3://{bucket}/m.zip")
    assert code == 1 and "[manifest]" in out and "line 2: not JSON" in out


def test_structure_problems_are_reported():
    payload = b"x" * 100
    cases = {
        "gap": (raw_zip([(b"a", payload, {}), (b"b", payload, {"gap_before": b"JUNK" * 4})]), "16 unexpected bytes"),
        "overlap": (raw_zip([(b"a", payload, {}), (b"b", payload, {"offset": 0})]), "overlaps 'a'"),
        "trailing": (raw_zip([(b"a", payload, {})]) + b"trailing", "after the end of central directory"),
    }
    for label, (data, expected) in cases.items():
        report, _ = verify(BytesRangeReader(data))
        assert not report.ok, label
        assert any(expected in p.message for p in report.problems), (label, report.problems)


def test_descriptor_disagreeing_with_directory():
    data = bytearray(zip_with_zipstream({"a.txt": b"alpha" * 100, "b.txt": b"beta"}))
    at = data.index(b"PK\x07\x08")
    data[at + 4] ^= 0xFF  # the descriptor's CRC
    report, _ = verify(BytesRangeReader(bytes(data)))
    assert [p.message for p in report.problems if p.entry == "a.txt"] == [
        m for m in [p.message for p in report.problems] if "data descriptor CRC" in m
    ]
    assert any("data descriptor CRC" in p.message for p in report.problems)


def test_against_source(s3, bucket_factory, run_cli):
    source, archives = bucket_factory("src"), bucket_factory("arc")
    objects = {"p/a.txt": b"a", "p/b.txt": b"b", "p/c.txt": b"c", "other/x": b"x"}
    etags = {k: s3.put_object(Bucket=source, Key=k, Body=v)["ETag"] for k, v in objects.items()}
    files = {k: v for k, v in objects.items() if k.startswith("p/")}
    data = zip_with_zipstream(files)
    lines = manifest_lines_for(
        data,
        bucket=archives,
        key="s.zip",
        source_bucket=source,
        source_prefix="p/",
        headers={k: {"etag": etags[k]} for k in files},
        skipped=[{"key": "p/skipped.bin", "reason": "glacier"}],
    )
    upload_zip(s3, archives, "s.zip", data, lines)
    s3.put_object(Bucket=source, Key="p/skipped.bin", Body=b"cold")

    code, out, err = run_cli("verify", f"s3://{archives}/s.zip", "--against", f"s3://{source}/p/")
    assert code == 0, out + err
    assert "source listing" in out.splitlines()[-1]

    s3.delete_object(Bucket=source, Key="p/a.txt")
    s3.put_object(Bucket=source, Key="p/b.txt", Body=b"changed")
    s3.put_object(Bucket=source, Key="p/new.txt", Body=b"new")
    code, out, _ = run_cli("verify", f"s3://{archives}/s.zip", "--against", f"s3://{source}/p/")
    assert code == 1
    assert "DIFF [missing from source] p/a.txt" in out
    assert "DIFF [changed in source] p/b.txt" in out
    assert "DIFF [new in source] p/new.txt" in out
    assert "skipped.bin" not in out.replace("1 source objects were skipped", "")
    assert "1 missing, 1 changed, 1 new" in out.splitlines()[-1]

    code, out, _ = run_cli("verify", "--json", f"s3://{archives}/s.zip", "--against", f"s3://{source}/p/")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["problems"] == []
    assert report["source"]["missing"] == ["p/a.txt"] and report["source"]["skipped"] == ["p/skipped.bin"]


def test_verify_usage_and_missing(s3, bucket_factory, run_cli):
    bucket = bucket_factory("verify")
    assert run_cli("verify", f"s3://{bucket}/")[0] == 2
    code, _, err = run_cli("verify", f"s3://{bucket}/nope.zip")
    assert code == 1 and "no such object" in err
