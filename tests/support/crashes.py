"""Crash injection for crash-safety tests: a process dying at a chosen call."""

from __future__ import annotations

import threading


class Crash(Exception):
    """Stands for the process dying: raised at a chosen call, anywhere before a commit."""


class Flaky:
    """A client proxy recording its calls (name, kwargs) and raising Crash at its
    `fail_at`-th call (any thread; 0: never). `wrap` puts another object's method on the
    same count (a store's commits beside the S3 calls)."""

    def __init__(self, client, fail_at: int = 0):
        self._client, self._fail_at, self.calls = client, fail_at, []
        self._lock = threading.Lock()

    def __getattr__(self, name):
        target = getattr(self._client, name)
        if not callable(target) or name in ("get_paginator", "meta", "exceptions"):
            return target
        return self.wrap(name, target)

    def wrap(self, name, target):
        def call(*args, **kwargs):
            with self._lock:
                self.calls.append((name, kwargs))
                crash = len(self.calls) == self._fail_at
            if crash:
                raise Crash(f"injected crash at call {self._fail_at} ({name})")
            return target(*args, **kwargs)

        return call

    def named(self, name):
        """The kwargs of every call of `name`, in order."""
        return [kwargs for called, kwargs in self.calls if called == name]
