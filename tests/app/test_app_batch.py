"""BatchFunction (S3 upload -> CreateTransformJob), for the S3 event one
uploads-queue message carries (tests/app/test_app_buffer.py: the queue's side,
waiting for capacity and giving up): every request checked by
botocore's Stubber against the real SageMaker and S3 service models; one run
against moto's S3 and SageMaker for the whole HTTP round trip."""
from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import re
from datetime import datetime, timezone
from urllib.parse import quote_plus, unquote_plus

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import S3Event
from botocore.stub import ANY, Stubber
from moto import mock_aws

from app_support import ENV, REPO, handler_environment, load_event

INPUT = "critic-input-123456789012-us-east-1-local"
OUTPUT = "critic-output-123456789012-us-east-1-local"
DUPLICATE_MESSAGE = (
    "Job name must be unique within an AWS account and region, and a job with this name already exists "
    "(arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name})"
)


@pytest.fixture
def aws(batch_app, fresh_client):
    sagemaker = fresh_client(batch_app, "sagemaker", "sagemaker")
    s3 = fresh_client(batch_app, "s3", "s3")
    with Stubber(sagemaker) as sm, Stubber(s3) as st:
        yield sm, st
        sm.assert_no_pending_responses()
        st.assert_no_pending_responses()


def handle(batch_app, event: dict, context) -> dict:
    """What the function does with the S3 event one uploads-queue message carries."""
    return batch_app.handle_upload_event(S3Event(event))


def expected_name(key: str, version: str, stem: str) -> str:
    digest = hashlib.sha256(f"{INPUT}\n{key}\n{version}".encode()).hexdigest()[:16]
    return f"critic-local-{stem}-{digest}"


def expected_request(name: str, key: str, content_type: str, accept: str, output_path: str, join: bool) -> dict:
    request = {
        "TransformJobName": name,
        "ModelName": "Model-AbCdEf123456",
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{INPUT}/{key}"}},
            "ContentType": content_type,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_path, "Accept": accept, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    if join:
        request["DataProcessing"] = {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$"}
    return request


def listed(st: Stubber, key: str, *others: str) -> None:
    keys = sorted((key, *others))
    st.add_response(
        "list_objects_v2",
        {"Contents": [{"Key": k, "Size": 10} for k in keys], "KeyCount": len(keys), "IsTruncated": False},
        {"Bucket": INPUT, "Prefix": key, "MaxKeys": 2},
    )


def created(sm: Stubber, request: dict) -> None:
    sm.add_response(
        "create_transform_job",
        {"TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{request['TransformJobName']}"},
        request,
    )


def described(sm: Stubber, request: dict, status: str = "InProgress") -> None:
    sm.add_response(
        "describe_transform_job",
        {
            "TransformJobName": request["TransformJobName"],
            "TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{request['TransformJobName']}",
            "TransformJobStatus": status,
            "ModelName": request["ModelName"],
            "TransformInput": request["TransformInput"],
            "TransformOutput": request["TransformOutput"],
            "TransformResources": request["TransformResources"],
            "CreationTime": datetime(2026, 11, 22, 10, 15, tzinfo=timezone.utc),
        },
        {"TransformJobName": request["TransformJobName"]},
    )


UNICODE_KEY = "uploads/my reviews été+2024 — ✓.txt"
UNICODE_VERSION = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"


def unicode_request() -> dict:
    name = expected_name(UNICODE_KEY, UNICODE_VERSION, "my-reviews-t-2024")
    return expected_request(name, UNICODE_KEY, "text/plain", "application/jsonlines", f"s3://{OUTPUT}/uploads", join=False)


# ------------------------------------------------------------------- events


def test_unicode_key_is_decoded_and_submitted(batch_app, aws, context):
    sm, st = aws
    event = load_event("s3-put-unicode-key")
    assert "+" in event["Records"][0]["s3"]["object"]["key"]  # S3 form-encodes keys
    listed(st, UNICODE_KEY)
    created(sm, unicode_request())
    result = handle(batch_app, event, context)
    assert result["results"] == [
        {"bucket": INPUT, "key": UNICODE_KEY, "outcome": "submitted", "job": unicode_request()["TransformJobName"]}
    ]


def test_every_record_gets_its_own_job(batch_app, aws, context):
    sm, st = aws
    event = load_event("s3-put-multiple")
    cases = [
        ("batch/reviews.txt", "Fh2lZpWmVE2tNJ8Xo6Hm8O0rGxxaWLz3", "reviews", "text/plain", "application/jsonlines", False),
        ("batch/reviews.jsonl", "qPRx1WdJE7bs5mcD7W5n2DDN3OcRJ3mS", "reviews", "application/jsonlines", "application/jsonlines", True),
        ("batch/with id.csv", "d8x.9rM1xaeo.FUnD9ivF1QYRSiiMeqU", "with-id", "text/csv", "text/csv", True),
    ]
    names = []
    for key, version, stem, content_type, accept, join in cases:
        name = expected_name(key, version, stem)
        names.append(name)
        listed(st, key)
        created(sm, expected_request(name, key, content_type, accept, f"s3://{OUTPUT}/batch", join))
    result = handle(batch_app, event, context)
    assert [r["outcome"] for r in result["results"]] == ["submitted"] * 3
    assert [r["job"] for r in result["results"]] == names
    assert len(set(names)) == 3  # same file name, other suffix or version: another job


def test_the_job_names_the_model_of_the_environment_it_runs_in(batch_app, aws, context, fresh_client):
    """A model switch changes MODEL_NAME (template.yaml: !GetAtt Model.ModelName), and Lambda starts new
    execution environments for the new configuration: the module, imported again with the new variable,
    names the new model at CreateTransformJob; an environment started before still names the old one."""
    sm, st = aws
    key, version, stem = "batch/reviews.txt", "Fh2lZpWmVE2tNJ8Xo6Hm8O0rGxxaWLz3", "reviews"
    spec = importlib.util.spec_from_file_location("batch_after_switch", REPO / "functions" / "batch" / "app.py")
    after_switch = importlib.util.module_from_spec(spec)
    with handler_environment(MODEL_NAME="Model-NeW987654321", POWERTOOLS_SERVICE_NAME="critic-batch"):
        spec.loader.exec_module(after_switch)
    new_sm, new_st = fresh_client(after_switch, "sagemaker", "sagemaker"), fresh_client(after_switch, "s3", "s3")
    event = load_event("s3-put-multiple")
    event["Records"] = [r for r in event["Records"] if unquote_plus(r["s3"]["object"]["key"]) == key]
    request = expected_request(expected_name(key, version, stem), key, "text/plain", "application/jsonlines",
                               f"s3://{OUTPUT}/batch", join=False)
    with Stubber(new_sm) as switched_sm, Stubber(new_st) as switched_st:
        listed(switched_st, key)
        created(switched_sm, {**request, "ModelName": "Model-NeW987654321"})
        assert after_switch.handle_upload_event(S3Event(event))["results"][0]["outcome"] == "submitted"
        switched_sm.assert_no_pending_responses()
    listed(st, key)
    created(sm, request)  # the environment started before the switch: the model of its own configuration
    assert request["ModelName"] == ENV["MODEL_NAME"]
    assert handle(batch_app, event, context)["results"][0]["outcome"] == "submitted"


def test_non_input_key_is_skipped_without_any_call(batch_app, aws, context, logs):
    lines = logs(batch_app)
    result = handle(batch_app, load_event("s3-put-non-input"), context)
    assert result["results"] == [{
        "bucket": INPUT, "key": "uploads/notes.md", "outcome": "skipped",
        "reason": "not an input file (input files end in .txt, .jsonl, .csv)",
    }]
    assert any(line["message"].startswith("skipped: not an input file") and line["key"] == "uploads/notes.md" for line in lines)


# ---------------------------------------------------------------- variants


def put_event(*objects: dict, name: str = "ObjectCreated:Put") -> dict:
    base = load_event("s3-put-unicode-key")["Records"][0]
    records = []
    for obj in objects:
        record = copy.deepcopy(base)
        record["eventName"] = name
        record["s3"]["object"] = {"eTag": "0123456789abcdef0123456789abcdef", "sequencer": "0A1B2C3D4E5F678901", **obj}
        records.append(record)
    return {"Records": records}


@pytest.mark.parametrize(
    "obj, reason",
    [
        ({"key": "uploads/", "size": 0}, "folder marker"),
        ({"key": "uploads/empty.csv", "size": 0, "versionId": "v1"}, "empty object"),
        ({"key": "uploads/reviews.TXT", "size": 5, "versionId": "v1"}, "not an input file (input files end in .txt, .jsonl, .csv)"),
        ({"key": "uploads/reviews.txt.out", "size": 5, "versionId": "v1"}, "not an input file (input files end in .txt, .jsonl, .csv)"),
    ],
)
def test_objects_that_are_not_input_are_skipped(batch_app, aws, context, obj, reason):
    result = handle(batch_app, put_event(obj), context)
    assert result["results"][0]["outcome"] == "skipped" and result["results"][0]["reason"] == reason


def test_other_event_kinds_are_skipped(batch_app, aws, context):
    event = put_event({"key": "uploads/a.txt", "size": 5, "versionId": "v1"}, name="ObjectRemoved:Delete")
    assert handle(batch_app, event, context)["results"][0]["outcome"] == "skipped"


def test_s3_test_event_is_a_no_op(batch_app, aws, context):
    event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-22T10:00:00.000Z",
             "Bucket": INPUT, "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}
    assert handle(batch_app, event, context) == {"results": []}


@pytest.mark.parametrize("code", ["ValidationException", "ResourceInUse"])
def test_duplicate_delivery_is_one_job(batch_app, aws, context, code):
    sm, st = aws
    request = unicode_request()
    listed(st, UNICODE_KEY)
    sm.add_client_error("create_transform_job", service_error_code=code,
                        service_message=DUPLICATE_MESSAGE.format(name=request["TransformJobName"]),
                        http_status_code=400, expected_params=request)
    described(sm, request, status="Completed")
    result = handle(batch_app, load_event("s3-put-unicode-key"), context)
    assert result["results"][0]["outcome"] == "duplicate"


def test_a_validation_error_that_is_not_a_duplicate_fails(batch_app, aws, context):
    sm, st = aws
    request = unicode_request()
    listed(st, UNICODE_KEY)
    sm.add_client_error("create_transform_job", service_error_code="ValidationException",
                        service_message="Could not find model \"arn:aws:sagemaker:us-east-1:123456789012:model/model-abcdef123456\".",
                        http_status_code=400, expected_params=request)
    sm.add_client_error("describe_transform_job", service_error_code="ValidationException",
                        service_message="Could not find requested job with name " + request["TransformJobName"],
                        http_status_code=400, expected_params={"TransformJobName": request["TransformJobName"]})
    with pytest.raises(batch_app.SubmitFailed, match="Could not find model"):
        handle(batch_app, load_event("s3-put-unicode-key"), context)


def test_one_failure_does_not_stop_the_others_and_is_reported(batch_app, aws, context):
    sm, st = aws
    event = load_event("s3-put-multiple")
    txt, jsonl, csv_ = ("batch/reviews.txt", "batch/reviews.jsonl", "batch/with id.csv")
    listed(st, txt)
    sm.add_client_error("create_transform_job", service_error_code="AccessDeniedException",
                        service_message="not authorized to perform: sagemaker:CreateTransformJob", http_status_code=400)
    listed(st, jsonl)
    sm.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/x"})
    listed(st, csv_)
    sm.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/y"})
    with pytest.raises(batch_app.SubmitFailed) as failure:
        handle(batch_app, event, context)
    message = str(failure.value)
    assert message.startswith(f"1 of 3 uploads not submitted: s3://{INPUT}/batch/reviews.txt: ClientError")
    assert "AccessDeniedException" in message and "jsonl" not in message and "csv" not in message


@pytest.mark.parametrize("code, status", [("ResourceLimitExceeded", 400), ("ThrottlingException", 400),
                                          ("InternalFailure", 500), ("ServiceUnavailable", 503)])
def test_a_quota_or_throttling_answer_makes_that_upload_wait_and_the_others_go(batch_app, aws, context, code, status):
    sm, st = aws
    event = load_event("s3-put-multiple")
    txt, jsonl, csv_ = ("batch/reviews.txt", "batch/reviews.jsonl", "batch/with id.csv")
    listed(st, txt)
    sm.add_client_error("create_transform_job", service_error_code=code, http_status_code=status,
                        service_message="The account-level service limit 'ml.m5.large for transform job usage' is 1 Instances")
    listed(st, jsonl)
    sm.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/x"})
    listed(st, csv_)
    sm.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/y"})
    with pytest.raises(batch_app.NoCapacity, match=code) as wait:
        handle(batch_app, event, context)
    assert [unquote_plus(r["s3"]["object"]["key"]) for r in wait.value.records] == [txt]  # only it waits


def test_a_key_that_prefixes_another_object_is_refused(batch_app, aws, context):
    sm, st = aws
    listed(st, UNICODE_KEY, UNICODE_KEY + ".bak")
    with pytest.raises(batch_app.SubmitFailed, match="another object's key starts with this one"):
        handle(batch_app, load_event("s3-put-unicode-key"), context)


def test_an_object_deleted_before_submission_is_skipped(batch_app, aws, context):
    sm, st = aws
    st.add_response("list_objects_v2", {"KeyCount": 0, "IsTruncated": False}, {"Bucket": INPUT, "Prefix": UNICODE_KEY, "MaxKeys": 2})
    result = handle(batch_app, load_event("s3-put-unicode-key"), context)
    assert result["results"][0]["outcome"] == "skipped"


def test_without_version_the_etag_names_the_job(batch_app, aws, context):
    sm, st = aws
    key = "plain.csv"
    event = put_event({"key": key, "size": 9, "eTag": "9e107d9d372bb6826bd81d3542a419d6"})
    name = expected_name(key, "9e107d9d372bb6826bd81d3542a419d6", "plain")
    listed(st, key)
    created(sm, expected_request(name, key, "text/csv", "text/csv", f"s3://{OUTPUT}", join=True))
    assert handle(batch_app, event, context)["results"][0]["job"] == name


def test_long_keys_give_valid_names(batch_app, aws, context):
    sm, st = aws
    key = "deep/" * 40 + "Ünïcödé " * 30 + ".jsonl"
    event = put_event({"key": quote_plus(key, safe="/"), "size": 9, "versionId": "v" * 32})
    listed(st, key)
    sm.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/x"})
    name = handle(batch_app, event, context)["results"][0]["job"]
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name) and name.startswith("critic-local-")


# ------------------------------------------------------------------- moto


def test_jobs_reach_sagemaker_over_http(batch_app, fresh_client, context):
    with mock_aws():
        fresh_client(batch_app, "s3", "s3")
        sagemaker = fresh_client(batch_app, "sagemaker", "sagemaker")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=INPUT)
        event = load_event("s3-put-multiple")
        for record in load_event("s3-put-multiple")["Records"] + load_event("s3-put-unicode-key")["Records"]:
            s3.put_object(Bucket=INPUT, Key=unquote_plus(record["s3"]["object"]["key"]), Body=b"a review\n")
        event["Records"] += load_event("s3-put-unicode-key")["Records"]
        result = handle(batch_app, event, context)
        assert [r["outcome"] for r in result["results"]] == ["submitted"] * 4
        job = sagemaker.describe_transform_job(TransformJobName=result["results"][3]["job"])
        assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{INPUT}/{UNICODE_KEY}"
        assert job["TransformOutput"]["S3OutputPath"] == f"s3://{OUTPUT}/uploads"
        csv_job = sagemaker.describe_transform_job(TransformJobName=result["results"][2]["job"])
        assert csv_job["DataProcessing"]["JoinSource"] == "Input"
        assert csv_job["TransformInput"]["ContentType"] == "text/csv"


# ------------------------------------------- keys SageMaker would refuse

URI_ROOM = 1024 - len(f"s3://{INPUT}/")  # the longest key a job's S3Uri (at most 1024 characters) can hold


def long_key(length: int) -> str:
    return "uploads/" + "r" * (length - len("uploads/") - len(".txt")) + ".txt"


def test_a_key_too_long_for_sagemaker_is_skipped_with_its_reason(batch_app, aws, context, logs):
    """1,100 characters: no CreateTransformJob (SageMaker would refuse it on
    every retry and the event would end in the dead-letter queue), no status
    record either (its key would be over S3's 1,024 bytes): the log says why."""
    lines = logs(batch_app)
    key = long_key(1100)
    result = handle(batch_app, put_event({"key": key, "size": 10, "versionId": "v1"}), context)  # no call stubbed
    (only,) = result["results"]
    assert (only["outcome"], only["key"], only["status"]) == ("skipped", key, None)
    assert only["reason"].startswith("the key is too long for a SageMaker transform job: the job's TransformInput "
                                     f"S3Uri would be {len(f's3://{INPUT}/{key}'):,} characters")
    assert f"at most {URI_ROOM} characters" in only["reason"]
    assert any(line["message"] == f"skipped: {only['reason']}" and line["key"] == key and line["level"] == "WARNING"
               for line in lines)


def test_a_key_just_under_the_limit_is_submitted(batch_app, aws, context):
    sm, st = aws
    key = long_key(URI_ROOM)
    request = expected_request(expected_name(key, "v1", "r" * (63 - len("critic-local") - 16 - 2)), key, "text/plain",
                               "application/jsonlines", f"s3://{OUTPUT}/uploads", join=False)
    assert len(request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]) == 1024
    listed(st, key)
    created(sm, request)
    assert handle(batch_app, put_event({"key": key, "size": 10, "versionId": "v1"}), context)["results"][0][
        "outcome"] == "submitted"


@pytest.mark.parametrize("key", ["uploads/line\nbreak.txt", "uploads/para\u2029graph.csv"])
def test_a_key_with_a_line_terminator_is_skipped_and_recorded(batch_app, aws, context, key):
    """SageMaker's S3Uri pattern ends in (.*), and its "." (Java) matches no
    line terminator; the skip is recorded where the job's status would be."""
    sm, st = aws
    st.add_response("put_object", {"ETag": '"x"'}, {"Bucket": OUTPUT, "Key": key + ".status.json",
                                                      "ContentType": "application/json", "Body": ANY})
    result = handle(batch_app, put_event({"key": quote_plus(key, safe="/"), "size": 10, "versionId": "v1"}),
                                      context)["results"][0]
    assert result["outcome"] == "skipped" and "line break" in result["reason"]
    assert result["status"] == f"s3://{OUTPUT}/{key}.status.json"


def test_a_status_record_that_cannot_be_written_still_skips(batch_app, aws, context, logs):
    sm, st = aws
    lines = logs(batch_app)
    key = long_key(1000)
    st.add_client_error("put_object", service_error_code="InternalError", service_message="We encountered an internal error",
                        http_status_code=500)
    result = handle(batch_app, put_event({"key": key, "size": 10, "versionId": "v1"}), context)["results"][0]
    assert (result["outcome"], result["status"]) == ("skipped", None)  # no exception: no retry, no dead letter
    assert any(line["message"] == "could not record the skipped upload's status" for line in lines)


def test_a_skipped_upload_is_recorded_as_its_status_over_http(batch_app, fresh_client, context):
    """Against moto: a 1,000-character key (S3 holds it, SageMaker's S3Uri
    cannot) starts no job and gets `<key>.status.json` saying why."""
    key = long_key(1000)
    with mock_aws():
        s3 = fresh_client(batch_app, "s3", "s3")
        sagemaker = fresh_client(batch_app, "sagemaker", "sagemaker")
        s3.create_bucket(Bucket=INPUT)
        s3.create_bucket(Bucket=OUTPUT)
        s3.put_object(Bucket=INPUT, Key=key, Body=b"a review\n")
        result = handle(batch_app, put_event({"key": quote_plus(key, safe="/"), "size": 9, "versionId": "v1"}),
                                          context)["results"][0]
        assert result["outcome"] == "skipped"
        assert sagemaker.list_transform_jobs()["TransformJobSummaries"] == []
        document = json.loads(s3.get_object(Bucket=OUTPUT, Key=key + ".status.json")["Body"].read())
    assert document["status"] == "Skipped" and document["job"] is None and document["output"] is None
    assert document["input"] == f"s3://{INPUT}/{key}" and document["failureReason"] == result["reason"]
    assert "would be 1,047 characters" in document["failureReason"]
