"""The reader matrix: open one zip archive with every zip reader users have.

check_archive(path, expected) runs each reader (concurrently: most are subprocesses)
and asserts that what it extracts is exactly `expected` (name -> bytes) plus the
expected directory entries. check_listing(path, sizes, members) is its lean sibling for
archives too big or too many-membered to extract (gigabytes, 70,000 entries): each reader
lists the entries with their sizes, reads only the named members, and (unless test=False)
runs its own integrity test over all the data (CRC-checked, nothing written to disk).
Readers:

  PYTHON        zipfile: testzip() + read() of every member (CRC checked)
  UNZIP         Info-ZIP `unzip -t`, then `unzip -o -d DIR` and the tree on disk
  SEVENZIP      `7z t`, then `7z x -oDIR` and the tree on disk
  BSDTAR        libarchive `bsdtar -tvf`, then `bsdtar -xf -C DIR` and the tree on disk
  JAVA_ZIPFILE  java.util.zip.ZipFile (central directory), CRC and size verified
  JAVA_STREAM   java.util.zip.ZipInputStream (local headers only, streaming)

Reader quirks observed here (Java 17, unzip 6.00, p7zip 16.02/7-Zip 26.02, libarchive 3.6.2):
- Streaming layout (flag bit 3, CRC/sizes 0 in local headers, data descriptors):
  every reader accepts it for DEFLATED entries, but JAVA_STREAM rejects STORED
  entries with a data descriptor: "only DEFLATED entries can have EXT descriptor"
  (tested in tests/test_support_readers.py). READERS_FAILING_STORED_DESCRIPTORS
  names such readers so tests can pick `readers=` accordingly.
- JAVA_STREAM (JDK 17) reads a 24-byte zip64 data descriptor only when the entry
  really exceeds 4 GiB; a zip64 descriptor on a small entry fails with
  "invalid entry size (expected 0 but got N bytes)". Use zip64 descriptors only
  for entries whose sizes need them.
- unzip silently drops control characters (e.g. TAB) from names on extraction.
- bsdtar -t does not read entry data (no CRC check); extraction does.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PYTHON = "python-zipfile"
UNZIP = "unzip"
SEVENZIP = "7z"
BSDTAR = "bsdtar"
JAVA_ZIPFILE = "java-zipfile"
JAVA_STREAM = "java-zipinputstream"

ALL_READERS: tuple[str, ...] = (PYTHON, UNZIP, SEVENZIP, BSDTAR, JAVA_ZIPFILE, JAVA_STREAM)
# Readers that cannot read STORED entries written with a data descriptor (flag bit 3).
READERS_FAILING_STORED_DESCRIPTORS: frozenset[str] = frozenset({JAVA_STREAM})
# Readers that read local headers only (sequential, no central directory).
STREAMING_READERS: frozenset[str] = frozenset({JAVA_STREAM})

TIMEOUT = 300  # seconds, per subprocess
JAVA_SOURCE = Path(__file__).with_name("ZipCheck.java")
# UTF-8 locale so unzip/7z/bsdtar write non-ASCII names as UTF-8 bytes on disk.
_ENV = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

# A reader result: entry name -> sha256 hex of its content; directories end in '/'
# and map to DIR. Symlinks (never expected) map to "symlink:<target>".
DIR = "<dir>"
Listing = dict[str, str]


class ReaderError(Exception):
    """A reader tool failed (non-zero exit, exception, timeout)."""


def _run(argv: list[str], timeout: float, ok_codes: tuple[int, ...] = (0,), discard: bool = False) -> str:
    """stdout as text (or nothing read, with `discard`: for data streamed to /dev/null)."""
    stdout = subprocess.DEVNULL if discard else subprocess.PIPE
    try:
        proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, env=_ENV, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ReaderError(f"`{' '.join(argv)}` timed out after {timeout}s") from exc
    if proc.returncode not in ok_codes:
        raise ReaderError(
            f"`{' '.join(argv)}` exited {proc.returncode}\nstderr: {_tail(proc.stderr)}\n"
            f"stdout: {_tail(proc.stdout or b'')}"
        )
    return "" if discard else proc.stdout.decode("utf-8", "replace")


def _tail(data: bytes, limit: int = 3000) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _add(listing: Listing, name: str, digest: str) -> None:
    # A name seen twice is an error in itself (the archive must hold each entry once).
    if name in listing:
        raise ReaderError(f"duplicate entry {name!r}")
    listing[name] = digest


def _walk_tree(root: Path) -> Listing:
    """Files and directories under root, as relative '/'-separated names."""
    listing: Listing = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        for d in list(dirnames):
            p = Path(dirpath, d)
            if p.is_symlink():
                _add(listing, prefix + d, "symlink:" + os.readlink(p))
                dirnames.remove(d)
            else:
                _add(listing, prefix + d + "/", DIR)
        for f in filenames:
            p = Path(dirpath, f)
            digest = "symlink:" + os.readlink(p) if p.is_symlink() else _sha256_file(p)
            _add(listing, prefix + f, digest)
    return listing


def _extracted(extract: Callable[[Path], None]) -> Listing:
    with tempfile.TemporaryDirectory(prefix="bucketzip-reader-") as tmp:
        out = Path(tmp, "x")
        out.mkdir()
        extract(out)
        return _walk_tree(out)


# ---- readers ---------------------------------------------------------------


def _read_python(path: Path, timeout: float) -> Listing:
    listing: Listing = {}
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ReaderError(f"testzip: bad CRC or header in {bad!r}")
            for info in zf.infolist():
                if info.is_dir():
                    _add(listing, info.filename, DIR)
                    continue
                h = hashlib.sha256()
                with zf.open(info) as f:  # read() checks CRC at EOF
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                _add(listing, info.filename, h.hexdigest())
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as exc:
        raise ReaderError(f"zipfile: {type(exc).__name__}: {exc}") from exc
    return listing


def _read_unzip(path: Path, timeout: float) -> Listing:
    if zipfile.ZipFile(path).namelist() == []:
        # Info-ZIP exits 1 ("warning: zipfile is empty") on a valid archive with no entries.
        _run(["unzip", "-tq", str(path)], timeout, ok_codes=(0, 1))
        return {}
    _run(["unzip", "-tq", str(path)], timeout)
    return _extracted(lambda out: _run(["unzip", "-qq", "-o", str(path), "-d", str(out)], timeout))


def _read_7z(path: Path, timeout: float) -> Listing:
    _run(["7z", "t", "-bd", str(path)], timeout)
    return _extracted(lambda out: _run(["7z", "x", "-bd", "-y", f"-o{out}", str(path)], timeout))


def _read_bsdtar(path: Path, timeout: float) -> Listing:
    _run(["bsdtar", "-tvf", str(path)], timeout)
    return _extracted(lambda out: _run(["bsdtar", "-xf", str(path), "-C", str(out)], timeout))


_java_lock = threading.Lock()
_java_cmd: list[str] | None = None


def _java_command() -> list[str]:
    """`java ... ZipCheck`: compiled once per process with javac when available
    (saves ~1 s of source compilation per call), else single-file source launch."""
    global _java_cmd
    with _java_lock:
        if _java_cmd is None:
            fast = ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
            _java_cmd = fast + [str(JAVA_SOURCE)]
            if shutil.which("javac"):
                classes = tempfile.mkdtemp(prefix="bucketzip-zipcheck-")
                proc = subprocess.run(["javac", "-d", classes, str(JAVA_SOURCE)], capture_output=True, env=_ENV)
                atexit.register(shutil.rmtree, classes, ignore_errors=True)
                if proc.returncode == 0:
                    _java_cmd = fast + ["-cp", classes, "ZipCheck"]
        return _java_cmd


def _java_lines(mode: str, path: Path, timeout: float, members: Iterable[str] = ()) -> list[tuple[str, int, str]]:
    """(name, size, sha256 or "-") per entry; with `members`, only those are hashed."""
    out = _run(_java_command() + [mode, str(path), *members], timeout)
    lines = []
    for line in out.splitlines():
        b64, size, sha = line.split("\t")
        lines.append((base64.b64decode(b64).decode("utf-8"), int(size), sha))
    return lines


def _read_java(mode: str) -> Callable[[Path, float], Listing]:
    def read(path: Path, timeout: float) -> Listing:
        listing: Listing = {}
        for name, size, sha in _java_lines(mode, path, timeout):
            if name.endswith("/"):
                if size != 0:
                    raise ReaderError(f"directory entry {name!r} has {size} bytes of content")
                sha = DIR
            _add(listing, name, sha)
        return listing

    return read


_READERS: dict[str, Callable[[Path, float], Listing]] = {
    PYTHON: _read_python,
    UNZIP: _read_unzip,
    SEVENZIP: _read_7z,
    BSDTAR: _read_bsdtar,
    JAVA_ZIPFILE: _read_java("zipfile"),
    JAVA_STREAM: _read_java("stream"),
}
# Readers that report archive entries (so directories must match exactly); the
# others extract to disk, where every parent directory of an entry also appears.
_LISTING_READERS = {PYTHON, JAVA_ZIPFILE, JAVA_STREAM}


def read_with(reader: str, path: str | os.PathLike, timeout: float = TIMEOUT) -> Listing:
    """Run one reader; returns name -> sha256 hex (directories -> DIR). Raises ReaderError."""
    return _READERS[reader](Path(path), timeout)


# ---- the check -------------------------------------------------------------


def _expected_listing(expected: Mapping[str, bytes], directories: Iterable[str], with_parents: bool) -> Listing:
    listing: Listing = {}
    for name, data in expected.items():
        if name.endswith("/"):  # a directory given in `expected` itself
            assert data == b"", f"expected directory {name!r} with content"
            listing[name] = DIR
        else:
            listing[name] = hashlib.sha256(data).hexdigest()
    for name in directories:
        assert name.endswith("/"), f"directory name {name!r} must end with '/'"
        listing[name] = DIR
    if with_parents:  # extraction creates every parent directory on disk
        for name in list(listing):
            parts = name.rstrip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                listing["/".join(parts[:i]) + "/"] = DIR
    return listing


def _diff(reader: str, want: Listing, got: Listing, sizes: Mapping[str, int]) -> str | None:
    missing = sorted(want.keys() - got.keys())
    unexpected = sorted(got.keys() - want.keys())
    differing = sorted(n for n in want.keys() & got.keys() if want[n] != got[n])
    if not (missing or unexpected or differing):
        return None

    def first(names: list[str]) -> str:
        return repr(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")

    lines = [f"reader {reader}: extracted entries differ from expected"]
    if missing:
        lines.append(f"  missing: {first(missing)}")
    if unexpected:
        lines.append(f"  unexpected: {first(unexpected)}")
    if differing:
        detail = [
            f"{n!r} (expected {sizes.get(n, '?')} bytes sha256 {want[n][:12]}, got {got[n][:12]})"
            for n in differing[:5]
        ]
        lines.append(f"  content differs: {', '.join(detail)}")
    return "\n".join(lines)


def check_archive(
    path: str | os.PathLike,
    expected: Mapping[str, bytes],
    *,
    readers: Iterable[str] = ALL_READERS,
    directories: Iterable[str] = frozenset(),
    timeout: float = TIMEOUT,
) -> None:
    """Assert that every reader in `readers` reads exactly `expected` (file name ->
    content) plus the directory entries `directories` (names ending in '/') from
    the zip at `path`. Raises AssertionError naming each failing reader."""
    readers = list(readers)
    unknown = [r for r in readers if r not in _READERS]
    assert not unknown, f"unknown readers {unknown}; known: {list(_READERS)}"
    directories = set(directories)
    sizes = {n: len(d) for n, d in expected.items()}
    path = Path(path)

    def one(reader: str) -> str | None:
        try:
            got = _READERS[reader](path, timeout)
        except ReaderError as exc:
            return f"reader {reader} failed: {exc}"
        want = _expected_listing(expected, directories, with_parents=reader not in _LISTING_READERS)
        return _diff(reader, want, got, sizes)

    with ThreadPoolExecutor(max_workers=len(readers) or 1) as pool:
        failures = [msg for msg in pool.map(one, readers) if msg]
    if failures:
        raise AssertionError(f"{len(failures)} of {len(readers)} readers rejected {path}:\n" + "\n".join(failures))


# ---- the lean check: listing, named members, integrity test ---------------------------

Sizes = dict[str, int]  # entry name (directories end in '/') -> uncompressed size
_PATTERN_CHARS = frozenset("*?[]\\")  # unzip, 7z and bsdtar read member arguments as patterns


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _list_python(path: Path, members: list[str], test: bool, timeout: float) -> tuple[Sizes, Listing]:
    try:
        with zipfile.ZipFile(path) as zf:
            if test and (bad := zf.testzip()) is not None:
                raise ReaderError(f"testzip: bad CRC or header in {bad!r}")
            sizes: Sizes = {}
            for info in zf.infolist():
                if info.filename in sizes:
                    raise ReaderError(f"duplicate entry {info.filename!r}")
                sizes[info.filename] = info.file_size
            return sizes, {name: _sha(zf.read(name)) for name in members if name in sizes}
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as exc:
        raise ReaderError(f"zipfile: {type(exc).__name__}: {exc}") from exc


def _list_unzip(path: Path, members: list[str], test: bool, timeout: float) -> tuple[Sizes, Listing]:
    if test:
        _run(["unzip", "-tq", str(path)], timeout)
    out = _run(["unzip", "-l", str(path)], timeout)
    # A table between two dashed rules: "  Length  Date  Time  Name".
    rules = [i for i, line in enumerate(out.splitlines()) if line.startswith("---------")]
    rows = out.splitlines()[rules[0] + 1 : rules[1]] if len(rules) >= 2 else []
    sizes: Sizes = {}
    for row in rows:
        fields = row.split(None, 3)
        if len(fields) < 4 or not fields[0].isdigit():
            continue  # an entry's file comment (a truncated entry's mark) on a line of its own
        length, _date, _time, name = fields
        _add_size(sizes, name, int(length))
    found = [name for name in members if name in sizes]
    return sizes, {name: _sha(_run_bytes(["unzip", "-p", str(path), name], timeout)) for name in found}


def _list_7z(path: Path, members: list[str], test: bool, timeout: float) -> tuple[Sizes, Listing]:
    if test:
        _run(["7z", "t", "-bd", str(path)], timeout)
    out = _run(["7z", "l", "-slt", "-bd", str(path)], timeout)
    sizes: Sizes = {}
    # After the "----------" rule: one "Key = value" block per entry, blank-line separated.
    for block in out.split("\n----------\n", 1)[-1].split("\n\n"):
        fields = dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line)
        if "Path" in fields:
            name = fields["Path"] + ("/" if fields.get("Folder") == "+" else "")
            _add_size(sizes, name, int(fields.get("Size") or 0))
    found = [name for name in members if name in sizes]
    return sizes, {name: _sha(_run_bytes(["7z", "e", "-so", "-bd", str(path), name], timeout)) for name in found}


def _list_bsdtar(path: Path, members: list[str], test: bool, timeout: float) -> tuple[Sizes, Listing]:
    if test:  # extraction to stdout reads and CRC-checks every entry; -t alone reads no data
        _run(["bsdtar", "-xOf", str(path)], timeout, discard=True)
    out = _run(["bsdtar", "-tvf", str(path)], timeout)
    sizes: Sizes = {}
    for row in out.splitlines():  # mode links owner group size month day year|time name
        fields = row.split(None, 8)
        _add_size(sizes, fields[8], int(fields[4]))
    found = [name for name in members if name in sizes]
    return sizes, {name: _sha(_run_bytes(["bsdtar", "-xOf", str(path), name], timeout)) for name in found}


def _list_java(mode: str) -> Callable[[Path, list[str], bool, float], tuple[Sizes, Listing]]:
    def listing(path: Path, members: list[str], test: bool, timeout: float) -> tuple[Sizes, Listing]:
        # Without a member filter ZipCheck hashes (so reads and CRC-checks) every entry.
        lines = _java_lines(mode, path, timeout, () if test else members or [""])
        sizes: Sizes = {}
        for name, size, _ in lines:
            _add_size(sizes, name, size)
        return sizes, {name: sha for name, _, sha in lines if name in members}

    return listing


def _add_size(sizes: Sizes, name: str, size: int) -> None:
    if name in sizes:
        raise ReaderError(f"duplicate entry {name!r}")
    sizes[name] = size


def _run_bytes(argv: list[str], timeout: float) -> bytes:
    try:
        proc = subprocess.run(argv, capture_output=True, env=_ENV, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ReaderError(f"`{' '.join(argv)}` timed out after {timeout}s") from exc
    if proc.returncode != 0:
        raise ReaderError(f"`{' '.join(argv)}` exited {proc.returncode}\nstderr: {_tail(proc.stderr)}")
    return proc.stdout


_LISTERS: dict[str, Callable[[Path, list[str], bool, float], tuple[Sizes, Listing]]] = {
    PYTHON: _list_python,
    UNZIP: _list_unzip,
    SEVENZIP: _list_7z,
    BSDTAR: _list_bsdtar,
    JAVA_ZIPFILE: _list_java("zipfile"),
    JAVA_STREAM: _list_java("stream"),
}


def list_with(
    reader: str, path: str | os.PathLike, members: Iterable[str] = (), *, test: bool = True, timeout: float = TIMEOUT
) -> tuple[Sizes, Listing]:
    """One reader's listing (name -> size) and the sha256 of each named member it finds.
    With `test`, the reader also reads and CRC-checks all the data (JAVA_STREAM always
    does: it cannot find an entry without reading the ones before). Raises ReaderError."""
    members = list(members)
    for name in members:
        assert not _PATTERN_CHARS & set(name), f"member {name!r}: pattern characters are not supported"
    return _LISTERS[reader](Path(path), members, test, timeout)


def check_listing(
    path: str | os.PathLike,
    sizes: Mapping[str, int],
    members: Mapping[str, bytes],
    *,
    readers: Iterable[str] = ALL_READERS,
    test: bool = True,
    timeout: float = TIMEOUT,
) -> None:
    """Assert that every reader lists exactly `sizes` (entry name -> size, directories
    ending in '/') and reads each of `members` (name -> bytes) exactly; see list_with."""
    readers = list(readers)
    path = Path(path)
    want_members = {name: _sha(data) for name, data in members.items()}

    def one(reader: str) -> str | None:
        try:
            got_sizes, got_members = list_with(reader, path, members, test=test, timeout=timeout)
        except ReaderError as exc:
            return f"reader {reader} failed: {exc}"
        problems = []
        if got_sizes != dict(sizes):
            wrong = sorted(n for n in sizes.keys() & got_sizes.keys() if sizes[n] != got_sizes[n])
            problems.append(
                f"missing {sorted(sizes.keys() - got_sizes.keys())[:5]}, "
                f"unexpected {sorted(got_sizes.keys() - sizes.keys())[:5]}, "
                f"sizes differ {[(n, sizes[n], got_sizes[n]) for n in wrong[:5]]}"
            )
        if got_members != want_members:
            bad = sorted(n for n in want_members if got_members.get(n) != want_members[n])
            problems.append(f"members read wrong or not found: {bad}")
        return f"reader {reader}: " + "; ".join(problems) if problems else None

    with ThreadPoolExecutor(max_workers=len(readers) or 1) as pool:
        failures = [msg for msg in pool.map(one, readers) if msg]
    if failures:
        raise AssertionError(f"{len(failures)} of {len(readers)} readers rejected {path}:\n" + "\n".join(failures))
