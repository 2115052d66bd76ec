"""zip64: more than 65,535 entries; an entry and an archive over 4 GiB.

The > 4 GiB archive is made at the byte level in the default suite: a synthetic source and
a destination bucket on local disk (support.disk_bucket), so the engine writes 4 GiB in one
local pass instead of multi-GiB emulator requests. Every reader lists it and reads the
entry that lies past 4 GiB; the streaming reader (Java's ZipInputStream, which needs the
zip64 local header and data descriptor of the big entry) reads all of it. The `big` test
does the same through the emulator, and every reader extracts everything.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from bucketzip.store_local import LocalStateStore
from support import many_entries
from support.archiving import archive
from support.disk_bucket import DiskBucket
from support.readers import ALL_READERS, check_listing, read_with
from support.seed import download
from support.synthetic import SyntheticSource, crc32_of, generate, sha256_of

GIB = 1024**3
# An entry past 4 GiB, and a small one after it: its header offset is past 4 GiB too.
HUGE = {"huge.bin": 4 * GIB + 12_345, "tail.txt": 1000}


def _zip64_end_records(path) -> bool:
    with open(path, "rb") as f:
        f.seek(-200, 2)
        end = f.read()
    return end.rfind(b"PK\x06\x06") >= 0 and end.rfind(b"PK\x06\x07") >= 0  # zip64 end record + locator


def test_more_than_65535_entries(many_entries_archive, s3, tmp_path):
    made = many_entries_archive
    assert made.steps > 2
    path = download(s3, made.bucket, made.key, tmp_path / "many.zip")
    assert _zip64_end_records(path)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == [many_entries.name(i) for i in range(many_entries.COUNT)]
        assert all(zf.read(info) == many_entries.body(i) for i, info in enumerate(infos))
    sizes = {many_entries.name(i): len(many_entries.body(i)) for i in range(many_entries.COUNT)}
    sample = [0, 65_534, 65_535, 65_536, many_entries.COUNT - 1]  # around the 16-bit entry count
    # Every reader lists all 70,000 entries, tests (reads and CRC-checks) all their data and
    # reads a sample; extracting 70,000 files to disk per reader would take minutes.
    check_listing(path, sizes, {many_entries.name(i): many_entries.body(i) for i in sample})


class _Nowhere:
    """The client behind the synthetic source and the disk bucket: nothing else is called."""

    def __getattr__(self, name):
        raise AssertionError(f"unexpected S3 call {name}: source and destination are local")


def test_entry_and_archive_over_4_gib(tmp_path):
    s3 = DiskBucket(SyntheticSource(_Nowhere(), "synthetic", HUGE), "dest", tmp_path / "dest")
    result, steps = archive(
        s3,
        LocalStateStore(tmp_path / "state"),
        source_bucket="synthetic",
        dest_bucket="dest",
        dest_key="huge.zip",
        part_size="16MiB",
        concurrency=2,
        step_bytes=1536 * 1024 * 1024,  # resumes mid-entry, across the 4 GiB offset
    )
    assert steps >= 3 and result.entries == 2 and result.size > 4 * GIB + 12_345
    path = s3.path("huge.zip")
    assert path.stat().st_size == result.size and _zip64_end_records(path)
    with zipfile.ZipFile(path) as zf:
        huge, tail = zf.getinfo("huge.bin"), zf.getinfo("tail.txt")
        # Incompressible and many chunks: deflate with stored blocks (streaming readers refuse
        # method 0 with a data descriptor), so both sizes pass 4 GiB.
        assert huge.compress_type == zipfile.ZIP_DEFLATED and huge.file_size == HUGE["huge.bin"]
        assert huge.compress_size > huge.file_size
        assert huge.CRC == crc32_of(HUGE["huge.bin"])  # the content, without reading 4 GiB twice
        assert tail.header_offset > 4 * GIB
        assert zf.read(tail) == generate(0, 1000)
    # Every reader: the listing (zip64 sizes, offsets, end records) and the entry past 4 GiB.
    # test=False: no reader reads the 4 GiB entry but the streaming one, which must.
    check_listing(path, HUGE, {"tail.txt": generate(0, 1000)}, test=False)


@pytest.mark.big
@pytest.mark.timeout(3600)
def test_entry_and_archive_over_4_gib_through_the_emulator(s3, bucket_factory):
    """End to end: 4 GiB of parts through the emulator, its 4 GiB Complete, a 4 GiB GET; then
    every reader extracts everything. Minutes, and the emulator holds the object in memory."""
    dest = bucket_factory("dst")
    # The emulator's Complete of 4 GiB takes minutes under load: a read timeout and a retry
    # would race the first attempt (issue 12), so one attempt with all the time it needs.
    client = boto3.client(
        "s3",
        endpoint_url=s3.meta.endpoint_url,
        region_name=s3.meta.region_name,
        config=Config(read_timeout=1800, retries={"total_max_attempts": 1}),
    )
    source = SyntheticSource(client, "synthetic-source", HUGE)
    with tempfile.TemporaryDirectory() as work:
        result, _ = archive(
            source,
            LocalStateStore(f"{work}/state"),
            source_bucket="synthetic-source",
            dest_bucket=dest,
            dest_key="huge.zip",
            part_size="64MiB",
            concurrency=2,
        )
        assert result.size > 4 * GIB + 12_345
        path = download(client, dest, "huge.zip", f"{work}/huge.zip")
        client.delete_object(Bucket=dest, Key="huge.zip")  # free the emulator's memory early
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            assert infos["huge.bin"].file_size == HUGE["huge.bin"]
            assert infos["tail.txt"].header_offset > 4 * GIB
        expected = {"huge.bin": sha256_of(HUGE["huge.bin"]), "tail.txt": hashlib.sha256(generate(0, 1000)).hexdigest()}
        # Extracting readers write 4 GiB each: two at a time keeps the disk and the 2 cores sane.
        with ThreadPoolExecutor(max_workers=2) as pool:
            listings = dict(
                zip(ALL_READERS, pool.map(lambda r: read_with(r, path, timeout=1800), ALL_READERS), strict=True)
            )
        for reader, listing in listings.items():
            assert listing == expected, reader
