"""events/: the sample events have the shape AWS sends (Powertools' event
models), and tell the handlers what the tests say they do."""
from __future__ import annotations

import base64
import json

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    EventBridgeModel,
    S3Model,
    SqsModel,
)

from app_support import EVENTS, load_event

EXPECTED = {
    "api-post-json", "api-post-text", "api-post-base64", "api-empty-review", "api-oversized", "api-malformed-json",
    "s3-put-unicode-key", "s3-put-multiple", "s3-put-non-input", "sqs-s3-put-multiple",
    "sagemaker-transform-completed", "sagemaker-transform-failed",
}
MODELS = {"api": APIGatewayProxyEventV2Model, "s3": S3Model, "sagemaker": EventBridgeModel, "sqs": SqsModel}


def test_the_sample_events_are_all_there():
    assert {path.stem for path in EVENTS.glob("*.json")} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_events_have_the_shape_aws_sends(name):
    event = load_event(name)
    MODELS[name.split("-")[0]].model_validate(event)


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.startswith("api-")))
def test_api_events_post_to_score(name):
    event = load_event(name)
    assert event["routeKey"] == "POST /score" and event["requestContext"]["http"]["method"] == "POST"
    body = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
    assert event["headers"]["content-length"] == str(len(body))


def test_oversized_event_is_just_over_the_limit():
    body = load_event("api-oversized")["body"].encode()
    assert 256 * 1024 < len(body) < 300 * 1024
    assert json.loads(body)["review"].strip()


@pytest.mark.parametrize("name", ["sagemaker-transform-completed", "sagemaker-transform-failed"])
def test_job_events_carry_what_the_completion_function_reads(name):
    event = load_event(name)
    detail = event["detail"]
    assert event["detail-type"] == "SageMaker Transform Job State Change" and event["source"] == "aws.sagemaker"
    assert detail["TransformJobName"].startswith("critic-local-")
    assert detail["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].startswith("s3://")
    assert detail["TransformOutput"]["S3OutputPath"].startswith("s3://")
    assert {"CreationTime", "TransformStartTime", "TransformEndTime"} <= set(detail)
    assert ("FailureReason" in detail) == (detail["TransformJobStatus"] == "Failed")


def test_the_uploads_queue_event_carries_the_s3_event_as_its_body():
    [record] = load_event("sqs-s3-put-multiple")["Records"]
    assert json.loads(record["body"]) == load_event("s3-put-multiple")
    S3Model.model_validate(json.loads(record["body"]))
