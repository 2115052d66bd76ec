"""Which keys `restore` writes: a bucketzip archive's original keys exactly (from its
manifest, whatever entry names they were mapped to); a foreign archive's entry names only
when safe ('..', absolute, backslash and NUL refused, as `extract` refuses them)."""

from __future__ import annotations

import pytest
from reading_helpers import raw_zip

from bucketzip.store_local import LocalStateStore
from support.archiving import archive, manifest
from support.seed import HOSTILE_KEYS, all_keys, seed_bucket

HOSTILE = HOSTILE_KEYS


def test_a_bucketzip_archive_restores_to_its_original_keys(s3, bucket_factory, tmp_path, run_cli):
    source, archives, target = bucket_factory("src"), bucket_factory("arc"), bucket_factory("dst")
    seed_bucket(s3, source, HOSTILE)
    archive(s3, LocalStateStore(tmp_path), source_bucket=source, dest_bucket=archives, dest_key="h.zip")
    names = {line["key"]: line["name"] for line in manifest(s3, archives, "h.zip") if line["type"] == "entry"}
    assert names["back\\slash.txt"] != "back\\slash.txt"  # the entry names were mapped to safe ones
    code, _, err = run_cli("restore", f"s3://{archives}/h.zip", f"s3://{target}")
    assert code == 0, err
    assert sorted(all_keys(s3, target)) == sorted(HOSTILE)
    for key, body in HOSTILE.items():
        assert s3.get_object(Bucket=target, Key=key)["Body"].read() == body, key


def _foreign(s3, bucket: str, names: dict[str, bytes]) -> str:
    """A zip made by another tool (no manifest beside it), names written as given (raw:
    zipfile would cut a name at NUL)."""
    data = raw_zip([(name.encode("utf-8"), body, {"flags": 0x800}) for name, body in names.items()])
    s3.put_object(Bucket=bucket, Key="foreign.zip", Body=data)
    return f"s3://{bucket}/foreign.zip"


@pytest.mark.parametrize(
    "name,why",
    [
        ("../escape.txt", "'..'"),
        ("a/../../escape.txt", "'..'"),
        ("/etc/passwd", "absolute path"),
        ("\\windows\\system.ini", "absolute path"),
        ("C:evil.txt", "absolute path"),
        ("back\\slash.txt", "backslash"),
        ("nul\x00byte.txt", "NUL"),
    ],
)
def test_a_foreign_archive_with_an_unsafe_name_is_refused(s3, bucket_factory, run_cli, name, why):
    archives, target = bucket_factory("arc"), bucket_factory("dst")
    url = _foreign(s3, archives, {"fine.txt": b"fine", name: b"bad"})
    code, _, err = run_cli("restore", url, f"s3://{target}")
    assert code == 1 and "refusing to restore" in err and why in err
    assert all_keys(s3, target) == []  # nothing written, not even the safe entry
    code, _, err = run_cli("restore", url, f"s3://{target}", "fine.txt")  # the safe one alone: fine
    assert code == 0, err
    assert all_keys(s3, target) == ["fine.txt"]


def test_a_foreign_archive_with_safe_names_restores_them_as_keys(s3, bucket_factory, run_cli):
    archives, target = bucket_factory("arc"), bucket_factory("dst")
    url = _foreign(s3, archives, {"a/b.txt": b"b", "dir/": b"", "x.txt": b"x"})
    code, _, err = run_cli("restore", url, f"s3://{target}/p")
    assert code == 0, err
    assert sorted(all_keys(s3, target)) == ["p/a/b.txt", "p/dir/", "p/x.txt"]
