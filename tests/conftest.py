"""Fixtures shared by every test: one in-process moto server per session, AWS
clients to it, and factories for uniquely named buckets and state tables.

Non-fixture helpers live in tests/support/ (import them as `support.seed`,
`support.readers`, `support.moto_server`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import uuid
from pathlib import Path

import boto3
import pytest

# Make `import support...` work whatever pytest's import mode or package layout.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
# The code under test is this checkout's (a git worktree too), not whatever an editable
# install points at: first on sys.path here (pytest's `pythonpath`) and in subprocesses.
_FUNCTIONS = str(Path(_TESTS).parent / "functions")
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [_FUNCTIONS, str(Path(_TESTS).parent), os.environ.get("PYTHONPATH")])
)

from bucketzip.state_table import create_table_params  # noqa: E402
from support.moto_server import REGION, running_moto_server  # noqa: E402
from support.seed import empty_and_delete_bucket  # noqa: E402

# Memory: glibc keeps freed memory in up to 8 arenas per core, one per busy thread; the
# emulator's and the engine's threads leave each worker holding memory it no longer uses.
# Two arenas, and the heap trimmed after each test, keep the process tree (2 workers,
# readers, Java, Node) well under the 4 GiB the suite may use. Workers and every
# subprocess inherit the variable.
os.environ.setdefault("MALLOC_ARENA_MAX", "2")
_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):  # glibc only
        _LIBC.malloc_trim(0)


def _xdist_group(item: pytest.Item) -> str:
    """Which tests must share a worker: those of one costly session fixture (the CDK synths,
    the 70,000-entry archive), else those of one module (module-scoped fixtures)."""
    if "many_entries_archive" in getattr(item, "fixturenames", ()):
        return "many-entries"
    if Path(item.path).parent.name == "infra":
        return "infra"
    return Path(item.path).stem  # test module names are unique (rootdir-relative imports)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The suite runs on 2 xdist workers (-n 2 --dist loadgroup in pyproject.toml), each with
    # its own moto server. Grouping keeps every session fixture built once per group, not
    # once per worker: fewer synths and archives, and not two CDK synths (Node) at a time.
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_xdist_group(item)))


@pytest.fixture(scope="session")
def moto_server():
    """URL of the session's moto server; AWS_ENDPOINT_URL and fake credentials
    are set in os.environ for the whole session, so plain boto3.client(...) works."""
    with running_moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def s3(moto_server):
    return boto3.client("s3", endpoint_url=moto_server, region_name=REGION)


@pytest.fixture(scope="session")
def dynamodb(moto_server):
    return boto3.client("dynamodb", endpoint_url=moto_server, region_name=REGION)


@pytest.fixture
def bucket_factory(s3):
    """make(prefix="b") -> name of a new, empty, uniquely named bucket.
    Buckets are emptied and deleted after the test (best effort) to keep the
    session's moto memory bounded."""
    created: list[str] = []

    def make(prefix: str = "b") -> str:
        # Valid S3 name: lowercase letters, digits, '-'; 3-63 chars; starts alphanumeric.
        clean = "".join(c if c.isalnum() and c.isascii() else "-" for c in prefix.lower()).strip("-")
        name = f"{clean[:40] or 'b'}-{uuid.uuid4().hex[:16]}"
        s3.create_bucket(Bucket=name)
        created.append(name)
        return name

    yield make
    for name in created:
        try:
            empty_and_delete_bucket(s3, name)
        except Exception:  # a test may have broken moto on purpose; not our failure
            pass


@pytest.fixture
def state_table(dynamodb):
    """Name of a new state table (bucketzip.state_table's schema). Deleted after the test."""
    name = f"bucketzip-state-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(**create_table_params(name))
    dynamodb.get_waiter("table_exists").wait(TableName=name)
    yield name
    try:
        dynamodb.delete_table(TableName=name)
    except Exception:
        pass
