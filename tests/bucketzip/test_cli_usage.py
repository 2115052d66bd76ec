"""What a new user trips over at the command line: no arguments, --endpoint-url after the
subcommand, errors naming the flags typed, `ls | head`, a prefix that matches nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

from bucketzip import cli
from support.seed import seed_bucket


@pytest.fixture
def run_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BUCKETZIP_STATE_DIR", str(tmp_path / "state"))

    def run(*argv):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_no_arguments_prints_usage_and_the_commands():
    result = subprocess.run([sys.executable, "-m", "bucketzip.cli"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: bucketzip")
    for command in ("archive", "abort", "ls", "extract", "restore", "verify", "demo", "start", "watch"):
        assert f"    {command} " in result.stderr or f"    {command}\n" in result.stderr, command


SUBCOMMAND_ARGS = {
    "archive": ["s3://SOURCE", "s3://DEST/a.zip"],
    "abort": ["RUN"],
    "ls": ["s3://B/a.zip"],
    "extract": ["s3://B/a.zip", "--to", "out"],
    "restore": ["s3://B/a.zip", "s3://D"],
    "verify": ["s3://B/a.zip"],
    "demo": [],
    "start": ["--state-machine", "ARN"],
    "watch": ["ARN"],
}


def test_every_subcommand_accepts_endpoint_url_after_it():
    parser = cli.build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # the registered commands
    for command, subparser in subcommands.items():  # commands added later have it too
        assert any("--endpoint-url" in action.option_strings for action in subparser._actions), command
    assert set(SUBCOMMAND_ARGS) <= set(subcommands)
    for command, rest in SUBCOMMAND_ARGS.items():
        after = parser.parse_args([command, *rest, "--endpoint-url", "http://after:1"])
        assert after.endpoint_url == "http://after:1", command
        before = parser.parse_args(["--endpoint-url", "http://before:1", command, *rest])
        assert before.endpoint_url == "http://before:1", command  # not reset by the subcommand
        assert parser.parse_args([command, *rest]).endpoint_url is None


def test_endpoint_url_after_the_subcommand_reaches_the_client(s3, bucket_factory, moto_server, run_cli, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    bucket = bucket_factory("ls")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("hello.txt", b"hello")
    s3.put_object(Bucket=bucket, Key="a.zip", Body=buffer.getvalue())
    code, out, err = run_cli("ls", f"s3://{bucket}/a.zip", "--endpoint-url", moto_server)
    assert code == 0, err
    assert "hello.txt" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["s3://Bad_Bucket/", "s3://dest-bz/a.zip"], "SRC: 'Bad_Bucket' is not a valid bucket name"),
        (["s3://source-bz/", "s3://Bad_Dest/a.zip"], "DEST: 'Bad_Dest' is not a valid bucket name"),
        (["s3://source-bz/", "s3://dest-bz/"], "DEST: 's3://dest-bz/' names no object"),
        (["source-bz", "s3://dest-bz/a.zip"], "SRC: 'source-bz' is not an s3://BUCKET/KEY URL"),
        (["--part-size", "1MB"], "--part-size: 1000000 is not between 5 MiB and 5 GiB"),
        (["--part-size", "lots"], "--part-size: 'lots' is not a size"),
        (["--chunk-size", "1KiB"], "--chunk-size: 1024 is not between 64 KiB and 64 MiB"),
        (["--step-bytes", "huge"], "--step-bytes: 'huge' is not a size"),
        (["--concurrency", "0"], "--concurrency: 0 is not between 1 and 64"),
        (["--level", "12"], "--level: 12 is not between 0 and 9"),
        (["--include", "[oops"], "--include: bad glob '[oops'"),
        (["--exclude", "[oops"], "--exclude: bad glob '[oops'"),
    ],
)
def test_errors_name_the_flags_typed(run_cli, argv, message):
    if not argv[0].startswith("--"):
        code, _, err = run_cli("archive", *argv)
    else:
        code, _, err = run_cli("archive", "s3://source-bz/", "s3://dest-bz/a.zip", *argv)
    assert code == 2
    assert err.strip() == f"bucketzip: error: {message}" or err.startswith(f"bucketzip: error: {message}")
    assert "_size" not in err and "_bucket" not in err


def test_ls_into_a_closed_pipe_ends_quietly(s3, bucket_factory):
    bucket = bucket_factory("ls")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(4000):  # ~400 KB of listing: far more than a pipe buffer holds
            zf.writestr(f"dir/file-{i:05d}.txt", b"")
    s3.put_object(Bucket=bucket, Key="many.zip", Body=buffer.getvalue())
    command = f"{sys.executable} -m bucketzip.cli ls s3://{bucket}/many.zip | head -n 2"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120, env=os.environ
    )
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
    assert result.stderr == ""
    assert result.returncode == 141  # SIGPIPE's status, as for any Unix tool cut off by head


@pytest.mark.parametrize("json_output", [False, True])
def test_a_prefix_that_matches_nothing_warns(s3, bucket_factory, run_cli, json_output):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"photos/a.jpg": b"a"})
    argv = ["archive", f"s3://{source}/fotos/", f"s3://{dest}/a.zip", *(["--json"] if json_output else [])]
    code, out, err = run_cli(*argv)
    assert code == 0
    warning = f"s3://{source}/fotos/ matched no object: the archive is empty"
    assert f"bucketzip: warning: {warning}" in err
    if json_output:
        summary = json.loads(out)
        assert summary["entries"] == 0 and summary["warnings"] == [warning]
    else:
        assert "0 entries (nothing matched)" in out


def test_filters_that_match_nothing_are_named_in_the_warning(s3, bucket_factory, run_cli):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"photos/a.jpg": b"a"})
    code, out, err = run_cli("archive", f"s3://{source}", f"s3://{dest}/a.zip", "--include", "*.png", "--json")
    assert code == 0
    assert f"s3://{source}/ (with --include *.png) matched no object" in err
    assert json.loads(out)["warnings"]


def test_a_prefix_that_matches_something_does_not_warn(s3, bucket_factory, run_cli):
    source, dest = bucket_factory("src"), bucket_factory("dst")
    seed_bucket(s3, source, {"photos/a.jpg": b"a"})
    code, out, err = run_cli("archive", f"s3://{source}/photos/", f"s3://{dest}/a.zip", "--json")
    assert code == 0 and json.loads(out)["warnings"] == [] and "warning" not in err
