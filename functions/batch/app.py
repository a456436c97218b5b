"""S3 ObjectCreated on the input bucket -> one SageMaker transform job per
uploaded object version (see batch/jobs.py for names, request and output).

Every record of the event is handled; keys are URL-decoded. Objects that are
not input (other suffixes, empty objects, folder markers) are skipped with a
log line. An input file SageMaker would refuse whatever is retried (a key too
long for the job's S3 URIs, or with a line break) is skipped too: the reason
is logged and recorded as `<key>.status.json` (status "Skipped") in the
output bucket, where a job's outcome would be, if S3 allows that key. A duplicate delivery finds its job already exists: one upload, one
job. A record that fails does not stop the others; after all of them, the
invocation fails with a message naming the failed objects, so Lambda retries
the event (the records already submitted are then duplicates, i.e. no-ops)
and finally sends it, with that message, to the on-failure destination.

Environment: MODEL_NAME, OUTPUT_BUCKET, JOB_NAME_PREFIX, BATCH_INSTANCE_TYPE,
BATCH_INSTANCE_COUNT, MAX_PAYLOAD_MB, POWERTOOLS_SERVICE_NAME,
POWERTOOLS_METRICS_NAMESPACE.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from batch import jobs

MODEL_NAME = os.environ["MODEL_NAME"]
OUTPUT_BUCKET = os.environ["OUTPUT_BUCKET"]
JOB_NAME_PREFIX = os.environ["JOB_NAME_PREFIX"]
INSTANCE_TYPE = os.environ["BATCH_INSTANCE_TYPE"]
INSTANCE_COUNT = int(os.environ["BATCH_INSTANCE_COUNT"])
MAX_PAYLOAD_MB = int(os.environ.get("MAX_PAYLOAD_MB") or jobs.DEFAULT_MAX_PAYLOAD_MB)

logger = Logger()
tracer = Tracer()
metrics = Metrics()

_config = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 5})
sagemaker = boto3.client("sagemaker", config=_config)
s3 = boto3.client("s3", config=_config)


class SubmitFailed(Exception):
    """Some uploads of the event could not be submitted; the message names them."""


class InputError(Exception):
    """An upload that cannot be scored as it stands."""


def check_only_object(bucket: str, key: str) -> bool:
    """SageMaker reads every object whose key starts with the job's S3 URI:
    make sure that is this object alone. False if it is gone."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=2).get("Contents", [])
    keys = [item["Key"] for item in listed]
    if key not in keys:
        return False
    others = [other for other in keys if other != key]
    if others:
        raise InputError(
            f"another object's key starts with this one ({others[0]!r}); SageMaker would read both. "
            "Rename one of them and upload again."
        )
    return True


def existing_job_for(name: str, request: dict) -> str | None:
    """The status of the job `name` if it exists and scores the same object."""
    try:
        job = sagemaker.describe_transform_job(TransformJobName=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ValidationException":  # "Could not find requested job"
            return None
        raise
    def source(description: dict) -> str:
        return description["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]

    return job["TransformJobStatus"] if source(job) == source(request) else None


def submit(bucket: str, key: str, version: str) -> dict:
    name = jobs.job_name(JOB_NAME_PREFIX, bucket, key, version)
    request = jobs.transform_job_request(
        name=name,
        model_name=MODEL_NAME,
        bucket=bucket,
        key=key,
        output_bucket=OUTPUT_BUCKET,
        instance_type=INSTANCE_TYPE,
        instance_count=INSTANCE_COUNT,
        max_payload_mb=MAX_PAYLOAD_MB,
    )
    if not check_only_object(bucket, key):
        logger.warning("skipped: the object no longer exists", extra={"job": name})
        metrics.add_metric(name="ObjectsSkipped", unit=MetricUnit.Count, value=1)
        return {"outcome": "skipped", "reason": "object no longer exists", "job": name}
    try:
        sagemaker.create_transform_job(**request)
    except ClientError as error:
        # A job with this name already exists: AWS answers ValidationException
        # ("Job name must be unique within an AWS account and region, and a job
        # with this name already exists (arn:...)") or ResourceInUse. Confirm
        # it is this object's job before calling the delivery a duplicate.
        if error.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceInUse"):
            raise
        status = existing_job_for(name, request)
        if status is None:
            raise
        logger.info("duplicate delivery: the job already exists", extra={"job": name, "job_status": status})
        metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
        return {"outcome": "duplicate", "job": name}
    logger.info("transform job created", extra={
        "job": name,
        "output": request["TransformOutput"]["S3OutputPath"],
        "content_type": request["TransformInput"]["ContentType"],
    })
    metrics.add_metric(name="TransformJobsSubmitted", unit=MetricUnit.Count, value=1)
    return {"outcome": "submitted", "job": name}


def refuse(bucket: str, key: str, reason: str) -> dict:
    """An input no retry can submit: skipped with its reason, logged and, where
    the key leaves room, recorded beside where its output would have been."""
    logger.warning("skipped: %s", reason)
    metrics.add_metric(name="ObjectsSkipped", unit=MetricUnit.Count, value=1)
    status_key = jobs.skipped_status_key(bucket, key, OUTPUT_BUCKET)
    if status_key is None:
        logger.warning("no status record: its key would be longer than S3 allows")
        return {"outcome": "skipped", "reason": reason, "status": None}
    document = jobs.skipped_status_document(bucket, key, reason, recorded_at=datetime.now(timezone.utc))
    try:
        s3.put_object(Bucket=OUTPUT_BUCKET, Key=status_key, ContentType="application/json",
                      Body=json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8"))
    except (ClientError, BotoCoreError):  # the reason is in the log; a retry would not submit the upload either
        logger.exception("could not record the skipped upload's status", extra={"status_key": status_key})
        return {"outcome": "skipped", "reason": reason, "status": None}
    return {"outcome": "skipped", "reason": reason, "status": f"s3://{OUTPUT_BUCKET}/{status_key}"}


def handle_record(record: S3EventRecord) -> dict:
    bucket = record.s3.bucket.name
    obj = record.s3.get_object
    key = unquote_plus(obj.key)
    logger.append_keys(bucket=bucket, key=key)
    base = {"bucket": bucket, "key": key}
    if not record.event_name.startswith("ObjectCreated:"):
        reason = f"not an upload ({record.event_name})"
    else:
        reason = jobs.skip_reason(key, obj.get("size"))
    if reason:
        logger.info("skipped: %s", reason)
        metrics.add_metric(name="ObjectsSkipped", unit=MetricUnit.Count, value=1)
        return {**base, "outcome": "skipped", "reason": reason}
    problem = jobs.submission_problem(bucket, key, OUTPUT_BUCKET)
    if problem:
        return {**base, **refuse(bucket, key, problem)}
    return {**base, **submit(bucket, key, jobs.object_version(obj.version_id, obj.etag))}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict:
    if not event.get("Records"):
        logger.info("no records in the event (e.g. the s3:TestEvent sent when notifications are configured)")
        metrics.add_metric(name="EventsWithoutRecords", unit=MetricUnit.Count, value=1)
        return {"results": []}
    results, failures = [], []
    for record in event.records:
        try:
            results.append(handle_record(record))
        except Exception as error:  # one object failing must not stop the others
            bucket, key = record.s3.bucket.name, unquote_plus(record.s3.get_object.key)
            logger.exception("could not submit a transform job")
            metrics.add_metric(name="SubmitFailures", unit=MetricUnit.Count, value=1)
            failures.append(f"s3://{bucket}/{key}: {type(error).__name__}: {error}")
            results.append({"bucket": bucket, "key": key, "outcome": "failed", "reason": str(error)})
        finally:
            logger.remove_keys(["bucket", "key"])
    if failures:
        raise SubmitFailed(f"{len(failures)} of {len(results)} uploads not submitted: " + "; ".join(failures))
    return {"results": results}
