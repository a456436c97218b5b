"""End to end: `critic serve` with the tiny model on free ports, driven the way
a user would (HTTP requests, boto3 uploads, `critic invoke`, `critic score`),
then stopped with Ctrl-C and started again on the same data folder."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from hypothesis import HealthCheck, given, settings, strategies as st

from batch import jobs
from explanation_checks import assert_explains

pytestmark = pytest.mark.slow

PRAISE = "A wonderful, moving film."
SCORN = "An awful, boring mess."
START_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    def __init__(self, repo_root: Path, artifact: Path, data: Path, log: Path, fresh: bool, extra: tuple = ()):
        self.aws_port, self.api_port = free_port(), free_port()
        self.aws = f"http://127.0.0.1:{self.aws_port}"
        self.api = f"http://127.0.0.1:{self.api_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("CRITIC_")}
        command = [sys.executable, "-m", "critic", "serve", "--artifact", str(artifact), "--data", str(data),
                   "--aws-port", str(self.aws_port), "--api-port", str(self.api_port)]
        self.log = open(log, "ab")
        self.process = subprocess.Popen(command + (["--fresh"] if fresh else []) + list(extra), cwd=repo_root, env=env,
                                        stdout=subprocess.PIPE, stderr=self.log)
        self.banner: list[str] = []
        ready = threading.Event()

        def read() -> None:
            for raw in self.process.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.banner.append(line)
                if line.startswith("Ctrl-C stops everything"):
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(START_TIMEOUT) or self.process.poll() is not None:
            self.process.kill()
            raise AssertionError(f"critic serve did not start; see {log}:\n" + log.read_text()[-3000:])
        self.info = json.loads(urllib.request.urlopen(f"{self.aws}/_critic/stack", timeout=5).read())

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.aws, region_name="us-east-1", aws_access_key_id="test",
                            aws_secret_access_key="test", config=Config(retries={"max_attempts": 2}))

    def children(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.log.close()


@pytest.fixture(scope="module")
def stack_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    return {"data": root / "data", "log": root / "serve.log", "files": root}


@pytest.fixture(scope="module")
def served(repo_root, tiny_artifact, stack_dirs):
    server = Served(repo_root, tiny_artifact, stack_dirs["data"], stack_dirs["log"], fresh=True)
    yield server
    if server.process.poll() is None:
        server.stop()


def post(url: str, body: bytes, content_type: str, extra: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, **(extra or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def input_bucket(served) -> str:
    return served.info["buckets"]["InputBucket"]


def output_bucket(served) -> str:
    return served.info["buckets"]["OutputBucket"]


def job_for(served, key: str) -> str:
    s3 = served.client("s3")
    head = s3.head_object(Bucket=input_bucket(served), Key=key)
    prefix = served.info["functions"]["BatchFunction"]["environment"]["JOB_NAME_PREFIX"]
    return jobs.job_name(prefix, input_bucket(served), key, jobs.object_version(head.get("VersionId"), head["ETag"]))


def wait_for_job(served, name: str, timeout: float = 120) -> dict:
    sm = served.client("sagemaker")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            job = sm.describe_transform_job(TransformJobName=name)
        except sm.exceptions.ClientError:
            job = None
        if job and job["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {name} did not finish")


def wait_for_object(s3, bucket: str, key: str, timeout: float = 60) -> bytes:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            time.sleep(0.25)
    raise AssertionError(f"s3://{bucket}/{key} did not appear")


# --------------------------------------------------------------------------- #

def test_the_banner_says_what_runs_where(served):
    text = "\n".join(served.banner)
    assert served.api in text and served.aws in text
    assert input_bucket(served) in text and output_bucket(served) in text
    assert f"curl -s {served.api}/score" in text and "s3 cp" in text


def test_realtime_reviews_through_the_api(served):
    status, _, body = post(f"{served.api}/score", json.dumps({"review": PRAISE}).encode(), "application/json")
    assert status == 200 and json.loads(body)["label"] == "positive"
    status, _, body = post(f"{served.api}/score", SCORN.encode(), "text/plain")
    assert status == 200 and json.loads(body)["label"] == "negative" and 0 <= json.loads(body)["score"] < 0.5
    status, _, body = post(f"{served.api}/score", b'{"review": ', "application/json")
    assert status == 400 and "message" in json.loads(body)
    preflight = urllib.request.Request(f"{served.api}/score", method="OPTIONS", headers={
        "Origin": "http://localhost:8000", "Access-Control-Request-Method": "POST"})
    with urllib.request.urlopen(preflight, timeout=10) as response:
        assert response.status == 204 and response.headers["Access-Control-Allow-Origin"]
    with urllib.request.urlopen(f"{served.api}/", timeout=10) as page:
        assert b"<title>" in page.read()
    with urllib.request.urlopen(f"{served.api}/config.js", timeout=10) as config:
        assert f'apiUrl: "{served.api}"'.encode() in config.read()


REVIEW_TEXT = st.lists(st.sampled_from([
    "wonderful ", "awful ", "moving", " film ", "<br />", "<b>bold</b>", "<img src=x onerror=alert(1)>", "&amp;",
    "caf&eacute;", "don't ", "😀", "שלום ", "مرحبا", "ﬁne", "e\u0301", "\u202e", "\n", "!",
]) | st.text(max_size=6), min_size=1, max_size=12).map("".join).filter(str.strip)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(review=REVIEW_TEXT)
def test_explanations_through_the_api(served, review):
    plain = post(f"{served.api}/score", json.dumps({"review": review}).encode(), "application/json")
    explained = post(f"{served.api}/score?explain=true", json.dumps({"review": review}).encode(), "application/json")
    assert plain[0] == explained[0]
    if plain[0] != 200:
        return
    result = json.loads(explained[2])
    assert {k: v for k, v in result.items() if k != "explanation"} == json.loads(plain[2])
    assert "explanation" not in json.loads(plain[2])
    assert_explains(review, result)
    status, _, body = post(f"{served.api}/score", json.dumps({"review": review, "explain": "yes"}).encode(),
                           "application/json")
    assert (status, json.loads(body)) == (400, {"message": '"explain" must be true or false'})


def test_a_jsonl_upload_explains_the_records_that_ask(served):
    s3 = served.client("s3")
    bucket, out = input_bucket(served), output_bucket(served)
    records = [{"id": 1, "review": PRAISE, "explain": True}, {"id": 2, "review": SCORN},
               {"id": 3, "review": f"<b>{SCORN}</b> &amp; 😀", "explain": True}, {"id": 4, "review": PRAISE,
                                                                                  "explain": "yes"}]
    key = "explain/asked.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body="".join(json.dumps(r) + "\n" for r in records).encode())
    job = wait_for_job(served, job_for(served, key))
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    joined = [json.loads(line) for line in wait_for_object(s3, out, f"{key}.out").decode().splitlines()]
    assert [j["id"] for j in joined] == [1, 2, 3, 4]
    assert_explains(PRAISE, joined[0]["SageMakerOutput"])
    assert set(joined[1]["SageMakerOutput"]) == {"label", "score"}
    assert_explains(records[2]["review"], joined[2]["SageMakerOutput"])
    assert joined[3]["SageMakerOutput"] == {"error": '"explain" must be true or false'}


def test_uploaded_files_are_scored_line_by_line(served):
    s3 = served.client("s3")
    bucket, out = input_bucket(served), output_bucket(served)
    txt = f"{PRAISE}\n{SCORN}\n\n{PRAISE}\n".encode()
    jsonl = (json.dumps({"id": 1, "review": PRAISE}) + "\n" + json.dumps({"id": 2, "review": SCORN}) + "\n"
             + json.dumps({"id": 3, "text": "no review field"}) + "\n").encode()
    csv_data = f'7,"{PRAISE}"\n8,{SCORN.replace(",", "")}\n'.encode()
    files = {"uploads/my reviews.txt": txt, "uploads/été.jsonl": jsonl, "uploads/rows.csv": csv_data}
    for key, body in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)  # URL-encoded keys in the S3 event

    names = {key: job_for(served, key) for key in files}
    for key, name in names.items():
        job = wait_for_job(served, name)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")

    lines = wait_for_object(s3, out, "uploads/my reviews.txt.out").decode().splitlines()
    results = [json.loads(line) for line in lines]
    assert len(results) == 4
    assert [r.get("label") for r in results] == ["positive", "negative", None, "positive"]
    assert "error" in results[2]

    joined = [json.loads(line) for line in wait_for_object(s3, out, "uploads/été.jsonl.out").decode().splitlines()]
    assert [j["id"] for j in joined] == [1, 2, 3]
    assert joined[0]["review"] == PRAISE and joined[0]["SageMakerOutput"]["label"] == "positive"
    assert joined[1]["SageMakerOutput"]["label"] == "negative"
    assert "error" in joined[2]["SageMakerOutput"]

    rows = list(csv.reader(io.StringIO(wait_for_object(s3, out, "uploads/rows.csv.out").decode())))
    assert [row[:2] for row in rows] == [["7", PRAISE], ["8", SCORN.replace(",", "")]]
    assert [row[2] for row in rows] == ["positive", "negative"] and [row[4] for row in rows] == ["", ""]

    status = json.loads(wait_for_object(s3, out, "uploads/rows.csv.status.json"))  # CompletionFunction ran
    assert status["status"] == "Completed" and status["counts"]["records"] == 2


def test_s3_user_metadata_keeps_its_names(served):
    """S3 keeps metadata names as sent, underscores included (the AWS
    endpoint's server must not drop or rename such headers)."""
    s3 = served.client("s3")
    bucket = output_bucket(served)
    s3.put_object(Bucket=bucket, Key="metadata/names.txt", Body=b"x", Metadata={"my_key": "1", "other-key": "2"})
    assert s3.head_object(Bucket=bucket, Key="metadata/names.txt")["Metadata"] == {"my_key": "1", "other-key": "2"}


def test_a_duplicate_upload_event_makes_one_job(served, repo_root, stack_dirs):
    s3, sm = served.client("s3"), served.client("sagemaker")
    bucket, key = input_bucket(served), "dup/again.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=f"{PRAISE}\n".encode())
    name = job_for(served, key)
    wait_for_job(served, name)
    head = s3.head_object(Bucket=bucket, Key=key)
    event = {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "again",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": key, "size": head["ContentLength"], "eTag": head["ETag"].strip('"'),
                          "versionId": head["VersionId"], "sequencer": "00"}}}]}
    # As the uploads queue delivers it a second time (SQS delivers at least once).
    message = {"messageId": "m-again", "receiptHandle": "r-again", "body": json.dumps(event),
               "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
               "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:critic-uploadsqueue", "awsRegion": "us-east-1"}
    event_file = stack_dirs["files"] / "again.json"
    event_file.write_text(json.dumps({"Records": [message]}))
    redelivered = subprocess.run(
        [sys.executable, "-m", "critic", "invoke", "BatchFunction", "-e", str(event_file), "--aws-url", served.aws],
        cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert redelivered.returncode == 0, redelivered.stderr[-2000:]
    assert json.loads(redelivered.stdout) == {"batchItemFailures": []}
    assert "duplicate delivery: the job already exists" in redelivered.stderr
    same = [j for j in sm.list_transform_jobs(NameContains=name)["TransformJobSummaries"]]
    assert [j["TransformJobName"] for j in same] == [name]


def test_a_file_that_cannot_be_processed_fails_its_job_with_a_reason(served):
    s3 = served.client("s3")
    key = "broken/records.jsonl"
    s3.put_object(Bucket=input_bucket(served), Key=key, Body=b'{"review": "fine"}\n{this is not json\n')
    job = wait_for_job(served, job_for(served, key))
    assert job["TransformJobStatus"] == "Failed"
    assert "input line 2 is not valid JSON" in job["FailureReason"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=output_bucket(served), Prefix="broken/").get("Contents", [])]
    assert f"{key}.out" not in keys  # nothing that looks like a result
    status = json.loads(wait_for_object(s3, output_bucket(served), f"{key}.status.json"))
    assert status["status"] == "Failed" and "not valid JSON" in status["failureReason"]


def test_critic_score_uploads_waits_and_downloads(served, repo_root, stack_dirs):
    folder = stack_dirs["files"] / "score"
    folder.mkdir()
    (folder / "mine.txt").write_text(f"{SCORN}\n{PRAISE}\n")
    (folder / "bad.jsonl").write_text("{nope\n")
    done = subprocess.run([sys.executable, "-m", "critic", "score", str(folder / "mine.txt"),
                           str(folder / "bad.jsonl"), "--aws-url", served.aws],
                          cwd=repo_root, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1  # one of the two failed
    lines = (folder / "mine.txt.out").read_text().splitlines()
    assert [json.loads(line)["label"] for line in lines] == ["negative", "positive"]
    assert not (folder / "bad.jsonl.out").exists()
    assert "bad.jsonl: Failed: ClientError" in done.stdout


def test_ctrl_c_stops_cleanly_and_state_survives_a_restart(served, repo_root, tiny_artifact, stack_dirs):
    before = sorted(j["TransformJobName"] for j in served.client("sagemaker").list_transform_jobs(
        MaxResults=100)["TransformJobSummaries"])
    children = served.children()
    assert children  # model workers and Lambda environments
    assert served.stop() == 0
    time.sleep(0.5)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]

    again = Served(repo_root, tiny_artifact, stack_dirs["data"], stack_dirs["log"], fresh=False)
    try:
        after = sorted(j["TransformJobName"] for j in again.client("sagemaker").list_transform_jobs(
            MaxResults=100)["TransformJobSummaries"])
        assert after == before
        body = again.client("s3").get_object(Bucket=output_bucket(again), Key="uploads/my reviews.txt.out")["Body"].read()
        assert len(body.decode().splitlines()) == 4
    finally:
        assert again.stop() == 0
