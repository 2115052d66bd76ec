"""S3 keys -> safe zip entry names (pure).

Rules (DESIGN.md): no leading '/', no '.' or '..' segments, no empty segments, no
backslashes or control characters, every segment at most 255 UTF-8 bytes (ordinary
filesystems refuse longer ones). Keys ending in '/' become directory entries.
A changed name is recorded in the manifest; collisions are resolved by the caller
with `with_suffix`, since only the caller knows which names are taken.
"""

from __future__ import annotations

import hashlib
import re

MAX_SEGMENT_BYTES = 255
UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def entry_name(key: str) -> str:
    """The safe entry name for an S3 key (directory names end with '/')."""
    is_dir = key.endswith("/")
    segments = []
    for segment in key.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            segment = "__"
        segment = UNSAFE_CHARS.sub("_", segment)
        segments.append(_fit_segment(segment))
    name = "/".join(segments) or "_"
    return name + "/" if is_dir else name


def with_suffix(name: str, n: int) -> str:
    """`a/b.txt` -> `a/b~n.txt`, `a/dir/` -> `a/dir~n/`: the n-th alternative name."""
    is_dir = name.endswith("/")
    head, _, last = name.rstrip("/").rpartition("/")
    stem, ext = _split_ext(last)
    last = _fit_segment(f"{stem}~{n}{ext}")
    result = f"{head}/{last}" if head else last
    return result + "/" if is_dir else result


def _split_ext(segment: str) -> tuple[str, str]:
    dot = segment.rfind(".")
    if dot <= 0 or len(segment) - dot > 16:
        return segment, ""
    return segment[:dot], segment[dot:]


def _fit_segment(segment: str) -> str:
    """Shorten a segment over 255 bytes, keeping its extension and a stable hash of it."""
    encoded = segment.encode("utf-8")
    if len(encoded) <= MAX_SEGMENT_BYTES:
        return segment
    stem, ext = _split_ext(segment)
    suffix = "~" + hashlib.sha256(encoded).hexdigest()[:12] + ext
    budget = MAX_SEGMENT_BYTES - len(suffix.encode("utf-8"))
    head = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return head + suffix
