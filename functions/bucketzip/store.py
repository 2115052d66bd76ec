"""Where run state lives. Two implementations share this contract:
`store_dynamodb.DynamoStateStore` (the workflow) and `store_local.LocalStateStore` (CLI).

Commit protocol (crash safety and fencing):
1. a step writes its fragment pieces under its own attempt id: invisible until committed;
2. `commit` atomically bumps the state version (only if it is still `expected_version`)
   and records "commit N = attempt A with K pieces". A zombie step that lost the race
   fails here with StaleState; its orphaned pieces are deleted with the run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from .limits import MAX_ITEM_BYTES, KiB
from .state import RunState

# A fragment piece and its item's keys and other attributes stay under the item size limit.
PIECE_BYTES = MAX_ITEM_BYTES - 50 * KiB


def split_pieces(blob: bytes) -> list[bytes]:
    return [blob[i : i + PIECE_BYTES] for i in range(0, len(blob), PIECE_BYTES)] or [b""]


class Hold:
    """A run held by this process (see StateStore.hold); release() lets it go."""

    def release(self) -> None:
        return None


class StateStore(ABC):
    @abstractmethod
    def create(self, state: RunState) -> None:
        """Write the first state (version 0). Raises RunExists if the run id is taken."""

    @abstractmethod
    def load(self, run_id: str) -> RunState:
        """The committed state. Raises RunNotFound."""

    @abstractmethod
    def current_version(self, run_id: str) -> int | None:
        """Cheap fencing check before side effects; None when the run is gone."""

    @abstractmethod
    def put_fragment(self, run_id: str, attempt: str, blob: bytes) -> int:
        """Store an uncommitted fragment; returns its piece count."""

    @abstractmethod
    def commit(self, state: RunState, expected_version: int, attempt: str | None, pieces: int) -> None:
        """Save `state` as version expected_version + 1 (state.version is set) and, with
        an attempt, record its fragment as the next commit. Raises StaleState."""

    @abstractmethod
    def iter_fragments(self, run_id: str, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """(commit index, fragment blob) of committed fragments in commit order, from `start`."""

    @abstractmethod
    def claim_name(self, run_id: str, name: str, key: str) -> bool:
        """Reserve an entry name for a key; True if free or already this key's (retries)."""

    @abstractmethod
    def delete_run(self, run_id: str) -> None:
        """Remove every item of the run. Idempotent."""

    def hold(self, run_id: str) -> Hold:
        """Hold the run for this process, or raise RunBusy at once if another holds it.
        Stores shared by many invocations (DynamoDB) hold nothing: fencing decides there."""
        return Hold()

    def record_result(self, run_id: str, result: dict) -> None:
        """Keep a finished run's result (only) so that a retried Finish can answer it.
        Stores with a single caller (the CLI) keep nothing."""
        return None

    def load_result(self, run_id: str) -> dict | None:
        return None
