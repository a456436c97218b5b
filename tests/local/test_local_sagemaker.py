"""The local SageMaker and SageMaker Runtime, driven by boto3 over their
wire protocols: what AWS answers (error codes, messages, statuses) is what a
client gets here. The model is a double answering one JSON line per record;
the end-to-end test runs the real one."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from xml.etree import ElementTree

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from werkzeug.serving import make_server

from critic.local.transform_runner import ModelAnswer
from critic.local.container import InvocationResult
from critic.local import s3 as local_s3
from critic.local.aws import AwsEndpoint
from critic.local.sagemaker import Endpoint, TransformJobs, handle_sagemaker, state_change_event

MODEL = "critic-model"


class ModelDouble:
    def __init__(self):
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0

    def __call__(self, body: bytes, content_type: str, accept: str) -> ModelAnswer:
        self.calls += 1
        self.gate.wait(20)
        lines = body.split(b"\n")[:-1]
        return ModelAnswer(200, b"".join(json.dumps({"n": len(line)}).encode() + b"\n" for line in lines))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sagemaker")
    model = ModelDouble()
    events: list[dict] = []
    holder: dict = {}

    def store():
        from critic.local.clients import S3ObjectStore

        return S3ObjectStore(holder["s3"])

    jobs = TransformJobs(folder / "jobs", "us-east-1", [MODEL], store, model,
                         lambda job: events.append(state_change_event(job, "us-east-1")))

    def invoke(body, content_type, accept):
        if content_type == "image/png":
            return InvocationResult(415, b"unsupported content type 'image/png'", "text/plain")
        return InvocationResult(200, b'{"label": "positive", "score": 0.9}', "application/json")

    s3_events: list[tuple] = []  # (event name, moto's bucket, moto's key) of the requests served here
    hook = local_s3.ObjectEvents(lambda name, bucket, key: s3_events.append((name, bucket, key)))
    app = hook.serve(AwsEndpoint(jobs, Endpoint(["critic-endpoint"], "us-east-1", invoke), lambda method: None,
                                 lambda: {"ok": True}))
    hook.install()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"

    def client(name):
        return boto3.client(name, endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                            aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}))

    holder["s3"] = client("s3")
    yield {"jobs": jobs, "model": model, "events": events, "sm": client("sagemaker"), "s3": client("s3"),
           "runtime": client("sagemaker-runtime"), "folder": folder, "url": url, "s3_events": s3_events}
    hook.remove()
    jobs.close()
    server.shutdown()


def bucket_with(service, key: str, body: bytes) -> str:
    bucket = f"in-{uuid.uuid4().hex[:12]}"
    service["s3"].create_bucket(Bucket=bucket)
    service["s3"].put_object(Bucket=bucket, Key=key, Body=body)
    return bucket


def request(name: str, bucket: str, key: str, **extra) -> dict:
    return {
        "TransformJobName": name,
        "ModelName": MODEL,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{key}"}},
                           "ContentType": "text/plain", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": f"s3://{bucket}/out", "Accept": "application/jsonlines",
                            "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1,
        **extra,
    }


def wait(sm, name: str, timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = sm.describe_transform_job(TransformJobName=name)
        if job["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"{name} still running")


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_a_job_runs_and_reports_every_state(service):
    sm, s3 = service["sm"], service["s3"]
    bucket = bucket_with(service, "reviews.txt", b"one\ntwo two\n")
    name = f"job-{uuid.uuid4().hex[:8]}"
    arn = sm.create_transform_job(**request(name, bucket, "reviews.txt"))["TransformJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}"
    job = wait(sm, name)
    assert job["TransformJobStatus"] == "Completed"
    assert job["TransformStartTime"] <= job["TransformEndTime"]
    assert job["DataProcessing"] == {"InputFilter": "$", "JoinSource": "None", "OutputFilter": "$"}
    body = s3.get_object(Bucket=bucket, Key="out/reviews.txt.out")["Body"].read()
    assert body == b'{"n": 3}\n{"n": 7}\n'
    mine = [e for e in service["events"] if e["detail"]["TransformJobName"] == name]
    assert [e["detail"]["TransformJobStatus"] for e in mine] == ["InProgress", "Completed"]
    last = mine[-1]
    assert last["source"] == "aws.sagemaker" and last["detail-type"] == "SageMaker Transform Job State Change"
    assert last["resources"] == [arn] and last["account"] == "123456789012"
    assert isinstance(last["detail"]["CreationTime"], int)  # epoch milliseconds, as EventBridge sends
    assert last["detail"]["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{bucket}/reviews.txt"


def test_errors_are_the_ones_sagemaker_returns(service):
    sm = service["sm"]
    bucket = bucket_with(service, "r.txt", b"x\n")
    name = f"dup-{uuid.uuid4().hex[:8]}"
    sm.create_transform_job(**request(name, bucket, "r.txt"))
    code, message = error_of(sm.create_transform_job, **request(name, bucket, "r.txt"))
    assert code == "ResourceInUse" and "already exists" in message
    assert error_of(sm.describe_transform_job, TransformJobName="no-such-job") == (
        "ValidationException", "Could not find requested job with name no-such-job")
    code, message = error_of(sm.create_transform_job, **request("bad-name-", bucket, "r.txt", MaxPayloadInMB=101))
    assert code == "ValidationException"
    assert message.startswith("2 validation errors detected: ")
    assert "at 'transformJobName' failed to satisfy constraint: Member must satisfy regular expression" in message
    assert "at 'maxPayloadInMB' failed to satisfy constraint: Member must have value less than or equal to 100" in message
    code, message = error_of(sm.create_transform_job, **{**request("other-model", bucket, "r.txt"), "ModelName": "nope"})
    assert (code, message) == ("ValidationException",
                               'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/nope".')
    bad_join = request("bad-join", bucket, "r.txt", DataProcessing={"JoinSource": "Input"})
    code, message = error_of(sm.create_transform_job, **bad_join)
    assert code == "ValidationException" and "CSV and JSON input only" in message
    wait(sm, name)
    assert error_of(sm.stop_transform_job, TransformJobName=name)[0] == "ValidationException"


def test_a_failed_object_fails_the_job_with_a_reason_and_no_output(service):
    sm, s3 = service["sm"], service["s3"]
    bucket = bucket_with(service, "r.jsonl", b'{"review": "fine"}\n{broken\n')
    name = f"fail-{uuid.uuid4().hex[:8]}"
    sm.create_transform_job(**request(name, bucket, "r.jsonl", DataProcessing={"JoinSource": "Input"},
                                      TransformInput={"DataSource": {"S3DataSource": {
                                          "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/r.jsonl"}},
                                          "ContentType": "application/jsonlines", "SplitType": "Line"}))
    job = wait(sm, name)
    assert job["TransformJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(f"ClientError: s3://{bucket}/r.jsonl: input line 2 is not valid JSON")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["r.jsonl"]


def test_stop_moves_through_stopping_to_stopped_without_output(service):
    sm, s3, model = service["sm"], service["s3"], service["model"]
    bucket = bucket_with(service, "r.txt", b"x\n")
    name = f"stop-{uuid.uuid4().hex[:8]}"
    model.gate.clear()
    try:
        sm.create_transform_job(**request(name, bucket, "r.txt"))
        deadline = time.time() + 10
        while "TransformStartTime" not in sm.describe_transform_job(TransformJobName=name) and time.time() < deadline:
            time.sleep(0.02)
        sm.stop_transform_job(TransformJobName=name)
        assert sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"] in ("Stopping", "Stopped")
    finally:
        model.gate.set()
    assert wait(sm, name)["TransformJobStatus"] == "Stopped"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["r.txt"]


def test_list_filters_sorts_and_pages(service):
    sm = service["sm"]
    bucket = bucket_with(service, "r.txt", b"x\n")
    tag = uuid.uuid4().hex[:6]
    names = [f"list-{tag}-{i}" for i in range(3)]
    for name in names:
        sm.create_transform_job(**request(name, bucket, "r.txt"))
        time.sleep(0.01)
    first = sm.list_transform_jobs(NameContains=tag, MaxResults=2)
    assert [j["TransformJobName"] for j in first["TransformJobSummaries"]] == names[::-1][:2]
    rest = sm.list_transform_jobs(NameContains=tag, MaxResults=2, NextToken=first["NextToken"])
    assert [j["TransformJobName"] for j in rest["TransformJobSummaries"]] == [names[0]]
    assert "NextToken" not in rest
    by_name = sm.list_transform_jobs(NameContains=tag, SortBy="Name", SortOrder="Ascending")
    assert [j["TransformJobName"] for j in by_name["TransformJobSummaries"]] == names
    paginated = [j["TransformJobName"] for page in sm.get_paginator("list_transform_jobs").paginate(
        NameContains=tag, PaginationConfig={"PageSize": 1}) for j in page["TransformJobSummaries"]]
    assert sorted(paginated) == names


def test_shutdown_leaves_a_running_job_to_be_failed_on_restart(tmp_path, service):
    bucket = bucket_with(service, "r.txt", b"x\n")
    model = ModelDouble()
    model.gate.clear()
    from critic.local.clients import S3ObjectStore

    jobs = TransformJobs(tmp_path / "jobs", "us-east-1", [MODEL], lambda: S3ObjectStore(service["s3"]), model,
                         lambda job: None)
    try:
        jobs.create(request("cut-short", bucket, "r.txt"))
        deadline = time.time() + 10
        while model.calls == 0 and time.time() < deadline:
            time.sleep(0.02)
    finally:
        threading.Timer(0.2, model.gate.set).start()
        jobs.close()
    assert json.loads((tmp_path / "jobs" / "cut-short.json").read_text())["TransformJobStatus"] == "InProgress"
    again = TransformJobs(tmp_path / "jobs", "us-east-1", [MODEL], lambda: None, lambda *a: None, lambda job: None)
    try:
        assert again.load() == ["cut-short"]
        assert again.describe({"TransformJobName": "cut-short"})["TransformJobStatus"] == "Failed"
    finally:
        again.close()
    assert "out/r.txt.out" not in [o["Key"] for o in service["s3"].list_objects_v2(Bucket=bucket)["Contents"]]


def test_a_job_running_at_shutdown_is_failed_on_restart(tmp_path):
    events = []
    folder = tmp_path / "jobs"
    folder.mkdir()
    job = {"TransformJobName": "was-running", "TransformJobArn": "arn:x", "TransformJobStatus": "InProgress",
           "CreationTime": 1.0, "LastModifiedTime": 1.0, "TransformStartTime": 1.0,
           "TransformInput": {}, "TransformOutput": {}}
    (folder / "was-running.json").write_text(json.dumps(job))
    jobs = TransformJobs(folder, "us-east-1", [MODEL], lambda: None, lambda *a: None, events.append)
    try:
        assert jobs.load() == ["was-running"]
        described = jobs.describe({"TransformJobName": "was-running"})
        assert described["TransformJobStatus"] == "Failed"
        assert "interrupted" in described["FailureReason"]
        assert [e["TransformJobStatus"] for e in events] == ["Failed"]
        saved = json.loads((folder / "was-running.json").read_text())
        assert saved["TransformJobStatus"] == "Failed"
    finally:
        jobs.close()


def test_invoke_endpoint_answers_and_model_errors(service):
    runtime = service["runtime"]
    answer = runtime.invoke_endpoint(EndpointName="critic-endpoint", ContentType="application/json",
                                     Body=b'{"review": "good"}')
    assert json.loads(answer["Body"].read()) == {"label": "positive", "score": 0.9}
    assert answer["ContentType"] == "application/json" and answer["InvokedProductionVariant"] == "AllTraffic"
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="critic-endpoint", ContentType="image/png", Body=b"x")
    response = caught.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 415
    assert response["OriginalMessage"] == "unsupported content type 'image/png'"
    assert response["Error"]["Message"].startswith("Received client error (415) from primary with message")
    assert error_of(runtime.invoke_endpoint, EndpointName="other", ContentType="application/json", Body=b"{}") == (
        "ValidationError", "Endpoint other of account 123456789012 not found.")


def test_s3_event_records_look_like_the_ones_s3_sends(service):
    s3 = service["s3"]
    bucket = bucket_with(service, "a folder/red flower+1.txt", b"hello")
    [(name, fake_bucket, key)] = [event for event in service["s3_events"] if event[0].startswith("s3:ObjectCreated")
                                  and event[2].name == "a folder/red flower+1.txt"]
    assert name == "s3:ObjectCreated:Put"
    record = local_s3.s3_event_record(name, fake_bucket, key, "cfg", "us-east-1", "0055AED6DCD90281E5")
    assert record["eventVersion"] == "2.1" and record["eventSource"] == "aws:s3"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["object"]["key"] == "a+folder/red+flower%2B1.txt"
    assert record["s3"]["object"]["size"] == 5
    assert record["s3"]["object"]["eTag"] == s3.head_object(Bucket=bucket, Key="a folder/red flower+1.txt")["ETag"].strip('"')
    assert record["s3"]["bucket"] == {"name": bucket, "ownerIdentity": {"principalId": "123456789012"},
                                      "arn": f"arn:aws:s3:::{bucket}"}
    assert "versionId" not in record["s3"]["object"]
    assert record["eventTime"].endswith("Z") and record["s3"]["configurationId"] == "cfg"


def test_a_request_moto_cannot_parse_gets_an_xml_400_not_a_crash(service):
    # POST to a bucket path with no form upload: moto's S3 parser raises KeyError.
    request = urllib.request.Request(f"{service['url']}/score?x=<y>", data=b'{"review": "x"}', method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert caught.value.headers["Content-Type"].startswith("application/xml")
    error = ElementTree.fromstring(caught.value.read())
    assert error.findtext("Code") == "InvalidRequest"
    assert "POST /score" in error.findtext("Message")
    # the endpoint still serves S3 afterwards
    service["s3"].create_bucket(Bucket="after-a-bad-request")
    assert "after-a-bad-request" in [b["Name"] for b in service["s3"].list_buckets()["Buckets"]]


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"TransformJobName": "a", "TransformJobName": "b"}',
                                  b'{"MaxResults": 1' + b"0" * 5_000 + b"}"])
def test_a_request_body_the_json_reader_refuses_is_a_serialization_exception(body):
    status, _, answer = handle_sagemaker(None, "SageMaker.ListTransformJobs", body)
    error = json.loads(answer)
    assert status == 400 and error["__type"] == "SerializationException"
    assert error["Message"].startswith("Request body is not valid JSON: ") and "Traceback" not in error["Message"]


def test_beyond_the_quota_create_answers_resource_limit_exceeded_as_aws_does(service):
    jobs, model, sm = service["jobs"], service["model"], service["sm"]
    bucket = bucket_with(service, "q.txt", b"a\n")
    model.gate.clear()  # the jobs hold their instances until released
    jobs.quota = 2
    try:
        sm.create_transform_job(**request("quota-a", bucket, "q.txt"))
        sm.create_transform_job(**request("quota-b", bucket, "q.txt"))
        with pytest.raises(ClientError) as refused:
            sm.create_transform_job(**request("quota-c", bucket, "q.txt"))
        error = refused.value.response["Error"]
        assert error["Code"] == "ResourceLimitExceeded"
        assert "'ml.m5.large for transform job usage' is 2 Instances, with current utilization of 2" in error["Message"]
        with pytest.raises(ClientError, match="ResourceLimitExceeded"):  # instances count, not jobs
            sm.create_transform_job(**request("quota-d", bucket, "q.txt", TransformResources={
                "InstanceType": "ml.m5.large", "InstanceCount": 2}))
        sm.create_transform_job(**request("quota-e", bucket, "q.txt", TransformResources={  # another type's quota
            "InstanceType": "ml.c5.xlarge", "InstanceCount": 1}))
    finally:
        model.gate.set()
    for name in ("quota-a", "quota-b", "quota-e"):
        assert wait(sm, name)["TransformJobStatus"] == "Completed"
    sm.create_transform_job(**request("quota-c", bucket, "q.txt"))  # room again once they finished
    assert wait(sm, "quota-c")["TransformJobStatus"] == "Completed"
    assert jobs.peak_in_progress >= 2
    jobs.quota = None


def test_injected_throttling_answers_throttling_exception(service):
    jobs, sm = service["jobs"], service["sm"]
    bucket = bucket_with(service, "t.txt", b"a\n")
    jobs.throttle = 1.0
    try:
        with pytest.raises(ClientError) as throttled:
            sm.create_transform_job(**request("throttled", bucket, "t.txt"))
        assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    finally:
        jobs.throttle = 0.0
    sm.create_transform_job(**request("throttled", bucket, "t.txt"))  # nothing was created by the refused call
    assert wait(sm, "throttled")["TransformJobStatus"] == "Completed"
