"""Files uploaded from the web page: plain Python, no AWS calls.

The page never holds AWS credentials. It asks the API for an upload
(`read_request`: a file name and a size), gets a fresh unguessable id
(`new_upload_id`, 128 random bits) and a presigned S3 POST for one key,
`uploads/<id>/<file name>` in the input bucket (`upload_key`), limited by its
policy to that key, to the declared size and to a content type
(`post_fields`, `post_conditions`), for LINK_SECONDS. The upload then goes the
way of every other: S3 -> UploadsQueue -> BatchFunction -> a transform job
-> `<key>.out` and `<key>.status.json` in the output bucket.

The upload's state (`upload_view`) is read from what the batch path leaves:

  status record (<key>.status.json)     transform job          state
  Completed, with an output             -                      Completed (download: <key>.out)
  Completed without an output, Failed,  -                      Failed (with the record's reason)
    Stopped
  Skipped                               -                      Skipped (with the reason)
  none                                  InProgress, Stopping,  InProgress
                                          or already final
                                          (its record is on
                                          its way)
  none                                  none                   Waiting

Why the job as well as the record: the record only exists once a job has
ended, so without the job "InProgress" could not be told from "Waiting"
(in the queue for SageMaker capacity, which can last hours on a small
account). The job's name is deterministic (batch/jobs.job_name: prefix,
bucket, key, object version), so one DescribeTransformJob answers it without
listing anything; a job that does not exist yet is Waiting.
"""
from __future__ import annotations

import posixpath
import re
import secrets
from dataclasses import dataclass
from typing import Any

from batch import jobs

UPLOADS_PREFIX = "uploads/"  # the only prefix the uploads function may write under (template.yaml)
LINK_SECONDS = 600  # how long a presigned POST may be used
DOWNLOAD_SECONDS = 300  # how long a presigned GET of the results may be used
FILE_NAME_MAX = 1024  # characters of the file name the request may give
STEM_MAX = 100  # characters of it kept in the key
DEFAULT_STEM = "reviews"
_ID_BYTES = 16
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")

WAITING, IN_PROGRESS, COMPLETED, FAILED, SKIPPED = "Waiting", "InProgress", "Completed", "Failed", "Skipped"
# DescribeTransformJob's states of a job that has not ended, or has ended
# without its status record written yet: InProgress either way.
_JOB_STATES = {"InProgress", "Stopping", "Completed", "Failed", "Stopped"}
# The downloaded file's suffix, by what the job writes (TransformOutput.Accept).
_RESULT_SUFFIX = {"application/jsonlines": ".jsonl", "text/csv": ".csv"}


class InvalidUpload(ValueError):
    """The request does not describe a file that can be scored (HTTP 400)."""


class UploadTooLarge(ValueError):
    """The file is over the upload limit (HTTP 413)."""


@dataclass(frozen=True)
class UploadRequest:
    filename: str
    size: int
    format: jobs.InputFormat


def upload_format(filename: str) -> jobs.InputFormat | None:
    """The input format of a file name by its suffix, in any case (a
    spreadsheet saved as REVIEWS.CSV is still CSV); None if it has another."""
    lower = filename.lower()
    return next((fmt for suffix, fmt in jobs.FORMATS.items() if lower.endswith(suffix)), None)


def read_request(body: Any, max_bytes: int) -> UploadRequest:
    """`{"filename": "reviews.csv", "size": 123456}` as the API receives it."""
    if not isinstance(body, dict):
        raise InvalidUpload('the body must be a JSON object: {"filename": "reviews.csv", "size": 123456}')
    filename, size = body.get("filename"), body.get("size")
    if not isinstance(filename, str) or not filename.strip():
        raise InvalidUpload('"filename" must be the file\'s name, e.g. "reviews.csv"')
    if len(filename) > FILE_NAME_MAX:
        raise InvalidUpload(f'"filename" is over {FILE_NAME_MAX:,} characters')
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidUpload('"size" must be the file\'s size in bytes, a whole number')
    fmt = upload_format(filename)
    if fmt is None:
        raise InvalidUpload(f"only {', '.join(jobs.INPUT_SUFFIXES)} files can be scored")
    if size == 0:
        raise InvalidUpload("the file is empty")
    if size > max_bytes:
        raise UploadTooLarge(f"the file is {size:,} bytes; the largest upload is {max_bytes:,} bytes")
    return UploadRequest(filename, size, fmt)


def new_upload_id() -> str:
    return secrets.token_hex(_ID_BYTES)


def is_upload_id(text: str) -> bool:
    """Only what new_upload_id makes: never an empty, partial or wildcard prefix."""
    return bool(_UPLOAD_ID.fullmatch(text))


def upload_prefix(upload_id: str) -> str:
    if not is_upload_id(upload_id):
        raise ValueError(f"not an upload id: {upload_id!r}")
    return f"{UPLOADS_PREFIX}{upload_id}/"


def upload_key(upload_id: str, request: UploadRequest) -> str:
    """`uploads/<id>/<stem><suffix>`: the file's own name, readable and safe in
    a key and a transform job's S3 URI, with its suffix in lower case (the
    bucket's notifications match suffixes case-sensitively)."""
    name = re.split(r"[\\/]", request.filename)[-1]
    stem = name[: -len(request.format.suffix)]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-")[:STEM_MAX].strip(".-") or DEFAULT_STEM
    return f"{upload_prefix(upload_id)}{stem}{request.format.suffix}"


def post_fields(request: UploadRequest) -> dict[str, str]:
    """Form fields the presigned POST carries besides the key and signature."""
    return {"Content-Type": request.format.content_type}


def post_conditions(request: UploadRequest) -> list:
    """The POST policy's conditions besides bucket, key and signature fields
    (which boto3 adds): this content type, and exactly the declared size."""
    return [{"Content-Type": request.format.content_type},
            ["content-length-range", request.size, request.size]]


def download_name(input_key: str) -> str:
    """The results' file name offered to the browser: `reviews.scored.csv`."""
    fmt = jobs.input_format(input_key)
    name = posixpath.basename(input_key)
    stem = name[: -len(fmt.suffix)] if fmt else name
    return f"{stem}.scored{_RESULT_SUFFIX.get(fmt.accept, '.out') if fmt else '.out'}"


def upload_view(upload_id: str, record: dict | None, job_status: str | None) -> dict[str, Any]:
    """GET /uploads/{id}'s answer, without its download link: the state
    (module docstring's table), the record's counts and failure reason."""
    view: dict[str, Any] = {"id": upload_id, "status": WAITING, "counts": None, "failureReason": None,
                            "download": None}
    if record is None:
        if job_status in _JOB_STATES:
            view["status"] = IN_PROGRESS
        return view
    status = record.get("status")
    view["counts"] = record.get("counts")
    reason, input_uri = record.get("failureReason"), record.get("input")
    # The person knows which file they sent: its bucket and key are noise to them.
    view["failureReason"] = reason.replace(f"{input_uri}: ", "") if reason and input_uri else reason
    if status == COMPLETED and record.get("output"):
        view["status"] = COMPLETED
    elif status == SKIPPED:
        view["status"] = SKIPPED
    else:
        view["status"] = FAILED
        if not view["failureReason"]:
            view["failureReason"] = ("the job was stopped before it finished" if status == "Stopped"
                                     else "the job left no results")
    return view
