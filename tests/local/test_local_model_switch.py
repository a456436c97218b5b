"""Switching models on the local stack (`critic deploy --local`), as a stack
update switches them on AWS: a transform job running when the switch happens
finishes on the model it started with, an upload after the switch is scored
by the new model, and the endpoint answers with the new model once it has
loaded.

The two models cannot be confused: A is the tiny model forced to call every
review positive, B forced to call every review negative. The running job is
held inside its first mini-batch (a gate in the model container's invoke,
for that job's requests only) until the switch is complete, and its second
mini-batch is sent after it: nothing here depends on timing."""
from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.request

import boto3
import pytest
import torch
from botocore.config import Config

from batch import jobs
from critic import cli
from critic.local.container import ModelContainer
from critic.local.stack import AWS_PORT_VARIABLE, Stack, StackOptions
from model.package import package

pytestmark = pytest.mark.slow

REVIEW = "A wonderful, moving film, though an awful, boring mess at times. "


def forced_artifact(tiny_training, folder, logit: float):
    """The tiny model with its weights zeroed and its biases at `logit`: the
    same verdict on every review (positive for a large positive logit)."""
    model_dir = folder / "model"
    shutil.copytree(tiny_training / "model", model_dir)
    state = torch.load(model_dir / "model.pt", weights_only=True)
    forced = {}
    for name, value in state.items():
        if name.endswith("bias") and name in ("head.bias", "bag_bias"):
            forced[name] = torch.full_like(value, logit)
        elif name in ("head.weight", "bag.weight"):
            forced[name] = torch.zeros_like(value)
        else:
            forced[name] = value
    torch.save(forced, model_dir / "model.pt")
    return package(model_dir, folder / "model.tar.gz")


@pytest.fixture(scope="module")
def always_positive(tiny_training, tmp_path_factory):
    return forced_artifact(tiny_training, tmp_path_factory.mktemp("positive"), 20.0)


@pytest.fixture(scope="module")
def always_negative(tiny_training, tmp_path_factory):
    return forced_artifact(tiny_training, tmp_path_factory.mktemp("negative"), -20.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gate:
    """Holds the model requests of transform jobs whose name contains `word`
    until opened; `entered` is set when the first one arrives."""

    def __init__(self, word: str):
        self.word = word
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.held = 0

    def wrap(self, invoke):
        gate = self

        def gated(container, body, content_type, accept="application/json"):
            thread = threading.current_thread().name  # the runner's: invoke-<job name>
            if thread.startswith("invoke-") and gate.word in thread and not gate.opened.is_set():
                gate.held += 1
                gate.entered.set()
                assert gate.opened.wait(300), "the test never opened the gate"
            return invoke(container, body, content_type, accept)
        return gated


@pytest.fixture
def stack(always_positive, tmp_path, monkeypatch):
    gate = Gate("-held-")
    monkeypatch.setattr(ModelContainer, "invoke", gate.wrap(ModelContainer.invoke))
    options = StackOptions(artifact=always_positive, data_dir=tmp_path / "data", aws_port=free_port(),
                           api_port=free_port(), fresh=True, web_dir=None, lambda_concurrency=2, model_workers=1)
    running = Stack(options)
    running.start()
    monkeypatch.setenv(AWS_PORT_VARIABLE, str(options.aws_port))
    yield running, gate
    gate.opened.set()
    running.stop()


def client(stack: Stack, service: str):
    return boto3.client(service, endpoint_url=stack.aws_url, region_name=stack.region, aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(retries={"max_attempts": 2}))


def job_of(stack: Stack, bucket: str, key: str) -> str:
    head = client(stack, "s3").head_object(Bucket=bucket, Key=key)
    prefix = stack.functions["BatchFunction"].spec.environment["JOB_NAME_PREFIX"]
    return jobs.job_name(prefix, bucket, key, jobs.object_version(head.get("VersionId"), head["ETag"]))


def wait_for(describe, done, what: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = describe()
        except Exception:  # noqa: BLE001 - not there yet
            answer = None
        if answer is not None and done(answer):
            return answer
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def labels(stack: Stack, bucket: str, key: str) -> list[str]:
    body = client(stack, "s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line)["label"] for line in body.decode().splitlines()]


def score(stack: Stack, review: str) -> str:
    request = urllib.request.Request(f"{stack.api_url}/score", data=json.dumps({"review": review}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["label"]


def test_a_running_job_keeps_its_model_and_uploads_after_the_switch_use_the_new_one(stack, always_negative):
    running, gate = stack
    sm, s3 = client(running, "sagemaker"), client(running, "s3")
    buckets = {b.logical_id: b.name for b in running.template.buckets.values()}
    inputs, outputs = buckets["InputBucket"], buckets["OutputBucket"]
    first_model = running.functions["BatchFunction"].spec.environment["MODEL_NAME"]
    assert score(running, REVIEW) == "positive"

    # A job on model A, held inside its first mini-batch. Its file is two
    # mini-batches (MaxPayloadInMB 1, one request at a time): the second is
    # sent after the switch.
    held_lines = 24
    s3.put_object(Bucket=inputs, Key="uploads/held.txt", Body=((REVIEW * 800).strip() + "\n").encode() * held_lines)
    held = job_of(running, inputs, "uploads/held.txt")
    assert gate.entered.wait(180), "the held job never reached the model"
    assert sm.describe_transform_job(TransformJobName=held)["ModelName"] == first_model

    # The switch, as `critic deploy --local` makes it.
    assert cli.main(["deploy", "--local", "--artifact", str(always_negative)]) == 0
    new_model = running.functions["BatchFunction"].spec.environment["MODEL_NAME"]
    assert new_model != first_model and new_model.startswith(first_model + "-")
    endpoint = sm.describe_endpoint(EndpointName=running.template.endpoints[0])
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert config["ProductionVariants"][0]["ModelName"] == new_model
    assert sm.describe_model(ModelName=new_model)["PrimaryContainer"]["ModelDataUrl"].startswith("s3://")
    assert sm.describe_model(ModelName=first_model)  # the old model is kept

    # The held job is still running, on A; the endpoint answers with B.
    assert sm.describe_transform_job(TransformJobName=held)["TransformJobStatus"] == "InProgress"
    assert gate.held == 1
    assert score(running, REVIEW) == "negative"
    answer = client(running, "sagemaker-runtime").invoke_endpoint(
        EndpointName=running.template.endpoints[0], Body=json.dumps({"review": REVIEW}).encode(),
        ContentType="application/json", Accept="application/json")
    assert json.loads(answer["Body"].read())["label"] == "negative"

    # An upload after the switch: a job on B, scored by B, while A's job waits.
    s3.put_object(Bucket=inputs, Key="uploads/after.txt", Body=(REVIEW.strip() + "\n").encode() * 5)
    after = job_of(running, inputs, "uploads/after.txt")
    done = wait_for(lambda: sm.describe_transform_job(TransformJobName=after),
                    lambda job: job["TransformJobStatus"] in ("Completed", "Failed"), "the upload after the switch")
    assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")
    assert done["ModelName"] == new_model
    assert labels(running, outputs, "uploads/after.txt.out") == ["negative"] * 5
    assert len(running.models.loaded()) == 2  # A for the held job, B for the endpoint and the new jobs

    # The held job goes on, and every line of it is A's.
    gate.opened.set()
    finished = wait_for(lambda: sm.describe_transform_job(TransformJobName=held),
                        lambda job: job["TransformJobStatus"] in ("Completed", "Failed"), "the held job")
    assert finished["TransformJobStatus"] == "Completed", finished.get("FailureReason")
    assert finished["ModelName"] == first_model
    assert labels(running, outputs, "uploads/held.txt.out") == ["positive"] * held_lines
    assert running.models.loaded() == [endpoint_model_url(sm, new_model)]  # A closed once its job let go


def endpoint_model_url(sm, model: str) -> str:
    return sm.describe_model(ModelName=model)["PrimaryContainer"]["ModelDataUrl"]


def test_switching_to_the_model_already_served_changes_nothing(stack, always_positive, capsys):
    running, _ = stack
    # The stack started on this artifact by path; deploying it uploads it and names it by its SHA-256.
    assert cli.main(["deploy", "--local", "--artifact", str(always_positive)]) == 0
    model = running.functions["BatchFunction"].spec.environment["MODEL_NAME"]
    assert cli.main(["deploy", "--local", "--artifact", str(always_positive)]) == 0
    assert running.functions["BatchFunction"].spec.environment["MODEL_NAME"] == model
    assert "already serves this model" in capsys.readouterr().err
    assert score(running, REVIEW) == "positive"


def test_a_model_that_cannot_load_leaves_the_endpoint_on_its_model_and_fails_its_jobs(stack):
    running, _ = stack
    sm, s3 = client(running, "sagemaker"), client(running, "s3")
    endpoint_name = running.template.endpoints[0]
    serving = sm.describe_endpoint(EndpointName=endpoint_name)
    current = sm.describe_endpoint_config(EndpointConfigName=serving["EndpointConfigName"])["ProductionVariants"][0]
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="broken/model.tar.gz", Body=b"not a tarball")
    sm.create_model(ModelName="broken", ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                    PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://models/broken/model.tar.gz"})
    with pytest.raises(sm.exceptions.ClientError, match="Cannot create already existing model"):
        sm.create_model(ModelName="broken", ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                        PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://models/broken/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName="broken-config", ProductionVariants=[{**current, "ModelName": "broken"}])

    sm.update_endpoint(EndpointName=endpoint_name, EndpointConfigName="broken-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    after = sm.describe_endpoint(EndpointName=endpoint_name)
    assert after["EndpointConfigName"] == serving["EndpointConfigName"] and "could not be loaded" in after["FailureReason"]
    assert score(running, REVIEW) == "positive"  # still the model it served

    s3.put_object(Bucket="models", Key="in/r.txt", Body=b"fine\n")
    sm.create_transform_job(
        TransformJobName="on-a-broken-model", ModelName="broken",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://models/in/r.txt"}},
                        "ContentType": "text/plain", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": "s3://models/out/"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    job = wait_for(lambda: sm.describe_transform_job(TransformJobName="on-a-broken-model"),
                   lambda job: job["TransformJobStatus"] in ("Completed", "Failed"), "the job on a broken model")
    assert job["TransformJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: the model broken could not be loaded")
