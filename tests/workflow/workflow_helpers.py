"""Helpers of the workflow tests (tests/workflow is on sys.path: `import workflow_helpers`)."""

from __future__ import annotations

import contextlib
import json
import random
import threading

from bucketzip.config import STAGING_PREFIX
from support.seed import list_multipart_uploads


def assert_nothing_left(s3, dynamodb, table: str, dest_bucket: str) -> None:
    """No multipart upload, no staging object, no state item: after a failure nothing at
    all; after a success only the run's `result` item (for a retried Finish), with a TTL."""
    assert list_multipart_uploads(s3, dest_bucket) == []
    staging = s3.list_objects_v2(Bucket=dest_bucket, Prefix=STAGING_PREFIX).get("Contents", [])
    assert staging == []
    items = dynamodb.scan(TableName=table).get("Items", [])
    leftovers = [item for item in items if item["sk"]["S"] != "result" or "expires_at" not in item]
    assert leftovers == []
    assert len(items) <= 1


def assert_nothing_left_after_failure(s3, dynamodb, table: str, dest_bucket: str) -> None:
    assert_nothing_left(s3, dynamodb, table, dest_bucket)
    assert dynamodb.scan(TableName=table).get("Items", []) == []


def cause_message(outcome) -> str:
    """The errorMessage of a Lambda error cause (the cause is the error JSON)."""
    try:
        return json.loads(outcome.cause)["errorMessage"]
    except (TypeError, ValueError, KeyError):
        return outcome.cause or ""


class StoreFaults:
    """Wrap the handlers' state store to inject faults around `load` / `commit`.

    patch(monkeypatch) replaces handlers.common.state_store for the current thread's
    invocations only when `active` says so (threads run concurrent invocations)."""

    def __init__(self):
        self.local = threading.local()
        # DynamoDB applies a conditional write atomically; moto's threaded server checks the
        # condition and writes in two moves, so two concurrent commits of one version could
        # both pass under load. Commits through this wrapper take turns, as DynamoDB's do.
        self.commit_turns = threading.Lock()

    @contextlib.contextmanager
    def active(self, on_load=None, on_commit=None):
        self.local.hooks = (on_load, on_commit)
        try:
            yield
        finally:
            self.local.hooks = None

    def patch(self, monkeypatch) -> None:
        import handlers.common as common

        original = common.state_store
        faults = self

        class Store:
            def __init__(self, inner):
                self.inner = inner

            def __getattr__(self, name):
                return getattr(self.inner, name)

            def load(self, run_id):
                state = self.inner.load(run_id)
                hooks = getattr(faults.local, "hooks", None)
                if hooks and hooks[0]:
                    hooks[0](state)
                return state

            def commit(self, state, expected_version, attempt, pieces):
                hooks = getattr(faults.local, "hooks", None)
                if hooks and hooks[1]:
                    hooks[1](state, expected_version)
                with faults.commit_turns:
                    return self.inner.commit(state, expected_version, attempt, pieces)

        monkeypatch.setattr(common, "state_store", lambda: Store(original()))


def random_objects(count: int, size: int, seed: int = 1, prefix: str = "data/") -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"{prefix}{i:04d}.bin": rng.randbytes(size + i) for i in range(count)}


def text_objects(count: int, size: int, seed: int = 2, prefix: str = "text/") -> dict[str, bytes]:
    """Compressible but not trivially so (random words)."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(5000)]
    objects = {}
    for i in range(count):
        chunks, total = [], 0
        while total < size:
            word = rng.choice(words) + b" "
            chunks.append(word)
            total += len(word)
        objects[f"{prefix}{i:03d}.txt"] = b"".join(chunks)[:size]
    return objects


def fetch_archive(s3, bucket: str, key: str, path) -> None:
    s3.download_file(bucket, key, str(path))


def step_events(workflow, execution_arn: str) -> int:
    """How many Step tasks an execution scheduled."""
    return sum(
        1
        for e in workflow.history(execution_arn)
        if e["type"] == "TaskStateEntered" and e["stateEnteredEventDetails"]["name"] == "Step"
    )
