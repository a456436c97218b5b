"""S3 failing in the middle of a local transform job (listing, reading the
input half way, writing the output half way): the job ends Failed with a
reason, nothing that looks like a result is left, and once S3 is back a new
job for the same upload completes. Drives critic.local.sagemaker.TransformJobs
(the local SageMaker) with an in-memory store that fails on cue."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))

from test_local_sagemaker import MODEL, ModelDouble, request  # noqa: E402

from critic.local.sagemaker import TransformJobs  # noqa: E402

BUCKET, KEY, OUT = "in", "reviews.txt", "out/reviews.txt.out"
BODY = b"".join(b"review number %d\n" % i for i in range(20_000))  # several mini-batches


class FlakyStore:
    """An S3 bucket in memory whose next call of `fail_on` fails half way."""

    def __init__(self, objects: dict[str, bytes]):
        self.objects = dict(objects)
        self.fail_on: str | None = None

    def _fault(self, operation: str) -> None:
        if self.fail_on == operation:
            self.fail_on = None
            raise ClientError({"Error": {"Code": "InternalError", "Message": "We encountered an internal error."},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)

    def list_keys(self, bucket, prefix):
        if self.fail_on == "ListObjectsV2":
            self.fail_on = None
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        return sorted(k for k in self.objects if k.startswith(prefix))

    def download(self, bucket, key, fileobj):
        data = self.objects[key]
        fileobj.write(data[: len(data) // 2])  # half the object arrives, then the connection fails
        self._fault("GetObject")
        fileobj.write(data[len(data) // 2:])

    def upload(self, bucket, key, fileobj):
        part = fileobj.read(len(BODY) // 3)  # a multipart upload fails after its first part: S3 shows nothing
        self._fault("PutObject")
        self.objects[key] = part + fileobj.read()


@pytest.fixture
def world(tmp_path):
    store = FlakyStore({KEY: BODY})
    jobs = TransformJobs(tmp_path / "jobs", "us-east-1", [MODEL], lambda: store, ModelDouble(), lambda job: None)
    yield store, jobs
    jobs.close()


def run(jobs: TransformJobs, name: str) -> dict:
    jobs.create(request(name, BUCKET, KEY))
    deadline = time.time() + 60
    while time.time() < deadline:
        job = jobs.describe({"TransformJobName": name})
        if job["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"{name} still running")


@pytest.mark.parametrize("operation", ["ListObjectsV2", "GetObject", "PutObject"])
def test_s3_failing_mid_job_fails_the_job_and_leaves_no_output(world, operation):
    store, jobs = world
    store.fail_on = operation
    job = run(jobs, "flaky")
    assert store.fail_on is None  # the fault happened
    assert job["TransformJobStatus"] == "Failed"
    assert job["FailureReason"] and len(job["FailureReason"]) <= 1024
    assert OUT not in store.objects  # nothing that looks like a result
    again = run(jobs, "flaky-again")  # S3 is back: the upload scores again
    assert again["TransformJobStatus"] == "Completed", again.get("FailureReason")
    assert store.objects[OUT].count(b"\n") == BODY.count(b"\n")
