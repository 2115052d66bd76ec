"""Fixtures shared by the engine and reading tests. moto_server / s3 / bucket_factory come
from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bucketzip import cli
from bucketzip.clients import s3_client
from support import many_entries
from support.seed import empty_and_delete_bucket


@pytest.fixture(scope="session")
def many_entries_archive(s3) -> Iterator[many_entries.ManyEntries]:
    """The > 65,535-entry archive, made once for every test of that path (the engine's
    records, ls, extract, restore, verify): archiving 70,000 entries is the cost."""
    made = many_entries.make(s3)
    yield made
    empty_and_delete_bucket(s3, made.bucket)


# The `bucketzip` command in-process, its local state under tmp_path (the CLI tests' own
# run_cli variants, which catch argparse's exits, stay in their modules).
@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BUCKETZIP_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def run_cli(state_dir, monkeypatch, capsys):
    def run(*argv, client=None):
        monkeypatch.setattr(cli, "s3_client", lambda *a, **k: client or s3_client())
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
