"""`bucketzip archive --workers N`: the parallel path from the command line, suspended by
faults that outlast the retries and finished by `--resume` from whatever phase it was in."""

from __future__ import annotations

import re

from test_cli_suspend import breaking_client

from bucketzip import cli
from bucketzip.store_local import LocalStateStore
from support.archiving import contents_by_key, entry_differences, fetch
from support.seed import all_keys, list_multipart_uploads, seed_bucket

OBJECTS = {f"d/{i:02d}.txt": (b"line %d\n" % i) * (3000 + 500 * i) for i in range(8)}


def test_workers_from_the_cli_suspend_and_resume_to_the_one_worker_archive(s3, bucket_factory, run_cli, state_dir):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, OBJECTS)
    common = ("--chunk-size", "64KiB", "--step-bytes", "20KiB", "--part-size", "5MiB")
    code, _, err = run_cli("archive", f"s3://{source}/d/", f"s3://{dest}/one.zip", *common)
    assert code == 0, err
    argv = ("archive", f"s3://{source}/d/", f"s3://{dest}/w.zip", *common, "--workers", "3", "--shard-bytes", "60KiB")
    code, _, err = run_cli(*argv, client=breaking_client(times=None))
    run_id = re.search(r"run (\S+) started", err)[1]
    assert code == cli.EXIT_SUSPENDED, err
    assert f"bucketzip archive --resume {run_id}" in err
    assert LocalStateStore(state_dir).load(run_id).suspended
    code, _, err = run_cli("archive", "--resume", run_id, "--workers", "2")
    assert code != 0 and "--workers is 2 here but 3 in the run" in err, err  # a resumed run keeps them
    code, _, err = run_cli("archive", "--resume", run_id)
    assert code == 0, err
    assert contents_by_key(s3, dest, "w.zip") == OBJECTS
    parallel, one = fetch(s3, dest, "w.zip"), fetch(s3, dest, "one.zip")
    assert parallel == one, entry_differences(parallel, one)
    assert list_multipart_uploads(s3, dest) == []
    assert [k for k in all_keys(s3, dest) if k.startswith(".bucketzip-staging/")] == []
    assert not LocalStateStore(state_dir).run_ids()


def test_bad_workers_are_bad_usage(s3, bucket_factory, run_cli):
    code, _, err = run_cli("archive", "s3://src-bucket/", "s3://dst-bucket/a.zip", "--workers", "0")
    assert code != 0 and "--workers: 0 is not between 1 and 1000" in err
