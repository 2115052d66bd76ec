"""Entry names for keys whose name had to change (names.entry_name): the claim loop.

A changed name must not take a name that another key has or gets: a selected source key
equal to it (archived under that very name), or a name that another changed key claimed
first (store.claim_name: the first key in key order keeps the name, later ones get
`~1`, `~2`...). One worker claims as it writes, in key order. A parallel run's planner
claims every changed name while it lists, in that same order (plan._list): its segments,
whatever order they run in, then find each name already claimed by their own key, so a
parallel archive has one worker's names, the same from run to run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import ArchiveRequest, key_selected
from .names import MAX_SEGMENT_BYTES, UNSAFE_CHARS, entry_name, with_suffix
from .s3errors import AWS_ERRORS, GONE_CODES, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from .store import StateStore

# No segment of a key this short can exceed MAX_SEGMENT_BYTES (4 UTF-8 bytes a character).
_SHORT_KEY = MAX_SEGMENT_BYTES // 4


def base_name(key: str, size: int) -> str:
    """The entry name before any suffix. A folder marker (a key ending in '/') that holds
    data becomes a file, named without the slash; an empty one is a directory entry."""
    return entry_name(key.rstrip("/") if key.endswith("/") and size > 0 else key)


def name_changes(key: str, size: int) -> bool:
    """Whether base_name(key, size) != key (fast: no name is built for most keys)."""
    # What entry_name changes, by substring tests: the planner asks this of every listed
    # key: about 0.6 us a key here, where building the name takes 4 (and a regex of these
    # rules over the whole key, 7).
    if not key or (key.endswith("/") and size > 0) or key in (".", ".."):
        return True
    if key.startswith(("/", "./", "../")) or key.endswith(("/.", "/..")):
        return True
    if "//" in key or "/./" in key or "/../" in key or "\\" in key:
        return True
    if not key.isprintable() and UNSAFE_CHARS.search(key):  # control characters
        return True
    if len(key) <= _SHORT_KEY or len(key.encode("utf-8")) <= MAX_SEGMENT_BYTES:
        return False
    return any(len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES for segment in key.split("/"))


def claim_entry_name(s3: S3Client, store: StateStore, request: ArchiveRequest, scope: str, key: str, size: int) -> str:
    """The entry name of `key`: its own when unchanged, else the first of its base name and
    the base name's suffixed forms that no selected source key has and that `scope`'s
    claims give to this key (a claim by the same key is this key's: claims are
    idempotent, a retried step finds its own)."""
    if not name_changes(key, size):
        return key
    name = base_name(key, size)
    candidate, n = name, 0
    while _taken_by_source(s3, request, candidate) or not store.claim_name(scope, candidate, key):
        n += 1
        candidate = with_suffix(name, n)
    return candidate


def _taken_by_source(s3: S3Client, request: ArchiveRequest, name: str) -> bool:
    """A selected source key equal to `name` will be (or was) archived under that name."""
    if not name.startswith(request.source_prefix) or not key_selected(name, request):
        return False
    try:
        s3.head_object(Bucket=request.source_bucket, Key=name)
        return True
    except AWS_ERRORS as exc:
        if error_code(exc) in GONE_CODES:
            return False
        raise translate(exc, bucket=request.source_bucket, role="source", action="head", key=name) from None
