"""`extract` from S3 (moto): foreign writers, zip slip, links, overwrite, bombs."""

from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path

import pytest
from reading_helpers import (
    bomb_zip,
    have,
    raw_zip,
    upload_zip,
    zip_with_7z,
    zip_with_infozip,
    zip_with_python,
    zip_with_zipstream,
)

from bucketzip.reading import Archive, BytesRangeReader, CorruptArchive, UnsafePath, extract, safe_parts

FILES = {
    "readme.txt": b"read me\n" * 1000,
    "src/": b"",
    "src/main.py": b"print('hi')\n",
    "src/data.bin": os.urandom(200_000),
    "ünï/ß space.txt": b"unicode",
    "empty.txt": b"",
    **{f"many/{i:03d}.txt": f"file {i}\n".encode() * (i + 1) for i in range(60)},
}

WRITERS = [
    pytest.param(zip_with_python, id="python-zipfile"),
    pytest.param(zip_with_zipstream, id="zipstream-ng"),
    pytest.param(zip_with_infozip, id="info-zip", marks=pytest.mark.skipif(not have("zip"), reason="no zip")),
    pytest.param(zip_with_7z, id="7-zip", marks=pytest.mark.skipif(not have("7z"), reason="no 7z")),
]


def tree(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel + "/" if path.is_dir() else rel] = b"" if path.is_dir() else path.read_bytes()
    return out


def expected_tree(files: dict[str, bytes]) -> dict[str, bytes]:
    out = {}
    for name, data in files.items():
        parts = name.rstrip("/").split("/")
        for i in range(1, len(parts)):
            out["/".join(parts[:i]) + "/"] = b""
        out[name] = data
    return out


@pytest.mark.parametrize("maker", WRITERS)
def test_extract_everything_from_foreign_archives(maker, s3, bucket_factory, run_cli, tmp_path):
    bucket = bucket_factory("extract")
    upload_zip(s3, bucket, "a.zip", maker(FILES))
    code, out, err = run_cli("extract", f"s3://{bucket}/a.zip", "--to", str(tmp_path / "out"), "-j", "8")
    assert code == 0, err
    assert tree(tmp_path / "out") == expected_tree(FILES)
    files = sum(1 for n in FILES if not n.endswith("/"))
    assert out.startswith(f"extracted {files} files")


def test_extract_patterns(s3, bucket_factory, run_cli, tmp_path):
    bucket = bucket_factory("extract")
    upload_zip(s3, bucket, "a.zip", zip_with_zipstream(FILES))
    code, _, err = run_cli("extract", f"s3://{bucket}/a.zip", "src", "many/00?.txt", "--to", str(tmp_path))
    assert code == 0, err
    assert set(tree(tmp_path)) == {
        "src/",
        "src/main.py",
        "src/data.bin",
        "many/",
        *(f"many/{i:03d}.txt" for i in range(10)),
    }
    code, _, err = run_cli("extract", f"s3://{bucket}/a.zip", "nothing/*", "--to", str(tmp_path))
    assert code == 1 and "no entry matches" in err


def test_never_overwrites_unless_asked(s3, bucket_factory, run_cli, tmp_path):
    bucket = bucket_factory("extract")
    upload_zip(s3, bucket, "a.zip", zip_with_python({"x.txt": b"from archive", "y.txt": b"y"}))
    (tmp_path / "x.txt").write_bytes(b"mine")
    code, out, err = run_cli("extract", f"s3://{bucket}/a.zip", "--to", str(tmp_path))
    assert code == 1
    assert "x.txt" in err and "exists (use --overwrite)" in err
    assert (tmp_path / "x.txt").read_bytes() == b"mine"
    assert (tmp_path / "y.txt").read_bytes() == b"y"
    code, _, err = run_cli("extract", f"s3://{bucket}/a.zip", "--to", str(tmp_path), "--overwrite")
    assert code == 0, err
    assert (tmp_path / "x.txt").read_bytes() == b"from archive"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bztmp")]


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "/etc/evil",
        "a/../../evil",
        "..\\evil.txt",
        "C:\\evil",
        "ok/..",
        "\\\\server\\share\\x",
        "a/\x00b",
    ],
)
def test_zip_slip_names_are_refused(name, s3, bucket_factory, run_cli, tmp_path):
    bucket = bucket_factory("slip")
    upload_zip(s3, bucket, "slip.zip", raw_zip([(b"good.txt", b"good", {}), (name.encode(), b"evil", {})]))
    dest = tmp_path / "dest"
    code, _, err = run_cli("extract", f"s3://{bucket}/slip.zip", "--to", str(dest))
    assert code == 1
    assert "bucketzip: error: refusing to extract" in err
    assert not (tmp_path / "evil.txt").exists()
    assert tree(tmp_path) in ({}, {"dest/": b""})  # nothing written at all


def test_safe_parts():
    assert safe_parts("a/./b//c.txt") == ("a", "b", "c.txt")
    assert safe_parts("dir/") == ("dir",)
    assert safe_parts("a\\b") == ("a", "b")
    for bad in ("", "/", "./", "..", "x/../..", "/abs", "D:rel", "\\abs", "a/\x00"):
        with pytest.raises(UnsafePath):
            safe_parts(bad)


def test_links_are_never_followed_or_created(s3, bucket_factory, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)  # a link already in DIR
    (dest / "file-link").symlink_to(outside / "target.txt")
    link_mode = 0o120777 << 16
    data = raw_zip(
        [
            (b"link", b"/etc", {"external_attr": link_mode}),  # a symlink entry
            (b"link/passwd", b"owned", {}),  # through it
            (b"sub/evil.txt", b"owned", {}),  # through the existing link
            (b"file-link", b"owned", {}),  # onto an existing link
            (b"plain.txt", b"fine", {}),
        ]
    )
    archive = Archive(BytesRangeReader(data))
    result = extract(archive, dest)
    assert (dest / "plain.txt").read_bytes() == b"fine"
    assert (dest / "link").is_file() and not (dest / "link").is_symlink()
    assert (dest / "link").read_bytes() == b"/etc"
    assert list(outside.iterdir()) == []
    failed = {f.name: f.message for f in result.failures}
    assert set(failed) == {"link/passwd", "sub/evil.txt", "file-link"}
    assert "symbolic link" in failed["sub/evil.txt"]
    assert "exists" in failed["file-link"]
    assert (dest / "file-link").is_symlink()
    # --overwrite replaces the link itself, never writes through it
    result = extract(archive, dest, ["file-link"], overwrite=True)
    assert result.ok
    assert not (dest / "file-link").is_symlink() and (dest / "file-link").read_bytes() == b"owned"
    assert list(outside.iterdir()) == []


@pytest.mark.skipif(not have("zip"), reason="no zip")
def test_infozip_symlinks(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "real.txt").write_bytes(b"real")
    (src / "abs-link").symlink_to("/etc/passwd")
    (src / "rel-link").symlink_to("../../outside")
    subprocess.run(["zip", "-q", "-y", "-r", str(tmp_path / "l.zip"), "."], cwd=src, check=True)
    archive = Archive(BytesRangeReader((tmp_path / "l.zip").read_bytes()))
    assert {e.name for e in archive.entries() if e.is_symlink} == {"abs-link", "rel-link"}
    result = extract(archive, tmp_path / "out")
    assert result.ok and result.notes
    out = tmp_path / "out"
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert (out / "abs-link").read_bytes() == b"/etc/passwd"


def test_bad_entries_fail_alone_and_leave_nothing(s3, bucket_factory, run_cli, tmp_path):
    bucket = bucket_factory("extract")
    good = b"good data" * 100
    data = raw_zip(
        [
            (b"ok.txt", good, {}),
            (b"crc.txt", good, {"crc": zlib.crc32(good) ^ 0xFF}),
            (b"enc.txt", good, {"flags": 1}),
        ]
    )
    upload_zip(s3, bucket, "bad.zip", data)
    upload_zip(s3, bucket, "bomb.zip", bomb_zip(real_size=20 * 1024 * 1024, declared_size=4096))
    code, _, err = run_cli("extract", f"s3://{bucket}/bad.zip", "--to", str(tmp_path))
    assert code == 1
    assert "crc.txt: CRC-32" in err and "enc.txt: entry is encrypted" in err
    assert (tmp_path / "ok.txt").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.txt"]
    code, _, err = run_cli("extract", f"s3://{bucket}/bomb.zip", "--to", str(tmp_path / "b"))
    assert code == 1 and "beyond its declared size of 4096" in err
    assert list((tmp_path / "b").iterdir()) == []


def test_overlapping_entries_are_refused(tmp_path):
    payload = b"x" * 1000
    one = raw_zip([(b"a", payload, {})])
    # a second central record pointing at the first entry's local header
    data = raw_zip([(b"a", payload, {}), (b"b", payload, {"offset": 0})])
    assert len(data) > len(one)
    archive = Archive(BytesRangeReader(data))
    with pytest.raises(CorruptArchive, match="overlap"):
        extract(archive, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_destination_that_is_a_file(s3, bucket_factory, run_cli, tmp_path):
    bucket = bucket_factory("extract")
    upload_zip(s3, bucket, "a.zip", zip_with_python({"x": b"x"}))
    (tmp_path / "file").write_bytes(b"")
    code, _, err = run_cli("extract", f"s3://{bucket}/a.zip", "--to", str(tmp_path / "file"))
    assert code == 1 and err.startswith("bucketzip: error: cannot use") and err.count("\n") == 1
