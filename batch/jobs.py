"""Batch transform jobs for uploaded review files: plain Python, no AWS calls.

One uploaded object version is one SageMaker transform job:

- which uploads are input (`skip_reason`, `input_format`): `.txt` (one review
  per line), `.jsonl` (one {"review": ...} object per line), `.csv` (one
  record per line, the review is the last field, no header); and which input
  SageMaker would refuse whatever is retried (`submission_problem`: a key too
  long for, or not allowed in, the job's S3 URIs), recorded as a Skipped
  status (`skipped_status_document`, `skipped_status_key`);
- the job's name (`job_name`), deterministic from bucket, key and object
  version (or ETag), so a duplicate delivery of the same upload names the same
  job and SageMaker refuses to start it twice;
- the CreateTransformJob request (`transform_job_request`): SplitType=Line,
  BatchStrategy=MultiRecord, AssembleWith=Line, and for .jsonl/.csv a
  DataProcessing join so each result line carries its input record (the
  request's shape, which the completion function, `critic score` and the
  local SageMaker read back, is contract/transformjob.py's);
- where SageMaker writes the result: `s3://<output bucket>/<key>.out`
  (`output_path`, `output_location`), and where the job's outcome is recorded:
  `<key>.status.json` beside it (`status_key`, `status_document`);
- what a finished job produced (`count_results`).
"""
from __future__ import annotations

import csv
import hashlib
import posixpath
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from batch.shards import STAGING_PREFIX, shard_input_prefix, shard_output_prefix
from contract import reviews
from contract.jsonreader import loads as read_json
from contract.media import CSV, JSONLINES, TEXT
from contract.locations import OUTPUT_SUFFIX, parse_s3_uri, s3_uri, transform_output_key
from contract.transformjob import S3_URI_MAX, S3_URI_PATTERN, TransformJobDescription, TransformJobRequest, input_uri


@dataclass(frozen=True)
class InputFormat:
    """How one kind of input file is sent to the model and written back."""

    suffix: str
    content_type: str  # TransformInput.ContentType
    accept: str  # TransformOutput.Accept
    join_input: bool  # DataProcessing.JoinSource=Input


FORMATS: dict[str, InputFormat] = {
    ".txt": InputFormat(".txt", TEXT, JSONLINES, join_input=False),
    ".jsonl": InputFormat(".jsonl", JSONLINES, JSONLINES, join_input=True),
    ".csv": InputFormat(".csv", CSV, CSV, join_input=True),
}
INPUT_SUFFIXES = tuple(FORMATS)  # also the S3 notification filters in template.yaml (case-sensitive)
STATUS_SUFFIX = ".status.json"

# Each mini-batch the job sends to the model is at most this big (a record
# bigger than this fails the job). 1 MB keeps one invocation of the CPU model
# to a few seconds (about a thousand reviews), far inside the 600 s
# invocation timeout, and is 4x the realtime API's body limit.
DEFAULT_MAX_PAYLOAD_MB = 1

# SageMaker's S3Uri limits (contract/transformjob.py) decide which keys can be
# submitted at all. It counts a URI's length in UTF-16 code units, as Java
# does (an emoji is 2; never fewer than Python's count, so nothing longer
# passes).
S3_KEY_MAX_BYTES = 1024  # S3's limit on an object key (UTF-8)

JOB_NAME_MAX = 63
JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
JOB_PREFIX_MAX = 24
DIGEST_CHARS = 16  # 64 bits of sha256: distinct per object version


def input_format(key: str) -> InputFormat | None:
    """The input format of an object key by its (case-sensitive) suffix, or
    None when the object is not input."""
    for suffix, fmt in FORMATS.items():
        if key.endswith(suffix):
            return fmt
    return None


def skip_reason(key: str, size: int | None) -> str | None:
    """Why an uploaded object is not a batch input, or None if it is one."""
    if key.endswith("/"):
        return "folder marker"
    if key.startswith(STAGING_PREFIX):
        return f"a shard of a larger upload (under {STAGING_PREFIX})"
    if input_format(key) is None:
        return f"not an input file (input files end in {', '.join(INPUT_SUFFIXES)})"
    if size == 0:
        return "empty object"
    return None


def _java_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def submission_problem(bucket: str, key: str, output_bucket: str) -> str | None:
    """Why SageMaker would refuse the transform job of this input object (its
    request is invalid however often it is sent), or None if it would not."""
    uris = (("TransformInput S3Uri", s3_uri(bucket, key), s3_uri(bucket), "key"),
            ("TransformOutput S3OutputPath", output_path(output_bucket, key), s3_uri(output_bucket), "folder path"))
    for field, uri, head, part in uris:
        length = _java_length(uri)
        if length > S3_URI_MAX:
            wide = " (a character outside the Basic Multilingual Plane, e.g. an emoji, counts as 2)" \
                if length != len(uri) else ""
            return (f"the key is too long for a SageMaker transform job: the job's {field} would be {length:,} "
                    f"characters and SageMaker accepts at most {S3_URI_MAX:,}; upload the file with a {part} of at "
                    f"most {S3_URI_MAX - _java_length(head):,} characters{wide}")
        if not S3_URI_PATTERN.fullmatch(uri):
            return ("the key contains a line break (or another line terminator), which SageMaker does not accept "
                    f"in a transform job's {field}; upload the file with a key without one")
    return None


def skipped_status_key(bucket: str, key: str, output_bucket: str) -> str | None:
    """Where the status of an upload that started no job is recorded: the
    `<key>.status.json` a job would have had, or None when that key would be
    over S3's limit."""
    _, result_key = output_location(s3_uri(bucket, key), output_path(output_bucket, key))
    status = status_key(result_key)
    return status if len(status.encode("utf-8")) <= S3_KEY_MAX_BYTES else None


def object_version(version_id: str | None, etag: str | None) -> str:
    """What tells one upload of a key from another: the version id in a
    versioned bucket, else the ETag (the content's hash)."""
    if version_id and version_id != "null":
        return version_id
    if etag:
        return etag.strip('"')
    raise ValueError("the object has neither a version id nor an ETag")


def job_name(prefix: str, bucket: str, key: str, version: str) -> str:
    """`<prefix>-<readable file name>-<digest>`: valid for SageMaker
    ([a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}), lowercase (SageMaker lowercases job
    ARNs), and the same for the same bucket, key and version."""
    if len(prefix) > JOB_PREFIX_MAX or not JOB_NAME_PATTERN.fullmatch(prefix) or prefix != prefix.lower():
        raise ValueError(
            f"invalid job name prefix {prefix!r}: lowercase letters, digits and dashes, at most {JOB_PREFIX_MAX}"
        )
    digest = hashlib.sha256("\n".join((bucket, key, version)).encode("utf-8")).hexdigest()[:DIGEST_CHARS]
    room = JOB_NAME_MAX - len(prefix) - len(digest) - 2
    stem = re.sub(r"[^a-z0-9]+", "-", _file_stem(key).lower())[:room].strip("-")
    return "-".join(part for part in (prefix, stem, digest) if part)


def _file_stem(key: str) -> str:
    name = posixpath.basename(key)
    fmt = input_format(name)
    return name[: -len(fmt.suffix)] if fmt else name


def is_stack_job(name: str, prefix: str) -> bool:
    return name.startswith(prefix + "-")


def output_path(output_bucket: str, key: str) -> str:
    """S3OutputPath for an input key: the key's folder in the output bucket, so
    that SageMaker's `<S3OutputPath>/<file name>.out` is `<key>.out`."""
    folder = posixpath.dirname(key).strip("/")  # an S3OutputPath has no empty segments
    return s3_uri(output_bucket, folder).rstrip("/")


def status_key(result_key: str) -> str:
    """The status record beside a job's result: `<key>.out` -> `<key>.status.json`."""
    base = result_key[: -len(OUTPUT_SUFFIX)] if result_key.endswith(OUTPUT_SUFFIX) else result_key
    return base + STATUS_SUFFIX


def output_location(input_uri: str, s3_output_path: str) -> tuple[str, str]:
    """(bucket, key) where SageMaker writes the result of a one-object job:
    S3OutputPath, then the input's file name, then ".out"."""
    _, key = parse_s3_uri(input_uri)
    bucket, prefix = parse_s3_uri(s3_output_path)
    return bucket, transform_output_key(key, key, prefix)  # the job's input prefix is the object's key


def transform_job_request(
    *,
    name: str,
    model_name: str,
    bucket: str,
    key: str,
    output_bucket: str,
    instance_type: str,
    instance_count: int,
    max_payload_mb: int = DEFAULT_MAX_PAYLOAD_MB,
    sharded: bool = False,
) -> TransformJobRequest:
    """The CreateTransformJob parameters that score one input object, or
    (`sharded`) its shards (batch/shards.py), which the job's instances share:
    batch transform gives each instance whole objects of its input prefix
    (CreateTransformJob has no S3DataDistributionType; objects are spread
    across instances by key, as ShardedByS3Key does elsewhere)."""
    fmt = input_format(key)
    if fmt is None:
        raise ValueError(f"not an input file: {key!r}")
    request: TransformJobRequest = {
        "TransformJobName": name,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": max_payload_mb,
        "TransformInput": {
            # S3Prefix with the full key: SageMaker reads every object whose
            # key starts with it, so the caller makes sure there is only one.
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": s3_uri(bucket, key)}},
            "ContentType": fmt.content_type,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": output_path(output_bucket, key),
            "Accept": fmt.accept,
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
    }
    if sharded:  # the prefix holds this upload's shards only
        request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] = s3_uri(bucket, shard_input_prefix(name))
        request["TransformOutput"]["S3OutputPath"] = s3_uri(output_bucket, shard_output_prefix(name))
    if fmt.join_input:
        request["DataProcessing"] = {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$"}
    return request


# --------------------------------------------------------------------------- #
# A finished job: what it produced, and the record of its outcome.


@dataclass
class Counts:
    records: int = 0
    scored: int = 0
    errors: int = 0


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines of a stream of byte chunks, split on "\\n" only (a "\\r" before it
    is dropped); the newline ending the last line does not start another."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if pending:
        yield pending[:-1] if pending.endswith(b"\r") else pending


def _scored_json(line: bytes, joined: bool) -> bool:
    value = read_json(line)  # joined lines carry the user's input objects
    if joined:
        value = value.get("SageMakerOutput") if isinstance(value, dict) else None
    return reviews.is_scored(value)


def _scored_csv(line: bytes) -> bool:
    # A joined row: the input's fields, then the result's columns.
    return reviews.is_scored(reviews.csv_result(next(csv.reader([line.decode("utf-8")]), [])))


def count_results(lines: Iterable[bytes], fmt: InputFormat) -> Counts:
    """Count the result lines of a job's output: one per input record, each
    either a score or a per-record error. A line that cannot be read counts
    as an error."""
    counts = Counts()
    for line in lines:
        counts.records += 1
        try:
            scored = _scored_csv(line) if fmt.accept == CSV else _scored_json(line, fmt.join_input)
        except (ValueError, UnicodeDecodeError, csv.Error):
            scored = False
        if scored:
            counts.scored += 1
        else:
            counts.errors += 1
    return counts


FAILURE_REASON_MAX = 1024  # DescribeTransformJob's FailureReason is at most 1,024 characters
_TRACEBACK = "Traceback (most recent call last)"


def readable_reason(reason: str | None) -> str | None:
    """A failure reason as users read it: its first line, and never a Python
    traceback. SageMaker's reasons are one line ("ClientError: ..."), but
    one that quotes a model container's answer can carry the traceback the
    inference toolkit appends to an error message."""
    if not reason:
        return None
    head = reason.split(_TRACEBACK, 1)[0]
    line = next((line.strip() for line in head.splitlines() if line.strip()), "")
    if not line:
        return "the job failed; its logs are in CloudWatch Logs (/aws/sagemaker/TransformJobs)"
    return line[:FAILURE_REASON_MAX]


def parse_time(value: Any) -> datetime | None:
    """A timestamp from an EventBridge SageMaker event: epoch milliseconds (a
    number or a string of digits) or ISO 8601."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
        number = float(value)
        return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, tz=timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def skipped_status_document(bucket: str, key: str, reason: str, *, recorded_at: datetime) -> dict[str, Any]:
    """The `<key>.status.json` record of an input upload that started no job
    ("Skipped"), with the same fields as a finished job's."""
    return {
        "status": "Skipped",
        "job": None,
        "input": s3_uri(bucket, key),
        "output": None,
        "counts": None,
        "failureReason": reason,
        "createdAt": None,
        "startedAt": None,
        "endedAt": None,
        "durationSeconds": None,
        "recordedAt": _iso(recorded_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if moment else None


def status_document(
    detail: TransformJobDescription,
    *,
    output_uri: str | None,
    counts: Counts | None,
    recorded_at: datetime,
    upload_uri: str | None = None,
    shards: int | None = None,
) -> dict[str, Any]:
    """The `<key>.status.json` record of a finished job, from the detail of its
    "SageMaker Transform Job State Change" event. A sharded upload's job reads
    its shards: `upload_uri` is then the upload, and `shards` how many."""
    created = parse_time(detail.get("CreationTime"))
    started = parse_time(detail.get("TransformStartTime"))
    ended = parse_time(detail.get("TransformEndTime"))
    began = started or created
    return {
        "status": detail.get("TransformJobStatus"),
        "job": detail.get("TransformJobName"),
        "input": upload_uri or input_uri(detail),
        "output": output_uri,
        "counts": asdict(counts) if counts else None,
        "failureReason": readable_reason(detail.get("FailureReason")),
        "createdAt": _iso(created),
        "startedAt": _iso(started),
        "endedAt": _iso(ended),
        "durationSeconds": round((ended - began).total_seconds(), 3) if ended and began else None,
        "recordedAt": _iso(recorded_at),
    } | ({"shards": shards} if shards else {})
