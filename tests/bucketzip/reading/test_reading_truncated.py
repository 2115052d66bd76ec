"""Truncated entries: an object that changes while the engine is inside it (non-strict)
ends up as an entry holding only the bytes read before. Its central-directory record
carries a file comment saying so (any zip tool shows it), the manifest says so, `ls`
marks it, `extract` / `restore` leave it out and exit 1 unless --accept-truncated,
`verify` reports it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile

import pytest

from bucketzip.clients import s3_client
from bucketzip.records import TRUNCATED_MARK
from bucketzip.store_local import LocalStateStore
from support.archiving import archive, fetch, manifest
from support.seed import all_keys, seed_bucket

KIB = 1024
BIG = os.urandom(300 * KIB)  # several 64 KiB chunks: the change lands inside the entry


def _changing_client(bucket: str, victim: str):
    """A real client that overwrites `victim` just before the engine GETs its second chunk:
    the object changes while its entry is open."""
    client, writer = s3_client(), s3_client()
    changed = []

    def change(params, **_):
        if params["url_path"].split("?")[0].endswith("/" + victim) and not changed:
            if params["headers"].get("Range", "bytes=0-").startswith("bytes=0-"):
                return
            changed.append(True)
            writer.put_object(Bucket=bucket, Key=victim, Body=b"a new version")

    client.meta.events.register("before-call.s3.GetObject", change)
    return client


@pytest.fixture
def truncated_archive(s3, bucket_factory, tmp_path):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"a.txt": b"whole", "big.bin": BIG, "z.txt": b"also whole"})
    result, _ = archive(
        _changing_client(source, "big.bin"),
        LocalStateStore(tmp_path / "state"),
        source_bucket=source,
        dest_bucket=dest,
        dest_key="t.zip",
        chunk_size="64KiB",
        concurrency=1,
        compression="store",
        part_size="5MiB",
    )
    assert result.skipped == 1 and result.entries == 3
    return source, dest


def test_the_central_record_and_the_manifest_say_truncated(s3, truncated_archive, tmp_path):
    _, dest = truncated_archive
    data = fetch(s3, dest, "t.zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None  # a valid entry: the bytes read, with their CRC
        infos = {info.filename: info for info in zf.infolist()}
        comment = infos["big.bin"].comment.decode("ascii")
        assert comment.startswith(TRUNCATED_MARK + ": source object changed after listing")
        assert f"of {len(BIG)} bytes" in comment
        assert zf.read("big.bin") == BIG[: infos["big.bin"].file_size] and infos["big.bin"].file_size < len(BIG)
        assert infos["a.txt"].comment == b"" and infos["z.txt"].comment == b""
    path = tmp_path / "t.zip"
    path.write_bytes(data)
    for command in (["unzip", "-l"], ["unzip", "-Z", "-v"], ["7z", "l", "-slt"]):  # zip tools show the comment
        shown = subprocess.run([*command, str(path)], capture_output=True, text=True, check=True).stdout
        assert TRUNCATED_MARK + ": source object changed" in shown, command
    lines = {line.get("name"): line for line in manifest(s3, dest, "t.zip") if line["type"] == "entry"}
    assert lines["big.bin"]["truncated"] is True and "truncated" not in lines["a.txt"]


def test_ls_marks_truncated_entries(truncated_archive, run_cli):
    _, dest = truncated_archive
    code, out, _ = run_cli("ls", f"s3://{dest}/t.zip")
    assert code == 0
    marked = [line for line in out.splitlines() if "[TRUNCATED]" in line]
    assert len(marked) == 1 and "big.bin" in marked[0]
    assert "1 TRUNCATED" in out.splitlines()[-1]
    code, out, _ = run_cli("ls", f"s3://{dest}/t.zip", "--json")
    items = {item["name"]: item for item in map(json.loads, out.splitlines())}
    assert items["big.bin"]["truncated"].startswith(TRUNCATED_MARK) and "truncated" not in items["a.txt"]


def test_ls_marks_them_without_the_manifest_too(truncated_archive, run_cli):
    _, dest = truncated_archive
    code, out, _ = run_cli("ls", f"s3://{dest}/t.zip", "--no-manifest")
    assert code == 0 and "[TRUNCATED]" in out


def test_extract_leaves_them_out_and_exits_1_unless_accepted(truncated_archive, run_cli, tmp_path):
    _, dest = truncated_archive
    code, _, err = run_cli("extract", f"s3://{dest}/t.zip", "--to", str(tmp_path / "out"))
    assert code == 1
    assert "big.bin: not extracted: " + TRUNCATED_MARK in err and "--accept-truncated" in err
    assert sorted(os.listdir(tmp_path / "out")) == ["a.txt", "z.txt"]
    code, _, err = run_cli("extract", f"s3://{dest}/t.zip", "--to", str(tmp_path / "all"), "--accept-truncated")
    assert code == 0 and "warning: big.bin: extracted although truncated" in err
    assert sorted(os.listdir(tmp_path / "all")) == ["a.txt", "big.bin", "z.txt"]
    assert BIG.startswith((tmp_path / "all" / "big.bin").read_bytes())


def test_restore_leaves_them_out_and_exits_1_unless_accepted(s3, bucket_factory, truncated_archive, run_cli):
    _, dest = truncated_archive
    target = bucket_factory("restore")
    code, out, _ = run_cli("restore", f"s3://{dest}/t.zip", f"s3://{target}", "--dry-run")
    assert code == 1 and f"would leave out s3://{target}/big.bin" in out
    assert "2 objects, 15 bytes (15 B) would be written, 1 truncated left out; nothing written" in out
    code, out, _ = run_cli("restore", f"s3://{dest}/t.zip", f"s3://{target}", "--dry-run", "--accept-truncated")
    assert code == 0 and f"would write s3://{target}/big.bin" in out and "[TRUNCATED]" in out
    code, _, err = run_cli("restore", f"s3://{dest}/t.zip", f"s3://{target}")
    assert code == 1 and f"s3://{target}/big.bin: not restored: {TRUNCATED_MARK}" in err
    assert sorted(all_keys(s3, target)) == ["a.txt", "z.txt"]
    code, _, err = run_cli("restore", f"s3://{dest}/t.zip", f"s3://{target}/again", "--accept-truncated")
    assert code == 0 and "restored although truncated" in err
    assert sorted(all_keys(s3, target)) == ["a.txt", "again/a.txt", "again/big.bin", "again/z.txt", "z.txt"]


def test_verify_reports_them(truncated_archive, run_cli):
    _, dest = truncated_archive
    code, out, _ = run_cli("verify", f"s3://{dest}/t.zip")
    assert code == 1
    assert f"PROBLEM [truncated] big.bin: {TRUNCATED_MARK}" in out
    assert out.splitlines()[-1].startswith("FAILED")
    code, out, _ = run_cli("verify", f"s3://{dest}/t.zip", "--json")
    report = json.loads(out)
    assert not report["ok"] and [p["entry"] for p in report["problems"]] == ["big.bin"]
    code, out, _ = run_cli("verify", f"s3://{dest}/t.zip", "--accept-truncated")
    assert code == 0 and "is truncated (accepted)" in out and out.splitlines()[-1].startswith("OK")
