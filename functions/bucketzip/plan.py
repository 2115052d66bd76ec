"""The shard plan of a parallel run (issue 10): which consecutive keys each segment run
archives, balanced by bytes.

Planning lists the source once, with the single-worker listing (listing.iter_objects: the
same filters, own keys excluded, the same exact cursor), in as many calls as it takes: a
10 M-object bucket is 10,000 ListObjectsV2 pages, never required to fit in one call. What
it keeps is compact. The selected objects are cut, in key order, into *runs* of
consecutive objects, and a shard may end only where a run ends: a run closes once its
bytes reach the granule (a small fraction of any target the plan can pick), and an object
of at least the granule is a run of its own (split points before and after it). The cut
depends on the listed objects alone, not on pages, deadlines or where calls stopped (the
open run is carried in the state), so the same listing and settings give the same runs,
and so the same plan.

Runs are committed with the store's fencing: in the state while they are few
(INLINE_RUN_BYTES), then moved into a chunk object under the run's staging prefix, written
under a fresh token before the commit that names it. A planner killed anywhere leaves at
most a chunk no state names (swept with the staging prefix); a zombie planner cannot
commit (StaleState) and deletes its chunk. Once the end of listing is committed, the runs
are grouped into shards (`group`), plan.json is written, and the run moves to SEGMENTS:
every call that gets there computes the same plan from the same committed state. Each
shard also gets its range of the archive upload's part numbers (allot_parts): segments
upload straight into the archive, and assembly only takes their records over.

While it lists, the planner also claims the entry names of keys whose name changes
(claims.py), in key order as one worker does: keys of different shards that map to one
name then get one worker's names, whatever order their segments run in.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .claims import claim_entry_name
from .errors import ArchiveTooLarge, IntegrityError, RunNotFound, StaleState
from .limits import MAX_DELETE_KEYS, MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, KiB, MiB
from .listing import iter_objects
from .parts import FIRST_TAIL_PART
from .s3errors import AWS_ERRORS, error_code, translate
from .segments import staging_prefix
from .sizes import format_size
from .state import PLANNING, SEGMENTS, PlanProgress, RunState

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

    from .deadline import Deadline
    from .results import Progress
    from .store import StateStore

# -- the shard target ------------------------------------------------------------------
# target = request.shard_bytes, or max(MIN_SHARD_BYTES, ceil(total / (workers * SHARDS_PER_WORKER)));
# then at least ceil(total / MAX_SHARDS), raised further while grouping gives more than
# MAX_SHARDS shards (choose_target).
#
# Two shards per worker: the Distributed Map hands the next shard to whichever child is
# free, so a shard that runs slow (deflate, a big object) is evened out by the others.
SHARDS_PER_WORKER = 2
# Every shard costs a Map child and three Lambda calls or more, and its segment's part
# size grows with its bytes (allot_parts): at 256 MiB those costs stay small beside the
# bytes a shard moves.
MIN_SHARD_BYTES = 256 * MiB
# Each segment writes its own range of the final upload's limits.MAX_PARTS numbers; a
# quarter of the numbers as shards leaves each range several parts. It also keeps
# plan.json (an item of <= 2.3 KB per shard) and the Map run small.
MAX_SHARDS = MAX_PARTS // 4

# -- part ranges -------------------------------------------------------------------------
# The numbers before parts.FIRST_TAIL_PART are the segments', in shard order, each range in
# proportion to the shard's bytes (at least one number).
# What a shard's archive bytes may come to, beyond its listed bytes: per entry a local
# header (30 bytes, the name: a key is at most 1,024 bytes, its zip64 and time extras)
# and a data descriptor (24), rounded up; deflate of incompressible bytes (stored blocks:
# 5 bytes per 64 KiB) is far below 1/64 of them.
ENTRY_BOUND_BYTES = 4 * KiB
EXPANSION_DIVISOR = 64
# A range holds twice its shard's bound: objects rewritten larger between planning and the
# segment's listing still fit (a shard that outgrows it fails with ArchiveTooLarge).
PART_SLACK = 2

# -- runs --------------------------------------------------------------------------------
# A run's bytes reach at most 1/RUN_SLACK of any target the plan can pick (past the
# granule only by its last object, or it is one object): grouping ends a shard at the run
# boundary nearest its target, so shards land within target +- target / (2 * RUN_SLACK).
RUN_SLACK = 8
# Runs held in the state item (encoded bytes, about key + 24 each) before they move to a
# chunk object: the state stays far below DynamoDB's item limit (limits.MAX_ITEM_BYTES).
INLINE_RUN_BYTES = 64 * KiB
# Grouping reads the chunks twice or more (choose_target's counting passes, then the
# plan): the compressed chunks are kept in memory up to this, and read again beyond it.
CACHED_CHUNK_BYTES = 64 * MiB

Run = tuple[str, int, int]  # (last key, objects, bytes)


@dataclass(frozen=True)
class Shard:
    index: int
    start_after: str | None  # the segment lists keys after this one (None: from the prefix start)
    last_key: str  # ... up to and including this one
    objects: int  # selected objects in it, as planned
    bytes: int  # their listed bytes
    # The part numbers of the archive's upload its segment writes, at part_size (allot_parts).
    first_part: int = 0
    last_part: int = 0
    part_size: int = 0

    def to_item(self, run_id: str) -> dict:
        """The shard as one plan.json item: a Distributed Map child's input."""
        return {"run_id": run_id, **dataclasses.asdict(self)}

    @classmethod
    def from_item(cls, item: dict) -> Shard:
        return cls(**{name: item[name] for name in cls.__dataclass_fields__})


def plan_key(run_id: str) -> str:
    return f"{staging_prefix(run_id)}plan.json"


def chunk_key(run_id: str, seq: int, token: str) -> str:
    return f"{staging_prefix(run_id)}plan-runs/{seq:06d}-{token}"


# -- pure parts: cutting runs, grouping them -----------------------------------------------


def granule(listed_bytes: int, floor: int) -> int:
    """Bytes at which a run closes, after `listed_bytes` selected bytes listed. `floor` is
    the least target the plan can pick (request.shard_bytes or MIN_SHARD_BYTES); the target
    is also at least total / MAX_SHARDS >= listed_bytes / MAX_SHARDS, so the granule grows
    with the listing: a run count logarithmic in the bytes, however small the objects."""
    return max(1, floor // RUN_SLACK, listed_bytes // (RUN_SLACK * MAX_SHARDS))


def add_object(plan: PlanProgress, key: str, size: int, floor: int) -> None:
    """Cut the next selected object (in key order) into the plan's runs."""
    limit = granule(plan.bytes, floor)
    plan.objects += 1
    plan.bytes += size
    if size >= limit:  # a run of its own: split points before and after it
        close_run(plan)
        plan.runs.append([key, 1, size])
        return
    plan.open_key = key
    plan.open_objects += 1
    plan.open_bytes += size
    if plan.open_bytes >= limit:
        close_run(plan)


def close_run(plan: PlanProgress) -> None:
    if plan.open_objects:
        plan.runs.append([plan.open_key, plan.open_objects, plan.open_bytes])
    plan.open_key, plan.open_objects, plan.open_bytes = None, 0, 0


def group(runs: Iterable[Run], target: int) -> Iterator[Shard]:
    """Consecutive runs into shards of about `target` bytes, in key order: a shard ends
    at the run boundary nearest its target (before a run that would pass the target by
    more than half of itself); a run bigger than the target (one big object) ends the
    shard before it, unless that shard is under half the target: then it joins the big
    run's (a segment under 5 MiB cannot have a part of its own, and is moved to the
    archive's end: parallel.py). Zero runs, zero shards."""
    index, start_after = 0, None
    last_key: str | None = None
    objects = size = 0
    for key, count, nbytes in runs:
        big = nbytes > target
        if objects and ((big and 2 * size >= target) or (not big and 2 * size + nbytes > 2 * target)):
            yield Shard(index, start_after, last_key, objects, size)  # type: ignore[arg-type]
            index, start_after, objects, size = index + 1, last_key, 0, 0
        last_key, objects, size = key, objects + count, size + nbytes
    if objects:
        yield Shard(index, start_after, last_key, objects, size)  # type: ignore[arg-type]


def shard_bound(shard: Shard) -> int:
    """The most archive bytes the shard's segment may write, its objects as listed."""
    return shard.bytes + shard.bytes // EXPANSION_DIVISOR + shard.objects * ENTRY_BOUND_BYTES


def allot_parts(shards: list[Shard], start_size: int) -> list[Shard]:
    """Give each shard its range of part numbers below FIRST_TAIL_PART, in shard order,
    and the part size that holds PART_SLACK times its bound in that range: at least
    `start_size` (the request's part size), at most 5 GiB - 5 MiB (a segment's last part
    takes up to 5 MiB more: sink.write_last_part). Pure and deterministic."""
    numbers = FIRST_TAIL_PART - 1
    bounds = [shard_bound(shard) for shard in shards]
    total = sum(bounds) or 1
    spare = numbers - len(shards)
    if spare < 0:
        raise ArchiveTooLarge(f"{len(shards)} shards need more part numbers than the upload's {numbers}")
    most = MAX_PART_SIZE - MIN_PART_SIZE
    out, first = [], 1
    for shard, bound in zip(shards, bounds, strict=True):
        count = 1 + spare * bound // total
        size = min(most, max(start_size, -(-PART_SLACK * bound // count)))
        size = min(most, -(-size // MiB) * MiB)  # whole MiB: readable in logs
        if count * size < bound:
            raise ArchiveTooLarge(
                f"shard {shard.index} ({shard.objects} objects, {format_size(shard.bytes)}) needs more than its "
                f"{count} parts of at most {format_size(most)}; ask for more shards (shard_bytes) or fewer objects"
            )
        out.append(dataclasses.replace(shard, first_part=first, last_part=first + count - 1, part_size=size))
        first += count
    return out


def choose_target(runs: Callable[[], Iterable[Run]], total: int, workers: int, shard_bytes: int | None) -> int:
    """The shard target (formula at the top of this module). `runs()` gives the runs again
    for each counting pass; one pass shows the cap holds, unless shard_bytes is tiny for
    the bucket or big objects crowd it (each alone, and the shard before each ends early)."""
    wanted = shard_bytes or max(MIN_SHARD_BYTES, -(-total // (workers * SHARDS_PER_WORKER)))
    target = max(1, wanted, -(-total // MAX_SHARDS))
    while (count := sum(1 for _ in group(runs(), target))) > MAX_SHARDS:
        # At least x1.5 a pass: a few passes, at the price of up to a third fewer shards.
        target = max(target * 3 // 2 + 1, -(-target * count // MAX_SHARDS))
    return target


# -- the engine verb and the plan's readers ------------------------------------------------


def plan_step(s3: S3Client, store: StateStore, run_id: str, deadline: Deadline) -> Progress:
    """List, cut and commit until the deadline; once listing has ended (committed), group
    the runs into shards, write plan.json and move the run to SEGMENTS (done=True, with
    the shard count). A run past planning answers its progress."""
    state = store.load(run_id)
    if state.phase != PLANNING:
        return _progress(state)
    if not state.plan.cursor.exhausted:
        _list(s3, store, state, deadline)
        if not state.plan.cursor.exhausted or deadline.expired():
            return _progress(state)  # grouping is the next call's (it always makes progress)
    _write_plan(s3, store, state)
    return _progress(state)


def load_plan(s3: S3Client, state: RunState) -> list[Shard]:
    """The shards of a planned run (phase SEGMENTS or later), from its plan.json."""
    bucket, key = state.request.dest_bucket, plan_key(state.run_id)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except AWS_ERRORS as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            raise IntegrityError(f"run {state.run_id}: its shard plan s3://{bucket}/{key} is missing") from None
        raise translate(exc, bucket=bucket, role="destination", action="get object", key=key) from None
    shards = [Shard.from_item(item) for item in json.loads(body) if item["run_id"] == state.run_id]
    if len(shards) != state.plan.shards or [s.index for s in shards] != list(range(len(shards))):
        raise IntegrityError(
            f"run {state.run_id}: s3://{bucket}/{key} holds {len(shards)} shards of this run, "
            f"its state says {state.plan.shards}"
        )
    return shards


def _progress(state: RunState) -> Progress:
    from .engine import progress_of  # imported here: the engine's verbs may import this module

    return progress_of(state)


def _list(s3: S3Client, store: StateStore, state: RunState, deadline: Deadline) -> None:
    """Cut listed objects into runs from the committed cursor on, until the listing ends
    or, at the end of a page, the deadline (a page is read once and used whole: its keys
    cost microseconds, its request tens of milliseconds; and every call makes progress);
    commit. Runs beyond INLINE_RUN_BYTES go to a chunk object, committed on the way.
    Keys whose entry name changes claim their names here, in key order (claims.py): the
    segments then name them as one worker would, whatever order they run in."""
    request, plan = state.request, state.plan
    floor = request.shard_bytes or MIN_SHARD_BYTES
    inline = sum(_encoded(run) for run in plan.runs)
    uncommitted = False
    for listed, cursor in iter_objects(s3, request, plan.cursor, page_ends=True):
        held, claimed = len(plan.runs), False
        if listed is not None:
            add_object(plan, listed.key, listed.size, floor)
            # In key order, as one worker's writer claims; a name that does not change
            # comes back at once (no call), and a changed one never equals its key.
            name = claim_entry_name(s3, store, request, state.name_scope, listed.key, listed.size)
            claimed = name != listed.key
        plan.cursor, uncommitted = cursor, True
        if cursor.exhausted:
            close_run(plan)
        inline += sum(_encoded(run) for run in plan.runs[held:])
        if cursor.exhausted:
            break
        if inline >= INLINE_RUN_BYTES:
            _commit_chunk(s3, store, state)
            inline, uncommitted = 0, False
        if (listed is None or claimed) and deadline.expired():  # a page end, or after a claim's calls
            break
    if uncommitted:
        plan.commits += 1
        _commit(s3, store, state, None)


def _encoded(run: list) -> int:
    return len(run[0].encode()) + 24


def _commit_chunk(s3: S3Client, store: StateStore, state: RunState) -> None:
    plan, bucket = state.plan, state.request.dest_bucket
    token = uuid.uuid4().hex[:16]
    key = chunk_key(state.run_id, len(plan.chunks), token)
    body = zlib.compress(json.dumps(plan.runs, separators=(",", ":")).encode(), 6)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=bucket, role="destination", action="put object", key=key) from None
    plan.chunks.append(token)
    plan.runs = []
    plan.commits += 1
    _commit(s3, store, state, key)


def _commit(s3: S3Client, store: StateStore, state: RunState, written: str | None) -> None:
    """Commit `state` over the version it was loaded at; a zombie (another call committed
    first, or the run was aborted) deletes the object it wrote, which no state names."""
    try:
        store.commit(state, state.version, None, 0)
    except (StaleState, RunNotFound):
        if written:
            _delete(s3, state, [written])
        raise


def _delete(s3: S3Client, state: RunState, keys: list[str]) -> None:
    """Best effort: the run's finish and abort sweep its staging prefix anyway."""
    try:
        for i in range(0, len(keys), MAX_DELETE_KEYS):
            objects: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys[i : i + MAX_DELETE_KEYS]]
            s3.delete_objects(Bucket=state.request.dest_bucket, Delete={"Objects": objects, "Quiet": True})
    except AWS_ERRORS:
        pass


def _runs(s3: S3Client, store: StateStore, state: RunState, cache: dict[str, bytes]) -> Iterator[Run]:
    """Every closed run of the plan in key order: the chunks', then those in the state.
    Chunks read are kept in `cache` (compressed) up to CACHED_CHUNK_BYTES for the next pass."""
    bucket = state.request.dest_bucket
    for seq, token in enumerate(state.plan.chunks):
        key = chunk_key(state.run_id, seq, token)
        try:
            body = cache.get(key)
            if body is None:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                if sum(map(len, cache.values())) + len(body) <= CACHED_CHUNK_BYTES:
                    cache[key] = body
        except AWS_ERRORS as exc:
            if error_code(exc) in ("NoSuchKey", "404") and store.current_version(state.run_id) != state.version:
                # Another call wrote the plan and deleted the chunks (or the run is gone).
                raise StaleState(f"run {state.run_id}: another call planned it first") from None
            raise translate(exc, bucket=bucket, role="destination", action="get object", key=key) from None
        for key_, count, nbytes in json.loads(zlib.decompress(body)):
            yield key_, count, nbytes
    for key_, count, nbytes in state.plan.runs:
        yield key_, count, nbytes


def _write_plan(s3: S3Client, store: StateStore, state: RunState) -> None:
    """Group the committed runs into shards, write plan.json, commit phase SEGMENTS.
    plan.json depends only on the committed state, so a racing call writes the same."""
    request, plan = state.request, state.plan
    cache: dict[str, bytes] = {}
    target = choose_target(lambda: _runs(s3, store, state, cache), plan.bytes, request.workers, request.shard_bytes)
    shards = allot_parts(list(group(_runs(s3, store, state, cache), target)), request.part_size)
    bucket, key = request.dest_bucket, plan_key(state.run_id)
    body = json.dumps([shard.to_item(state.run_id) for shard in shards], separators=(",", ":")).encode()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except AWS_ERRORS as exc:
        raise translate(exc, bucket=bucket, role="destination", action="put object", key=key) from None
    chunks = [chunk_key(state.run_id, seq, token) for seq, token in enumerate(plan.chunks)]
    plan.shards, plan.shard_bytes, plan.chunks, plan.runs = len(shards), target, [], []
    plan.commits += 1
    state.phase = SEGMENTS
    try:
        store.commit(state, state.version, None, 0)
    except RunNotFound:  # aborted meanwhile: its sweep may have run before our put
        _delete(s3, state, [key])
        raise
    _delete(s3, state, chunks)  # the plan is in plan.json now
