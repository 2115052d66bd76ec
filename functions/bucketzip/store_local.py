"""State in a local directory, for the CLI: one folder per run, atomic renames,
the version checked under an exclusive lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import RunBusy, RunExists, RunNotFound, StaleState
from .state import RunState
from .store import Hold, StateStore


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class _FileHold(Hold):
    def __init__(self, handle):
        self.handle = handle

    def release(self) -> None:
        self.handle.close()  # closing drops the flock


class LocalStateStore(StateStore):
    def __init__(self, directory: str | os.PathLike):
        self.root = Path(directory)
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, run_id: str) -> Path:
        return self.root / run_id

    @contextlib.contextmanager
    def _locked(self, run_id: str):
        folder = self._dir(run_id)
        if not folder.is_dir():
            raise RunNotFound(f"run {run_id}: no state (finished, aborted or never started)")
        with open(folder / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield folder

    def exists(self, run_id: str) -> bool:
        return (self._dir(run_id) / "state").exists()

    def hold(self, run_id: str) -> Hold:
        """An exclusive, non-blocking flock on the run's `.owner` file for the life of the
        process (the kernel drops it when the process dies, however it dies)."""
        folder = self._dir(run_id)
        if not folder.is_dir():
            raise RunNotFound(f"no run {run_id}")
        handle = open(folder / ".owner", "a+b")  # noqa: SIM115 - held open on purpose
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunBusy(f"run {run_id} is being resumed by another process") from None
        return _FileHold(handle)

    def create(self, state: RunState) -> None:
        folder = self._dir(state.run_id)
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            raise RunExists(f"run {state.run_id}: state exists already") from None
        (folder / "fragments").mkdir()
        (folder / "names").mkdir()
        _write_atomic(folder / "state", state.to_bytes())
        _write_atomic(folder / "commits", b"")

    def load(self, run_id: str) -> RunState:
        try:
            return RunState.from_bytes((self._dir(run_id) / "state").read_bytes())
        except FileNotFoundError:
            raise RunNotFound(f"run {run_id}: no state (finished, aborted or never started)") from None

    def current_version(self, run_id: str) -> int | None:
        try:
            return self.load(run_id).version
        except RunNotFound:
            return None

    def put_fragment(self, run_id: str, attempt: str, blob: bytes) -> int:
        _write_atomic(self._dir(run_id) / "fragments" / attempt, blob)
        return 1

    def commit(self, state: RunState, expected_version: int, attempt: str | None, pieces: int) -> None:
        with self._locked(state.run_id) as folder:
            stored = RunState.from_bytes((folder / "state").read_bytes()).version
            if stored != expected_version:
                raise StaleState(
                    f"run {state.run_id}: state is at version {stored}, this step started from {expected_version}"
                )
            state.version = expected_version + 1
            if attempt is not None:
                # Two renames are not one atomic write: a line whose state write never
                # happened is superseded by the retry's line for the same version.
                commits = (folder / "commits").read_text()
                line = f"{state.version} {attempt}\n"
                _write_atomic(folder / "commits", (commits + line).encode())
            _write_atomic(folder / "state", state.to_bytes())

    def iter_fragments(self, run_id: str, start: int = 0) -> Iterator[tuple[int, bytes]]:
        folder = self._dir(run_id)
        committed = self.load(run_id).version
        by_version = {}
        for line in (folder / "commits").read_text().splitlines():
            version, attempt = line.split()
            if int(version) <= committed:
                by_version[int(version)] = attempt
        attempts = [by_version[v] for v in sorted(by_version)]
        for index in range(start, len(attempts)):
            yield index, (folder / "fragments" / attempts[index]).read_bytes()

    def claim_name(self, run_id: str, name: str, key: str) -> bool:
        path = self._dir(run_id) / "names" / hashlib.sha256(name.encode()).hexdigest()
        # Written aside, then linked into place: a claim is never seen half written (the
        # segments of a parallel run claim in their parent's names from many threads).
        scratch = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        scratch.write_text(key, encoding="utf-8")
        try:
            os.link(scratch, path)
            return True
        except FileExistsError:
            return path.read_text(encoding="utf-8") == key
        finally:
            scratch.unlink()

    def delete_run(self, run_id: str) -> None:
        shutil.rmtree(self._dir(run_id), ignore_errors=True)

    def run_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "state").exists())
