"""Destination key templates for scheduled runs:
`backups/{source_bucket}/{date:%Y-%m-%d}.zip` -> `backups/photos/2026-11-25.zip`."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

from .errors import InputError

_FIELDS = {"source_bucket", "source_prefix", "date", "run_id"}


def render_key(
    template: str, *, source_bucket: str, source_prefix: str = "", run_id: str = "", now: datetime | None = None
) -> str:
    """Fill `{source_bucket}`, `{source_prefix}`, `{run_id}` and `{date:FORMAT}` (UTC)."""
    now = now or datetime.now(UTC)
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise InputError(f"dest_key: bad template {template!r} ({exc})") from None
    unknown = sorted(n for n in names if n not in _FIELDS)
    if unknown:
        raise InputError(
            f"dest_key: unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)}"
            f" in {template!r}; known: {', '.join(sorted(_FIELDS))}"
        )
    values = {"source_bucket": source_bucket, "source_prefix": source_prefix.strip("/"), "date": now, "run_id": run_id}
    try:
        key = template.format(**values)
    except (ValueError, IndexError) as exc:
        raise InputError(f"dest_key: bad template {template!r} ({exc})") from None
    key = re.sub(r"/{2,}", "/", key).lstrip("/")
    if not key or key.endswith("/"):
        raise InputError(f"dest_key: template {template!r} renders to {key!r}, not an object key")
    return key
