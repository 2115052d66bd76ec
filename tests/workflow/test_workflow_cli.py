"""`bucketzip start`, `watch` and `demo` against moto's Step Functions interpreter."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from bucketzip.cli import workflow as cli_workflow
from bucketzip.cli.executions import follow, table_of_execution
from support.seed import seed_bucket

# Failure paths publish no metrics by design (Powertools warns; the handlers silence it in Lambda).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def cli(*argv: str) -> tuple[int, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="bucketzip")
    cli_workflow.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.func(args, None), args


def cli_output(text: str) -> str:
    """Without the in-process handlers' JSON logs and metrics (they share stdout here)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith(('{"level"', '{"_aws"')))


def started_arn(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("arn:aws:states:"))


def test_start_then_watch_follows_continuations_to_the_archive(workflow, buckets, s3, capsys):
    source, dest = buckets
    seed_bucket(s3, source, {f"photos/{i:02d}.jpg": os.urandom(150_000) for i in range(12)})

    code, _ = cli(
        "start",
        "--state-machine",
        workflow.state_machine_arn,
        "--name",
        "cli-run",
        "--source",
        f"s3://{source}/photos/",
        "--dest",
        f"s3://{dest}/{{source_bucket}}/{{date:%Y}}.zip",
        "--include",
        "*.jpg",
        "--compression",
        "store",
        "--step-bytes",
        "512KiB",
        "--loops-per-execution",
        "2",
    )
    assert code == 0
    arn = started_arn(capsys.readouterr().out)
    assert arn.endswith(":cli-run")

    code, _ = cli("watch", arn, "--interval", "0.05")
    captured = capsys.readouterr()
    out = cli_output(captured.out)
    assert code == 0, captured
    assert out.startswith(f"SUCCEEDED s3://{dest}/{source}/")
    output = json.loads(out.split("\n", 1)[1])
    assert output["entries"] == 12 and output["key"].endswith(".zip")
    progress_lines = [line for line in captured.err.splitlines() if " step " in line]
    assert progress_lines and "objects" in progress_lines[-1]
    assert any(line.startswith("cli-run--continued-1:") for line in captured.err.splitlines())  # the working one


def test_start_with_watch_reports_a_failure_and_exits_1(workflow, buckets, s3, capsys):
    source, dest = buckets
    s3.put_object(Bucket=dest, Key="taken.zip", Body=b"x")
    code, _ = cli(
        "start",
        "--state-machine",
        workflow.state_machine_arn,
        "--watch",
        "--interval",
        "0.05",
        "--input",
        json.dumps({"source_bucket": source, "dest_bucket": dest, "dest_key": "taken.zip"}),
    )
    out = cli_output(capsys.readouterr().out)
    assert code == 1
    assert "FAILED" in out and "error: DestinationExists" in out and "taken.zip" in out


def test_start_input_file_and_options(tmp_path):
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"source_bucket": "a", "dest_bucket": "b", "dest_key": "k.zip", "strict": True}))
    parser = argparse.ArgumentParser()
    cli_workflow.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "start",
            "--state-machine",
            "arn",
            "--input",
            f"@{path}",
            "--dest",
            "s3://c/x/{date:%Y}.zip",
            "--overwrite",
            "--part-size",
            "64MiB",
        ]
    )
    assert cli_workflow.execution_input(args) == {
        "source_bucket": "a",
        "dest_bucket": "c",
        "dest_key": "x/{date:%Y}.zip",
        "strict": True,
        "overwrite": True,
        "part_size": "64MiB",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--source", "s3://a/"], "dest_bucket"),
        (["--source", "a", "--dest", "s3://b/k.zip"], "--source"),
        (["--source", "s3://a", "--dest", "s3://b/dir/"], "names no object"),
        (["--input", "[1]"], "JSON object"),
    ],
)
def test_start_bad_usage_exits_2(argv, message, capsys):
    code, _ = cli("start", "--state-machine", "arn:aws:states:us-east-1:1:stateMachine:x", *argv)
    assert code == 2 and message in capsys.readouterr().err


def test_watch_finds_the_state_table_of_the_stack(workflow, buckets, s3):
    source, dest = buckets
    arn = workflow.start({"source_bucket": source, "dest_bucket": dest, "dest_key": "a.zip"})
    assert table_of_execution(boto3.client("stepfunctions"), boto3.client("lambda"), arn) == workflow.table
    assert follow(workflow.sfn, arn, poll_seconds=0.05).succeeded


def test_demo_command(tmp_path):
    """The README's first command, in its own process (it starts its own moto server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "POWERTOOLS_", "BUCKETZIP_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FUNCTIONS), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "bucketzip.cli.workflow", "demo", "--objects", "80", "--loops-per-execution", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Archived 81 objects" in out and "s3://demo-archives/backups/demo-photos/" in out
    assert "continue-as-new" in out and "0 continue-as-new" not in out
    assert "verified   every object read back byte for byte" in out
    assert "bucketzip start --state-machine" in out
    assert '"level"' not in out  # handlers' logs stay quiet in the demo


def test_watch_reports_an_unknown_execution_without_a_traceback(moto_server, capsys):
    code, _ = cli("watch", "arn:aws:states:us-east-1:123456789012:execution:nope:nope", "--table", "t")
    assert code == 1 and "bucketzip watch:" in capsys.readouterr().err
