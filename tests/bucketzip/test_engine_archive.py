"""The engine over a moto server: hostile keys through every reader, many steps equal
one step byte for byte, objects larger than a part, metadata in the manifest."""

from __future__ import annotations

import os
import random

import pytest

from bucketzip.store_dynamodb import DynamoStateStore
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, contents_by_key, fetch, manifest
from support.readers import ALL_READERS, check_archive
from support.seed import HOSTILE_KEYS, list_multipart_uploads, seed_bucket, state_items

MIB = 1024 * 1024

HOSTILE = {
    **HOSTILE_KEYS,
    "plain.txt": b"plain\n" * 100,
    "empty.bin": b"",
    "k" * 1000: b"1000-byte key",
    "photo.jpg": os.urandom(50_000),
    "random.bin": os.urandom(300_000),
    "big/compressible.log": b"".join(b"line %d of a log\n" % i for i in range(700_000)),
    "big/incompressible.bin": os.urandom(6 * MIB + 123),
}


@pytest.fixture
def local_store(tmp_path):
    return LocalStateStore(tmp_path / "state")


def _seed(s3, bucket_factory, objects):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, objects)
    return source, dest


def test_hostile_keys_open_in_every_reader(s3, bucket_factory, local_store, tmp_path):
    source, dest = _seed(s3, bucket_factory, HOSTILE)
    result, steps = archive(
        s3,
        local_store,
        source_bucket=source,
        dest_bucket=dest,
        dest_key="hostile.zip",
        part_size="5MiB",
        chunk_size="1MiB",
        step_bytes=MIB,
    )
    assert steps > 3 and result.parts >= 2
    by_key = contents_by_key(s3, dest, "hostile.zip")
    assert by_key == HOSTILE
    lines = [line for line in manifest(s3, dest, "hostile.zip") if line["type"] == "entry"]
    names = [line["name"] for line in lines]
    assert len(set(names)) == len(names) == len(HOSTILE)
    for name in names:
        assert not name.startswith("/") and "\\" not in name
        assert all(seg not in ("", ".", "..") for seg in name.rstrip("/").split("/"))
        assert all(len(seg.encode()) <= 255 for seg in name.split("/"))
    path = tmp_path / "hostile.zip"
    path.write_bytes(fetch(s3, dest, "hostile.zip"))
    expected = {line["name"]: HOSTILE[line["key"]] for line in lines if not line["name"].endswith("/")}
    check_archive(path, expected, readers=ALL_READERS, directories={"folder/"})
    assert list_multipart_uploads(s3, dest) == []
    assert local_store.run_ids() == []


@pytest.mark.parametrize("compression", ["auto", "store", "deflate"])
def test_many_steps_equal_one_step_byte_for_byte(s3, bucket_factory, local_store, compression):
    rnd = random.Random(7)
    objects = {
        f"d{i % 4}/o{i:03d}": (
            os.urandom(rnd.randint(0, 40_000)) if i % 3 == 0 else b"abc%d" % i * rnd.randint(0, 20_000)
        )
        for i in range(60)
    }
    objects["large"] = os.urandom(3 * MIB)
    source, dest = _seed(s3, bucket_factory, objects)
    common = dict(
        source_bucket=source,
        dest_bucket=dest,
        compression=compression,
        part_size="5MiB",
        chunk_size="256KiB",
        page_size=7,
    )
    one, steps_one = archive(s3, local_store, dest_key="one.zip", **common)
    many, steps_many = archive(s3, local_store, dest_key="many.zip", step_bytes=40_000, **common)
    assert steps_one == 1 and steps_many > 15
    assert fetch(s3, dest, "one.zip") == fetch(s3, dest, "many.zip")
    assert contents_by_key(s3, dest, "many.zip") == objects


def test_dynamodb_store_and_objects_larger_than_parts(s3, dynamodb, bucket_factory, state_table, tmp_path):
    objects = {"a.bin": os.urandom(12 * MIB + 5), "b.txt": b"x" * (7 * MIB), "c.txt": b"small"}
    source, dest = _seed(s3, bucket_factory, objects)
    store = DynamoStateStore(state_table, client=dynamodb)
    result, steps = archive(
        s3,
        store,
        source_bucket=source,
        dest_bucket=dest,
        dest_key="big.zip",
        part_size="5MiB",
        chunk_size="1MiB",
        step_bytes=2 * MIB,
    )
    assert steps > 5 and result.parts >= 3
    path = tmp_path / "big.zip"
    path.write_bytes(fetch(s3, dest, "big.zip"))
    check_archive(path, objects)
    assert state_items(dynamodb, state_table) == ["result"]  # only the finished run's result
    assert list_multipart_uploads(s3, dest) == []
    assert [k["Key"] for k in s3.list_objects_v2(Bucket=dest).get("Contents", [])] == [
        "big.zip",
        "big.zip.manifest.jsonl",
    ]


def test_manifest_keeps_headers_and_metadata(s3, bucket_factory, local_store):
    source, dest = _seed(s3, bucket_factory, {})
    s3.put_object(
        Bucket=source,
        Key="doc.html",
        Body=b"<p>hi</p>",
        ContentType="text/html",
        CacheControl="max-age=60",
        ContentDisposition="inline",
        Metadata={"owner": "ops"},
    )
    archive(s3, local_store, source_bucket=source, dest_bucket=dest, dest_key="m.zip")
    header, entry = manifest(s3, dest, "m.zip")
    assert header["type"] == "archive" and header["entries"] == 1 and header["format"] == "bucketzip-manifest/1"
    assert entry["key"] == "doc.html" and entry["content_type"] == "text/html"
    assert entry["cache_control"] == "max-age=60" and entry["metadata"] == {"owner": "ops"}
    assert entry["size"] == 9 and entry["offset"] == 0 and entry["etag"].startswith('"')


def test_prefix_globs_and_own_keys_are_honoured(s3, bucket_factory, local_store):
    bucket = bucket_factory("same")
    seed_bucket(
        s3,
        bucket,
        {
            "data/a.txt": b"a",
            "data/b.log": b"b",
            "data/sub/c.txt": b"c",
            "other/d.txt": b"d",
            "data/out.zip": b"old archive",
            ".bucketzip-staging/x/tail": b"staging",
        },
    )
    archive(
        s3,
        local_store,
        source_bucket=bucket,
        source_prefix="data/",
        dest_bucket=bucket,
        dest_key="data/out.zip",
        include=["*.txt", "*.zip"],
        exclude=["sub/*"],
        overwrite=True,
    )
    assert set(contents_by_key(s3, bucket, "data/out.zip")) == {"data/a.txt"}


def test_empty_source_gives_a_valid_empty_zip(s3, bucket_factory, local_store, tmp_path):
    source, dest = _seed(s3, bucket_factory, {})
    result, _ = archive(s3, local_store, source_bucket=source, dest_bucket=dest, dest_key="empty.zip")
    assert result.entries == 0 and result.size == 22
    path = tmp_path / "empty.zip"
    path.write_bytes(fetch(s3, dest, "empty.zip"))
    check_archive(path, {})
