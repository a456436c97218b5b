"""batch/buffer.py: the backoff, wait bookkeeping and failed-events records."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from hypothesis import given, strategies as st

from batch import buffer


@given(waits=st.integers(0, 10_000), first=st.floats(0, 3600), rand=st.floats(0, 1))
def test_backoff_is_within_sqs_limits_and_grows_to_its_ceiling(waits, first, rand):
    delay = buffer.backoff_seconds(waits, first, rand=lambda: rand)
    assert 0 <= delay <= buffer.MAX_DELAY_SECONDS
    ceiling = min(first * 2 ** min(waits, 32), buffer.MAX_DELAY_SECONDS)
    assert ceiling / 2 - 1 <= delay <= ceiling + 1


def test_backoff_doubles_then_stops_at_the_maximum():
    assert [buffer.backoff_seconds(w, 60, rand=lambda: 1.0) for w in range(6)] == [60, 120, 240, 480, 900, 900]
    assert buffer.backoff_seconds(10, 1, maximum=4, rand=lambda: 1.0) == 4


def test_a_wait_reads_its_attributes_in_both_spellings_and_ignores_garbage():
    now = 1_000_000.0
    lambda_shape = {buffer.WAITS_ATTRIBUTE: {"stringValue": "2"}, buffer.FIRST_SEEN_ATTRIBUTE: {"stringValue": "999000"}}
    api_shape = {buffer.WAITS_ATTRIBUTE: {"StringValue": "2"}, buffer.FIRST_SEEN_ATTRIBUTE: {"StringValue": "999000"}}
    assert buffer.Wait.from_attributes(lambda_shape, now) == buffer.Wait(2, 999000.0)
    assert buffer.Wait.from_attributes(api_shape, now) == buffer.Wait(2, 999000.0)
    assert buffer.Wait.from_attributes({buffer.WAITS_ATTRIBUTE: {"stringValue": "x"}}, now) == buffer.Wait(0, now)
    assert buffer.Wait.from_attributes({}, now).next_attributes()[buffer.WAITS_ATTRIBUTE]["StringValue"] == "1"


def test_capacity_errors_are_quota_throttling_and_server_errors_only():
    assert buffer.is_capacity_error("ResourceLimitExceeded")
    assert buffer.is_capacity_error("ThrottlingException", 400)
    assert buffer.is_capacity_error("Whatever", 503)
    assert not buffer.is_capacity_error("ValidationException", 400)
    assert not buffer.is_capacity_error("AccessDeniedException", 400)


S3_EVENT = {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "in"}, "object": {"key": "a.txt"}}}]}
JOB_EVENT = {"detail-type": "SageMaker Transform Job State Change",
             "detail": {"TransformJobName": "critic-x-a", "TransformJobStatus": "Completed"}}


def test_redrive_targets_of_every_kind_of_record():
    at = datetime(2026, 12, 2, tzinfo=timezone.utc)
    ours = buffer.failed_event_record(function_arn="arn:aws:lambda:us-east-1:1:function:batch", payload=S3_EVENT,
                                      error_type="ClientError", error_message="denied", attempts=3, at=at)
    target = buffer.redrive_target(json.dumps(ours))
    assert (target.kind, target.payload, target.reason) == ("uploads", S3_EVENT, "ClientError: denied")
    lambdas = {**ours, "requestPayload": JOB_EVENT,
               "requestContext": {**ours["requestContext"], "functionArn": "arn:aws:lambda:us-east-1:1:function:done"}}
    target = buffer.redrive_target(json.dumps(lambdas))
    assert (target.kind, target.function_arn) == ("function", "arn:aws:lambda:us-east-1:1:function:done")
    assert "critic-x-a Completed" in target.summary
    assert buffer.redrive_target(json.dumps(S3_EVENT)).kind == "uploads"  # moved by the queue's redrive policy
    assert buffer.redrive_target("not json") is None
    assert buffer.redrive_target(json.dumps({"something": "else"})) is None
