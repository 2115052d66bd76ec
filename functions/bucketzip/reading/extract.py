"""`extract`: entries to a local directory, one ranged GET per entry, concurrently.

Safety, whatever the archive says:
- names that are absolute ('/x', '\\x', 'C:x'), contain a '..' segment or NUL are
  refused (UnsafePath) before anything is written; backslashes count as separators;
- no link is ever created (a symlink entry is written as a regular file holding its
  target, as Python's zipfile does) and no existing link inside DIR is followed:
  every parent directory is checked with lstat, files are created O_NOFOLLOW|O_EXCL;
- data goes to a temporary file in the target directory and is moved into place only
  after its CRC and size checked out; without `overwrite` an existing path is never
  replaced (the move is a hard link, which fails if the name exists);
- entries that overlap (overlapping-entry zip bombs) make the whole extract fail;
- truncated entries (their source object changed while it was archived) are not
  written unless `accept_truncated`: a partial file under the object's name would pass
  for the object.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BucketzipError, CorruptManifest, DestinationExists, UnsafePath
from .archive import Archive, check_no_overlaps, select, truncation
from .directory import Entry
from .manifest import ManifestEntry

Progress = Callable[[int, int], None]  # (bytes done, entries done) increments
_DRIVE = re.compile(r"^[A-Za-z]:")
Planned = list[tuple[Entry, tuple[str, ...]]]  # entries with the path segments they go to


@dataclass
class Failure:
    name: str
    message: str


@dataclass
class ExtractResult:
    files: int = 0
    directories: int = 0
    bytes: int = 0
    selected: int = 0
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # shown even when quiet

    @property
    def ok(self) -> bool:
        return not self.failures


def safe_parts(name: str) -> tuple[str, ...]:
    """The relative path segments an entry name may be written to; UnsafePath otherwise."""
    if not name:
        raise UnsafePath("empty entry name")
    if "\x00" in name:
        raise UnsafePath(f"{name!r}: entry name contains NUL")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise UnsafePath(f"{name!r}: absolute path")
    parts = []
    for segment in re.split(r"[/\\]", name):
        if segment in ("", "."):
            continue
        if segment == "..":
            raise UnsafePath(f"{name!r}: path escapes the destination ('..')")
        parts.append(segment)
    if not parts:
        raise UnsafePath(f"{name!r}: entry name has no path")
    return tuple(parts)


def plan(entries: Sequence[Entry]) -> Planned:
    """(entry, path segments) for every entry; refuses the lot if any name is unsafe."""
    planned: Planned = []
    unsafe = []
    for entry in entries:
        try:
            planned.append((entry, safe_parts(entry.name)))
        except UnsafePath as exc:
            unsafe.append(str(exc))
    if unsafe:
        more = f" (and {len(unsafe) - 3} more)" if len(unsafe) > 3 else ""
        raise UnsafePath(f"refusing to extract: {'; '.join(unsafe[:3])}{more}")
    return planned


class _Target:
    def __init__(self, root: Path, overwrite: bool):
        self.root = root
        self.overwrite = overwrite
        self._lock = threading.Lock()

    def directory(self, parts: Sequence[str], label: str) -> Path:
        """Create (or accept) the directory root/parts..., refusing links and files on the way."""
        current = self.root
        for segment in parts:
            current = current / segment
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                try:
                    os.mkdir(current)
                    continue
                except FileExistsError:
                    st = os.lstat(current)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"{label}: {current} is a symbolic link; not following it")
            if not stat.S_ISDIR(st.st_mode):
                raise DestinationExists(f"{label}: {current} exists and is not a directory")
        return current

    def write(self, archive: Archive, entry: Entry, parts: Sequence[str], progress: Progress | None) -> int:
        label = entry.name
        parent = self.directory(parts[:-1], label)
        final = parent / parts[-1]
        if not self.overwrite and os.path.lexists(final):
            raise DestinationExists(f"{label}: {final} exists (use --overwrite)")
        tmp = parent / f".bztmp-{uuid.uuid4().hex[:16]}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        written = 0
        fd = os.open(tmp, flags, 0o666)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in archive.open_entry(entry):
                    out.write(chunk)
                    written += len(chunk)
                    if progress:
                        progress(len(chunk), 0)
            self._place(tmp, final, label)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _set_mtime(final, entry)
        return written

    def _place(self, tmp: Path, final: Path, label: str) -> None:
        if self.overwrite:
            if os.path.isdir(final) and not os.path.islink(final):
                raise DestinationExists(f"{label}: {final} is a directory")
            os.replace(tmp, final)
            return
        try:
            os.link(tmp, final, follow_symlinks=False)
        except FileExistsError:
            raise DestinationExists(f"{label}: {final} exists (use --overwrite)") from None
        except OSError:
            # no hard links on this file system: check, then rename (small race window)
            with self._lock:
                if os.path.lexists(final):
                    raise DestinationExists(f"{label}: {final} exists (use --overwrite)") from None
                os.rename(tmp, final)
            return
        os.unlink(tmp)


def _set_mtime(path: Path, entry: Entry) -> None:
    when = entry.mtime
    if when is None:
        return
    try:
        ts = when.timestamp() if when.tzinfo else time.mktime(when.timetuple())
        os.utime(path, (ts, ts), follow_symlinks=False)
    except (OverflowError, OSError, ValueError):
        pass


def extract(
    archive: Archive,
    dest: str | os.PathLike,
    patterns: Sequence[str] = (),
    *,
    overwrite: bool = False,
    workers: int = 8,
    progress: Progress | None = None,
    accept_truncated: bool = False,
) -> ExtractResult:
    """Extract the entries matching `patterns` (all when empty) under `dest`.

    Raises UnsafePath (nothing written) for unsafe names, CorruptArchive for a broken
    directory; per-entry problems (bad CRC, existing file, truncated entry not accepted,
    ...) are in result.failures."""
    entries = archive.entries()
    check_no_overlaps(entries, archive.info, archive.name)
    try:  # the manifest lets patterns match source keys, and knows truncated entries
        manifest = archive.manifest()
    except CorruptManifest:
        manifest = None
    by_name = manifest.by_name() if manifest else {}
    chosen = list(select(entries, patterns, by_name))
    planned = plan(chosen)
    result = ExtractResult(selected=len(planned))
    planned = _truncated_entries(planned, by_name, accept_truncated, result)
    set_totals = getattr(progress, "set_totals", None)  # a ProgressLine learns what is ahead
    if set_totals is not None:
        set_totals(sum(e.size for e, _ in planned), len(planned))
    target = _Target(_destination(dest), overwrite)
    files = _make_directories(target, _last_of_each_name(planned, result), result, progress)
    _write_files(archive, target, files, workers, result, progress)
    order = {e.name: e.index for e in chosen}
    result.failures.sort(key=lambda f: order.get(f.name, 0))
    return result


def _destination(dest: str | os.PathLike) -> Path:
    root = Path(dest)
    try:
        root.mkdir(parents=True, exist_ok=True)
        return root.resolve(strict=True)
    except OSError as exc:
        raise DestinationExists(f"cannot use {dest} as the destination directory: {exc.strerror or exc}") from None


def _last_of_each_name(planned: Planned, result: ExtractResult) -> Planned:
    """Of entries with the same path, the later is extracted; the earlier are reported."""
    last_for = {parts: i for i, (_entry, parts) in enumerate(planned)}
    jobs = []
    for i, (entry, parts) in enumerate(planned):
        if last_for[parts] != i:
            message = f"{entry.name}: duplicate entry name; a later entry of that name was extracted"
            result.failures.append(Failure(entry.name, message))
            continue
        jobs.append((entry, parts))
    return jobs


def _is_file(entry: Entry) -> bool:
    return not (entry.is_dir and not entry.is_symlink)


def _make_directories(target: _Target, jobs: Planned, result: ExtractResult, progress: Progress | None) -> Planned:
    """Directories first, in archive order, so that files find them and the outcome does
    not depend on thread timing; a path that is a file in the archive is never made a
    directory. Returns the files whose parent directories are ready."""
    file_paths = {parts for entry, parts in jobs if _is_file(entry)}
    if any(entry.is_symlink for entry, _ in jobs if _is_file(entry)):
        result.notes.append("symbolic links were extracted as regular files holding the link target")

    def clash(parts: tuple[str, ...], own: bool) -> str | None:
        for i in range(1, len(parts) + (0 if own else 1)):
            if parts[:i] in file_paths:
                return "/".join(parts[:i])
        return None

    ready = []
    for entry, parts in jobs:
        is_file = _is_file(entry)
        clashing = clash(parts, own=is_file)
        if clashing is not None:
            message = f"{entry.name}: {clashing!r} is a file in the archive, not a directory"
            result.failures.append(Failure(entry.name, message))
            continue
        try:
            target.directory(parts[:-1] if is_file else parts, entry.name)
        except (BucketzipError, OSError) as exc:
            result.failures.append(Failure(entry.name, _message(exc, entry.name)))
            continue
        if is_file:
            ready.append((entry, parts))
        else:
            result.directories += 1
            if progress:
                progress(0, 1)
    return ready


def _write_files(
    archive: Archive, target: _Target, files: Planned, workers: int, result: ExtractResult, progress: Progress | None
) -> None:
    def work(entry: Entry, parts: tuple[str, ...]) -> int:
        n = target.write(archive, entry, parts, progress)
        if progress:
            progress(0, 1)
        return n

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(work, e, p): e for e, p in files}
        for future in as_completed(futures):
            entry = futures[future]
            try:
                result.bytes += future.result()
                result.files += 1
            except (BucketzipError, OSError) as exc:
                result.failures.append(Failure(entry.name, _message(exc, entry.name)))


def _truncated_entries(
    planned: Planned, by_name: dict[str, ManifestEntry], accept: bool, result: ExtractResult
) -> Planned:
    """The planned entries minus truncated ones (reported), or all of them when accepted
    (with a warning each)."""
    kept = []
    for entry, parts in planned:
        why = truncation(entry, by_name.get(entry.name))
        if why is None:
            kept.append((entry, parts))
        elif accept:
            result.warnings.append(f"{entry.name}: extracted although truncated ({why})")
            kept.append((entry, parts))
        else:
            result.failures.append(
                Failure(entry.name, f"{entry.name}: not extracted: {why} (--accept-truncated extracts it anyway)")
            )
    return kept


def _message(exc: BaseException, name: str) -> str:
    """A one-line message that names the entry."""
    if isinstance(exc, OSError) and not isinstance(exc, BucketzipError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{name}: {exc.strerror or exc}{where}"
    return str(exc)
