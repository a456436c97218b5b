"""Event faults the SAM application must absorb: the completion event
delivered twice (EventBridge is at-least-once) or late, and S3 failing while
the status is written (the invocation fails, so EventBridge retries it)."""
from __future__ import annotations

import copy
import json
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from app_support import handler_environment, load_event

OUTPUT = "critic-output-123456789012-us-east-1-local"
OUT_KEY = "batch/reviews.txt.out"
STATUS_KEY = "batch/reviews.txt.status.json"
RESULTS = b'{"label": "positive", "score": 0.91}\n{"error": "review is empty"}\n'

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture
def s3(completion_module, monkeypatch):
    with mock_aws():
        with handler_environment():
            client = boto3.client("s3", config=completion_module.s3.meta.config)
        monkeypatch.setattr(completion_module, "s3", client)
        client.create_bucket(Bucket=OUTPUT)
        client.put_object(Bucket=OUTPUT, Key=OUT_KEY, Body=RESULTS)
        yield client


def status(s3) -> dict:
    return json.loads(s3.get_object(Bucket=OUTPUT, Key=STATUS_KEY)["Body"].read())


def without_recorded_at(document: dict) -> dict:
    return {k: v for k, v in document.items() if k != "recordedAt"}


def test_the_completion_event_delivered_twice_records_the_same_status(completion_module, s3, lambda_context):
    event = load_event("sagemaker-transform-completed")
    first = completion_module.lambda_handler(copy.deepcopy(event), lambda_context)
    recorded = status(s3)
    second = completion_module.lambda_handler(copy.deepcopy(event), lambda_context)
    assert without_recorded_at(first) == without_recorded_at(second) == without_recorded_at(status(s3))
    assert without_recorded_at(recorded) == without_recorded_at(status(s3))
    assert status(s3)["counts"] == {"records": 2, "scored": 1, "errors": 1}
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=OUTPUT)["Contents"])
    assert keys == [OUT_KEY, STATUS_KEY]  # nothing else written, the output untouched
    assert s3.get_object(Bucket=OUTPUT, Key=OUT_KEY)["Body"].read() == RESULTS


def test_a_state_change_that_is_not_final_arriving_late_changes_nothing(completion_module, s3, lambda_context):
    event = load_event("sagemaker-transform-completed")
    completion_module.lambda_handler(copy.deepcopy(event), lambda_context)
    before = status(s3)
    late = copy.deepcopy(event)
    late["detail"]["TransformJobStatus"] = "InProgress"  # delivered out of order, after the final state
    assert completion_module.lambda_handler(late, lambda_context) is None
    assert status(s3) == before


def test_s3_failing_while_recording_fails_the_invocation_so_it_is_retried(completion_module, s3, lambda_context):
    event = load_event("sagemaker-transform-completed")
    error = ClientError({"Error": {"Code": "InternalError", "Message": "We encountered an internal error"},
                         "ResponseMetadata": {"HTTPStatusCode": 500}}, "PutObject")
    with mock.patch.object(completion_module.s3, "put_object", side_effect=error):
        with pytest.raises(ClientError):
            completion_module.lambda_handler(copy.deepcopy(event), lambda_context)
    assert "Contents" not in s3.list_objects_v2(Bucket=OUTPUT, Prefix=STATUS_KEY)  # no half-written status
    document = completion_module.lambda_handler(copy.deepcopy(event), lambda_context)  # the retry
    assert status(s3) == document and document["counts"]["records"] == 2


def test_s3_failing_while_reading_the_output_fails_the_invocation(completion_module, s3, lambda_context):
    event = load_event("sagemaker-transform-completed")
    error = ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                         "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")
    with mock.patch.object(completion_module.s3, "get_object", side_effect=error):
        with pytest.raises(ClientError):
            completion_module.lambda_handler(copy.deepcopy(event), lambda_context)
    assert "Contents" not in s3.list_objects_v2(Bucket=OUTPUT, Prefix=STATUS_KEY)  # not recorded as "no output"
