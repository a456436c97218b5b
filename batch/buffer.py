"""The uploads buffer: what waits for SageMaker capacity and what is given up
on. Plain Python, no AWS calls (the batch function and `critic redrive` make
them).

S3 notifies an SQS queue of each upload; the batch function reads the queue
and creates one transform job per upload. When SageMaker says "not now" (an
account quota, throttling, a service error, or the stack's own cap on jobs in
flight) the upload is not an error: the function sends the message back to the
queue with a delay (`backoff_seconds`, doubling up to SQS's 15-minute
maximum) and a count of its waits in its attributes, and lets the original
go. Waiting so never counts towards the queue's receive limit, and an upload
may wait as long as SQS keeps messages (`MAX_WAIT_SECONDS`).

Anything else that fails (access denied, a malformed message) is retried by
SQS, and after `MAX_RECEIVES` receives the function records it in the
failed-events queue with its reason (`failed_event_record`, in the shape of
Lambda's on-failure destination records, so one reader handles both) and lets
it go. `critic redrive` reads that queue back (`redrive_target`).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

# Error codes that mean "SageMaker has no room now", not "this upload is
# wrong": the account's instance quota (ResourceLimitExceeded), and throttling
# (botocore's own retries gave up on it).
CAPACITY_ERROR_CODES = frozenset({
    "ResourceLimitExceeded", "ThrottlingException", "Throttling", "ThrottledException",
    "RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
    "SlowDown", "ServiceUnavailable", "InternalFailure", "InternalServerError",
})

WAITS_ATTRIBUTE = "critic-capacity-waits"  # how often the upload waited so far
FIRST_SEEN_ATTRIBUTE = "critic-first-seen"  # epoch seconds of the first attempt
MAX_DELAY_SECONDS = 900  # SQS's largest DelaySeconds
MAX_WAIT_SECONDS = 14 * 24 * 3600  # SQS's longest retention: the promise "may wait days, never vanish"
MAX_RECEIVES = 3  # attempts of an upload that fails for another reason before it is recorded as failed


def is_capacity_error(code: str | None, http_status: int | None = None) -> bool:
    """True when an AWS error answer means "try later": a quota, throttling,
    or a server-side error (5xx), never a problem with the request."""
    return code in CAPACITY_ERROR_CODES or (http_status is not None and http_status >= 500)


def backoff_seconds(waits: int, first: float, maximum: float = MAX_DELAY_SECONDS,
                    rand: Callable[[], float] = random.random) -> int:
    """The delay before an upload that has waited `waits` times is tried
    again: first * 2**waits, at most `maximum` (and SQS's 900 s), with
    "equal jitter" (between half and all of it) so that a burst of uploads
    refused together does not come back together."""
    ceiling = min(first * 2 ** min(waits, 32), maximum, MAX_DELAY_SECONDS)
    return max(0, min(MAX_DELAY_SECONDS, round(ceiling / 2 + rand() * ceiling / 2)))


@dataclass(frozen=True)
class Wait:
    """Where an upload stands in its wait for capacity."""

    waits: int  # times it waited before this attempt
    first_seen: float  # epoch seconds

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, Any], now: float) -> "Wait":
        """From a message's attributes (Lambda's SQS record shape, stringValue)."""
        def value(name: str) -> str | None:
            attribute = attributes.get(name) or {}
            return attribute.get("stringValue") or attribute.get("StringValue")

        try:
            waits = int(value(WAITS_ATTRIBUTE) or 0)
            first_seen = float(value(FIRST_SEEN_ATTRIBUTE) or now)
        except ValueError:  # not ours: start counting afresh
            waits, first_seen = 0, now
        return cls(max(0, waits), min(first_seen, now))

    def waited_too_long(self, now: float, limit: float = MAX_WAIT_SECONDS) -> bool:
        return now - self.first_seen >= limit

    def next_attributes(self) -> dict[str, dict]:
        """The attributes of the message sent back to the queue (SendMessage's shape)."""
        return {
            WAITS_ATTRIBUTE: {"DataType": "Number", "StringValue": str(self.waits + 1)},
            FIRST_SEEN_ATTRIBUTE: {"DataType": "Number", "StringValue": f"{self.first_seen:.3f}"},
        }


def failed_event_record(*, function_arn: str, payload: Any, error_type: str, error_message: str,
                        attempts: int, at: datetime, condition: str = "RetriesExhausted") -> dict:
    """A failed-events queue record in the shape Lambda's on-failure
    destinations write, so `critic redrive` reads one shape whoever wrote it.
    `payload` is the event the function would have to handle again."""
    return {
        "version": "1.0",
        "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {"requestId": None, "functionArn": function_arn, "condition": condition,
                           "approximateInvokeCount": attempts},
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": error_type, "errorMessage": error_message},
    }


def is_upload_event(payload: Any) -> bool:
    """An S3 event notification (what the uploads queue carries)."""
    records = payload.get("Records") if isinstance(payload, dict) else None
    return (isinstance(records, list) and bool(records)
            and all(isinstance(r, dict) and r.get("eventSource") == "aws:s3" and isinstance(r.get("s3"), dict)
                    for r in records))


@dataclass(frozen=True)
class RedriveTarget:
    """Where a failed-events record goes back to: the uploads queue (an S3
    event) or the function that failed on it (any other event), and why it failed."""

    kind: str  # "uploads" or "function"
    payload: Any
    function_arn: str | None
    reason: str
    summary: str


def redrive_target(body: str) -> RedriveTarget | None:
    """What to do with one failed-events message body, or None if it is not
    something Critic put there (left in the queue)."""
    try:
        record = json.loads(body)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    if is_upload_event(record):  # moved by the uploads queue's redrive policy: the raw S3 event
        return RedriveTarget("uploads", record, None, "failed on every receive (no reason recorded)",
                             _summary(record))
    payload = record.get("requestPayload")
    context = record.get("requestContext") or {}
    response = record.get("responsePayload") or {}
    reason = (f"{response.get('errorType', 'Error')}: {response.get('errorMessage', '')}".strip(": ")
              if isinstance(response, dict) else str(response))
    reason = reason or context.get("condition", "unknown")
    if is_upload_event(payload):
        return RedriveTarget("uploads", payload, context.get("functionArn"), reason, _summary(payload))
    if payload is not None and context.get("functionArn"):
        return RedriveTarget("function", payload, context["functionArn"], reason, _summary(payload))
    return None


def _summary(payload: Any) -> str:
    if is_upload_event(payload):
        return ", ".join(f"s3://{r['s3'].get('bucket', {}).get('name')}/{r['s3'].get('object', {}).get('key')}"
                         for r in payload["Records"])
    if isinstance(payload, dict) and payload.get("detail-type"):
        detail = payload.get("detail") or {}
        return f"{payload['detail-type']}: {detail.get('TransformJobName', '')} {detail.get('TransformJobStatus', '')}"
    return json.dumps(payload)[:120]
