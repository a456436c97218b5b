"""BatchFunction as the uploads queue's consumer: partial batch responses,
waiting for SageMaker capacity (quota, throttling, the stack's cap on jobs in
flight), and giving up on a poison record with its reason. SQS and S3 are
moto's; SageMaker is a Stubber checked against the real service model."""
from __future__ import annotations

import copy
import json
import time
import uuid

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from app_support import load_event
from batch import buffer

INPUT = "critic-input-123456789012-us-east-1-local"
KEY = "uploads/my reviews été+2024 — ✓.txt"  # s3-put-unicode-key.json's object


@pytest.fixture
def world(batch_app, fresh_client, monkeypatch):
    """Moto S3 holding the upload, moto SQS with the two queues, a SageMaker Stubber."""
    with mock_aws():
        s3 = fresh_client(batch_app, "s3", "s3")
        sqs = fresh_client(batch_app, "sqs", "sqs")
        sagemaker = fresh_client(batch_app, "sagemaker", "sagemaker")
        s3.create_bucket(Bucket=INPUT)
        s3.put_object(Bucket=INPUT, Key=KEY, Body=b"A fine film.\n")
        uploads = sqs.create_queue(QueueName="uploads")["QueueUrl"]
        failed = sqs.create_queue(QueueName="failed-events")["QueueUrl"]
        monkeypatch.setattr(batch_app, "UPLOADS_QUEUE_URL", uploads)
        monkeypatch.setattr(batch_app, "FAILED_EVENTS_QUEUE_URL", failed)
        monkeypatch.setattr(batch_app, "CAPACITY_RETRY_SECONDS", 60.0)
        monkeypatch.setattr(batch_app, "MAX_JOBS_IN_FLIGHT", 0)
        with Stubber(sagemaker) as sm:
            yield {"sqs": sqs, "sm": sm, "uploads": uploads, "failed": failed}
            sm.assert_no_pending_responses()


def message(body, receives: int = 1, attributes: dict | None = None) -> dict:
    """One record of the SQS event Lambda's event source mapping sends."""
    text = body if isinstance(body, str) else json.dumps(body)
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "handle-" + uuid.uuid4().hex,
        "body": text,
        "attributes": {"ApproximateReceiveCount": str(receives), "SentTimestamp": "1764669600000",
                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1764669600000"},
        "messageAttributes": attributes or {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads",
        "awsRegion": "us-east-1",
    }


def upload_event() -> dict:
    return load_event("s3-put-unicode-key")


def created(sm: Stubber) -> None:
    sm.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/x"})


def refused(sm: Stubber, code: str = "ResourceLimitExceeded", status: int = 400) -> None:
    sm.add_client_error("create_transform_job", service_error_code=code, http_status_code=status,
                        service_message="The account-level service limit 'ml.m5.large for transform job usage' "
                                        "is 2 Instances, with current utilization of 2 Instances")


def queued(world, queue: str) -> list[dict]:
    """Every message in a queue, delayed ones included (moto makes them visible at once when asked so)."""
    sqs = world["sqs"]
    found = []
    for _ in range(5):
        got = sqs.receive_message(QueueUrl=world[queue], MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                  AttributeNames=["All"], VisibilityTimeout=60).get("Messages", [])
        if not got:
            break
        found += got
    return found


def delayed(world, queue: str) -> int:
    attributes = world["sqs"].get_queue_attributes(QueueUrl=world[queue], AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def test_partial_batch_response_names_exactly_the_failed_records(batch_app, world, context):
    good, poison, denied = message(upload_event()), message("not json"), message(upload_event())
    created(world["sm"])
    world["sm"].add_client_error("create_transform_job", service_error_code="AccessDeniedException",
                                 http_status_code=400, service_message="not authorized")
    result = batch_app.lambda_handler({"Records": [good, poison, denied]}, context)
    assert result == {"batchItemFailures": [{"itemIdentifier": poison["messageId"]},
                                            {"itemIdentifier": denied["messageId"]}]}
    assert queued(world, "failed") == []  # not yet: SQS delivers them again first


@pytest.mark.parametrize("code, status", [("ResourceLimitExceeded", 400), ("ThrottlingException", 400),
                                          ("ServiceUnavailable", 503)])
def test_a_quota_or_throttling_answer_leaves_the_upload_waiting_in_the_queue(batch_app, world, context, code, status):
    refused(world["sm"], code, status)
    result = batch_app.lambda_handler({"Records": [message(upload_event(), receives=1)]}, context)
    assert result == {"batchItemFailures": []}  # the original goes; its copy waits, delayed
    assert delayed(world, "uploads") == 1
    assert queued(world, "failed") == []


def test_a_waiting_upload_comes_back_delayed_with_its_wait_counted(batch_app, world, context, monkeypatch):
    monkeypatch.setattr(batch_app, "CAPACITY_RETRY_SECONDS", 0.0)  # no delay: the copy can be read at once
    refused(world["sm"])
    first_seen = time.time() - 3600
    attributes = {buffer.WAITS_ATTRIBUTE: {"stringValue": "3", "dataType": "Number"},
                  buffer.FIRST_SEEN_ATTRIBUTE: {"stringValue": f"{first_seen:.3f}", "dataType": "Number"}}
    event = upload_event()
    batch_app.lambda_handler({"Records": [message(event, receives=1, attributes=attributes)]}, context)
    [copy_] = queued(world, "uploads")
    assert json.loads(copy_["Body"]) == {"Records": event["Records"]}
    assert copy_["MessageAttributes"][buffer.WAITS_ATTRIBUTE]["StringValue"] == "4"
    assert float(copy_["MessageAttributes"][buffer.FIRST_SEEN_ATTRIBUTE]["StringValue"]) == pytest.approx(first_seen, abs=0.01)
    assert copy_["Attributes"]["ApproximateReceiveCount"] == "1"  # a wait never counts towards the receive limit


def test_of_a_message_with_several_uploads_only_the_refused_one_waits(batch_app, world, context, monkeypatch):
    monkeypatch.setattr(batch_app, "CAPACITY_RETRY_SECONDS", 0.0)
    event = upload_event()
    second = copy.deepcopy(event["Records"][0])
    second["s3"]["object"]["key"] = "uploads/second.txt"
    event["Records"].append(second)
    boto3.client("s3").put_object(Bucket=INPUT, Key="uploads/second.txt", Body=b"Dull.\n")
    created(world["sm"])
    refused(world["sm"])
    batch_app.lambda_handler({"Records": [message(event)]}, context)
    [copy_] = queued(world, "uploads")
    assert [r["s3"]["object"]["key"] for r in json.loads(copy_["Body"])["Records"]] == ["uploads/second.txt"]


def test_at_the_cap_of_jobs_in_flight_the_upload_waits_without_asking_for_a_job(batch_app, world, context, monkeypatch):
    monkeypatch.setattr(batch_app, "MAX_JOBS_IN_FLIGHT", 2)
    summaries = [{"TransformJobName": f"critic-local-a-{i}", "TransformJobArn": f"arn:aws:sagemaker:us-east-1:1:transform-job/{i}",
                  "CreationTime": "2026-12-02T10:00:00Z", "TransformJobStatus": "InProgress"} for i in range(2)]
    world["sm"].add_response("list_transform_jobs", {"TransformJobSummaries": summaries},
                             {"StatusEquals": "InProgress", "NameContains": "critic-local", "MaxResults": 100})
    result = batch_app.lambda_handler({"Records": [message(upload_event())]}, context)
    assert result == {"batchItemFailures": []}
    assert delayed(world, "uploads") == 1  # and no create_transform_job was stubbed: none was asked for


def test_below_the_cap_the_job_is_created(batch_app, world, context, monkeypatch):
    monkeypatch.setattr(batch_app, "MAX_JOBS_IN_FLIGHT", 2)
    other_stack = {"TransformJobName": "critic-localother-x", "TransformJobArn": "arn:aws:sagemaker:us-east-1:1:transform-job/o",
                   "CreationTime": "2026-12-02T10:00:00Z", "TransformJobStatus": "InProgress"}
    mine = {**other_stack, "TransformJobName": "critic-local-a-1"}
    world["sm"].add_response("list_transform_jobs", {"TransformJobSummaries": [mine, other_stack]},
                             {"StatusEquals": "InProgress", "NameContains": "critic-local", "MaxResults": 100})
    created(world["sm"])
    assert batch_app.lambda_handler({"Records": [message(upload_event())]}, context) == {"batchItemFailures": []}
    assert delayed(world, "uploads") == 0 and queued(world, "uploads") == []


def test_a_poison_record_goes_to_the_failed_events_queue_after_its_retries_with_its_reason(batch_app, world, context):
    world["sm"].add_client_error("create_transform_job", service_error_code="AccessDeniedException",
                                 http_status_code=400, service_message="not authorized to perform CreateTransformJob")
    event = upload_event()
    result = batch_app.lambda_handler({"Records": [message(event, receives=buffer.MAX_RECEIVES)]}, context)
    assert result == {"batchItemFailures": []}  # recorded, so SQS may let it go
    [dead] = queued(world, "failed")
    record = json.loads(dead["Body"])
    assert record["requestPayload"] == event
    assert record["requestContext"]["functionArn"] == context.invoked_function_arn
    assert record["requestContext"]["approximateInvokeCount"] == buffer.MAX_RECEIVES
    assert "AccessDeniedException" in record["responsePayload"]["errorMessage"]
    assert buffer.redrive_target(dead["Body"]).kind == "uploads"


def test_a_message_that_is_not_an_s3_event_is_recorded_with_its_body(batch_app, world, context):
    result = batch_app.lambda_handler({"Records": [message("{not json", receives=buffer.MAX_RECEIVES)]}, context)
    assert result == {"batchItemFailures": []}
    [dead] = queued(world, "failed")
    record = json.loads(dead["Body"])
    assert record["requestPayload"] == "{not json" and record["responsePayload"]["errorType"] == "JSONDecodeError"


def test_an_upload_that_waited_longer_than_the_queue_keeps_messages_is_recorded_as_failed(batch_app, world, context):
    refused(world["sm"])
    long_ago = time.time() - buffer.MAX_WAIT_SECONDS - 60
    attributes = {buffer.WAITS_ATTRIBUTE: {"stringValue": "900", "dataType": "Number"},
                  buffer.FIRST_SEEN_ATTRIBUTE: {"stringValue": f"{long_ago:.3f}", "dataType": "Number"}}
    batch_app.lambda_handler({"Records": [message(upload_event(), attributes=attributes)]}, context)
    [dead] = queued(world, "failed")
    assert "days for SageMaker capacity" in json.loads(dead["Body"])["responsePayload"]["errorMessage"]
    assert delayed(world, "uploads") == 0


def test_the_s3_test_event_is_let_go(batch_app, world, context):
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-12-02T10:00:00Z",
                  "Bucket": INPUT, "RequestId": "x", "HostId": "y"}
    assert batch_app.lambda_handler({"Records": [message(test_event)]}, context) == {"batchItemFailures": []}
    assert queued(world, "failed") == [] and queued(world, "uploads") == []
