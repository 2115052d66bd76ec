"""When a step must stop: a wall-clock deadline and an optional archive-byte budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Deadline:
    """`seconds` from now (monotonic). None means no time limit."""

    seconds: float | None = None
    _start: float = field(default_factory=time.monotonic, repr=False)

    @classmethod
    def from_lambda_context(cls, context, margin_seconds: float = 60.0) -> Deadline:
        remaining = context.get_remaining_time_in_millis() / 1000.0
        return cls(max(1.0, remaining - margin_seconds))

    def remaining(self) -> float:
        if self.seconds is None:
            return float("inf")
        return self.seconds - (time.monotonic() - self._start)

    def expired(self) -> bool:
        return self.remaining() <= 0
