"""What one archive run is asked to do, validated once at the boundary."""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import InputError
from .limits import MAX_LIST_KEYS, MAX_PART_SIZE, MIN_PART_SIZE
from .sizes import parse_size

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MIB
DEFAULT_CHUNK_SIZE = 8 * MIB
COMPRESSIONS = ("auto", "store", "deflate")
# Workers of one run (the Distributed Map's MaxConcurrency): capped at AWS Lambda's default
# account concurrency (Lambda Developer Guide, "Lambda quotas": 1,000 concurrent
# executions); more children would only wait for each other.
MAX_WORKERS = 1000
# Staging objects (the carried tail of a run) live here, in the destination bucket.
STAGING_PREFIX = ".bucketzip-staging/"

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,254}$")


@dataclass(frozen=True)
class ArchiveRequest:
    """One run's settings. Construct with `ArchiveRequest.create(...)` to validate."""

    source_bucket: str
    dest_bucket: str
    dest_key: str
    source_prefix: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    compression: str = "auto"
    level: int | None = None
    part_size: int = DEFAULT_PART_SIZE
    concurrency: int = 8
    overwrite: bool = False
    strict: bool = False
    # Source bytes fetched per ranged GET; also the resume granularity inside objects.
    chunk_size: int = DEFAULT_CHUNK_SIZE
    # End each step after about this many archive bytes (tests and demos); None: by deadline only.
    step_bytes: int | None = None
    # Bytes of source data fetched ahead of the writer, across all objects.
    prefetch_bytes: int = 0  # 0: derived from concurrency and chunk_size
    # Keys per ListObjectsV2 page (S3's maximum is 1000; tests use small pages).
    page_size: int = MAX_LIST_KEYS
    # Parallel segments (issue 10): shards archived at once (the Distributed Map's
    # MaxConcurrency, the CLI's threads); 1 is the single-loop path.
    workers: int = 1
    # Target listed bytes per shard; None: the planner derives it.
    shard_bytes: int | None = None

    @classmethod
    def create(cls, *, labels: Mapping[str, str] | None = None, **fields) -> ArchiveRequest:
        """Validate `fields` into a request. Errors start with the field's name, or with
        `labels[name]` when given: what the user typed (the CLI's --part-size, SRC)."""
        label = _labeller(labels)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise InputError(f"unknown field(s): {', '.join(unknown)}")
        for name in ("part_size", "chunk_size", "step_bytes", "prefetch_bytes", "shard_bytes"):
            if fields.get(name) is not None:
                fields[name] = parse_size(fields[name], label(name))
        for name in ("include", "exclude"):
            value = fields.get(name) or ()
            fields[name] = (value,) if isinstance(value, str) else tuple(value)
        request = cls(**fields)
        request.validate(labels)
        return request

    def validate(self, labels: Mapping[str, str] | None = None) -> None:
        label = _labeller(labels)
        for name in ("source_bucket", "dest_bucket"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _BUCKET_RE.match(value):
                raise InputError(f"{label(name)}: {value!r} is not a valid bucket name")
        if not self.dest_key or self.dest_key.endswith("/"):
            raise InputError(f"{label('dest_key')}: {self.dest_key!r} must name an object, not a folder")
        if self.dest_key.startswith(STAGING_PREFIX):
            raise InputError(f"{label('dest_key')}: {STAGING_PREFIX!r} is reserved for staging")
        if self.compression not in COMPRESSIONS:
            raise InputError(f"{label('compression')}: {self.compression!r} is not one of {', '.join(COMPRESSIONS)}")
        if self.level is not None and not (0 <= self.level <= 9):
            raise InputError(f"{label('level')}: {self.level} is not between 0 and 9")
        if not (MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE):
            raise InputError(f"{label('part_size')}: {self.part_size} is not between 5 MiB and 5 GiB")
        if not (1 <= self.concurrency <= 64):
            raise InputError(f"{label('concurrency')}: {self.concurrency} is not between 1 and 64")
        if not (64 * 1024 <= self.chunk_size <= 64 * MIB):
            raise InputError(f"{label('chunk_size')}: {self.chunk_size} is not between 64 KiB and 64 MiB")
        if not (1 <= self.page_size <= MAX_LIST_KEYS):
            raise InputError(f"{label('page_size')}: {self.page_size} is not between 1 and {MAX_LIST_KEYS}")
        if not (1 <= self.workers <= MAX_WORKERS):
            raise InputError(f"{label('workers')}: {self.workers!r} is not between 1 and {MAX_WORKERS}")
        if self.shard_bytes is not None and self.shard_bytes < 1:
            raise InputError(f"{label('shard_bytes')}: must be at least 1")
        if self.step_bytes is not None and self.step_bytes < 1:
            raise InputError(f"{label('step_bytes')}: must be at least 1")
        for name in ("include", "exclude"):
            for pattern in getattr(self, name):
                check_glob(pattern, label(name))

    @property
    def effective_prefetch_bytes(self) -> int:
        return self.prefetch_bytes or max(2 * self.chunk_size, self.concurrency * self.chunk_size)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["include"] = list(self.include)
        data["exclude"] = list(self.exclude)
        return data

    @classmethod
    def from_json(cls, data: dict) -> ArchiveRequest:
        return cls.create(**data)


def _labeller(labels: Mapping[str, str] | None) -> Callable[[str], str]:
    return lambda name: (labels or {}).get(name, name)


def check_glob(pattern: str, field_name: str = "include") -> None:
    """Reject globs fnmatch would misread (unbalanced brackets, empty)."""
    if not isinstance(pattern, str) or not pattern:
        raise InputError(f"{field_name}: empty glob")
    depth = 0
    for char in pattern:
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
    if depth:
        raise InputError(f"{field_name}: bad glob {pattern!r} (unbalanced '[')")
    try:
        re.compile(fnmatch.translate(pattern))
    except re.error as exc:
        raise InputError(f"{field_name}: bad glob {pattern!r} ({exc})") from None


def key_selected(key: str, request: ArchiveRequest) -> bool:
    """Glob filters apply to the key relative to the source prefix."""
    relative = key[len(request.source_prefix) :]
    if request.include and not any(fnmatch.fnmatchcase(relative, p) for p in request.include):
        return False
    return not any(fnmatch.fnmatchcase(relative, p) for p in request.exclude)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ArchiveRequest)]
