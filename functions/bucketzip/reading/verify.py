"""`verify`: read the archive once, front to back, and check everything.

- end records and zip64 records are consistent; nothing after the end record;
- the central directory parses, its count matches, no duplicate or unsafe names;
- every entry: its local header agrees with the central directory, its data
  decompresses to exactly the declared size with the declared CRC-32, its data
  descriptor (if any) agrees;
- layout: entries start at 0, follow each other with no gap and no overlap, and the
  central directory starts right after the last one, ends right at the end records;
- the manifest (when there is one) lists the same entries, in the same order, with the
  same name, CRC, sizes, offset and method;
- truncated entries (their source object changed or vanished while it was archived:
  the entry's file comment or the manifest says so) are problems, notes when accepted;
- optionally, the current source listing: objects missing, changed (ETag or size), new.

One sequential GET covers the entries; the central directory and end records come from
the tail reads `ls` makes. Hostile input produces problems in the report, not exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BucketzipError, CorruptArchive, CorruptManifest, UnsafePath, UnsupportedArchive
from ..s3errors import AWS_ERRORS, translate
from .archive import truncation
from .directory import ArchiveInfo, Entry, check_entry, iter_entries, read_end
from .entries import (
    SUPPORTED_METHODS,
    decode,
    descriptor_layouts,
    descriptor_length,
    local_mismatches,
    parse_descriptor,
    read_local_header,
)
from .extract import safe_parts
from .manifest import Manifest, ManifestEntry, load_manifest
from .rangereader import RangeReader, S3RangeReader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Progress = Callable[[int, int], None]
METHODS = {"store": 0, "deflate": 8}


@dataclass
class Problem:
    kind: str  # structure | entry | manifest | truncated
    message: str
    entry: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "entry": self.entry, "message": self.message}


@dataclass
class SourceDrift:
    source: str
    missing: list[str] = field(default_factory=list)  # archived, gone from the source
    changed: list[str] = field(default_factory=list)  # archived, different now
    new: list[str] = field(default_factory=list)  # in the source, not archived
    skipped: list[str] = field(default_factory=list)  # in the source, skipped on purpose

    @property
    def clean(self) -> bool:
        return not (self.missing or self.changed or self.new)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "missing": self.missing,
            "changed": self.changed,
            "new": self.new,
            "skipped": self.skipped,
        }


@dataclass
class VerifyReport:
    archive: str
    size: int = 0
    entries: int = 0
    checked: int = 0  # entries whose data was decoded and checked
    data_bytes: int = 0  # uncompressed bytes checked
    manifest: str | None = None  # where the manifest compared was
    problems: list[Problem] = field(default_factory=list)
    dropped: int = 0  # problems beyond max_problems (counted, not kept)
    notes: list[str] = field(default_factory=list)
    drift: SourceDrift | None = None
    requests: int = 0
    bytes_read: int = 0
    max_problems: int = 1000

    @property
    def ok(self) -> bool:
        return not self.problems and not self.dropped and (self.drift is None or self.drift.clean)

    def add(self, kind: str, message: str, entry: str | None = None) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(kind, message, entry))
        else:
            self.dropped += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "archive": self.archive,
            "ok": self.ok,
            "size": self.size,
            "entries": self.entries,
            "checked": self.checked,
            "data_bytes": self.data_bytes,
            "manifest": self.manifest,
            "problems": [p.as_dict() for p in self.problems],
            "more_problems": self.dropped,
            "notes": self.notes,
            "source": self.drift.as_dict() if self.drift else None,
            "requests": self.requests,
            "bytes_read": self.bytes_read,
        }


# ----------------------------------------------------------------------------------
def verify(
    reader: RangeReader,
    *,
    manifest: Manifest | None = None,
    progress: Progress | None = None,
    max_problems: int = 1000,
    accept_truncated: bool = False,
) -> tuple[VerifyReport, list[Entry]]:
    """Check the archive behind `reader` (and compare with `manifest` when given).

    Returns the report and the entries parsed (empty when the directory is unreadable)."""
    report = VerifyReport(archive=reader.name, size=reader.size, max_problems=max_problems)
    entries: list[Entry] = []
    try:
        info = read_end(reader)
        report.notes.extend(info.notes)
        entries = list(iter_entries(reader, info, strict=False))
    except (CorruptArchive, UnsupportedArchive) as exc:
        report.add("structure", str(exc))
        info = None
    except BucketzipError:
        raise
    if info is not None:
        report.entries = len(entries)
        set_totals = getattr(progress, "set_totals", None)
        if set_totals is not None:
            set_totals(sum(e.size for e in entries), len(entries))
        _check_end_records(report, info)
        _check_names(report, entries)
        _check_entries(report, reader, info, entries, progress)
        if manifest is not None:
            compare_manifest(report, info, entries, manifest)
        _check_truncated(report, entries, manifest, accept_truncated)
    stats = reader.stats()
    report.requests, report.bytes_read = stats.requests, stats.bytes_read
    return report, entries


def _check_end_records(report: VerifyReport, info: ArchiveInfo) -> None:
    if info.trailing:
        report.add("structure", f"{info.trailing} unexpected bytes after the end of central directory record")
    gap = info.records_start - info.cd_end
    if gap > 0:
        report.add("structure", f"{gap} unexpected bytes between the central directory and the end records")
    if info.comment:
        report.notes.append(f"archive comment: {info.comment[:200].decode('utf-8', 'replace')!r}")
    report.notes[:] = [n for n in report.notes if "unexpected bytes between" not in n]


def _check_truncated(report: VerifyReport, entries: list[Entry], manifest: Manifest | None, accept: bool) -> None:
    by_name = manifest.by_name() if manifest else {}
    for entry in entries:
        why = truncation(entry, by_name.get(entry.name))
        if why is None:
            continue
        if accept:
            report.notes.append(f"{entry.name!r} is truncated (accepted): {why}")
        else:
            report.add("truncated", why, entry.name)


def _check_names(report: VerifyReport, entries: list[Entry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            report.add("structure", f"duplicate entry name {entry.name!r}", entry.name)
        seen.add(entry.name)
        try:
            safe_parts(entry.name)
        except UnsafePath as exc:
            report.add("entry", f"unsafe name: {exc}", entry.name)
        if entry.is_symlink:
            report.notes.append(f"{entry.name!r} is a symbolic link entry")


def _check_entries(
    report: VerifyReport, reader: RangeReader, info: ArchiveInfo, entries: list[Entry], progress: Progress | None
) -> None:
    ordered = sorted(entries, key=lambda e: (e.offset, e.index))
    end = info.entries_end
    pos = 0
    previous: Entry | None = None
    # for each entry, the first larger offset after it (where it must end)
    next_offsets = [end] * len(ordered)
    following = end
    for i in range(len(ordered) - 1, -1, -1):
        next_offsets[i] = following
        if i and ordered[i - 1].offset < ordered[i].offset:
            following = ordered[i].offset
    with reader.stream(0, end) as stream:
        for i, entry in enumerate(ordered):
            label = entry.name
            problem = check_entry(entry, info)
            if problem:
                report.add("structure", problem, label)
                continue
            if entry.offset < pos:
                other = f" {previous.name!r}" if previous is not None else " a previous entry"
                report.add(
                    "structure",
                    f"overlaps{other} (starts at offset {entry.offset}, inside bytes that end at {pos})",
                    label,
                )
                continue
            if entry.offset > pos:
                report.add(
                    "structure", f"{entry.offset - pos} unexpected bytes at offset {pos} (before this entry)", label
                )
                stream.seek(entry.offset)
            previous = entry
            next_start = min(next_offsets[i], end)
            try:
                pos = _check_one(report, stream, info, entry, next_start, progress)
            except CorruptArchive as exc:
                # a broken header: carry on at the next entry, whatever its distance
                report.add("entry", _strip(str(exc), reader.name), label)
                stream.seek(next_start)
                pos = next_start
            if progress:
                progress(0, 1)
    if entries and pos < end:
        report.add(
            "structure", f"{end - pos} unexpected bytes between the last entry and the central directory (offset {pos})"
        )
    if not entries and end > 0:
        report.add("structure", f"{end} bytes before the central directory of an empty archive")


def _strip(message: str, prefix: str) -> str:
    return message[len(prefix) + 2 :] if message.startswith(prefix + ": ") else message


def _check_one(
    report: VerifyReport, stream, info: ArchiveInfo, entry: Entry, next_start: int, progress: Progress | None
) -> int:
    """Check one entry at the stream's position; return the offset just past it."""
    label = entry.name
    local = read_local_header(stream, f"{stream.reader.name}: {label}")
    for mismatch in local_mismatches(local, entry):
        report.add("entry", mismatch, label)
    data_end = local.data_offset + entry.compressed_size
    if data_end > info.entries_end:
        raise CorruptArchive(f"data (to offset {data_end}) runs into the central directory")
    if entry.encrypted or entry.method not in SUPPORTED_METHODS:
        why = "encrypted" if entry.encrypted else f"compression method {entry.method_name}"
        report.add("entry", f"cannot check the data ({why} is not supported)", label)
        stream.skip(data_end - stream.pos)
    else:
        try:
            for chunk in decode(stream, entry, label):
                report.data_bytes += len(chunk)
                if progress:
                    progress(len(chunk), 0)
            report.checked += 1
        except CorruptArchive as exc:
            report.add("entry", _strip(str(exc), label), label)
            stream.skip(data_end - stream.pos)
    if stream.pos != data_end:  # pragma: no cover - decode reads exactly compressed_size
        raise CorruptArchive(f"read position {stream.pos} != end of data {data_end}")
    if local.flags & 0x08:
        _check_descriptor(report, stream, local, entry, data_end, next_start)
    return stream.pos


def _check_descriptor(report, stream, local, entry, data_end, next_start) -> None:
    label = entry.name
    room = next_start - data_end
    available = min(24, stream.end - data_end)
    tail = stream.read_exact(available, "data descriptor") if available > 0 else b""
    layouts = descriptor_layouts(local, entry)
    chosen = None
    for signature, width in layouts:  # the layout that ends exactly where the next entry starts
        if descriptor_length(signature, width) == room:
            parsed = parse_descriptor(tail[:room], signature, width)
            if parsed is not None:
                chosen = (signature, width, parsed)
                break
    if chosen is None:
        for signature, width in layouts:
            n = descriptor_length(signature, width)
            if signature and n <= len(tail):
                parsed = parse_descriptor(tail[:n], signature, width)
                if parsed is not None and parsed[0] == entry.crc:
                    chosen = (signature, width, parsed)
                    break
    if chosen is None:
        stream.unread(tail)
        report.add("entry", f"data descriptor missing or malformed at offset {data_end}", label)
        return
    signature, width, (crc, csize, size) = chosen
    stream.unread(tail[descriptor_length(signature, width) :])
    for what, value, expected in (
        ("CRC", crc, entry.crc),
        ("compressed size", csize, entry.compressed_size),
        ("size", size, entry.size),
    ):
        if value != expected:
            report.add(
                "entry", f"data descriptor {what} {value} differs from the central directory's {expected}", label
            )


# ----------------------------------------------------------------------------------
def compare_manifest(report: VerifyReport, info: ArchiveInfo, entries: list[Entry], manifest: Manifest) -> None:
    report.manifest = manifest.location
    declared = manifest.declared_entries
    if declared is not None and declared != len(manifest.entries):
        report.add("manifest", f"manifest header declares {declared} entries but lists {len(manifest.entries)}")
    if len(manifest.entries) != len(entries):
        report.add("manifest", f"manifest lists {len(manifest.entries)} entries, the archive holds {len(entries)}")
    by_name: dict[str, ManifestEntry] = {}
    for listed in manifest.entries:
        if listed.name in by_name:
            report.add("manifest", f"manifest lists {listed.name!r} twice (line {listed.line})", listed.name)
        by_name[listed.name] = listed
    in_archive = set()
    for entry in entries:
        in_archive.add(entry.name)
        m = by_name.get(entry.name)
        if m is None:
            report.add("manifest", "entry is not in the manifest", entry.name)
            continue
        for what, value, expected in (
            ("CRC", m.crc32, entry.crc),
            ("size", m.size, entry.size),
            ("compressed size", m.compressed_size, entry.compressed_size),
            ("offset", m.offset, entry.offset - info.base),
            ("method", METHODS.get(m.method, -1), entry.method),
        ):
            if value != expected:
                shown = m.method if what == "method" else value
                report.add(
                    "manifest",
                    f"manifest {what} {shown} differs from the archive's "
                    f"{entry.method_name if what == 'method' else expected}",
                    entry.name,
                )
        if entry.name.endswith("/") != m.key.endswith("/"):
            report.add("manifest", f"folder marker mismatch: key {m.key!r}", entry.name)
    for m in manifest.entries:
        if m.name not in in_archive:
            report.add("manifest", f"manifest entry (line {m.line}) is not in the archive", m.name)
    common_manifest = [m.name for m in manifest.entries if m.name in in_archive]
    common_archive = [e.name for e in entries if e.name in by_name]
    if common_manifest != common_archive:
        report.add("manifest", "the manifest lists the entries in a different order than the archive")
    archive = manifest.header.get("archive")
    if isinstance(archive, dict) and report.archive.startswith("s3://"):
        recorded = f"s3://{archive.get('bucket')}/{archive.get('key')}"
        if recorded != report.archive:
            report.notes.append(f"the manifest was written for {recorded}")


def compare_source(
    s3: S3Client, bucket: str, prefix: str, entries: list[Entry], manifest: Manifest | None
) -> SourceDrift:
    """The archive's objects against the source's current listing under `prefix`."""
    drift = SourceDrift(source=f"s3://{bucket}/{prefix}")
    expected: dict[str, tuple[str | None, int]] = {}
    if manifest is not None:
        for m in manifest.entries:
            if m.key.startswith(prefix):
                expected[m.key] = (m.etag, m.size)
        skipped = {s["key"] for s in manifest.skipped if isinstance(s.get("key"), str)}
    else:
        for entry in entries:
            if entry.name.startswith(prefix):
                expected[entry.name] = (None, entry.size)
        skipped = set()
    seen: set[str] = set()
    try:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", ()):
                key = obj["Key"]
                seen.add(key)
                if key not in expected:
                    (drift.skipped if key in skipped else drift.new).append(key)
                    continue
                etag, size = expected[key]
                if size != obj.get("Size") or (etag and obj.get("ETag") and etag != obj["ETag"]):
                    drift.changed.append(key)
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=bucket, role="source", action="list objects") from None
    drift.missing = [key for key in expected if key not in seen]
    return drift


def verify_s3(
    s3: S3Client,
    bucket: str,
    key: str,
    *,
    use_manifest: bool = True,
    against: tuple[str, str] | None = None,
    progress: Progress | None = None,
    max_problems: int = 1000,
    accept_truncated: bool = False,
) -> VerifyReport:
    """verify() for an S3 archive, with its manifest and optionally its source bucket."""
    reader = S3RangeReader.open(s3, bucket, key)
    manifest = None
    manifest_problem = None
    if use_manifest:
        try:
            manifest = load_manifest(s3, bucket, key)
        except CorruptManifest as exc:
            manifest_problem = str(exc)
    report, entries = verify(
        reader, manifest=manifest, progress=progress, max_problems=max_problems, accept_truncated=accept_truncated
    )
    if manifest_problem:
        report.add("manifest", manifest_problem)
    elif use_manifest and manifest is None:
        report.notes.append("no manifest beside the archive")
    if against is not None:
        report.drift = compare_source(s3, against[0], against[1], entries, manifest)
    return report
