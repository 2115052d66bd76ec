"""Workflow tests: the REAL statemachine/archive.asl.json executed by moto's Step
Functions interpreter over the session's moto server, Lambda tasks dispatched to the
in-process handlers (bucketzip.local.LocalWorkflow)."""

from __future__ import annotations

import uuid

import pytest
from workflow_helpers import StoreFaults

from bucketzip.local.workflow import LocalWorkflow


@pytest.fixture
def workflow(moto_server, state_table):
    """A freshly registered state machine + four Lambda functions (unique names)."""
    wf = LocalWorkflow(moto_server, state_table, name=f"bz-{uuid.uuid4().hex[:10]}", retry_time_scale=0.001)
    wf.setup()
    yield wf
    wf.close()


@pytest.fixture
def buckets(bucket_factory):
    return bucket_factory("src"), bucket_factory("dst")


@pytest.fixture
def store_faults(monkeypatch):
    """Inject faults around the handlers' state store (see workflow_helpers.StoreFaults)."""
    faults = StoreFaults()
    faults.patch(monkeypatch)
    return faults
