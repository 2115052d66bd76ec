"""Synthesize the stack once per session for each test context (no AWS, no Docker, no pip:
`bundle=copy`), and share the template, the stack and the validation report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from infra_support import EXISTING_CONTEXT, MAIN_CONTEXT, Synth, synthesize  # noqa: E402


@pytest.fixture(scope="session")
def main(tmp_path_factory) -> Synth:
    return synthesize(MAIN_CONTEXT, tmp_path_factory.mktemp("cdk-main"))


@pytest.fixture(scope="session")
def existing(tmp_path_factory) -> Synth:
    return synthesize(EXISTING_CONTEXT, tmp_path_factory.mktemp("cdk-existing"))


@pytest.fixture(scope="session", params=["main", "existing"])
def any_synth(request) -> Synth:
    return request.getfixturevalue(request.param)
