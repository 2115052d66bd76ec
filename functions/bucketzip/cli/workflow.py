"""The workflow commands of the CLI: `demo`, `start`, `watch`.

The main CLI calls `register(subparsers)`; each command's `func(args, s3) -> int`
returns 0 (the run succeeded), 1 (it failed, timed out or was aborted) or 2 (bad
usage). All printing happens here; the library (bucketzip.workflow) returns results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..s3errors import AWS_ERRORS
from ..sizes import format_size
from .terminal import parse_s3_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient

NEXT_STEPS = """\
Next, on AWS (see the README, "Deploy"):
  cdk deploy                      # DynamoDB table, 8 Lambda functions, the state machine, alarms
  bucketzip start --state-machine STATE_MACHINE_ARN --watch \\
      --source s3://YOUR-BUCKET/ --dest 's3://YOUR-ARCHIVES/backups/{source_bucket}/{date:%Y-%m-%d}.zip'
  bucketzip watch EXECUTION_ARN   # follow any execution (console, schedule, parent workflow)"""


def register(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the serverless workflow end to end on this machine (moto, no AWS account)",
        description="Start an embedded moto server, seed a sample bucket, run the real state machine "
        "(statemachine/archive.asl.json) with the Lambda handlers in-process, verify the archive.",
    )
    demo.add_argument("--objects", type=int, default=300, help="sample objects to seed (default 300)")
    demo.add_argument("--step-bytes", default="1MiB", help="archive bytes per step: small makes the loop loop")
    demo.add_argument(
        "--loops-per-execution",
        type=int,
        default=5,
        help="steps before continuing as a new execution (default 5, to show it)",
    )
    demo.add_argument(
        "--workers",
        type=int,
        default=1,
        help="> 1: the parallel path (a Distributed Map of segments, at most N at a time); default 1",
    )
    demo.set_defaults(func=cmd_demo)

    start = subparsers.add_parser(
        "start",
        help="start an execution of a deployed bucketzip state machine",
        description="Build the execution input from the options (and/or --input) and StartExecution.",
    )
    start.add_argument("--state-machine", required=True, metavar="ARN")
    start.add_argument("--source", metavar="s3://BUCKET/[PREFIX]", help="what to archive")
    start.add_argument(
        "--dest",
        metavar="s3://BUCKET/KEY_TEMPLATE",
        help="the archive; placeholders {source_bucket} {source_prefix} {run_id} {date:FMT}",
    )
    start.add_argument("--input", metavar="JSON|@FILE", help="execution input; the options override its fields")
    start.add_argument("--include", action="append", metavar="GLOB")
    start.add_argument("--exclude", action="append", metavar="GLOB")
    start.add_argument("--compression", choices=("auto", "store", "deflate"))
    start.add_argument("--level", type=int)
    for size in ("part-size", "chunk-size", "step-bytes", "prefetch-bytes", "shard-bytes"):
        start.add_argument(f"--{size}", metavar="SIZE")
    start.add_argument("--concurrency", type=int)
    start.add_argument(
        "--workers", type=int, help="> 1: parallel segments, at most N at a time (the Map's MaxConcurrency)"
    )
    start.add_argument("--loops-per-execution", type=int)
    start.add_argument("--overwrite", action="store_true", default=None)
    start.add_argument("--strict", action="store_true", default=None)
    start.add_argument("--name", help="execution name (default: bucketzip-<random>); it becomes the run id")
    start.add_argument("--watch", action="store_true", help="follow the execution until it ends")
    start.add_argument("--interval", type=float, default=5.0, help="seconds between polls with --watch")
    start.set_defaults(func=cmd_start)

    watch = subparsers.add_parser(
        "watch",
        help="follow an execution (and those it continues as) with a progress line",
        description="Poll the execution and the run state; exit 0 if the run succeeded, 1 otherwise.",
    )
    watch.add_argument("execution_arn", metavar="EXECUTION_ARN")
    watch.add_argument(
        "--table", help="state table (default: $BUCKETZIP_TABLE, else the stack's, from its Start function)"
    )
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    watch.set_defaults(func=cmd_watch)


# -- demo ------------------------------------------------------------------------------


def cmd_demo(args, s3: S3Client | None = None) -> int:
    try:
        import moto  # noqa: F401 - the emulator is an optional extra
    except ImportError:
        print("bucketzip: error: the demo needs the local emulator: pip install -e '.[local]'", file=sys.stderr)
        return 2
    from ..local.demo import run_demo

    say = lambda message: print(f"  {message}", flush=True)  # noqa: E731
    print("bucketzip demo: the serverless workflow on this machine (moto; no AWS account needed)")
    summary = run_demo(
        count=args.objects,
        step_bytes=args.step_bytes,
        loops_per_execution=args.loops_per_execution,
        on_event=say,
        workers=args.workers,
    )
    archive = summary.archive
    continued = summary.executions - 1
    print()
    print(f"Archived {summary.objects} objects ({format_size(summary.source_bytes)}) into {summary.location}")
    print(
        f"  archive    {format_size(archive['size'])}, {archive['entries']} entries, {archive['parts']} parts;"
        f" manifest s3://{archive['bucket']}/{archive['manifest_key']}"
    )
    print(
        f"  workflow   {summary.steps} Step invocations in {summary.executions} execution(s)"
        f" ({continued} continue-as-new, every {args.loops_per_execution} steps), {summary.seconds:.1f} s"
    )
    if summary.workers > 1:
        print(f"  parallel   {summary.segments} segments by a Distributed Map, {summary.workers} at a time")
    if summary.verified:
        print("  verified   every object read back byte for byte; CRCs checked")
    else:
        print("  VERIFICATION FAILED:\n    " + "\n    ".join(summary.problems[:20]))
    print()
    print(NEXT_STEPS)
    return 0 if summary.verified else 1


# -- start -----------------------------------------------------------------------------


def execution_input(args) -> dict:
    """The execution input from --input and the options (options win)."""
    data: dict = {}
    if args.input:
        text = args.input
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"--input: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InputError("--input: must be a JSON object")
    if args.source:
        bucket, prefix = parse_s3_url(args.source, want_key=False, option="--source")
        data["source_bucket"] = bucket
        if prefix:
            data["source_prefix"] = prefix
    if args.dest:
        data["dest_bucket"], data["dest_key"] = parse_s3_url(args.dest, want_key=True, option="--dest")
    for option in (
        "include",
        "exclude",
        "compression",
        "level",
        "part_size",
        "chunk_size",
        "step_bytes",
        "prefetch_bytes",
        "concurrency",
        "workers",
        "shard_bytes",
        "loops_per_execution",
        "overwrite",
        "strict",
    ):
        value = getattr(args, option)
        if value is not None:
            data[option] = value
    missing = [f for f in ("source_bucket", "dest_bucket", "dest_key") if f not in data]
    if missing:
        raise InputError(f"missing {', '.join(missing)}: give --source and --dest (or --input)")
    return data


def cmd_start(args, s3: S3Client | None = None) -> int:
    from .executions import start_execution

    try:
        data = execution_input(args)
    except InputError as exc:
        print(f"bucketzip start: {exc}", file=sys.stderr)
        return 2
    name = args.name or f"bucketzip-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    with _aws_errors("start"):
        sfn = _client("stepfunctions", args)
        execution_arn = start_execution(sfn, args.state_machine, data, name)
        print(execution_arn, flush=True)
        if not args.watch:
            return 0
        return _watch(sfn, execution_arn, table=None, interval=args.interval, args=args)
    return 1


# -- watch -----------------------------------------------------------------------------


def cmd_watch(args, s3: S3Client | None = None) -> int:
    with _aws_errors("watch"):
        return _watch(
            _client("stepfunctions", args), args.execution_arn, table=args.table, interval=args.interval, args=args
        )
    return 1


def _client(service: str, args=None) -> Any:
    """A client honouring the main CLI's --endpoint-url (else the standard configuration)."""
    import boto3

    endpoint_url = getattr(args, "endpoint_url", None) or None
    # one helper for several services: the stubs type boto3.client per literal service name
    return boto3.client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]


class _aws_errors:
    """Print AWS configuration and API errors as one line instead of a traceback."""

    def __init__(self, command: str):
        self.command = command

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, AWS_ERRORS):
            print(f"bucketzip {self.command}: {exc}", file=sys.stderr)
            return True
        return False


def _watch(sfn: SFNClient, execution_arn: str, *, table: str | None, interval: float, args=None) -> int:
    import os

    from ..store_dynamodb import DynamoStateStore
    from .executions import follow, store_progress, store_segments, table_of_execution

    table = table or os.environ.get("BUCKETZIP_TABLE")
    if not table:
        try:
            table = table_of_execution(sfn, _client("lambda", args), execution_arn)
        except Exception as exc:  # no permission to look: status only
            print(f"(no progress: state table unknown, {type(exc).__name__}; use --table)", file=sys.stderr)
    store = DynamoStateStore(table, client=_client("dynamodb", args)) if table else None
    progress_of = store_progress(store) if store else None
    segments_of = store_segments(store) if store else None
    line = WatchLine(sys.stderr)
    outcome = follow(
        sfn, execution_arn, on_update=line, progress_of=progress_of, segments_of=segments_of, poll_seconds=interval
    )
    line.close()
    if outcome.succeeded:
        out = outcome.output or {}
        print(
            f"SUCCEEDED s3://{out.get('bucket')}/{out.get('key')}: {format_size(out.get('size') or 0)}, "
            f"{out.get('entries')} entries, {out.get('parts')} parts, {out.get('skipped')} skipped, "
            f"{out.get('duration_seconds')} s ({len(outcome.executions)} execution(s))"
        )
        print(json.dumps(out, indent=2))
    else:
        print(f"{outcome.status} {outcome.execution_arn}")
        print(f"  error: {outcome.error}\n  cause: {_cause(outcome.cause)}")
    return outcome.exit_code


class WatchLine:
    """Progress from the run state: redrawn in place on a terminal, one line per change
    otherwise. A parallel run in its segments phase adds a line per segment."""

    SPINNER = "|/-\\"

    def __init__(self, stream):
        self.stream, self.tty = stream, stream.isatty()
        self.ticks, self.drawn = 0, 0  # lines drawn by the last redraw (terminal)
        self.last: dict[str, str] = {}  # the last text of each line (not a terminal)

    def __call__(self, update) -> None:
        progress = update.progress
        execution = update.execution_arn.rsplit(":", 1)[-1]
        if progress is None:
            text = f"{execution}: {update.status}"
        else:
            text = f"{execution}: {progress.phase} step {progress.steps}: {describe(progress)}"
        segments = list(update.segments)
        if segments:
            complete = sum(1 for s in segments if s.phase == "complete")
            text += f"; segments {complete}/{len(segments)} complete"
        lines = [("run", text)] + [
            (s.run_id, f"  segment {s.run_id}: {s.phase} step {s.steps}: {describe(s)}") for s in segments
        ]
        if self.tty:
            self.ticks += 1
            up = f"\033[{self.drawn - 1}F" if self.drawn > 1 else ""
            body = "\n".join(f"{line}\033[K" for _, line in lines)
            # \033[J: clear what a longer previous block left below (segment lines that ended)
            self.stream.write(f"{up}\r{self.SPINNER[self.ticks % 4]} {body}\033[J")
            self.drawn = len(lines)
        else:
            for key, line in lines:
                if self.last.get(key) != line:
                    self.stream.write(line + "\n")
                    self.last[key] = line
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def describe(progress) -> str:
    return (
        f"{progress.objects:,} objects, {format_size(progress.bytes_in)} read, "
        f"{format_size(progress.bytes_out)} archived, {progress.parts} parts"
        + (f", {progress.skipped} skipped" if progress.skipped else "")
    )


def _cause(cause: str | None) -> str:
    """The errorMessage of a Lambda error cause, else the cause as is."""
    if cause is None:
        return ""
    try:
        return json.loads(cause)["errorMessage"]
    except (TypeError, ValueError, KeyError):
        return cause or ""


if __name__ == "__main__":  # pragma: no cover - `python -m bucketzip.cli.workflow demo`
    parser = argparse.ArgumentParser(prog="bucketzip")
    register(parser.add_subparsers(required=True))
    parsed = parser.parse_args()
    sys.exit(parsed.func(parsed, None))
