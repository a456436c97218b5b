"""UploadsFunction (POST /uploads, GET /uploads/{id}) against moto's S3 and
botocore's Stubber for SageMaker (DescribeTransformJob checked against the
real service model), and batch/uploads.py's rules on their own."""
from __future__ import annotations

import base64
import copy
import json
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from botocore.stub import Stubber
from moto import mock_aws

from app_support import ENV, load_event
from batch import jobs, uploads

INPUT, OUTPUT = ENV["INPUT_BUCKET"], ENV["OUTPUT_BUCKET"]
ORIGIN = "http://127.0.0.1:8000"
LIMIT = int(ENV["MAX_UPLOAD_MB"]) * 1024 * 1024


def api_event(method: str, path: str, body: dict | str | None = None, route: str | None = None,
              params: dict | None = None) -> dict:
    event = copy.deepcopy(load_event("api-post-json"))
    route_key = f"{method} {route or path}"
    event.update(routeKey=route_key, rawPath=path, isBase64Encoded=False)
    event["requestContext"].update(routeKey=route_key)
    event["requestContext"]["http"].update(method=method, path=path)
    event["headers"]["origin"] = ORIGIN
    if body is None:
        event.pop("body", None)
        event["headers"].pop("content-type", None)
    else:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if params:
        event["pathParameters"] = params
    return event


def call(app, context, event) -> tuple[int, dict, dict]:
    response = app.lambda_handler(event, context)
    return response["statusCode"], response.get("headers") or {}, json.loads(response["body"])


def create(app, context, body) -> tuple[int, dict]:
    status, _, answer = call(app, context, api_event("POST", "/uploads", body))
    return status, answer


def get(app, context, upload_id: str) -> tuple[int, dict]:
    status, _, answer = call(app, context, api_event("GET", f"/uploads/{upload_id}", route="/uploads/{id}",
                                                     params={"id": upload_id}))
    return status, answer


@pytest.fixture
def aws(uploads_app, fresh_client):
    """moto's S3 with the stack's two versioned buckets; SageMaker stubbed."""
    with mock_aws():
        s3 = fresh_client(uploads_app, "s3", "s3")
        for bucket in (INPUT, OUTPUT):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        sagemaker = fresh_client(uploads_app, "sagemaker", "sagemaker")
        with Stubber(sagemaker) as stubber:
            yield s3, stubber
            stubber.assert_no_pending_responses()


def policy_of(answer: dict) -> dict:
    return json.loads(base64.b64decode(answer["upload"]["fields"]["policy"]))


# ------------------------------------------------------------- POST /uploads


def test_post_signs_one_key_the_declared_size_and_a_short_expiry(uploads_app, aws, context):
    status, answer = create(uploads_app, context, {"filename": "My Reviews (2024).CSV", "size": 1234})
    assert status == 201
    upload_id = answer["id"]
    assert uploads.is_upload_id(upload_id) and answer["expiresIn"] == uploads.LINK_SECONDS == 600
    fields = answer["upload"]["fields"]
    key = f"uploads/{upload_id}/My-Reviews-2024.csv"
    assert fields["key"] == key and fields["Content-Type"] == "text/csv"
    assert urlparse(answer["upload"]["url"]).hostname == f"{INPUT}.s3.amazonaws.com"  # moto's us-east-1
    policy = policy_of(answer)
    conditions = policy["conditions"]
    assert {"bucket": INPUT} in conditions and {"key": key} in conditions  # that key only: no starts-with
    assert ["content-length-range", 1234, 1234] in conditions
    assert {"Content-Type": "text/csv"} in conditions
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with"]
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert 0 < (expires - datetime.now(timezone.utc)).total_seconds() <= 600


def test_every_upload_gets_a_fresh_unguessable_id(uploads_app, aws, context):
    ids = {create(uploads_app, context, {"filename": "r.txt", "size": 1})[1]["id"] for _ in range(20)}
    assert len(ids) == 20 and all(len(i) == 32 for i in ids)


def test_the_presigned_post_puts_the_file_where_the_batch_path_reads_it(uploads_app, aws, context):
    """As a browser does: the fields, then the file, as multipart/form-data."""
    s3, _ = aws
    body = b"A wonderful, moving film.\nAn awful, boring mess.\n"
    _, answer = create(uploads_app, context, {"filename": "reviews.jsonl", "size": len(body)})
    upload = answer["upload"]
    response = requests.post(upload["url"], data=upload["fields"], files={"file": ("reviews.jsonl", body)})
    assert response.status_code == 204
    key = upload["fields"]["key"]
    stored = s3.get_object(Bucket=INPUT, Key=key)
    assert stored["Body"].read() == body and stored["ContentType"] == "application/jsonlines"
    assert jobs.skip_reason(key, len(body)) is None  # the batch function scores it


@pytest.mark.parametrize("body, message", [
    ("not json", "malformed JSON"),
    ('{"filename": "a.csv", "size": 1, "size": 2}', "malformed JSON"),
    ([], "must be a JSON object"),
    ({"size": 10}, '"filename"'),
    ({"filename": " ", "size": 10}, '"filename"'),
    ({"filename": "a.csv"}, '"size"'),
    ({"filename": "a.csv", "size": "10"}, '"size"'),
    ({"filename": "a.csv", "size": True}, '"size"'),
    ({"filename": "a.csv", "size": -1}, '"size"'),
    ({"filename": "a.csv", "size": 1.5}, '"size"'),
    ({"filename": "reviews.xlsx", "size": 10}, "only .txt, .jsonl, .csv files"),
    ({"filename": "reviews.csv.gz", "size": 10}, "only .txt, .jsonl, .csv files"),
    ({"filename": "reviews", "size": 10}, "only .txt, .jsonl, .csv files"),
    ({"filename": "reviews.csv", "size": 0}, "the file is empty"),
    ({"filename": "x" * 1021 + ".csv", "size": 1}, "over 1,024 characters"),
])
def test_post_refuses_what_cannot_be_scored_with_400(uploads_app, aws, context, body, message):
    status, answer = create(uploads_app, context, body)
    assert status == 400 and message in answer["message"]


def test_post_over_the_upload_limit_is_413(uploads_app, aws, context):
    assert create(uploads_app, context, {"filename": "a.txt", "size": LIMIT})[0] == 201
    status, answer = create(uploads_app, context, {"filename": "a.txt", "size": LIMIT + 1})
    assert status == 413 and f"{LIMIT:,} bytes" in answer["message"]


def test_cors_headers_name_the_allowed_origin(uploads_app, aws, context):
    _, headers, _ = call(uploads_app, context, api_event("POST", "/uploads", {"filename": "a.txt", "size": 1}))
    assert headers["Access-Control-Allow-Origin"] == "*"  # ALLOWED_ORIGIN in the tests' environment


# ------------------------------------------------------------ GET /uploads/{id}


def uploaded(uploads_app, aws, context, name="reviews.txt", body=b"Great.\nAwful.\n") -> tuple[str, str, str]:
    """An upload whose file arrived: (id, key, the job's name)."""
    s3, _ = aws
    _, answer = create(uploads_app, context, {"filename": name, "size": len(body)})
    key = answer["upload"]["fields"]["key"]
    version = s3.put_object(Bucket=INPUT, Key=key, Body=body)["VersionId"]
    return answer["id"], key, jobs.job_name(ENV["JOB_NAME_PREFIX"], INPUT, key, version)


def job_answer(stubber: Stubber, name: str, status: str | None) -> None:
    if status is None:
        stubber.add_client_error("describe_transform_job", service_error_code="ValidationException",
                                 service_message="Could not find requested job with name " + name,
                                 expected_params={"TransformJobName": name})
        return
    stubber.add_response("describe_transform_job", {
        "TransformJobName": name, "TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}",
        "TransformJobStatus": status, "ModelName": "m", "CreationTime": datetime(2026, 1, 1),
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }, {"TransformJobName": name})


def record(s3, key: str, **document) -> None:
    s3.put_object(Bucket=OUTPUT, Key=key + ".status.json", Body=json.dumps(document).encode())


@pytest.mark.parametrize("job, state", [(None, "Waiting"), ("InProgress", "InProgress"), ("Stopping", "InProgress"),
                                        ("Completed", "InProgress")])  # ended, its record not written yet
def test_get_without_a_status_record_asks_the_job(uploads_app, aws, context, job, state):
    upload_id, _, name = uploaded(uploads_app, aws, context)
    job_answer(aws[1], name, job)
    assert get(uploads_app, context, upload_id) == (200, {
        "id": upload_id, "status": state, "counts": None, "failureReason": None, "download": None})


def test_get_of_a_completed_job_gives_counts_and_a_short_lived_download(uploads_app, aws, context):
    s3, _ = aws
    upload_id, key, _ = uploaded(uploads_app, aws, context, "reviews.csv", b"1,Great.\n2,Awful.\n")
    s3.put_object(Bucket=OUTPUT, Key=key + ".out", Body=b"1,Great.,positive,0.9,\n2,Awful.,negative,0.1,\n")
    counts = {"records": 2, "scored": 2, "errors": 0}
    record(s3, key, status="Completed", output=f"s3://{OUTPUT}/{key}.out", counts=counts, failureReason=None)
    status, answer = get(uploads_app, context, upload_id)  # no job asked: the record says it all
    assert status == 200 and answer["status"] == "Completed" and answer["counts"] == counts
    link = urlparse(answer["download"])
    query = parse_qs(link.query)
    assert link.path == f"/{key}.out" and query["X-Amz-Expires"] == [str(uploads.DOWNLOAD_SECONDS)]
    assert query["response-content-disposition"] == ['attachment; filename="reviews.scored.csv"']
    assert requests.get(answer["download"]).content.startswith(b"1,Great.,positive")


@pytest.mark.parametrize("document, state, reason", [
    ({"status": "Failed", "failureReason": "input line 2 is not valid JSON"}, "Failed", "input line 2 is not valid JSON"),
    ({"status": "Stopped", "failureReason": None}, "Failed", "the job was stopped before it finished"),
    ({"status": "Completed", "output": None, "counts": None}, "Failed", "the job left no results"),
    ({"status": "Skipped", "failureReason": "the key is too long"}, "Skipped", "the key is too long"),
])
def test_get_maps_the_status_record(uploads_app, aws, context, document, state, reason):
    upload_id, key, _ = uploaded(uploads_app, aws, context)
    record(aws[0], key, **document)
    status, answer = get(uploads_app, context, upload_id)
    assert (status, answer["status"], answer["failureReason"], answer["download"]) == (200, state, reason, None)


def test_a_failure_reason_does_not_repeat_the_uploads_s3_uri(uploads_app, aws, context):
    upload_id, key, _ = uploaded(uploads_app, aws, context)
    record(aws[0], key, status="Failed", input=f"s3://{INPUT}/{key}",
           failureReason=f"ClientError: s3://{INPUT}/{key}: input line 2 is not valid JSON")
    assert get(uploads_app, context, upload_id)[1]["failureReason"] == "ClientError: input line 2 is not valid JSON"


def test_get_reads_the_latest_upload_of_the_key(uploads_app, aws, context):
    """The link may be used twice before it expires: the latest file counts."""
    s3, _ = aws
    upload_id, key, _ = uploaded(uploads_app, aws, context)
    version = s3.put_object(Bucket=INPUT, Key=key, Body=b"Again.\n")["VersionId"]
    job_answer(aws[1], jobs.job_name(ENV["JOB_NAME_PREFIX"], INPUT, key, version), "InProgress")
    assert get(uploads_app, context, upload_id)[1]["status"] == "InProgress"


@pytest.mark.parametrize("upload_id", ["0" * 32, "f" * 31, "F" * 32, "..", "*", "0" * 32 + "x"])
def test_get_of_an_unknown_or_malformed_id_is_404(uploads_app, aws, context, upload_id):
    status, answer = get(uploads_app, context, upload_id)
    assert status == 404 and "no such upload" in answer["message"]


def test_an_id_whose_file_has_not_arrived_is_404(uploads_app, aws, context):
    _, answer = create(uploads_app, context, {"filename": "a.txt", "size": 3})
    assert get(uploads_app, context, answer["id"])[0] == 404


def test_other_routes_are_404(uploads_app, aws, context):
    status, _, answer = call(uploads_app, context, api_event("GET", "/uploads"))
    assert status == 404 and answer["message"].startswith("not found")


# ----------------------------------------------------------- batch/uploads.py


@pytest.mark.parametrize("filename, key_name", [
    ("reviews.txt", "reviews.txt"),
    ("C:\\Users\\me\\Desktop\\week 1.JSONL", "week-1.jsonl"),
    ("../../etc/passwd.csv", "passwd.csv"),
    ("ünïcode ✓.csv", "n-code.csv"),
    (".csv", "reviews.csv"),
    ("a" * 300 + ".txt", "a" * 100 + ".txt"),
])
def test_upload_keys_are_one_safe_name_under_the_ids_prefix(filename, key_name):
    request = uploads.read_request({"filename": filename, "size": 1}, 10)
    upload_id = uploads.new_upload_id()
    key = uploads.upload_key(upload_id, request)
    assert key == f"uploads/{upload_id}/{key_name}"
    assert jobs.input_format(key) is request.format and jobs.submission_problem(INPUT, key, OUTPUT) is None


def test_an_upload_prefix_is_never_a_wildcard():
    with pytest.raises(ValueError):
        uploads.upload_prefix("")
