"""zip64: more than 65,535 entries; an entry and an archive over 4 GiB (synthetic source).
Every reader of the matrix opens both."""

from __future__ import annotations

import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from bucketzip.store_local import LocalStateStore
from support.archiving import archive
from support.readers import ALL_READERS, check_archive, read_with
from support.seed import download
from support.synthetic import SyntheticSource, generate, sha256_of

GIB = 1024**3


def test_more_than_65535_entries(s3, bucket_factory, tmp_path):
    # A synthetic source: 66,000 GETs through the in-process emulator take minutes; the
    # listing and reads over HTTP are proven exact by the other tests.
    dest = bucket_factory("dst")
    sizes = {f"d{i % 50:02d}/f{i:06d}.txt": i % 40 for i in range(66_000)}
    source = SyntheticSource(s3, "synthetic-many", sizes)
    result, steps = archive(
        source,
        LocalStateStore(tmp_path / "state"),
        source_bucket="synthetic-many",
        dest_bucket=dest,
        dest_key="many.zip",
        step_bytes=3_000_000,
    )
    assert result.entries == 66_000 and steps >= 2
    path = download(s3, dest, "many.zip", tmp_path / "many.zip")
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist()[:2] == ["d00/f000000.txt", "d00/f000050.txt"]
    raw = path.read_bytes()
    assert raw.rfind(b"PK\x06\x06") > 0 and raw.rfind(b"PK\x06\x07") > 0  # zip64 end record + locator
    check_archive(path, {key: generate(0, size) for key, size in sizes.items()}, readers=ALL_READERS)


@pytest.mark.slow
def test_entry_and_archive_over_4_gib(s3, bucket_factory):
    dest = bucket_factory("dst")
    sizes = {"huge.bin": 4 * GIB + 12_345, "tail.txt": 1000}
    source = SyntheticSource(s3, "synthetic-source", sizes)
    with tempfile.TemporaryDirectory() as work:
        result, _ = archive(
            source,
            LocalStateStore(f"{work}/state"),
            source_bucket="synthetic-source",
            dest_bucket=dest,
            dest_key="huge.zip",
            part_size="64MiB",
            concurrency=4,
        )
        assert result.size > 4 * GIB + 12_345
        path = download(s3, dest, "huge.zip", f"{work}/huge.zip")
        s3.delete_object(Bucket=dest, Key="huge.zip")  # free the emulator's memory early
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            assert infos["huge.bin"].file_size == sizes["huge.bin"]
            assert infos["tail.txt"].header_offset > 4 * GIB
        expected = {
            "huge.bin": sha256_of(sizes["huge.bin"]),
            "tail.txt": __import__("hashlib").sha256(generate(0, 1000)).hexdigest(),
        }
        # Extracting readers write 4 GiB each: two at a time keeps the disk and the 2 cores sane.
        with ThreadPoolExecutor(max_workers=2) as pool:
            listings = dict(
                zip(ALL_READERS, pool.map(lambda r: read_with(r, path, timeout=1200), ALL_READERS), strict=True)
            )
        for reader, listing in listings.items():
            assert listing == expected, reader
