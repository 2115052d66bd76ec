"""Tests of the shared test infrastructure: the reader matrix must accept good
archives and demonstrably fail on bad ones; the moto fixtures must work."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import zipfile

import boto3
import pytest

from support.readers import (
    ALL_READERS,
    JAVA_STREAM,
    PYTHON,
    READERS_FAILING_STORED_DESCRIPTORS,
    UNZIP,
    check_archive,
    check_listing,
)
from support.seed import all_keys, download, list_multipart_uploads, seed_bucket

LONG_SEGMENT = "L" * 251 + ".bin"  # 255 bytes: the longest file name Linux allows
FILES = {
    "plain.txt": b"hello world\n" * 1000,  # deflates well
    "nested/dir/random.bin": os.urandom(5000),
    "ünïcødé/日本語 name with spaces ~#%?&+=.txt": "contenu é".encode(),
    f"long/{LONG_SEGMENT}": b"long name",
    "empty": b"",
}
DIRS = {"only-a-dir/", "nested/"}


def write_zip(path, files=FILES, dirs=DIRS):
    """Python zipfile archive: alternating deflated/stored members, directory entries."""
    with open(path, "wb") as raw:
        with zipfile.ZipFile(raw, "w") as zf:
            for d in sorted(dirs):
                zf.mkdir(d)
            for i, (name, data) in enumerate(files.items()):
                method = zipfile.ZIP_DEFLATED if i % 2 == 0 else zipfile.ZIP_STORED
                zf.writestr(name, data, compress_type=method)
    return path


class _Unseekable(io.RawIOBase):
    """Writing a zip through this makes zipfile use the streaming layout: flag
    bit 3, CRC and sizes 0 in local headers, data descriptors after the data
    (the layout of an archive streamed to S3)."""

    def __init__(self, f):
        self._f = f

    def writable(self):
        return True

    def write(self, b):
        return self._f.write(b)


def test_good_archive_passes_every_reader(tmp_path):
    check_archive(write_zip(tmp_path / "good.zip"), FILES, directories=DIRS)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_flipped_byte_fails_every_reader(tmp_path, method):
    path = tmp_path / "bad.zip"
    name, data = "victim.bin", bytes(range(256)) * 64
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("before.txt", b"fine")
        zf.writestr(name, data, compress_type=method)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw = bytearray(path.read_bytes())
    # Local header: 30 fixed bytes + name + extra, then the member's data.
    name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
    raw[info.header_offset + 30 + name_len + extra_len + info.compress_size // 2] ^= 0x01
    path.write_bytes(raw)

    with pytest.raises(AssertionError) as exc:
        check_archive(path, {"before.txt": b"fine", name: data})
    message = str(exc.value)
    assert f"{len(ALL_READERS)} of {len(ALL_READERS)} readers rejected" in message
    # One section per reader, each rejecting the archive for its bad CRC.
    sections = {s.split()[0]: s for s in message.split("\nreader ")[1:]}
    assert sorted(sections) == sorted(ALL_READERS)
    for section in sections.values():
        assert "CRC" in section, section


def _flip_a_data_byte(path, name):
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw = bytearray(path.read_bytes())
    # Local header: 30 fixed bytes + name + extra, then the member's data.
    name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
    raw[info.header_offset + 30 + name_len + extra_len + info.compress_size // 2] ^= 0x01
    path.write_bytes(raw)


SIZES = {name: len(data) for name, data in FILES.items()} | dict.fromkeys(DIRS, 0)


def test_listing_check_passes_a_good_archive(tmp_path):
    path = write_zip(tmp_path / "good.zip")
    check_listing(path, SIZES, {"plain.txt": FILES["plain.txt"], "empty": b""})
    check_listing(path, SIZES, {"nested/dir/random.bin": FILES["nested/dir/random.bin"]}, test=False)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_listing_check_tests_the_data_it_does_not_read(tmp_path, method):
    path = tmp_path / "bad.zip"
    data = bytes(range(256)) * 64
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("before.txt", b"fine")
        zf.writestr("victim.bin", data, compress_type=method)
    _flip_a_data_byte(path, "victim.bin")
    sizes = {"before.txt": 4, "victim.bin": len(data)}
    with pytest.raises(AssertionError) as exc:
        check_listing(path, sizes, {"before.txt": b"fine"})
    assert f"{len(ALL_READERS)} of {len(ALL_READERS)} readers rejected" in str(exc.value)
    # Without the integrity test only the streaming reader, which reads everything, notices.
    with pytest.raises(AssertionError) as exc:
        check_listing(path, sizes, {"before.txt": b"fine"}, test=False)
    assert "1 of 6 readers rejected" in str(exc.value) and f"reader {JAVA_STREAM} failed" in str(exc.value)


@pytest.mark.parametrize(
    "sizes, members, complaint",
    [
        ({**SIZES, "plain.txt": 1}, {}, "sizes differ [('plain.txt', 1, 12000)]"),
        ({**SIZES, "ghost": 0}, {}, "missing ['ghost']"),
        ({k: v for k, v in SIZES.items() if k != "empty"}, {}, "unexpected ['empty']"),
        (SIZES, {"plain.txt": b"other"}, "members read wrong or not found: ['plain.txt']"),
        (SIZES, {"ghost": b""}, "members read wrong or not found: ['ghost']"),
    ],
    ids=["size", "missing-entry", "extra-entry", "member-content", "missing-member"],
)
def test_listing_check_fails_every_reader_on_a_wrong_expectation(tmp_path, sizes, members, complaint):
    path = write_zip(tmp_path / "good.zip")
    with pytest.raises(AssertionError) as exc:
        check_listing(path, sizes, members, test=False)
    sections = {s.split()[0].rstrip(":"): s for s in str(exc.value).split("\nreader ")[1:]}
    assert sorted(sections) == sorted(ALL_READERS)
    for section in sections.values():
        assert complaint in section, section


@pytest.mark.parametrize(
    "expected, directories, complaint",
    [
        ({**FILES, "plain.txt": b"other"}, DIRS, "content differs: 'plain.txt'"),
        ({k: v for k, v in FILES.items() if k != "empty"}, DIRS, "unexpected: ['empty']"),
        ({**FILES, "ghost": b""}, DIRS, "missing: ['ghost']"),
        (FILES, DIRS | {"ghost-dir/"}, "missing: ['ghost-dir/']"),
    ],
    ids=["content", "extra-entry", "missing-entry", "missing-dir"],
)
def test_wrong_expectation_fails_every_reader(tmp_path, expected, directories, complaint):
    path = write_zip(tmp_path / "good.zip")
    with pytest.raises(AssertionError) as exc:
        check_archive(path, expected, directories=directories)
    message = str(exc.value)
    for reader in ALL_READERS:
        assert f"reader {reader}: extracted entries differ" in message
    assert complaint in message


def test_undeclared_directory_entry_fails_listing_readers(tmp_path):
    # Extracting tools cannot tell an empty 'nested/' entry from a parent directory,
    # but readers listing entries must report exactly the directory entries present.
    path = write_zip(tmp_path / "good.zip")
    with pytest.raises(AssertionError, match=r"unexpected: \['nested/'\]"):
        check_archive(path, FILES, directories={"only-a-dir/"}, readers=[PYTHON])


def test_duplicate_entry_fails(tmp_path):
    path = tmp_path / "dup.zip"
    with zipfile.ZipFile(path, "w") as zf, pytest.warns(UserWarning, match="Duplicate"):
        zf.writestr("twice", b"1")
        zf.writestr("twice", b"1")
    with pytest.raises(AssertionError, match="duplicate entry 'twice'"):
        check_archive(path, {"twice": b"1"}, readers=[PYTHON, JAVA_STREAM])


def test_info_zip_archive_passes_every_reader(tmp_path):
    files = {"a.txt": b"a" * 10000, "sub dir/b ~#%&+=.bin": os.urandom(3000)}
    src = tmp_path / "src"
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    (src / "empty dir").mkdir()
    subprocess.run(["zip", "-qr", str(tmp_path / "z.zip"), "."], cwd=src, check=True)
    # zip -r stores an entry for every directory, empty or not.
    check_archive(tmp_path / "z.zip", files, directories={"sub dir/", "empty dir/"})


def test_non_ascii_name_without_utf8_flag_is_caught(tmp_path):
    # Info-ZIP zip 3.0 stores UTF-8 names WITHOUT the UTF-8 flag (bit 11): Python
    # then decodes them as cp437. The product must set the flag; the matrix notices.
    src = tmp_path / "src"
    src.mkdir()
    (src / "ünï.txt").write_bytes(b"x")
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run(["zip", "-q", str(tmp_path / "z.zip"), "ünï.txt"], cwd=src, check=True, env=env)
    with pytest.raises(AssertionError, match=r"reader python-zipfile.*\n.*missing: \['ünï.txt'\]"):
        check_archive(tmp_path / "z.zip", {"ünï.txt": b"x"})


def test_streamed_layout_deflated_passes_every_reader(tmp_path):
    files = FILES
    path = tmp_path / "s.zip"
    with open(path, "wb") as raw, zipfile.ZipFile(_Unseekable(raw), "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    _assert_streamed_layout(path)
    check_archive(path, files)


def test_streamed_layout_stored_fails_only_java_stream(tmp_path):
    """STORED + data descriptor: java.util.zip.ZipInputStream refuses it
    ("only DEFLATED entries can have EXT descriptor"); every other reader is fine."""
    path = tmp_path / "s.zip"
    with open(path, "wb") as raw, zipfile.ZipFile(_Unseekable(raw), "w", zipfile.ZIP_STORED) as zf:
        for name, data in FILES.items():
            zf.writestr(name, data)
    _assert_streamed_layout(path)
    assert READERS_FAILING_STORED_DESCRIPTORS == {JAVA_STREAM}
    others = [r for r in ALL_READERS if r not in READERS_FAILING_STORED_DESCRIPTORS]
    check_archive(path, FILES, readers=others)
    with pytest.raises(AssertionError, match="only DEFLATED entries can have EXT descriptor"):
        check_archive(path, FILES, readers=[JAVA_STREAM])


def _assert_streamed_layout(path):
    """Every local header has flag bit 3 and CRC/sizes zero."""
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            header = raw[info.header_offset : info.header_offset + 30]
            assert header[:4] == b"PK\x03\x04"
            assert int.from_bytes(header[6:8], "little") & 0x08
            assert header[14:26] == bytes(12)


def test_readers_subset_and_unknown_reader(tmp_path):
    path = write_zip(tmp_path / "good.zip")
    check_archive(path, FILES, directories=DIRS, readers=[UNZIP])
    with pytest.raises(AssertionError, match="unknown readers"):
        check_archive(path, FILES, readers=["winzip"])


# ---- moto fixtures smoke test ----------------------------------------------


def test_moto_fixtures(moto_server, s3, dynamodb, bucket_factory, state_table, tmp_path):
    assert os.environ["AWS_ENDPOINT_URL"] == moto_server
    bucket = bucket_factory("Src_Bucket")
    assert bucket.startswith("src-bucket-") and bucket == bucket.lower()
    assert bucket_factory() != bucket_factory()

    objects = {"a.txt": b"a", "dir/ü b.bin": b"\0" * 100}
    etags = seed_bucket(s3, bucket, objects, ContentType="text/plain", Metadata={"k": "v"})
    assert set(etags) == set(objects)
    # Product code builds plain clients: the environment must route them to moto.
    plain = boto3.client("s3")
    assert sorted(all_keys(plain, bucket)) == sorted(objects)
    assert plain.head_object(Bucket=bucket, Key="a.txt")["Metadata"] == {"k": "v"}
    assert download(s3, bucket, "dir/ü b.bin", tmp_path / "x") == tmp_path / "x"
    assert (tmp_path / "x").read_bytes() == objects["dir/ü b.bin"]

    upload = s3.create_multipart_upload(Bucket=bucket, Key="big.zip")
    assert [u["UploadId"] for u in list_multipart_uploads(s3, bucket)] == [upload["UploadId"]]

    table = dynamodb.describe_table(TableName=state_table)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"run_id": "HASH", "sk": "RANGE"}
    boto3.client("dynamodb").put_item(TableName=state_table, Item={"run_id": {"S": "r"}, "sk": {"S": "s"}})
    assert dynamodb.get_item(TableName=state_table, Key={"run_id": {"S": "r"}, "sk": {"S": "s"}})["Item"]
