"""Bad input and failures through the `bucketzip archive` front door: one-line errors
that name the problem, exit codes 1/2, and nothing left behind (no multipart upload,
no staging object, no state)."""

from __future__ import annotations

import json
import os

import pytest
from botocore.awsrequest import AWSResponse

from bucketzip import cli
from bucketzip.clients import s3_client
from support.seed import all_keys, list_multipart_uploads, seed_bucket

MIB = 1024 * 1024


@pytest.fixture
def run_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BUCKETZIP_STATE_DIR", str(tmp_path / "state"))

    def run(*argv, client=None):
        if client is not None:
            monkeypatch.setattr(cli, "s3_client", lambda *a, **k: client)
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _nothing_left(s3, dest, tmp_path):
    assert list_multipart_uploads(s3, dest) == []
    assert not [k for k in all_keys(s3, dest) if k.startswith(".bucketzip-staging/")]
    state = tmp_path / "state"
    assert not state.exists() or not any(p for p in state.iterdir() if (p / "state").exists())


def _denying_client(operation: str, key: str | None = None):
    """A real client whose `operation` (optionally on one key) answers 403 AccessDenied."""
    client = s3_client()

    def deny(params, **_):  # params: the request dict; the key is the URL path's end
        if key is None or params["url_path"].split("?")[0].endswith("/" + key):
            return (
                AWSResponse("https://denied", 403, {}, None),
                {
                    "Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                    "ResponseMetadata": {"HTTPStatusCode": 403},
                },
            )
        return None

    client.meta.events.register(f"before-call.s3.{operation}", deny)
    return client


def test_missing_source_bucket(s3, bucket_factory, run_cli, tmp_path):
    dest = bucket_factory("dst")
    code, _, err = run_cli("archive", "s3://no-such-bucket-bz/", f"s3://{dest}/a.zip")
    assert code == 1 and err.strip() == "bucketzip: error: source bucket 'no-such-bucket-bz' does not exist"
    _nothing_left(s3, dest, tmp_path)


def test_missing_destination_bucket(s3, bucket_factory, run_cli, tmp_path):
    source = bucket_factory("src")
    seed_bucket(s3, source, {"a": b"a"})
    code, _, err = run_cli("archive", f"s3://{source}", "s3://no-such-dest-bz/a.zip")
    assert code == 1 and "destination bucket 'no-such-dest-bz' does not exist" in err
    assert len(err.strip().splitlines()) == 1


def test_existing_key_is_refused_unless_overwrite(s3, bucket_factory, run_cli, tmp_path):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a": b"new"})
    seed_bucket(s3, dest, {"a.zip": b"precious"})
    code, _, err = run_cli("archive", f"s3://{source}", f"s3://{dest}/a.zip")
    assert code == 1 and f"s3://{dest}/a.zip exists" in err and "overwrite" in err
    assert s3.get_object(Bucket=dest, Key="a.zip")["Body"].read() == b"precious"
    _nothing_left(s3, dest, tmp_path)
    code, out, _ = run_cli("archive", f"s3://{source}", f"s3://{dest}/a.zip", "--overwrite", "--json")
    assert code == 0 and json.loads(out)["entries"] == 1


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--include", "[oops"], "--include: bad glob '[oops'"),
        (["--part-size", "1MB"], "--part-size: 1000000 is not between 5 MiB and 5 GiB"),
        (["--part-size", "lots"], "--part-size: 'lots' is not a size"),
        (["--compression", "zstd"], "invalid choice: 'zstd'"),
    ],
)
def test_bad_usage_exits_2(s3, bucket_factory, run_cli, argv, needle, capsys):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    try:
        code, _, err = run_cli("archive", f"s3://{source}", f"s3://{dest}/a.zip", *argv)
    except SystemExit as exc:  # argparse's own refusals
        code, err = exc.code, capsys.readouterr().err
    assert code == 2 and needle in err


def test_bad_urls_exit_2(run_cli):
    assert run_cli("archive", "src-bucket", "s3://d/a.zip")[0] == 2
    code, _, err = run_cli("archive", "s3://src", "s3://dest/folder/")
    assert code == 2 and "names no object" in err


def test_access_denied_on_listing(s3, bucket_factory, run_cli, tmp_path):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a": b"a"})
    code, _, err = run_cli("archive", f"s3://{source}", f"s3://{dest}/a.zip", client=_denying_client("ListObjectsV2"))
    assert (
        code == 1
        and err.strip() == f"bucketzip: error: access denied: list objects on source bucket '{source}' (AccessDenied)"
    )
    _nothing_left(s3, dest, tmp_path)


def test_access_denied_after_parts_were_uploaded_aborts_everything(s3, bucket_factory, run_cli, tmp_path):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a.bin": os.urandom(7 * MIB), "b.bin": os.urandom(7 * MIB), "z.txt": b"late"})
    code, _, err = run_cli(
        "archive",
        f"s3://{source}",
        f"s3://{dest}/a.zip",
        "--part-size",
        "5MiB",
        "--step-bytes",
        "3MiB",
        "--chunk-size",
        "1MiB",
        "--compression",
        "store",
        client=_denying_client("GetObject", key="z.txt"),
    )
    assert code == 1 and f"access denied: get object s3://{source}/z.txt" in err
    assert all_keys(s3, dest) == []
    _nothing_left(s3, dest, tmp_path)


def _deleting_client(victim_bucket: str, victim: str):
    """A real client that deletes `victim` just before the archiver first GETs it:
    the object vanishes between listing and reading."""
    client, deleter = s3_client(), s3_client()

    def vanish(params, **_):
        if params["url_path"].split("?")[0].endswith("/" + victim):
            deleter.delete_object(Bucket=victim_bucket, Key=victim)

    client.meta.events.register("before-call.s3.GetObject", vanish)
    return client


def test_object_deleted_after_listing_is_skipped_and_reported(s3, bucket_factory, run_cli, tmp_path):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a": b"a", "gone": b"gone", "z": b"z"})
    code, out, err = run_cli(
        "archive", f"s3://{source}", f"s3://{dest}/a.zip", "--json", client=_deleting_client(source, "gone")
    )
    assert code == 0 and json.loads(out)["skipped"] == 1 and json.loads(out)["entries"] == 2
    assert "warning: skipped 'gone': deleted after listing" in err
    lines = [json.loads(x) for x in s3.get_object(Bucket=dest, Key="a.zip.manifest.jsonl")["Body"].read().splitlines()]
    assert lines[-1] == {"type": "skipped", "key": "gone", "version_id": None, "reason": "deleted after listing"}
    assert lines[0]["skipped"] == 1


def test_object_deleted_after_listing_fails_with_strict(s3, bucket_factory, run_cli, tmp_path):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a": os.urandom(6 * MIB), "gone": b"gone"})
    code, _, err = run_cli(
        "archive",
        f"s3://{source}",
        f"s3://{dest}/a.zip",
        "--strict",
        "--part-size",
        "5MiB",
        client=_deleting_client(source, "gone"),
    )
    assert code == 1 and "object 'gone': deleted after listing (--strict)" in err
    assert all_keys(s3, dest) == []
    _nothing_left(s3, dest, tmp_path)


def test_unrestored_glacier_objects_are_skipped(s3, bucket_factory, run_cli):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"hot": b"hot"})
    seed_bucket(s3, source, {"cold": b"cold"}, StorageClass="GLACIER")
    code, out, err = run_cli("archive", f"s3://{source}", f"s3://{dest}/a.zip", "--json")
    assert code == 0 and json.loads(out)["skipped"] == 1
    assert "'cold': archived storage class (GLACIER/DEEP_ARCHIVE) not restored" in err
