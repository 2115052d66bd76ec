"""What the CLI commands share: s3:// URLs and a progress line on stderr."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from ..errors import InputError
from ..sizes import format_size


def parse_s3_url(url: str, *, want_key: bool, option: str = "") -> tuple[str, str]:
    """s3://BUCKET/KEY -> (bucket, key). want_key: the key must be an object key.
    `option` (e.g. "--source") starts the error message, naming what was wrong."""
    where = f"{option}: " if option else ""
    if not url.startswith("s3://"):
        raise InputError(f"{where}{url!r} is not an s3://BUCKET/KEY URL")
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise InputError(f"{where}{url!r} names no bucket")
    if want_key and (not key or key.endswith("/")):
        raise InputError(f"{where}{url!r} names no object (expected s3://BUCKET/KEY.zip)")
    return bucket, key


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """A one-line progress display on stderr (TTY only), redrawn at most 5 times a second.
    Totals may be unknown (0) at first and set later (`set_totals`)."""

    def __init__(
        self,
        label: str,
        total_bytes: int = 0,
        total_entries: int = 0,
        *,
        enabled: bool,
        stream: TextIO | None = None,
        unit: str = "entries",
    ):
        self.label, self.total_bytes, self.total_entries, self.unit = label, total_bytes, total_entries, unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bytes = self.entries = 0
        self._lock = threading.Lock()
        self._last = 0.0
        self._start = time.monotonic()
        self._drawn = False

    def set_totals(self, total_bytes: int, total_entries: int) -> None:
        with self._lock:
            self.total_bytes, self.total_entries = total_bytes, total_entries

    def __call__(self, nbytes: int, nentries: int) -> None:
        with self._lock:
            self.bytes += nbytes
            self.entries += nentries
            if not self.enabled:
                return
            now = time.monotonic()
            if now - self._last < 0.2:
                return
            self._last = now
            self._draw()

    def _draw(self) -> None:
        elapsed = max(1e-6, time.monotonic() - self._start)
        rate = self.bytes / elapsed
        if self.total_bytes:
            fraction = min(1.0, self.bytes / self.total_bytes)
        elif self.total_entries:
            fraction = min(1.0, self.entries / self.total_entries)
        else:
            fraction = None
        width = 24
        if fraction is None:
            bar, percent, eta = "?" * width, "  ?  ", ""
        else:
            filled = int(fraction * width)
            bar, percent = "#" * filled + "." * (width - filled), f"{fraction * 100:5.1f}%"
            eta = f" ETA {_eta(elapsed / fraction - elapsed)}" if 0 < fraction < 1 else ""
        totals = f"/{format_size(self.total_bytes)}" if self.total_bytes else ""
        count = f"/{self.total_entries}" if self.total_entries else ""
        self.stream.write(
            f"\r{self.label} [{bar}] {percent} {format_size(self.bytes)}{totals}"
            f" {self.entries}{count} {self.unit} {format_size(rate)}/s{eta}  "
        )
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        with self._lock:
            if self.enabled and self._drawn:
                self._draw()
                self.stream.write("\n")
                self.stream.flush()
