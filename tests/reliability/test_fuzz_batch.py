"""Fuzzing BatchFunction (S3 upload -> CreateTransformJob) with arbitrary S3
events: any unicode key (URL-encoded as S3 sends it), any size, 0..8 records,
duplicate and out-of-order records, other event kinds, missing version ids;
against a simulated S3 bucket and SageMaker account whose calls fail at
random (throttling, 500s, connection errors).

Every request is checked against the real service model (botocore's
validate_parameters) and SageMaker's job-name and S3Uri rules. The handler
may only return one result per record or raise SubmitFailed naming what
failed; failures only where a fault was injected or AWS would refuse. An
input SageMaker would refuse on every retry (an S3 URI over 1024 characters
or with a line terminator) is never sent: it is skipped, and its status is
recorded when S3 can hold the status key."""
from __future__ import annotations

import copy
import json
import random
from datetime import datetime, timezone
from unittest import mock
from urllib.parse import quote_plus

import pytest
from aws_lambda_powertools.utilities.data_classes import S3Event
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.validate import validate_parameters
from hypothesis import event as label, given, strategies as st

from app_support import load_event
from batch import jobs

INPUT = "critic-input-123456789012-us-east-1-local"
OUTPUT = "critic-output-123456789012-us-east-1-local"
S3URI_MAX = 1024  # SageMaker's limit on TransformInput...S3Uri and S3OutputPath
JAVA_LINE_TERMINATORS = set("\n\r\u0085\u2028\u2029")  # what "." in SageMaker's (Java) S3Uri pattern cannot match


def sagemaker_refuses(uri: str) -> bool:
    """SageMaker's S3Uri rules as Java applies them: length in UTF-16 units."""
    return len(uri.encode("utf-16-le")) // 2 > S3URI_MAX or bool(set(uri) & JAVA_LINE_TERMINATORS)


def unsubmittable(key: str) -> bool:
    return sagemaker_refuses(f"s3://{INPUT}/{key}") or sagemaker_refuses(jobs.output_path(OUTPUT, key))


class World:
    """An input bucket and a SageMaker account, with faults drawn by Hypothesis."""

    def __init__(self, module, objects: set[str], faults, fail_rate: int):
        self.module, self.objects, self.faults, self.fail_rate = module, objects, faults, fail_rate
        self.jobs: dict[str, dict] = {}
        self.statuses: dict[str, dict] = {}
        self.injected = 0

    def _validate(self, client, operation: str, params: dict) -> None:
        validate_parameters(params, client.meta.service_model.operation_model(operation).input_shape)

    def _maybe_fail(self, operation: str) -> None:
        if self.fail_rate and self.faults.randrange(100) < self.fail_rate:
            self.injected += 1
            fault = self.faults.choice(["ThrottlingException", "InternalError", "connection"])
            if fault == "connection":
                raise EndpointConnectionError(endpoint_url="https://example.invalid")
            raise ClientError({"Error": {"Code": fault, "Message": "injected"},
                               "ResponseMetadata": {"HTTPStatusCode": 400 if fault.startswith("Thr") else 500}}, operation)

    def list_objects_v2(self, **params):
        self._validate(self.module.s3, "ListObjectsV2", params)
        self._maybe_fail("ListObjectsV2")
        assert params["Bucket"] == INPUT
        keys = sorted(k for k in self.objects if k.startswith(params["Prefix"]))[: params["MaxKeys"]]
        return {"Contents": [{"Key": k, "Size": 1} for k in keys], "KeyCount": len(keys), "IsTruncated": False}

    def create_transform_job(self, **params):
        self._validate(self.module.sagemaker, "CreateTransformJob", params)
        name = params["TransformJobName"]
        assert len(name) <= jobs.JOB_NAME_MAX and jobs.JOB_NAME_PATTERN.fullmatch(name), name
        assert name.startswith("critic-local-") and name == name.lower()
        self._maybe_fail("CreateTransformJob")
        uri = params["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        # Never sent: SageMaker would refuse it on every retry, and the event would end as a dead letter.
        assert not sagemaker_refuses(uri) and not sagemaker_refuses(params["TransformOutput"]["S3OutputPath"]), uri
        if name in self.jobs:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "Job name must be unique within an "
                               "AWS account and region, and a job with this name already exists"}}, "CreateTransformJob")
        self.jobs[name] = params
        return {"TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}"}

    def describe_transform_job(self, **params):
        self._validate(self.module.sagemaker, "DescribeTransformJob", params)
        self._maybe_fail("DescribeTransformJob")
        job = self.jobs.get(params["TransformJobName"])
        if job is None:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "Could not find requested job"}},
                              "DescribeTransformJob")
        return {**copy.deepcopy(job), "TransformJobStatus": "InProgress",
                "TransformJobArn": "arn", "CreationTime": datetime.now(timezone.utc)}

    def put_object(self, **params):
        self._validate(self.module.s3, "PutObject", params)
        self._maybe_fail("PutObject")
        assert params["Bucket"] == OUTPUT and params["Key"].endswith(".status.json")
        assert len(params["Key"].encode("utf-8")) <= 1024
        self.statuses[params["Key"]] = json.loads(params["Body"])
        return {"ETag": '"etag"'}

    def patches(self):
        return [mock.patch.object(self.module.s3, "list_objects_v2", side_effect=self.list_objects_v2),
                mock.patch.object(self.module.s3, "put_object", side_effect=self.put_object),
                mock.patch.object(self.module.sagemaker, "create_transform_job", side_effect=self.create_transform_job),
                mock.patch.object(self.module.sagemaker, "describe_transform_job", side_effect=self.describe_transform_job)]


# ------------------------------------------------------------------ events

SUFFIXES = st.sampled_from([".txt", ".jsonl", ".csv", ".txt", ".jsonl", ".csv", ".TXT", "", "/", ".out", ".json",
                            ".status.json", ".txt.out", " .txt", ".txt "])
KEYS = st.one_of(
    st.builds(lambda stem, suffix: stem + suffix, st.text(min_size=0, max_size=40), SUFFIXES),
    st.builds(lambda folder, stem, suffix: f"{folder}/{stem}{suffix}", st.text(max_size=10), st.text(max_size=10), SUFFIXES),
    st.builds(lambda c, n, suffix: c * n + suffix, st.sampled_from(["a", "é", "😀", "/", " ", "+", "%"]),
              st.integers(1, 1020), SUFFIXES),
).filter(lambda k: 0 < len(k.encode("utf-8")) <= 1024)
EVENT_NAMES = st.one_of(st.sampled_from(["ObjectCreated:Put", "ObjectCreated:Put", "ObjectCreated:Post",
                                         "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload",
                                         "ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated",
                                         "ObjectRestore:Completed", "LifecycleExpiration:Delete"]),
                        st.text(max_size=20))


@st.composite
def uploads(draw) -> dict:
    """One S3 event record."""
    record = copy.deepcopy(load_event("s3-put-unicode-key")["Records"][0])
    wild = draw(st.integers(0, 3)) == 3  # one record in four is anything; the rest are uploads of input files
    key = draw(KEYS if wild else st.builds(lambda k, s: k + s, KEYS, st.sampled_from(jobs.INPUT_SUFFIXES)).filter(
        lambda k: len(k.encode("utf-8")) <= 1024))
    obj = {"key": quote_plus(key, safe="/"), "sequencer": "0055AED6DCD90281E5"}
    if not wild or draw(st.booleans()):
        obj["size"] = draw(st.one_of(st.integers(1, 5 * 1024**4), st.just(0)) if wild else st.integers(1, 5 * 1024**4))
    etag = draw(st.one_of(st.just("d41d8cd98f00b204e9800998ecf8427e"), st.none(),
                          st.from_regex(r"[0-9a-f]{32}(-[0-9]{1,4})?", fullmatch=True)))
    if etag is not None:
        obj["eTag"] = etag
    version = draw(st.one_of(st.none(), st.just("null"), st.text(min_size=1, max_size=40)))
    if version is not None:
        obj["versionId"] = version
    record["s3"]["object"] = obj
    record["eventName"] = draw(EVENT_NAMES) if wild else "ObjectCreated:Put"
    return record


@st.composite
def s3_events(draw) -> tuple[dict, list[dict]]:
    records = draw(st.lists(uploads(), min_size=0 if draw(st.integers(0, 7)) == 7 else 1, max_size=6))
    # Duplicate deliveries, in any order.
    records += draw(st.lists(st.sampled_from(records), max_size=3)) if records else []
    records = draw(st.permutations(records))
    event = {"Records": records} if records or draw(st.booleans()) else {"Service": "Amazon S3", "Event": "s3:TestEvent"}
    return event, records


def decoded(record: dict) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(record["s3"]["object"]["key"])


def input_upload(record: dict) -> bool:
    obj = record["s3"]["object"]
    return record["eventName"].startswith("ObjectCreated:") and jobs.skip_reason(decoded(record), obj.get("size")) is None


def eligible(record: dict) -> bool:
    """An upload that should start a job."""
    return input_upload(record) and not unsubmittable(decoded(record))


@pytest.fixture(scope="module")
def batch(batch_module):
    return batch_module


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@given(sample=s3_events(), fail_rate=st.sampled_from([0, 0, 0, 20, 60]), seed=st.integers(0, 2**32 - 1),
       gone=st.sets(st.integers(0, 8), max_size=2))
def test_fuzz_batch_handler_submits_each_upload_once(batch, lambda_context, sample, fail_rate, seed, gone):
    event, records = sample
    present = {decoded(r) for i, r in enumerate(records) if input_upload(r) and i not in gone}  # the bucket
    world = World(batch, present, random.Random(seed), fail_rate)
    with mock.patch.multiple(batch, s3=batch.s3, sagemaker=batch.sagemaker):
        patches = world.patches()
        for p in patches:
            p.start()
        try:
            try:
                outcome = batch.handle_upload_event(S3Event(copy.deepcopy(event)))
                failed = None
            except batch.SubmitFailed as error:
                outcome, failed = None, str(error)
            except batch.NoCapacity as error:  # the uploads wait in the queue: only a fault says "not now"
                assert world.injected and error.records, error
                outcome, failed = None, f"waiting: {error}"
            # A Lambda retry of the same event, with no faults: nothing new, nothing lost.
            world.fail_rate = 0
            jobs_before = dict(world.jobs)
            try:
                retried, retry_failed = batch.handle_upload_event(S3Event(copy.deepcopy(event))), None
            except batch.SubmitFailed as error:
                retried, retry_failed = None, str(error)
        finally:
            for p in patches:
                p.stop()
    label("failed" if failed else "ok")
    label(f"{len(world.jobs)} jobs")
    label(f"{sum(map(eligible, records))} eligible, {len(present)} present")
    conflicts = any(k != o and o.startswith(k) for k in present for o in present)
    no_version = any(eligible(r) and not (r["s3"]["object"].get("versionId") not in (None, "null") or r["s3"]["object"].get("eTag"))
                     for r in records)
    if failed is None:
        assert len(outcome["results"]) == len(records)
        assert all(r["outcome"] in ("submitted", "duplicate", "skipped") for r in outcome["results"])
        assert [r["key"] for r in outcome["results"]] == [decoded(r) for r in records]
    else:
        assert world.injected or conflicts or no_version, failed
        if not failed.startswith("waiting: "):
            assert failed.split(":")[0].split(" of ")[1].startswith(str(len(records)))
    if retry_failed:
        assert conflicts or no_version, retry_failed
    refused = [r for r in records if input_upload(r) and unsubmittable(decoded(r))]
    label(f"{len(refused)} refused")
    for result in (outcome, retried):
        if result is not None:
            for record, got in zip(records, result["results"]):
                if record in refused:
                    assert got["outcome"] == "skipped" and got["reason"], got
    for record in refused:  # after the fault-free retry, the reason is recorded where S3 allows
        status_key = jobs.skipped_status_key(INPUT, decoded(record), OUTPUT)
        if status_key is not None and retried is not None:
            assert world.statuses[status_key]["status"] == "Skipped"
            assert world.statuses[status_key]["input"] == f"s3://{INPUT}/{decoded(record)}"
    if retried is not None:
        assert world.jobs.keys() >= jobs_before.keys()
        # Every upload still present has exactly one job, and it reads that upload.
        wanted = {(decoded(r), batch.jobs.object_version(r["s3"]["object"].get("versionId"), r["s3"]["object"].get("eTag")))
                  for i, r in enumerate(records) if eligible(r) and decoded(r) in present}
        assert len(world.jobs) == len(wanted)
        for key, version in wanted:
            name = jobs.job_name("critic-local", INPUT, key, version)
            assert world.jobs[name]["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{INPUT}/{key}"
        outcomes = [r["outcome"] for r in retried["results"]]
        assert "submitted" not in outcomes or len(jobs_before) < len(wanted)
