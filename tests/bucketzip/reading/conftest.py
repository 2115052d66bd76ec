"""Fixtures of the reading tests. moto_server / s3 / bucket_factory come from tests/conftest.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # `import reading_helpers` from any test module
    sys.path.insert(0, _HERE)


def build_parser() -> argparse.ArgumentParser:
    """bucketzip's own parser (bucketzip.cli); while that is missing, one in miniature:
    a global --endpoint-url, then our subcommands."""
    try:
        from bucketzip.cli import build_parser as main_parser

        return main_parser()
    except ImportError:
        pass
    from bucketzip.cli import read as cli_read

    parser = argparse.ArgumentParser(prog="bucketzip")
    parser.add_argument("--endpoint-url")
    cli_read.register(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
def run_cli(s3, capsys):
    """run_cli("ls", "s3://b/k.zip", ...) -> (exit code, stdout, stderr), like bucketzip's main:
    BucketzipError -> 'bucketzip: error: ...' and exit 1."""
    from bucketzip.errors import BucketzipError

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        args = build_parser().parse_args(list(argv))
        try:
            code = args.func(args, s3)
        except BucketzipError as exc:
            print(f"bucketzip: error: {exc}", file=sys.stderr)
            code = 1
        out, err = capsys.readouterr()
        return code, out, err

    return run
