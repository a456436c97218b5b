"""critic redrive's core on moto's SQS, with Lambda's Invoke checked by a Stubber."""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from batch.buffer import failed_event_record
from critic.commands.redrive import redrive

S3_EVENT = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": "in"}, "object": {"key": "a.txt", "size": 3}}}]}
JOB_EVENT = {"source": "aws.sagemaker", "detail-type": "SageMaker Transform Job State Change",
             "detail": {"TransformJobName": "critic-x-a", "TransformJobStatus": "Completed"}}
BATCH = "arn:aws:lambda:us-east-1:123456789012:function:critic-batchfunction"
COMPLETION = "arn:aws:lambda:us-east-1:123456789012:function:critic-completionfunction:$LATEST"


@pytest.fixture
def queues():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        failed = sqs.create_queue(QueueName="failed")["QueueUrl"]
        uploads = sqs.create_queue(QueueName="uploads")["QueueUrl"]
        at = datetime(2026, 12, 2, tzinfo=timezone.utc)
        sqs.send_message(QueueUrl=failed, MessageBody=json.dumps(failed_event_record(
            function_arn=BATCH, payload=S3_EVENT, error_type="ClientError", error_message="AccessDenied",
            attempts=3, at=at)))
        sqs.send_message(QueueUrl=failed, MessageBody=json.dumps(failed_event_record(
            function_arn=COMPLETION, payload=JOB_EVENT, error_type="Timeout", error_message="timed out",
            attempts=3, at=at)))
        sqs.send_message(QueueUrl=failed, MessageBody=json.dumps(S3_EVENT))  # moved by the redrive policy
        sqs.send_message(QueueUrl=failed, MessageBody="something else")
        yield sqs, failed, uploads


def bodies(sqs, url: str) -> list[str]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return sorted(m["Body"] for m in got)


def test_dry_run_changes_nothing_and_leaves_every_message_visible(queues):
    sqs, failed, uploads = queues
    lambda_ = boto3.client("lambda", region_name="us-east-1")
    out = io.StringIO()
    with Stubber(lambda_):  # no call expected
        outcome = redrive(sqs, lambda_, failed, uploads, dry_run=True, out=out)
    assert len(outcome.sent) == 3 and len(outcome.left) == 1
    assert "would send s3://in/a.txt to the uploads queue (failed: ClientError: AccessDenied)" in out.getvalue()
    assert len(bodies(sqs, failed)) == 4 and bodies(sqs, uploads) == []


def test_uploads_go_back_to_the_uploads_queue_and_job_events_to_their_function(queues):
    sqs, failed, uploads = queues
    lambda_ = boto3.client("lambda", region_name="us-east-1")
    with Stubber(lambda_) as stub:
        stub.add_response("invoke", {"StatusCode": 202}, {"FunctionName": COMPLETION, "InvocationType": "Event",
                                                          "Payload": json.dumps(JOB_EVENT).encode()})
        outcome = redrive(sqs, lambda_, failed, uploads, out=io.StringIO())
        stub.assert_no_pending_responses()
    assert len(outcome.sent) == 3 and outcome.failed == []
    assert bodies(sqs, uploads) == [json.dumps(S3_EVENT)] * 2
    assert bodies(sqs, failed) == ["something else"]  # not Critic's: left, and visible


def test_a_message_that_cannot_be_sent_back_stays(queues):
    sqs, failed, uploads = queues
    lambda_ = boto3.client("lambda", region_name="us-east-1")
    with Stubber(lambda_) as stub:
        stub.add_client_error("invoke", service_error_code="ResourceNotFoundException", http_status_code=404)
        outcome = redrive(sqs, lambda_, failed, uploads, out=io.StringIO())
    assert len(outcome.failed) == 1 and len(outcome.sent) == 2
    assert len(bodies(sqs, failed)) == 2  # the job event and the stranger


def test_critic_score_reads_the_reason_of_an_upload_the_batch_function_skipped():
    from batch import jobs
    from critic.commands.score import _skipped_reason

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="out")
        info = {"functions": {"BatchFunction": {"environment": {"OUTPUT_BUCKET": "out"}}}}
        notification = {"bucket": "in", "function": "BatchFunction"}
        assert _skipped_reason(s3, info, notification, "a.txt") is None  # nothing recorded (yet)
        document = jobs.skipped_status_document("in", "a.txt", "the key is too long",
                                                recorded_at=datetime(2026, 12, 2, tzinfo=timezone.utc))
        s3.put_object(Bucket="out", Key=jobs.skipped_status_key("in", "a.txt", "out"), Body=json.dumps(document))
        assert _skipped_reason(s3, info, notification, "a.txt") == "the key is too long"


def test_redrive_finds_a_deployed_stacks_queues_in_its_outputs(monkeypatch):
    from critic.commands import redrive as command

    class Session:
        def __init__(self, region_name=None):
            self.region = region_name

        def client(self, service):
            import botocore.session

            client = botocore.session.get_session().create_client(service, region_name=self.region)
            if service == "cloudformation":
                stub = Stubber(client)
                stub.add_response("describe_stacks", {"Stacks": [{
                    "StackName": "critic", "CreationTime": datetime(2026, 12, 2, tzinfo=timezone.utc),
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": "FailedEventsQueueUrl", "OutputValue": "https://sqs/failed"},
                                {"OutputKey": "UploadsQueueUrl", "OutputValue": "https://sqs/uploads"}]}]},
                    {"StackName": "critic"})
                stub.activate()
            return client

    monkeypatch.setattr("boto3.Session", Session)
    _, _, failed, uploads = command._deployed_queues("critic", "eu-west-1")
    assert (failed, uploads) == ("https://sqs/failed", "https://sqs/uploads")
