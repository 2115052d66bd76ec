"""The reading commands of the CLI: `ls`, `extract`, `restore`, `verify`.

The main CLI calls `register(subparsers)`; each command's `func(args, s3) -> int`
returns 0 (ok), 1 (a problem was found / the operation failed) or 2 (bad usage).
Library code returns results; all printing happens here. A progress line goes to
stderr only when stderr is a terminal and --quiet was not given.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import CorruptManifest, InputError
from ..reading.archive import Archive
from ..reading.extract import extract
from ..reading.ls import format_time, list_archive
from ..reading.restore import DEFAULT_PART_SIZE, plan_restore, restore
from ..reading.verify import verify_s3
from ..sizes import format_size, parse_size
from .terminal import ProgressLine, parse_s3_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Names come from archives: never let one move the cursor or recolour the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _say(text: str, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(printable(text) + "\n")


def _err(text: str) -> None:
    _say(text, sys.stderr)


def _quiet(args) -> bool:
    return bool(getattr(args, "read_quiet", False) or getattr(args, "quiet", False))


def _progress(args, label: str, total_bytes: int, total_entries: int, unit: str = "entries") -> ProgressLine:
    enabled = not _quiet(args) and sys.stderr.isatty()
    return ProgressLine(label, total_bytes, total_entries, enabled=enabled, unit=unit)


def _usage(message: str) -> int:
    print(f"bucketzip: error: {message}", file=sys.stderr)
    return 2


def _open(args, s3: S3Client) -> Archive:
    bucket, key = parse_s3_url(args.archive, want_key=True)
    return Archive.open_s3(s3, bucket, key)


# ----------------------------------------------------------------------------------
def cmd_ls(args, s3: S3Client) -> int:
    try:
        bucket, key = parse_s3_url(args.archive, want_key=True)
    except InputError as exc:
        return _usage(str(exc))
    archive = Archive.open_s3(s3, bucket, key)
    use_manifest = not args.no_manifest
    if use_manifest:
        try:
            archive.manifest()
        except CorruptManifest as exc:
            _err(f"bucketzip: warning: {exc}; listing without source keys")
            archive.set_manifest(None)
    listed = list_archive(archive, args.patterns, use_manifest=use_manifest)
    out = sys.stdout
    if args.json:
        for item in listed:
            out.write(json.dumps(item.as_dict(), ensure_ascii=True) + "\n")
        return 0
    with_keys = use_manifest and archive.manifest() is not None
    header = f"{'Size':>12} {'Compressed':>12} {'Method':<8} {'CRC-32':<8} {'Modified':<20} Name"
    out.write(header + ("  <- source key" if with_keys else "") + "\n")
    count = total = packed = truncated = 0
    for item in listed:
        e = item.entry
        count += 1
        total += e.size
        packed += e.compressed_size
        line = (
            f"{e.size:>12} {e.compressed_size:>12} {e.method_name:<8} {e.crc:08x} "
            f"{format_time(e.mtime) or '-':<20} {e.name}"
        )
        if with_keys:
            line += f"  <- {item.key if item.key is not None else '(not in manifest)'}"
        if item.truncated is not None:
            truncated += 1
            line += "  [TRUNCATED]"
        _say(line)
    ratio = f", {100 * (1 - packed / total):.0f}% saved" if total else ""
    marked = f"; {truncated} TRUNCATED (source changed while archived)" if truncated else ""
    out.write(f"{count} entries, {total} bytes ({format_size(total)}), {packed} compressed{ratio}{marked}\n")
    return 0


def cmd_extract(args, s3: S3Client) -> int:
    try:
        parse_s3_url(args.archive, want_key=True)
    except InputError as exc:
        return _usage(str(exc))
    if args.concurrency < 1:
        return _usage("--workers must be at least 1")
    archive = _open(args, s3)
    progress = _progress(args, "extract", 0, 0)  # totals set once the selection is known
    try:
        result = extract(
            archive,
            args.to,
            args.patterns,
            overwrite=args.overwrite,
            workers=args.concurrency,
            progress=progress,
            accept_truncated=args.accept_truncated,
        )
    finally:
        progress.close()
    for failure in result.failures:
        _err(f"bucketzip: {failure.message}")
    for warning in result.warnings:
        _err(f"bucketzip: warning: {warning}")
    if not _quiet(args):
        for note in result.notes:
            _err(f"bucketzip: note: {note}")
        print(
            f"extracted {result.files} files and {result.directories} directories "
            f"({result.bytes} bytes) to {args.to}" + (f"; {len(result.failures)} failed" if result.failures else "")
        )
    if args.patterns and result.selected == 0:
        print("bucketzip: no entry matches the given patterns", file=sys.stderr)
        return 1
    return 0 if result.ok else 1


def cmd_restore(args, s3: S3Client) -> int:
    try:
        parse_s3_url(args.archive, want_key=True)
        dest_bucket, dest_prefix = parse_s3_url(args.dest, want_key=False, option="DEST")
        part_size = parse_size(args.part_size, "--part-size")
    except InputError as exc:
        return _usage(str(exc))
    if args.concurrency < 1:
        return _usage("--workers must be at least 1")
    archive = _open(args, s3)
    items = plan_restore(archive, dest_prefix, args.patterns)
    if args.patterns and not items:
        print("bucketzip: no entry matches the given patterns", file=sys.stderr)
        return 1
    if args.dry_run:  # what the run would do, and its exit code
        left_out = {i for i, item in enumerate(items) if item.truncated is not None and not args.accept_truncated}
        for i, item in enumerate(items):
            where = f"s3://{dest_bucket}/{item.key} ({item.size} bytes)"
            if i in left_out:
                _say(f"would leave out {where} [TRUNCATED] (--accept-truncated writes it)")
            else:
                _say(f"would write {where}" + ("" if item.truncated is None else " [TRUNCATED]"))
        written = [item for i, item in enumerate(items) if i not in left_out]
        total = sum(item.size for item in written)
        print(
            f"{len(written)} objects, {total} bytes ({format_size(total)}) would be written"
            + (f", {len(left_out)} truncated left out" if left_out else "")
            + "; nothing written"
        )
        return 1 if left_out else 0
    total = sum(item.size for item in items)
    if archive.manifest() is None and not _quiet(args):
        print(
            "bucketzip: note: no manifest beside the archive: entry names are used as keys, "
            "headers and metadata cannot be restored",
            file=sys.stderr,
        )
    progress = _progress(args, "restore", total, len(items), unit="objects")
    try:
        result = restore(
            s3,
            archive,
            items,
            dest_bucket,
            overwrite=args.overwrite,
            workers=args.concurrency,
            part_size=part_size,
            keep_storage_class=args.keep_storage_class,
            progress=progress,
            accept_truncated=args.accept_truncated,
        )
    finally:
        progress.close()
    for failure in result.failures:
        _err(f"bucketzip: {failure.message}")
    for warning in result.warnings:
        _err(f"bucketzip: warning: {warning}")
    print(
        f"restored {result.objects} of {result.planned} objects ({result.bytes} bytes, "
        f"{format_size(result.bytes)}) to s3://{dest_bucket}/{dest_prefix}"
        + (f"; {len(result.failures)} failed" if result.failures else "")
    )
    return 0 if result.ok else 1


def cmd_verify(args, s3: S3Client) -> int:
    try:
        bucket, key = parse_s3_url(args.archive, want_key=True)
        against = parse_s3_url(args.against, want_key=False, option="--against") if args.against else None
    except InputError as exc:
        return _usage(str(exc))
    progress = _progress(args, "verify", 0, 0)  # totals set once the directory is read
    try:
        report = verify_s3(
            s3,
            bucket,
            key,
            use_manifest=not args.no_manifest,
            against=against,
            progress=progress,
            accept_truncated=args.accept_truncated,
        )
    finally:
        progress.close()
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=True, indent=2))
        return 0 if report.ok else 1
    _print_report(report, quiet=_quiet(args))
    return 0 if report.ok else 1


def _print_report(report, *, quiet: bool) -> None:
    out = sys.stdout
    checks = "structure, CRC-32 and sizes" + (", manifest" if report.manifest else "")
    if report.drift is not None:
        checks += ", source listing"
    for problem in report.problems:
        where = f"{problem.entry}: " if problem.entry else ""
        _say(f"PROBLEM [{problem.kind}] {where}{problem.message}")
    if report.dropped:
        out.write(f"PROBLEM ... and {report.dropped} more problems\n")
    drift = report.drift
    if drift is not None:
        for label, keys in (
            ("missing from source", drift.missing),
            ("changed in source", drift.changed),
            ("new in source", drift.new),
        ):
            for k in keys:
                _say(f"DIFF [{label}] {k}")
        if drift.skipped and not quiet:
            out.write(f"note: {len(drift.skipped)} source objects were skipped on purpose when archiving\n")
    if not quiet:
        for note in report.notes:
            _say(f"note: {note}")
    if report.ok:
        out.write(f"OK {report.archive}: {report.entries} entries, {report.data_bytes} bytes checked ({checks})\n")
    else:
        n = len(report.problems) + report.dropped
        parts = [f"{n} problem{'s' if n != 1 else ''}"]
        if drift is not None and not drift.clean:
            parts.append(
                f"{len(drift.missing)} missing, {len(drift.changed)} changed, {len(drift.new)} new in {drift.source}"
            )
        out.write(f"FAILED {report.archive}: {'; '.join(parts)} ({report.entries} entries, {report.checked} checked)\n")


# ----------------------------------------------------------------------------------
def _add_common(parser: argparse.ArgumentParser, *, patterns: bool = True) -> None:
    parser.add_argument("archive", metavar="s3://BUCKET/KEY.zip", help="the archive")
    if patterns:
        parser.add_argument(
            "patterns",
            nargs="*",
            metavar="PATTERN",
            help="shell globs on entry names or source keys ('*' crosses '/'); "
            "a plain directory name selects its contents; default: everything",
        )


def _add_accept_truncated(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--accept-truncated",
        action="store_true",
        help=f"{verb} entries marked TRUNCATED (their source object changed while it was archived: "
        "they hold only its first bytes) and exit 0; default: leave them out, exit 1",
    )


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", dest="read_quiet", action="store_true", help="no progress line, no notes")


def register(subparsers: Any) -> None:
    """Add `ls`, `extract`, `restore` and `verify` to the main CLI's subparsers."""
    p = subparsers.add_parser(
        "ls",
        help="list an archive's entries (ranged reads of its directory only)",
        description="List the entries of an archive in S3 from its central directory, read with a few "
        "ranged GETs: name, size, compressed size, method, CRC-32, modified time; the "
        "original source key too when the archive has a manifest.",
    )
    _add_common(p)
    p.add_argument("--json", action="store_true", help="one JSON object per entry per line (JSON Lines)")
    p.add_argument("--no-manifest", action="store_true", help="do not read the manifest")
    p.set_defaults(func=cmd_ls)

    p = subparsers.add_parser(
        "extract",
        help="extract entries to a local directory",
        description="Extract entries with one ranged GET each, decompressed as they stream, CRC-checked. "
        "Refuses names that would escape DIR; never overwrites unless --overwrite.",
    )
    _add_common(p)
    p.add_argument("--to", required=True, metavar="DIR", help="destination directory (created if missing)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p.add_argument(
        "-j",
        "--workers",
        "--concurrency",
        dest="concurrency",
        type=int,
        default=8,
        help="entries fetched at once (default 8)",
    )
    _add_accept_truncated(p, "also extract")
    _add_quiet(p)
    p.set_defaults(func=cmd_extract)

    p = subparsers.add_parser(
        "restore",
        help="write entries back to S3 under their original keys",
        description="Write entries back as S3 objects under their original keys (from the manifest; "
        "entry names otherwise) below s3://DEST[/PREFIX], with their Content-Type, other "
        "standard headers and user metadata. Each entry streams from a ranged GET into a "
        "(multipart when large) upload.",
    )
    p.add_argument("archive", metavar="s3://BUCKET/KEY.zip", help="the archive")
    p.add_argument("dest", metavar="s3://DEST[/PREFIX]", help="destination bucket and optional key prefix")
    p.add_argument("patterns", nargs="*", metavar="PATTERN", help="as for extract")
    p.add_argument("--dry-run", action="store_true", help="list what would be written, write nothing")
    p.add_argument("--overwrite", action="store_true", help="replace existing objects")
    p.add_argument(
        "-j",
        "--workers",
        "--concurrency",
        dest="concurrency",
        type=int,
        default=8,
        help="objects written at once (default 8)",
    )
    p.add_argument(
        "--part-size",
        default=f"{DEFAULT_PART_SIZE // (1024 * 1024)}MiB",
        help="multipart part size; larger objects use multipart uploads (default 16MiB)",
    )
    p.add_argument(
        "--keep-storage-class",
        action="store_true",
        help="restore each object's original storage class (default: the bucket's default)",
    )
    _add_accept_truncated(p, "also restore")
    _add_quiet(p)
    p.set_defaults(func=cmd_restore)

    p = subparsers.add_parser(
        "verify",
        help="check an archive completely (CRCs, sizes, structure, manifest)",
        description="Stream the archive once and check every entry's CRC-32 and size, the structure "
        "(local headers agree with the central directory, no overlaps, no gaps) and the "
        "manifest; with --against, compare with the source's current listing. Exit 0 only "
        "when everything is sound.",
    )
    p.add_argument("archive", metavar="s3://BUCKET/KEY.zip", help="the archive")
    p.add_argument(
        "--against",
        metavar="s3://SRC[/PREFIX]",
        help="also compare with the source's current objects (missing / changed / new)",
    )
    p.add_argument("--json", action="store_true", help="the report as one JSON document")
    p.add_argument("--no-manifest", action="store_true", help="do not compare with the manifest")
    p.add_argument(
        "--accept-truncated",
        action="store_true",
        help="report entries marked TRUNCATED as notes, not problems (exit 0 if all else is sound)",
    )
    _add_quiet(p)
    p.set_defaults(func=cmd_verify)
