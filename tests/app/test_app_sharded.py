"""A big upload through the functions: the batch function splits it and
creates one job over its shards (the request checked by botocore's Stubber,
S3 from moto); the completion function assembles the shards' outputs into
`<key>.out`, counts every record once and cleans up, or leaves no `.out`."""
from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime, timezone

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import S3Event
from botocore.stub import Stubber
from moto import mock_aws

from app_support import load_event
from batch import shards
from batch.s3store import S3Store

INPUT = "critic-input-123456789012-us-east-1-local"
OUTPUT = "critic-output-123456789012-us-east-1-local"
KEY = "uploads/big reviews été ✓.jsonl"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in (INPUT, OUTPUT):
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def batch(batch_app, s3, fresh_client, monkeypatch):
    """The batch function with two instances, a 1 KiB threshold, moto's S3 and a stubbed SageMaker."""
    monkeypatch.setattr(batch_app, "INSTANCE_COUNT", 2)
    monkeypatch.setattr(batch_app, "SHARD_ABOVE_BYTES", 1024)
    monkeypatch.setattr(batch_app, "s3", s3)
    monkeypatch.setattr(batch_app, "store", S3Store(s3))
    sagemaker = fresh_client(batch_app, "sagemaker", "sagemaker")
    with Stubber(sagemaker) as sm:
        yield batch_app, sm
        sm.assert_no_pending_responses()


@pytest.fixture
def completion_fn(completion, s3, monkeypatch):
    monkeypatch.setattr(completion, "s3", s3)
    monkeypatch.setattr(completion, "store", S3Store(s3))
    return completion


def upload(s3, body: bytes, key: str = KEY) -> dict:
    """The S3 event of this upload (as the uploads queue carries it)."""
    answer = s3.put_object(Bucket=INPUT, Key=key, Body=body)
    event = copy.deepcopy(load_event("s3-put-unicode-key"))
    obj = event["Records"][0]["s3"]["object"]
    from urllib.parse import quote_plus
    obj.update(key=quote_plus(key, safe="/"), size=len(body), versionId=answer["VersionId"], eTag=answer["ETag"].strip('"'))
    return event


def name_of(key: str, version: str) -> str:
    digest = hashlib.sha256(f"{INPUT}\n{key}\n{version}".encode()).hexdigest()[:16]
    return f"critic-local-big-reviews-t-{digest}"


def sharded_request(name: str) -> dict:
    return {
        "TransformJobName": name,
        "ModelName": "Model-AbCdEf123456",
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": f"s3://{INPUT}/critic-shards/{name}/in/"}},
            "ContentType": "application/jsonlines",
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{OUTPUT}/critic-shards/{name}/out",
                            "Accept": "application/jsonlines", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
        "DataProcessing": {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$"},
    }


REVIEWS = b"".join(json.dumps({"review": f"review {n}: s\u00e9rieusement bien \u2713"}).encode() + b"\n"
                   for n in range(200))


def test_a_big_upload_is_split_and_one_job_reads_all_its_shards(batch, s3):
    app, sm = batch
    event = upload(s3, REVIEWS)
    version = event["Records"][0]["s3"]["object"]["versionId"]
    name = name_of(KEY, version)
    sm.add_client_error("describe_transform_job", service_error_code="ValidationException",
                        service_message="Could not find requested job with name " + name)
    sm.add_response("create_transform_job", {"TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:"
                                                                f"transform-job/{name}"}, sharded_request(name))
    result = app.handle_upload_event(S3Event(event))["results"][0]
    assert result == {"bucket": INPUT, "key": KEY, "outcome": "submitted", "job": name, "shards": 8}
    listed = s3.list_objects_v2(Bucket=INPUT, Prefix=f"critic-shards/{name}/in/")["Contents"]
    assert [item["Key"] for item in listed] == [f"critic-shards/{name}/in/{n:05d}" for n in range(8)]
    assert b"".join(s3.get_object(Bucket=INPUT, Key=item["Key"])["Body"].read() for item in listed) == REVIEWS
    plan = shards.Plan.from_json(s3.get_object(Bucket=OUTPUT, Key=f"critic-shards/{name}/plan.json")["Body"].read())
    assert (plan.bucket, plan.key, plan.version, plan.size) == (INPUT, KEY, version, len(REVIEWS))


def test_a_duplicate_delivery_finds_the_job_and_copies_nothing(batch, s3):
    app, sm = batch
    event = upload(s3, REVIEWS)
    name = name_of(KEY, event["Records"][0]["s3"]["object"]["versionId"])
    request = sharded_request(name)
    sm.add_response("describe_transform_job", {
        "TransformJobName": name, "TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}",
        "TransformJobStatus": "InProgress", "ModelName": request["ModelName"], "TransformInput": request["TransformInput"],
        "TransformOutput": request["TransformOutput"], "TransformResources": request["TransformResources"],
        "CreationTime": datetime(2026, 11, 22, tzinfo=timezone.utc)}, {"TransformJobName": name})
    result = app.handle_upload_event(S3Event(event))["results"][0]
    assert result["outcome"] == "duplicate"
    assert "Contents" not in s3.list_objects_v2(Bucket=INPUT, Prefix="critic-shards/")


def test_a_small_upload_still_takes_the_one_object_path(batch, s3):
    app, sm = batch
    event = upload(s3, b'{"review": "fine"}\n')
    name = name_of(KEY, event["Records"][0]["s3"]["object"]["versionId"])
    request = sharded_request(name)
    request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{INPUT}/{KEY}"
    request["TransformOutput"]["S3OutputPath"] = f"s3://{OUTPUT}/uploads"
    sm.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:"
                                                                f"transform-job/{name}"}, request)
    assert app.handle_upload_event(S3Event(event))["results"][0]["outcome"] == "submitted"


def test_a_line_too_long_to_score_is_skipped_with_its_reason(batch, s3):
    app, sm = batch
    body = b'{"review": "a"}\n' * 100 + b"x" * (3 * 1024 * 1024) + b"\n"
    event = upload(s3, body)
    name = name_of(KEY, event["Records"][0]["s3"]["object"]["versionId"])
    sm.add_client_error("describe_transform_job", service_error_code="ValidationException",
                        service_message="Could not find requested job with name " + name)
    result = app.handle_upload_event(S3Event(event))["results"][0]
    assert result["outcome"] == "skipped" and "MaxPayloadInMB" in result["reason"]
    status = json.loads(s3.get_object(Bucket=OUTPUT, Key=f"{KEY}.status.json")["Body"].read())
    assert status["status"] == "Skipped" and "cannot be split" in status["failureReason"]


def test_a_split_that_would_outlast_the_invocation_is_skipped_and_cleaned_up(batch, s3, monkeypatch):
    app, sm = batch
    event = upload(s3, REVIEWS)
    name = name_of(KEY, event["Records"][0]["s3"]["object"]["versionId"])
    sm.add_client_error("describe_transform_job", service_error_code="ValidationException",
                        service_message="Could not find requested job with name " + name)
    written = []
    write_parts = app.store.write_parts
    monkeypatch.setattr(app.store, "write_parts", lambda *args: (written.append(args[1]), write_parts(*args)))
    # the invocation's clock: plenty for three shards, then under the reserve
    result = app.handle_upload_event(S3Event(event), lambda: 100.0 if len(written) < 3 else 5.0)["results"][0]
    assert result["outcome"] == "skipped" and "3 of 8 shards" in result["reason"]  # no job (the Stubber has none)
    status = json.loads(s3.get_object(Bucket=OUTPUT, Key=f"{KEY}.status.json")["Body"].read())
    assert status["status"] == "Skipped" and "splitting needs more time than the function has" in status["failureReason"]
    assert "MiB fit in its 90 s" in status["failureReason"]
    assert "Contents" not in s3.list_objects_v2(Bucket=INPUT, Prefix="critic-shards/")  # the 3 shards removed
    assert "Contents" not in s3.list_objects_v2(Bucket=OUTPUT, Prefix="critic-shards/")  # no plan


def test_the_invocations_remaining_time_is_the_splits_deadline(batch, s3):
    from aws_lambda_powertools.utilities.data_classes import SQSRecord

    from app_support import FakeLambdaContext

    class AlmostOut(FakeLambdaContext):
        def get_remaining_time_in_millis(self) -> int:
            return 4_000

    app, sm = batch
    event = upload(s3, REVIEWS)
    name = name_of(KEY, event["Records"][0]["s3"]["object"]["versionId"])
    sm.add_client_error("describe_transform_job", service_error_code="ValidationException",
                        service_message="Could not find requested job with name " + name)
    record = SQSRecord({"messageId": "m-1", "body": json.dumps(event), "attributes": {"ApproximateReceiveCount": "1"},
                        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads"})
    result = app.record_handler(record, AlmostOut())["results"][0]
    assert result["outcome"] == "skipped" and "0 of 8 shards" in result["reason"]


def test_staging_objects_are_never_uploads():
    from batch import jobs
    assert "shard" in jobs.skip_reason("critic-shards/job/in/00000.txt", 10)


# ------------------------------------------------------------------ completion


def staged(s3, name: str, outputs: list[bytes]) -> shards.Plan:
    """A sharded upload whose job wrote these shard outputs."""
    plan = shards.Plan(job=name, bucket=INPUT, key=KEY, version=None, size=100, staging_bucket=INPUT,
                       shards=[[n, n + 1] for n in range(len(outputs))])
    for key in plan.shard_keys():
        s3.put_object(Bucket=INPUT, Key=key, Body=b"shard")
    for key, body in zip(plan.output_keys(), outputs):
        s3.put_object(Bucket=OUTPUT, Key=key, Body=body)
    s3.put_object(Bucket=OUTPUT, Key=shards.plan_key(name), Body=plan.to_json())
    return plan


def job_event(name: str, status: str) -> dict:
    event = copy.deepcopy(load_event("sagemaker-transform-completed" if status == "Completed"
                                     else "sagemaker-transform-failed"))
    detail = event["detail"]
    detail.update(TransformJobName=name, TransformJobStatus=status)
    detail["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{INPUT}/critic-shards/{name}/in/"
    detail["TransformOutput"]["S3OutputPath"] = f"s3://{OUTPUT}/critic-shards/{name}/out"
    return event


SCORED = b'{"review": "x", "SageMakerOutput": {"label": "positive", "score": 0.9}}\n'
ERROR = b'{"review": "", "SageMakerOutput": {"error": "review is empty"}}\n'


def live_keys(s3, bucket: str, prefix: str = "critic-shards/") -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_completion_assembles_in_plan_order_counts_once_and_cleans_up(completion_fn, s3, context):
    name = "critic-local-big-0123456789abcdef"
    outputs = [SCORED * 3, ERROR, SCORED * 2 + ERROR]
    staged(s3, name, outputs)
    document = completion_fn.lambda_handler(job_event(name, "Completed"), context)
    assert s3.get_object(Bucket=OUTPUT, Key=f"{KEY}.out")["Body"].read() == b"".join(outputs)
    assert document["counts"] == {"records": 7, "scored": 5, "errors": 2}
    assert document["input"] == f"s3://{INPUT}/{KEY}" and document["shards"] == 3
    assert document["output"] == f"s3://{OUTPUT}/{KEY}.out"
    status = json.loads(s3.get_object(Bucket=OUTPUT, Key=f"{KEY}.status.json")["Body"].read())
    assert status == document
    assert live_keys(s3, INPUT) == [] and live_keys(s3, OUTPUT) == []
    # A repeated event finds the plan gone: nothing is assembled or counted twice.
    assert completion_fn.lambda_handler(job_event(name, "Completed"), context) is None
    assert json.loads(s3.get_object(Bucket=OUTPUT, Key=f"{KEY}.status.json")["Body"].read()) == document


def test_a_missing_shard_output_fails_the_invocation_and_leaves_no_out(completion_fn, s3, context):
    name = "critic-local-big-1123456789abcdef"
    plan = staged(s3, name, [SCORED, SCORED])
    s3.delete_object(Bucket=OUTPUT, Key=plan.output_keys()[1])
    with pytest.raises(RuntimeError, match="no output for 1 of 2 shards"):
        completion_fn.lambda_handler(job_event(name, "Completed"), context)
    assert live_keys(s3, OUTPUT, KEY) == []  # neither .out nor a status: Lambda retries, then the failed-events queue
    assert shards.plan_key(name) in live_keys(s3, OUTPUT)


def test_an_assembly_failure_aborts_the_upload(completion_fn, s3, context, monkeypatch):
    name = "critic-local-big-2123456789abcdef"
    staged(s3, name, [SCORED, SCORED])
    real = s3.upload_part

    def broken(**kwargs):
        real(**kwargs)
        raise ConnectionError("network gone mid-upload")

    monkeypatch.setattr(s3, "upload_part", broken)
    with pytest.raises(ConnectionError):
        completion_fn.lambda_handler(job_event(name, "Completed"), context)
    assert live_keys(s3, OUTPUT, KEY) == []
    assert not s3.list_multipart_uploads(Bucket=OUTPUT).get("Uploads")


def test_a_failed_sharded_job_records_the_upload_and_leaves_staging_to_expire(completion_fn, s3, context):
    name = "critic-local-big-3123456789abcdef"
    staged(s3, name, [SCORED])
    document = completion_fn.lambda_handler(job_event(name, "Failed"), context)
    assert document["status"] == "Failed" and document["output"] is None and document["counts"] is None
    assert document["input"] == f"s3://{INPUT}/{KEY}"
    assert live_keys(s3, OUTPUT, KEY) == [f"{KEY}.status.json"]
    assert live_keys(s3, INPUT)  # the lifecycle rule expires them
