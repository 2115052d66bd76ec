"""Crash injection for crash-safety tests: a process dying at a chosen call."""

from __future__ import annotations

import threading


class Crash(Exception):
    """Stands for the process dying: raised at a chosen call, anywhere before a commit."""


class Flaky:
    """A boto3 client proxy that raises Crash at its `fail_at`-th call (any thread)."""

    def __init__(self, client, fail_at: int):
        self._client, self._fail_at, self._calls = client, fail_at, 0
        self._lock = threading.Lock()

    def __getattr__(self, name):
        target = getattr(self._client, name)
        if not callable(target) or name in ("get_paginator", "meta", "exceptions"):
            return target

        def call(*args, **kwargs):
            with self._lock:
                self._calls += 1
                crash = self._calls == self._fail_at
            if crash:
                raise Crash(f"injected crash at call {self._fail_at} ({name})")
            return target(*args, **kwargs)

        return call
