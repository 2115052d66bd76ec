"""The persisted run state: everything a step needs to continue exactly where the last
committed step stopped. Plain dataclasses, serialized to compact JSON."""

from __future__ import annotations

import base64
import dataclasses
import json
import struct
import zlib
from dataclasses import dataclass, field

from .config import ArchiveRequest
from .records import EntryMeta

ARCHIVING, FINISHING, COMPLETING, COMPLETE = "archiving", "finishing", "completing", "complete"
# A parallel run (request.workers > 1) plans shards, waits for its segment runs, then
# places their bytes into its upload (assembly) before finishing like any run.
PLANNING, SEGMENTS, ASSEMBLING = "planning", "segments", "assembling"


@dataclass
class Listed:
    """One object as listed (and, once its first byte is read, pinned)."""

    key: str
    size: int
    etag: str
    last_modified: float  # epoch seconds, UTC
    storage_class: str | None = None
    version_id: str | None = None  # from the first GET; later ranged GETs pin to it


@dataclass
class Cursor:
    """Where listing resumes: the page fetched with `token` (or, without one, the page
    after `start_after`), at `index` in it. `last_key` is the key before that position:
    the check that a reused token still means the same page, and the fallback."""

    token: str | None = None
    start_after: str | None = None
    index: int = 0
    last_key: str | None = None
    exhausted: bool = False


@dataclass
class CopyPlan:
    """How a large stored entry's data is placed: copied server-side part by part
    (copy.py), read only where it does not fill whole parts. Pinned to the object seen
    when the entry opened."""

    etag: str
    version_id: str | None = None
    # CRC-32 of the whole object when known before its first byte is placed: S3's
    # full-object checksum (HeadObject) or a read-only pass; the entry's bytes must add up
    # to it. None: the CRC adds up part by part (copied parts' from S3, or a read of each).
    crc: int | None = None


@dataclass
class OpenEntry:
    """An entry whose data is partly written: the step stopped inside its object."""

    listed: Listed
    meta: EntryMeta
    level: int  # deflate level of its pieces (0: stored blocks)
    bytes_read: int = 0
    headers: dict = field(default_factory=dict)  # standard headers + metadata for the manifest
    copy: CopyPlan | None = None  # its data is copied server-side (copy.py), not streamed


@dataclass
class Tail:
    """Archive bytes produced but not yet uploaded: inline when small, else staged in S3."""

    inline: bytes = b""
    staging_key: str | None = None
    length: int = 0


@dataclass
class ManifestProgress:
    """The manifest's own multipart upload, resumable across Finish calls: the lines of
    fragment `index` of pass `stage` (0: entry lines after the header, 1: skipped lines)
    are the next to go out; every committed part ends on a fragment boundary."""

    upload_id: str | None = None
    parts: list = field(default_factory=list)  # [[part number, ETag], ...]
    stage: int = 0
    index: int = 0
    done: bool = False


@dataclass(frozen=True)
class SegmentOf:
    """What makes a run a segment of a parallel run: its shard of the parent's listing
    (keys after `start_after`, up to and including `last_key`) and the part numbers of
    the archive's upload it writes, `first_part` to `last_part`, cut at `part_size`
    (plan.allot_parts: each segment uploads straight into the final upload)."""

    parent: str
    index: int
    start_after: str | None
    last_key: str | None
    first_part: int
    last_part: int
    part_size: int

    @classmethod
    def from_json(cls, data: dict) -> SegmentOf:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass
class AssemblyProgress:
    """A parallel run's assembly, resumable across calls. The segments' bytes are in the
    archive's upload already (each wrote its own part numbers); what is left is to take
    over their parts, directory records and manifest lines, rebased (segment `segment`'s
    fragments before `fragment` are taken), then to append the bytes of the segments
    too small for a part of their own (`relocated` of them are appended)."""

    segments: int = -1  # shards in the plan (-1: not read yet)
    segment: int = 0
    fragment: int = 0
    parts: int = 0  # the segments' parts taken over so far
    relocated: int = 0
    done: bool = False

    @classmethod
    def from_json(cls, data: dict) -> AssemblyProgress:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass
class PlanProgress:
    """A parallel run's shard planning (plan.py), resumable across calls. Listing resumes
    at `cursor`. The selected objects listed so far (`objects`, `bytes`) are cut into runs
    of consecutive objects, the only places a shard may end: those in the committed chunk
    objects named by `chunks` (plan.chunk_key), then `runs` (held here while they are
    few), then the open run (`open_*`, not closed yet). `shards` and `shard_bytes` say
    what plan.json holds once it is written."""

    cursor: Cursor = field(default_factory=Cursor)
    objects: int = 0
    bytes: int = 0
    runs: list = field(default_factory=list)  # [[last key, objects, bytes], ...]
    open_key: str | None = None
    open_objects: int = 0
    open_bytes: int = 0
    chunks: list = field(default_factory=list)  # tokens of committed chunks, in order
    commits: int = 0  # planning commits so far (the plan's "steps"; state.steps counts fragments)
    shards: int = 0
    shard_bytes: int = 0  # the target the plan used

    @classmethod
    def from_json(cls, data: dict) -> PlanProgress:
        return cls(**{**data, "cursor": Cursor(**data["cursor"])})


@dataclass
class RunState:
    run_id: str
    request: ArchiveRequest
    upload_id: str
    started_at: float
    version: int = 0
    phase: str = ARCHIVING
    next_part: int = 1
    uploaded: int = 0  # archive bytes in committed parts (= start of the next part)
    offset: int = 0  # archive bytes produced (uploaded + tail)
    entries: int = 0
    skipped: int = 0
    bytes_in: int = 0
    steps: int = 0
    cursor: Cursor = field(default_factory=Cursor)
    open_entry: OpenEntry | None = None
    tail: Tail = field(default_factory=Tail)
    cd_offset: int = 0  # finishing: where the central directory starts
    cd_commits_done: int = 0  # finishing: commits whose directory records are written
    cd_commits_total: int = 0  # finishing: commits that hold directory records (the archiving steps')
    etag: str = ""  # of the completed archive
    # Completion proof (finish.proven): the CRC-32 of every archive byte produced so far,
    # carried from step to step (bytes are produced strictly in order, so no combine is
    # needed); `dest_etag` is the ETag of the object the run may replace (overwrite),
    # checked at start and made the condition of Complete; `marked` says the upload was
    # created with a FULL_OBJECT CRC32 and the run id in its metadata (runs started before
    # these existed are proven by their multipart ETag alone).
    crc: int = 0
    finished_at: float = 0.0  # when the archive was completed (the result's duration)
    manifest: ManifestProgress = field(default_factory=ManifestProgress)
    # Why the run was suspended ("" while it is not): transient faults outlasted the
    # retries; everything is kept for a resume. Cleanup must leave such runs alone.
    suspended: str = ""
    dest_etag: str | None = None
    marked: bool = False
    segment: SegmentOf | None = None  # set for a segment run of a parallel run
    assembly: AssemblyProgress = field(default_factory=AssemblyProgress)
    plan: PlanProgress = field(default_factory=PlanProgress)  # a parallel run's shard planning

    @property
    def upload_key(self) -> str:
        """The key this run's multipart upload builds: the archive (a segment run writes
        its parts into its parent's upload of it)."""
        return self.request.dest_key

    @property
    def name_scope(self) -> str:
        """The run whose entry-name claims this run's share (store.claim_name): a segment
        claims in its parent's, so keys of two shards that map to one name both survive."""
        return self.segment.parent if self.segment is not None else self.run_id

    # -- serialization -------------------------------------------------------------

    def to_bytes(self) -> bytes:
        data = dataclasses.asdict(self)
        data["request"] = self.request.to_json()
        data["tail"]["inline"] = base64.b64encode(self.tail.inline).decode()
        return zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 6)

    @classmethod
    def from_bytes(cls, blob: bytes) -> RunState:
        data = json.loads(zlib.decompress(blob))
        data["request"] = ArchiveRequest.from_json(data["request"])
        data["cursor"] = Cursor(**data["cursor"])
        tail = data["tail"]
        data["tail"] = Tail(base64.b64decode(tail["inline"]), tail["staging_key"], tail["length"])
        data["manifest"] = ManifestProgress(**data.get("manifest", {}))
        if data.get("segment"):
            data["segment"] = SegmentOf.from_json(data["segment"])
        data["assembly"] = AssemblyProgress.from_json(data.get("assembly", {}))
        data["plan"] = PlanProgress.from_json(data["plan"]) if data.get("plan") else PlanProgress()
        entry = data.get("open_entry")
        if entry:
            data["open_entry"] = OpenEntry(
                listed=Listed(**entry["listed"]),
                meta=EntryMeta(**entry["meta"]),
                level=entry["level"],
                bytes_read=entry["bytes_read"],
                headers=entry["headers"],
                copy=CopyPlan(**entry["copy"]) if entry.get("copy") else None,
            )
        return cls(**data)


_FRAGMENT_MAGIC = b"BZF2"
_FRAGMENT_LENGTHS = struct.Struct("<QQQQ")


@dataclass
class Fragment:
    """What one committed step added: directory records, manifest lines, parts."""

    # bytearray while a step appends to them (hundreds of thousands of records), bytes when read
    central: bytes | bytearray = b""
    manifest: bytes | bytearray = b""  # entry lines
    skipped: bytes | bytearray = b""  # skipped-object lines
    parts: list = field(default_factory=list)  # [[part_number, etag, size, crc32], ...]

    def to_bytes(self) -> bytes:
        """Binary, so Finish reads a field without decoding the rest (base64 + JSON of
        whole fragments was most of its time: 82 µs per entry, 14 minutes at 10 M):
        magic, four lengths, then central, manifest, skipped and the parts as JSON."""
        parts = json.dumps(self.parts, separators=(",", ":")).encode()
        fields = (bytes(self.central), bytes(self.manifest), bytes(self.skipped), parts)
        header = _FRAGMENT_MAGIC + _FRAGMENT_LENGTHS.pack(*(len(f) for f in fields))
        return zlib.compress(header + b"".join(fields), 6)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Fragment:
        raw = zlib.decompress(blob)
        if not raw.startswith(_FRAGMENT_MAGIC):  # written before the binary layout
            data = json.loads(raw)
            central, manifest, skipped = (base64.b64decode(data[name]) for name in ("central", "manifest", "skipped"))
            return cls(central=central, manifest=manifest, skipped=skipped, parts=data["parts"])
        view, at = memoryview(raw), len(_FRAGMENT_MAGIC) + _FRAGMENT_LENGTHS.size
        pieces = []
        for length in _FRAGMENT_LENGTHS.unpack_from(raw, len(_FRAGMENT_MAGIC)):
            pieces.append(view[at : at + length])
            at += length
        return cls(
            central=bytes(pieces[0]),
            manifest=bytes(pieces[1]),
            skipped=bytes(pieces[2]),
            parts=json.loads(bytes(pieces[3])),
        )
