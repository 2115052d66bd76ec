"""Handler tests: the handlers with a fake engine, store and S3 client (no AWS, no moto)."""

from __future__ import annotations

import pytest

from bucketzip.local.lambdas import LambdaContext
from bucketzip.results import ArchiveResult, Progress


def progress(run_id: str = "run-1", **fields) -> Progress:
    values = dict(
        run_id=run_id,
        phase="archiving",
        done=False,
        objects=0,
        skipped=0,
        bytes_in=0,
        bytes_out=0,
        parts=0,
        steps=0,
        dest_bucket="dst",
        dest_key="out.zip",
    )
    values.update(fields)
    return Progress(**values)


class FakeEngine:
    """Records calls; answers with what the test set."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.step_result = progress(objects=3, bytes_in=300, parts=1, steps=1)
        self.finish_result: ArchiveResult | Progress = ArchiveResult(
            run_id="run-1",
            bucket="dst",
            key="out.zip",
            size=1234,
            entries=3,
            parts=1,
            skipped=0,
            manifest_key="out.zip.manifest.jsonl",
            etag='"abc-1"',
            steps=2,
            duration_seconds=1.5,
        )

    progress = staticmethod(progress)

    def start_run(self, s3, store, request, run_id=None):
        self.calls.append(("start_run", request, run_id))
        return progress(run_id, dest_bucket=request.dest_bucket, dest_key=request.dest_key)

    def get_progress(self, store, run_id):
        self.calls.append(("get_progress", run_id))
        return progress(run_id, steps=7)

    def resume_run(self, s3, store, run_id):
        self.calls.append(("resume_run", run_id))
        return progress(run_id, steps=7)

    def run_step(self, s3, store, run_id, deadline):
        self.calls.append(("run_step", run_id, deadline))
        return self.step_result

    def finish_run(self, s3, store, run_id, deadline):
        self.calls.append(("finish_run", run_id, deadline))
        return self.finish_result

    def abort_run(self, s3, store, run_id):
        self.calls.append(("abort_run", run_id))


class FakeStore:
    def __init__(self):
        self.versions = [3]
        self.workers = 1  # the loaded run's request.workers

    def load(self, run_id):
        from types import SimpleNamespace

        return SimpleNamespace(run_id=run_id, request=SimpleNamespace(workers=self.workers))

    def current_version(self, run_id):
        return self.versions.pop(0) if len(self.versions) > 1 else self.versions[0]


@pytest.fixture
def fake_engine(monkeypatch):
    import handlers.common as common
    from bucketzip import engine

    fake = FakeEngine()
    for name in ("start_run", "get_progress", "resume_run", "run_step", "finish_run", "abort_run"):
        monkeypatch.setattr(engine, name, getattr(fake, name))
    fake.store = FakeStore()
    monkeypatch.setattr(common, "state_store", lambda: fake.store)
    monkeypatch.setattr(common, "s3_client", lambda: object())
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "bucketzip-test")
    return fake


@pytest.fixture
def context():
    return LambdaContext(
        "bucketzip-step", "arn:aws:lambda:us-east-1:123456789012:function:bucketzip-step", timeout_seconds=900
    )
