"""One big upload spread across a transform job's instances: plain Python
over an object store (no AWS imports; batch/s3store.py is the S3 one).

SageMaker batch transform hands whole S3 objects to its instances (one
instance may read input1.csv and another input2.csv), so one uploaded file
is read by one instance however many the job has. A file above the stack's
threshold is therefore split into line-aligned shards under
`<STAGING_PREFIX><job name>/in/`, and one job reads that prefix with all its
instances; when it completes, the shards' outputs (`.../out/<shard>.out`)
become the one `<key>.out` in input order.

Both steps copy bytes inside S3 and never stream the file through the
function:

- Splitting (`split`) reads a small window after each nominal cut to find the
  next newline (ranged reads), then writes each shard as a multipart upload
  of one part copied from the upload's byte range (UploadPartCopy). Its cost
  is a few requests per shard whatever the file size. A shard ends just after
  a "\\n", so CRLF pairs, multi-byte characters and the final line (with or
  without its newline) stay whole, and the shards, concatenated, are the file
  byte for byte. No shard is empty.
- Assembling (`assembly_parts`) turns the ordered outputs into the parts of
  one multipart upload: an output of at least 5 MiB is copied (UploadPartCopy,
  in pieces of at most 5 GiB); smaller ones (S3 wants every part but the
  last to be >= 5 MiB) are read and sent as bytes, together with the head of
  the next output when that leaves at least 5 MiB to copy. So at most about
  10 MiB is ever held, and only small outputs pass through the function.
  The `.out` exists only once the upload completes: a failure aborts it.

`.csv` input has no header (batch/jobs.py: every line is a record), so
there is none to repeat in each shard: the first line goes to the first
shard like any other. Repeating one would also cost a bytes part before
each copied shard, which S3 accepts only when it is >= 5 MiB.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

from contract.locations import s3_uri, transform_output_key

MIB = 1024 * 1024
STAGING_PREFIX = "critic-shards/"  # in both buckets; template.yaml's lifecycle rules expire it
MIN_PART = 5 * MIB  # S3: every part of a multipart upload but the last
MAX_PART = 5 * 1024 * MIB  # S3: the largest part (and the largest UploadPartCopy range)
MAX_PARTS = 10_000  # S3: parts of one multipart upload
SHARDS_PER_INSTANCE = 4  # instances that finish early take the next shard's share of the work
MAX_SHARDS = 1_000  # at 5 GiB each, S3's largest object (5 TB)
DEFAULT_SHARD_ABOVE_MB = 256  # template.yaml's ShardAboveMB
SEARCH_WINDOW = 64 * 1024  # bytes read at a time while looking for the newline after a cut
# Time the function needs after the split (the plan's PutObject, CreateTransformJob, or a Skipped status
# and the clean-up): a few requests of tens of milliseconds, each allowed a 5 s connect and some retries.
SPLIT_RESERVE_SECONDS = 10.0


class ObjectStore(Protocol):
    """What splitting and assembling need of S3."""

    def read_range(self, bucket: str, key: str, start: int, end: int, version: str | None = None) -> bytes:
        """Bytes [start, end) of an object (of that version)."""

    def write_parts(self, bucket: str, key: str, parts: Iterable["Part"]) -> None:
        """One multipart upload of these parts, in order; aborted if anything fails."""

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> None: ...

    def size(self, bucket: str, key: str) -> int | None:
        """The object's size in bytes, or None if there is no such object."""

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""

    def delete(self, bucket: str, keys: list[str]) -> None: ...


@dataclass(frozen=True)
class Source:
    """A byte range of an object to copy into a part."""

    bucket: str
    key: str
    start: int
    end: int  # exclusive
    version: str | None = None


@dataclass(frozen=True)
class Part:
    """One part of a multipart upload: a copy of `source`, or `data`."""

    source: Source | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.source.end - self.source.start


class LineTooLong(Exception):
    """No newline within a record's largest size after a cut: the job would fail on that record."""


class TooBig(Exception):
    """More shards than a job takes."""


class OutOfTime(Exception):
    """The split would not end before the function's deadline: stopped
    between two shards, with what it had done and the rate it saw."""

    def __init__(self, written: list[str], shards: int, copied: int, size: int, seconds: float,
                 budget_seconds: float):
        self.written, self.shards, self.copied, self.size = written, shards, copied, size
        self.seconds, self.budget_seconds = seconds, budget_seconds
        rate = copied / seconds if copied and seconds > 0 else None
        # What this function could split at that rate in the time it has (None: no shard finished to tell).
        self.fits_bytes = int(rate * budget_seconds) if rate else None
        super().__init__(
            f"splitting needs more time than the function has: {len(written)} of {shards} shards "
            f"({copied / MIB:,.1f} of {size / MIB:,.1f} MiB) copied in {seconds:.1f} s"
            + (f", about {rate / MIB:,.1f} MiB/s, so about {self.fits_bytes / MIB:,.0f} MiB fit in its "
               f"{budget_seconds:.0f} s" if rate else "")
            + ". Upload the reviews as smaller files, or raise the batch function's Timeout (at most 900 s)")


def should_shard(size: int | None, above_bytes: int, instances: int) -> bool:
    """Whether an upload is split: larger than the threshold, and a job with
    more than one instance to share it (one instance reads it whole anyway)."""
    return size is not None and size > above_bytes and instances > 1


def staging_folder(job: str) -> str:
    return f"{STAGING_PREFIX}{job}/"


def is_staging_key(key: str) -> bool:
    return key.startswith(STAGING_PREFIX)


def shard_input_prefix(job: str) -> str:
    """The prefix the job reads: this upload's shards and nothing else."""
    return f"{staging_folder(job)}in/"


def shard_output_prefix(job: str) -> str:
    return f"{staging_folder(job)}out"


def plan_key(job: str) -> str:
    """Where the plan is kept (output bucket): it is not under the job's input prefix."""
    return f"{staging_folder(job)}plan.json"


def shard_bytes(size: int, instances: int, max_shards: int = MAX_SHARDS, max_shard: int = MAX_PART,
                headroom: int = 0) -> int:
    """The nominal size of a shard: SHARDS_PER_INSTANCE shards per instance,
    none larger than one copied part once its last line (up to `headroom`
    bytes past the nominal cut) is in. TooBig when that needs more than
    max_shards shards."""
    target = min(max(1, math.ceil(size / (instances * SHARDS_PER_INSTANCE))), max_shard - headroom)
    if target < 1 or math.ceil(size / target) > max_shards:
        raise TooBig(f"the file is {size:,} bytes; split into at most {max_shards:,} shards of at most "
                     f"{max_shard:,} bytes it holds at most {max_shards * (max_shard - headroom):,}")
    return target


def cut_points(read: Callable[[int, int], bytes], size: int, nominal: int, max_line: int,
               window: int = SEARCH_WINDOW) -> list[int]:
    """Offsets where shards start: 0, then for each shard the first position
    at or after `nominal` bytes into it that follows a "\\n" (a shard ends with
    its line's newline). `read(start, end)` reads bytes [start, end).
    LineTooLong when a line longer than `max_line` bytes spans a cut."""
    cuts = [0]
    goal = nominal
    while goal < size:
        position = goal - 1  # the byte that would end the shard
        while True:
            chunk = read(position, min(position + window, size))
            found = chunk.find(b"\n")
            if found >= 0:
                cut = position + found + 1
                break
            position += len(chunk)
            if position >= size:  # the last line has no newline: it ends the last shard
                return cuts
            if position - goal > max_line:
                raise LineTooLong(f"no line break within {max_line:,} bytes after byte {goal:,}: a record "
                                  f"that long is larger than the job's MaxPayloadInMB and would fail the job")
        if cut >= size:
            break
        cuts.append(cut)
        goal = cut + nominal
    return cuts


@dataclass
class Plan:
    """What the completion function needs to assemble a sharded upload's
    output: kept as JSON at plan_key(job) in the output bucket."""

    job: str
    bucket: str  # the upload
    key: str
    version: str | None
    size: int
    staging_bucket: str  # where the shards are (the input bucket)
    shards: list[list[int]] = field(default_factory=list)  # [start, end) of each shard in the upload

    def shard_key(self, index: int) -> str:
        return f"{shard_input_prefix(self.job)}{index:05d}"

    def shard_keys(self) -> list[str]:
        return [self.shard_key(index) for index in range(len(self.shards))]

    def output_keys(self) -> list[str]:
        """Where the job writes each shard's output, in input order."""
        prefix = shard_input_prefix(self.job)
        return [transform_output_key(key, prefix, shard_output_prefix(self.job)) for key in self.shard_keys()]

    @property
    def upload_uri(self) -> str:
        return s3_uri(self.bucket, self.key)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, body: bytes) -> "Plan":
        return cls(**json.loads(body))


def plan(store: ObjectStore, *, job: str, bucket: str, key: str, version: str | None, size: int,
         instances: int, max_line: int, window: int = SEARCH_WINDOW, max_shards: int = MAX_SHARDS,
         max_shard: int = MAX_PART) -> Plan:
    """Where to cut the upload (LineTooLong, TooBig when it cannot be)."""
    nominal = shard_bytes(size, instances, max_shards, max_shard, headroom=max_line + 1)
    cuts = cut_points(lambda start, end: store.read_range(bucket, key, start, end, version), size, nominal,
                      max_line, window)
    bounds = [[start, end] for start, end in zip(cuts, [*cuts[1:], size])]
    if any(end - start > max_shard for start, end in bounds):
        raise TooBig(f"a shard would be larger than {max_shard:,} bytes (the largest part S3 copies)")
    return Plan(job=job, bucket=bucket, key=key, version=version, size=size, staging_bucket=bucket,
                shards=bounds)


def split(store: ObjectStore, shard_plan: Plan, seconds_left: Callable[[], float] = lambda: math.inf,
          reserve: float = SPLIT_RESERVE_SECONDS, clock: Callable[[], float] = time.monotonic) -> list[str]:
    """Write the plan's shards (each a one-part copy of its byte range); the shard keys.

    A copy in flight cannot be stopped, so before each shard: if the time
    left (`seconds_left`, the function's) would not hold that shard at the
    rate seen so far, twice over, plus `reserve`, stop with OutOfTime rather
    than be killed mid-way (which leaves no status, only retries)."""
    keys = shard_plan.shard_keys()
    started, copied, budget = clock(), 0, seconds_left() - reserve
    for index, (key, (start, end)) in enumerate(zip(keys, shard_plan.shards)):
        elapsed = clock() - started
        needed = 2 * (end - start) * elapsed / copied if copied else 0.0
        if seconds_left() - reserve < needed or seconds_left() < reserve:
            raise OutOfTime(keys[:index], len(keys), copied, shard_plan.size, elapsed, budget)
        source = Source(shard_plan.bucket, shard_plan.key, start, end, shard_plan.version)
        store.write_parts(shard_plan.staging_bucket, key, [Part(source=source)])
        copied += end - start
    return keys


def assembly_parts(sources: Iterable[Source], read: Callable[[Source], bytes],
                   min_part: int = MIN_PART, max_part: int = MAX_PART) -> Iterator[Part]:
    """The parts of one object that is `sources` concatenated, in order: every
    part but the last at least `min_part`, none over `max_part`; a range of at
    least min_part is copied, anything smaller is read (`read`) and sent."""
    pending = bytearray()
    count = 0

    def emit(part: Part) -> Part:
        nonlocal count
        count += 1
        if count > MAX_PARTS:
            raise TooBig(f"the output would need more than {MAX_PARTS:,} parts")
        return part

    for source in sources:
        start, end = source.start, source.end
        if start >= end:
            continue
        if pending:
            need = min_part - len(pending)
            if end - start - need >= min_part:  # top up the pending bytes; copy the rest
                pending += read(Source(source.bucket, source.key, start, start + need, source.version))
                yield emit(Part(data=bytes(pending)))
                pending.clear()
                start += need
            else:
                pending += read(source)
                if len(pending) >= min_part:
                    yield emit(Part(data=bytes(pending)))
                    pending.clear()
                continue
        if end - start < min_part:
            pending += read(Source(source.bucket, source.key, start, end, source.version))
            continue
        while start < end:
            remaining = end - start
            length = remaining if remaining <= max_part else min(max_part, remaining - min_part)
            yield emit(Part(source=Source(source.bucket, source.key, start, start + length, source.version)))
            start += length
    if pending:
        yield emit(Part(data=bytes(pending)))


def assemble(store: ObjectStore, sources: list[Source], bucket: str, key: str) -> None:
    """Write the sources, concatenated, as bucket/key (one multipart upload)."""
    store.write_parts(bucket, key, assembly_parts(
        sources, lambda s: store.read_range(s.bucket, s.key, s.start, s.end, s.version)))


def staging_keys(shard_plan: Plan) -> tuple[list[str], list[str]]:
    """(input bucket keys, output bucket keys) of the upload's staging objects;
    the plan itself last, so that a retried completion still finds it."""
    return shard_plan.shard_keys(), [*shard_plan.output_keys(), plan_key(shard_plan.job)]
