"""`bucketzip` command line: a thin front door over the engine (and the reading and
workflow commands, registered from their own modules)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .. import engine
from ..clients import s3_client
from ..config import ArchiveRequest, key_selected
from ..deadline import Deadline
from ..driver import run_to_completion
from ..errors import BucketzipError, InputError, RetryableError, RunNotFound, StaleState
from ..s3errors import AWS_ERRORS
from ..sizes import format_size
from ..store_local import LocalStateStore
from . import read as cli_read
from . import workflow as cli_workflow
from .terminal import ProgressLine, parse_s3_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..store import StateStore


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit code 2 with one line, like argparse, but named
        self.exit(2, f"bucketzip: error: {message}\n")


ENDPOINT_HELP = "S3/DynamoDB endpoint, e.g. a local emulator (default: boto3 config, AWS_ENDPOINT_URL)"

# What the user typed for each ArchiveRequest field, so errors name the flag, not the field.
CLI_LABELS = {
    "source_bucket": "SRC",
    "source_prefix": "SRC",
    "dest_bucket": "DEST",
    "dest_key": "DEST",
    "include": "--include",
    "exclude": "--exclude",
    "compression": "--compression",
    "level": "--level",
    "part_size": "--part-size",
    "chunk_size": "--chunk-size",
    "concurrency": "--concurrency",
    "step_bytes": "--step-bytes",
    "page_size": "--page-size",
    "workers": "--workers",
    "shard_bytes": "--shard-bytes",
}


def state_dir() -> Path:
    return Path(os.environ.get("BUCKETZIP_STATE_DIR") or Path.home() / ".bucketzip" / "runs")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bucketzip", description="Archive an S3 bucket into one streamed ZIP in another bucket.")
    parser.add_argument("--endpoint-url", help=ENDPOINT_HELP)
    parser.add_argument("--version", action="version", version=f"bucketzip {__import__('bucketzip').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    archive = sub.add_parser("archive", help="archive s3://SRC[/PREFIX] into s3://DEST/KEY.zip")
    archive.add_argument("source", nargs="?", help="s3://BUCKET[/PREFIX] (not needed with --resume)")
    archive.add_argument("dest", nargs="?", help="s3://BUCKET/KEY.zip (not needed with --resume)")
    archive.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="only keys (relative to the prefix) matching GLOB; repeatable",
    )
    archive.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip keys matching GLOB")
    archive.add_argument("--compression", choices=("auto", "store", "deflate"), default="auto")
    archive.add_argument("--level", type=int, help="deflate level 0-9 (default 1, ISA-L fast)")
    archive.add_argument("--part-size", default="16MiB", help="first part size (e.g. 8MiB, 64MB, bytes)")
    archive.add_argument("--chunk-size", default="8MiB", help="bytes per ranged GET")
    archive.add_argument("--concurrency", type=int, default=8)
    archive.add_argument(
        "--workers",
        type=int,
        default=1,
        help="archive shards of the bucket on N threads at once, each its own segment, placed into the "
        "archive by server-side copy (default 1: one stream)",
    )
    archive.add_argument("--shard-bytes", help="target listed bytes per shard with --workers (default: derived)")
    archive.add_argument("--overwrite", action="store_true", help="replace an existing destination key")
    archive.add_argument("--strict", action="store_true", help="fail when an object changed or vanished")
    archive.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run")
    archive.add_argument(
        "--step-seconds",
        type=float,
        default=300.0,
        help="commit state at least this often (each commit is a resume point)",
    )
    archive.add_argument("--step-bytes", help="end each step after about this many archive bytes (tests)")
    archive.add_argument("--page-size", type=int, default=1000, help=argparse.SUPPRESS)
    archive.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    archive.add_argument("--quiet", action="store_true", help="no progress bar")
    archive.set_defaults(func=cmd_archive)

    abort = sub.add_parser("abort", help="abort an interrupted run: upload, staging and state")
    abort.add_argument("run_id")
    abort.set_defaults(func=cmd_abort)

    cli_read.register(sub)
    cli_workflow.register(sub)
    for command in sub.choices.values():
        # Also accepted after the subcommand (where users put it); SUPPRESS: when absent
        # there, the value given before the subcommand (or None) stands.
        command.add_argument("--endpoint-url", default=argparse.SUPPRESS, help=ENDPOINT_HELP)
    return parser


def request_from_args(args) -> ArchiveRequest:
    source_bucket, prefix = parse_s3_url(args.source, want_key=False, option="SRC")
    dest_bucket, dest_key = parse_s3_url(args.dest, want_key=True, option="DEST")
    return ArchiveRequest.create(
        labels=CLI_LABELS,
        source_bucket=source_bucket,
        source_prefix=prefix,
        dest_bucket=dest_bucket,
        dest_key=dest_key,
        include=args.include,
        exclude=args.exclude,
        compression=args.compression,
        level=args.level,
        part_size=args.part_size,
        chunk_size=args.chunk_size,
        concurrency=args.concurrency,
        overwrite=args.overwrite,
        strict=args.strict,
        step_bytes=args.step_bytes,
        page_size=args.page_size,
        workers=args.workers,
        shard_bytes=args.shard_bytes,
    )


def _count_source(s3: S3Client, request: ArchiveRequest, progress: ProgressLine) -> None:
    """Totals for the ETA, listed on a side thread (one request per 1000 keys)."""
    total_bytes = total_objects = 0
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=request.source_bucket, Prefix=request.source_prefix)
        for page in pages:
            for item in page.get("Contents", []):
                if key_selected(item["Key"], request):
                    total_bytes += item["Size"]
                    total_objects += 1
        progress.set_totals(total_bytes, total_objects)
    except Exception:  # noqa: BLE001 - the ETA is a nicety; the run itself reports errors
        pass


# Exit status of a run suspended by transient faults (sysexits' EX_TEMPFAIL): try again
# later with `bucketzip archive --resume RUN_ID`.
EXIT_SUSPENDED = 75
# Options that shape the archive's bytes: a resume must not change them.
ARCHIVE_FIELDS = (
    "source_bucket",
    "source_prefix",
    "dest_bucket",
    "dest_key",
    "include",
    "exclude",
    "compression",
    "level",
    "part_size",
    "chunk_size",
    "overwrite",
    "strict",
    "page_size",
    "workers",
    "shard_bytes",
)


def _resumed_request(args, stored: ArchiveRequest) -> None:
    """`--resume RUN_ID` continues the run as it was started: SRC, DEST and any option
    that would change the archive, given and different from the run's, are bad usage."""
    source = args.source or f"s3://{stored.source_bucket}/{stored.source_prefix}"
    dest = args.dest or f"s3://{stored.dest_bucket}/{stored.dest_key}"
    given = request_from_args(argparse.Namespace(**{**vars(args), "source": source, "dest": dest}))
    defaults = request_from_args(build_parser().parse_args(["archive", source, dest]))
    for name in ARCHIVE_FIELDS:
        value, default, theirs = getattr(given, name), getattr(defaults, name), getattr(stored, name)
        explicit = name.startswith(("source", "dest")) or value != default
        if explicit and value != theirs:
            label = CLI_LABELS.get(name, name)
            raise InputError(
                f"--resume {args.resume}: {label} is {value!r} here but {theirs!r} in the run; "
                "a resumed run keeps what it was started with (leave it out)"
            )


def cmd_archive(args, s3: S3Client) -> int:
    store = LocalStateStore(state_dir())
    if args.step_seconds <= 0:
        raise InputError(f"--step-seconds: {args.step_seconds:g} is not a positive number of seconds")
    if args.resume:
        run_id = args.resume
        try:
            stored = store.load(run_id).request
        except RunNotFound:
            raise RunNotFound(f"no run {run_id} (finished, aborted or never started)") from None
        _resumed_request(args, stored)
        request = stored
    else:
        if not args.source or not args.dest:
            raise InputError("archive needs SRC and DEST (or --resume RUN_ID)")
        request = request_from_args(args)
        run_id = None
    show = not args.quiet and not args.json and sys.stderr.isatty()
    progress = ProgressLine("archiving", enabled=show, unit="objects")
    if show:
        threading.Thread(target=_count_source, args=(s3, request, progress), daemon=True).start()
    started: list[str] = [run_id] if run_id else []  # the run id, once known (to abort or resume)

    # One process per run: a second one resuming it stops here, at once, touching nothing.
    holds = [store.hold(args.resume)] if args.resume else []

    def on_started(state) -> None:
        if not started:
            holds.append(store.hold(state.run_id))
            print(f"bucketzip: run {state.run_id} started", file=sys.stderr)
            started.append(state.run_id)

    try:
        completed = run_to_completion(
            s3,
            store,
            None if args.resume else request,
            run_id=run_id,
            step_deadline=lambda: Deadline(args.step_seconds),
            observer=progress,
            on_started=on_started,
        )
    except KeyboardInterrupt:
        progress.close()
        if not started:
            return 130
        print(
            f"bucketzip: interrupted; the run is saved. Resume: bucketzip archive --resume {started[-1]}"
            f"   or discard it: bucketzip abort {started[-1]}",
            file=sys.stderr,
        )
        return 130
    except StaleState as exc:  # lost a fencing race: the run is someone else's now; touch nothing
        progress.close()
        if not started:
            raise
        print(f"bucketzip: error: run {started[-1]} is being resumed by another process ({exc})", file=sys.stderr)
        return 1
    except BucketzipError as exc:
        progress.close()
        if not started or isinstance(exc, RetryableError):
            if started:
                return _suspend(store, started[-1], exc)
            raise
        engine.abort_run(s3, store, started[-1])  # a permanent error: the run cannot succeed
        raise
    except Exception as exc:  # noqa: BLE001 - untranslated faults (network, bugs): keep the run
        progress.close()
        if not started:
            raise
        return _suspend(store, started[-1], exc)
    finally:
        for hold in holds:
            hold.release()
    result, warnings = completed.result, completed.warnings
    progress.close()
    nothing = result.entries == 0 and result.skipped == 0
    if nothing:
        warnings.append(f"{_selection(request)} matched no object: the archive is empty")
    for warning in warnings:
        print(f"bucketzip: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({**result.to_json(), "warnings": warnings}, indent=2))
    elif not args.quiet:
        print(
            f"s3://{result.bucket}/{result.key}: {result.entries} entries"
            + (" (nothing matched)" if nothing else "")
            + f", {format_size(result.size)}, "
            f"{result.parts} parts, {result.skipped} skipped, {result.steps} steps, "
            f"{result.duration_seconds:.1f} s; manifest s3://{result.bucket}/{result.manifest_key}"
        )
    return 0


def _selection(request: ArchiveRequest) -> str:
    """The source as the user gave it, with the filters that narrowed it."""
    where = f"s3://{request.source_bucket}/{request.source_prefix}"
    filters = [f"--include {p}" for p in request.include] + [f"--exclude {p}" for p in request.exclude]
    return where + (f" (with {' '.join(filters)})" if filters else "")


def _suspend(store: StateStore, run_id: str, exc: BaseException) -> int:
    """Transient faults outlasted the retries: keep state, upload and staging, say how to go on."""
    engine.suspend_run(store, run_id, f"{type(exc).__name__}: {exc}")
    print(
        f"bucketzip: error: {exc}\n"
        f"bucketzip: run {run_id} is suspended (state, upload and staging kept). "
        f"Resume: bucketzip archive --resume {run_id}   or discard it: bucketzip abort {run_id}",
        file=sys.stderr,
    )
    return EXIT_SUSPENDED


def cmd_abort(args, s3: S3Client) -> int:
    store = LocalStateStore(state_dir())
    if not store.exists(args.run_id):
        raise RunNotFound(f"no run {args.run_id}")
    hold = store.hold(args.run_id)
    try:
        engine.abort_run(s3, store, args.run_id)
    finally:
        hold.release()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)  # usage and the list of commands
        return 2
    args = parser.parse_args(argv)
    try:
        # Each worker thread runs its own fetch and upload pools on the one client.
        connections = (getattr(args, "concurrency", 8) or 8) * max(1, getattr(args, "workers", 1) or 1)
        s3 = s3_client(args.endpoint_url, connections)
        code = args.func(args, s3)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # `bucketzip ls ... | head`: the reader has gone. Quietly, like any Unix tool; the
        # exit status is SIGPIPE's, and stdout goes to devnull so the exit flush is quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + int(signal.SIGPIPE)
    except InputError as exc:
        print(f"bucketzip: error: {exc}", file=sys.stderr)
        return 2
    except BucketzipError as exc:
        print(f"bucketzip: error: {exc}", file=sys.stderr)
        return 1
    except AWS_ERRORS as exc:  # what the engine did not translate: still one line
        print(f"bucketzip: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
