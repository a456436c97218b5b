"""Uploads queue (S3 ObjectCreated on the input bucket, via SQS) -> one
SageMaker transform job per uploaded object version (see batch/jobs.py for
names, request and output, batch/buffer.py for waiting and giving up).

Each SQS message holds an S3 event; every S3 record is handled; keys are
URL-decoded. Objects that are
not input (other suffixes, empty objects, folder markers) are skipped with a
log line. An input file SageMaker would refuse whatever is retried (a key too
long for the job's S3 URIs, or with a line break) is skipped too: the reason
is logged and recorded as `<key>.status.json` (status "Skipped") in the
output bucket, where a job's outcome would be, if S3 allows that key. A duplicate delivery finds its job already exists: one upload, one
job. Capacity: when SageMaker answers with its quota or throttling (or a 5xx),
or MAX_JOBS_IN_FLIGHT of this stack's jobs are running, the upload waits:
its message goes back to the queue with a growing delay and is let go, so a
burst of uploads is scored as capacity frees, never dead-lettered for it.

Any other failure: the message is reported as failed (a partial batch
response names exactly those), SQS delivers it again after the visibility
timeout, and on its MAX_RECEIVES-th receive the function records it in the
failed-events queue with its reason (`critic redrive` sends it back). The
records of one message that were submitted are duplicates when it returns.

Big uploads: above SHARD_ABOVE_MB (MiB) with more than one instance, the
upload is split into line-aligned shards inside S3 and one job reads them all
(batch/shards.py, docs/sharding.md); a line too long to split at is Skipped,
and so is a file whose split would outlast the invocation (the reason says
how many MiB fit at the copy rate it saw).

Environment: MODEL_NAME, OUTPUT_BUCKET, JOB_NAME_PREFIX, BATCH_INSTANCE_TYPE,
BATCH_INSTANCE_COUNT, MAX_PAYLOAD_MB, UPLOADS_QUEUE_URL, FAILED_EVENTS_QUEUE_URL,
MAX_JOBS_IN_FLIGHT (0: no cap but the account's), CAPACITY_RETRY_SECONDS,
CAPACITY_RETRY_MAX_SECONDS, SHARD_ABOVE_MB, POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE.
"""
from __future__ import annotations

import json
import os
import math
import time
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import S3Event, SQSRecord
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from batch import buffer, jobs, shards
from batch.s3store import S3Store
from contract import transformjob

MODEL_NAME = os.environ["MODEL_NAME"]
OUTPUT_BUCKET = os.environ["OUTPUT_BUCKET"]
JOB_NAME_PREFIX = os.environ["JOB_NAME_PREFIX"]
INSTANCE_TYPE = os.environ["BATCH_INSTANCE_TYPE"]
INSTANCE_COUNT = int(os.environ["BATCH_INSTANCE_COUNT"])
MAX_PAYLOAD_MB = int(os.environ.get("MAX_PAYLOAD_MB") or jobs.DEFAULT_MAX_PAYLOAD_MB)
UPLOADS_QUEUE_URL = os.environ.get("UPLOADS_QUEUE_URL", "")
FAILED_EVENTS_QUEUE_URL = os.environ.get("FAILED_EVENTS_QUEUE_URL", "")
MAX_JOBS_IN_FLIGHT = int(os.environ.get("MAX_JOBS_IN_FLIGHT") or 0)
CAPACITY_RETRY_SECONDS = float(os.environ.get("CAPACITY_RETRY_SECONDS") or 60)
SHARD_ABOVE_BYTES = int(float(os.environ.get("SHARD_ABOVE_MB") or shards.DEFAULT_SHARD_ABOVE_MB) * shards.MIB)
CAPACITY_RETRY_MAX_SECONDS = float(os.environ.get("CAPACITY_RETRY_MAX_SECONDS") or buffer.MAX_DELAY_SECONDS)

logger = Logger()
tracer = Tracer()
metrics = Metrics()

_config = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 5})
sagemaker = boto3.client("sagemaker", config=_config)
s3 = boto3.client("s3", config=_config)
sqs = boto3.client("sqs", config=_config)
store = S3Store(s3)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def no_deadline() -> float:
    """Seconds left outside a Lambda invocation (tests, scripts): no limit."""
    return math.inf


class SubmitFailed(Exception):
    """Some uploads of the event could not be submitted; the message names them."""


class InputError(Exception):
    """An upload that cannot be scored as it stands."""


class NoCapacity(Exception):
    """SageMaker has no room for the job now (or this stack's cap is reached):
    the upload waits. `records` are the S3 records still to submit."""

    def __init__(self, reason: str, records: list[dict] | None = None):
        super().__init__(reason)
        self.records = records or []


def capacity_refusal(error: Exception) -> str | None:
    """Why SageMaker cannot take a job now, if that is what `error` says."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if buffer.is_capacity_error(code, status):
            return f"{code}: {error.response.get('Error', {}).get('Message', '')}"
    elif isinstance(error, (ConnectionError, ReadTimeoutError)):
        return f"SageMaker unreachable: {error}"
    return None


def jobs_in_flight() -> int:
    """This stack's transform jobs that hold instances now (InProgress)."""
    running = 0
    for page in sagemaker.get_paginator("list_transform_jobs").paginate(
            StatusEquals="InProgress", NameContains=JOB_NAME_PREFIX, PaginationConfig={"PageSize": 100}):
        running += sum(1 for job in page["TransformJobSummaries"]
                       if job["TransformJobName"].startswith(JOB_NAME_PREFIX + "-"))
    return running


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
    return job["TransformJobStatus"] if transformjob.input_uri(job) == transformjob.input_uri(request) else None


def submit(bucket: str, key: str, version: str, size: int | None = None, version_id: str | None = None,
           seconds_left: Callable[[], float] = no_deadline) -> dict:
    name = jobs.job_name(JOB_NAME_PREFIX, bucket, key, version)
    sharded = shards.should_shard(size, SHARD_ABOVE_BYTES, INSTANCE_COUNT)
    request = jobs.transform_job_request(
        name=name,
        model_name=MODEL_NAME,
        bucket=bucket,
        key=key,
        output_bucket=OUTPUT_BUCKET,
        instance_type=INSTANCE_TYPE,
        instance_count=INSTANCE_COUNT,
        max_payload_mb=MAX_PAYLOAD_MB,
        sharded=sharded,
    )
    if sharded:
        return submit_sharded(request, bucket, key, size, version_id, seconds_left)
    if not check_only_object(bucket, key):
        logger.warning("skipped: the object no longer exists", extra={"job": name})
        metrics.add_metric(name="ObjectsSkipped", unit=MetricUnit.Count, value=1)
        return {"outcome": "skipped", "reason": "object no longer exists", "job": name}
    return create_job(request)


def submit_sharded(request: dict, bucket: str, key: str, size: int, version_id: str | None,
                   seconds_left: Callable[[], float] = no_deadline) -> dict:
    """Split the upload into shards (copies inside S3), keep the plan for the
    completion function, then create the one job that reads them all. A split
    that would outlast the function (`seconds_left`) is Skipped with its
    reason and the size that fits."""
    name = request["TransformJobName"]
    status = existing_job_for(name, request)
    if status is not None:  # a duplicate delivery: the shards were written before the job was created
        logger.info("duplicate delivery: the job already exists", extra={"job": name, "job_status": status})
        metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
        return {"outcome": "duplicate", "job": name}
    if MAX_JOBS_IN_FLIGHT and jobs_in_flight() >= MAX_JOBS_IN_FLIGHT:  # before copying anything
        raise NoCapacity(f"{MAX_JOBS_IN_FLIGHT} transform jobs in flight (MaxTransformJobsInFlight)")
    version = version_id if version_id and version_id != "null" else None
    try:
        plan = shards.plan(store, job=name, bucket=bucket, key=key, version=version, size=size,
                           instances=INSTANCE_COUNT, max_line=MAX_PAYLOAD_MB * shards.MIB + 2)
    except (shards.LineTooLong, shards.TooBig) as error:
        return {**refuse(bucket, key, f"cannot be split across the job's instances: {error}"), "job": name}
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in S3Store.not_found:
            raise
        logger.warning("skipped: the object no longer exists", extra={"job": name})
        metrics.add_metric(name="ObjectsSkipped", unit=MetricUnit.Count, value=1)
        return {"outcome": "skipped", "reason": "object no longer exists", "job": name}
    started = time.monotonic()
    try:
        shards.split(store, plan, seconds_left)
    except shards.OutOfTime as late:
        store.delete(plan.staging_bucket, late.written)  # what it wrote; the lifecycle rule takes any left
        logger.warning("split stopped before the deadline", extra={
            "job": name, "bytes": size, "copied_bytes": late.copied, "split_seconds": round(late.seconds, 3),
            "fits_bytes": late.fits_bytes})
        return {**refuse(bucket, key, str(late)), "job": name}
    store.put(OUTPUT_BUCKET, shards.plan_key(name), plan.to_json(), "application/json")
    logger.info("upload split into %d shards", len(plan.shards), extra={
        "job": name, "bytes": size, "split_seconds": round(time.monotonic() - started, 3)})
    metrics.add_metric(name="UploadsSharded", unit=MetricUnit.Count, value=1)
    return {**create_job(request), "shards": len(plan.shards)}


def create_job(request: dict) -> dict:
    name = request["TransformJobName"]
    if MAX_JOBS_IN_FLIGHT and jobs_in_flight() >= MAX_JOBS_IN_FLIGHT:
        raise NoCapacity(f"{MAX_JOBS_IN_FLIGHT} transform jobs in flight (MaxTransformJobsInFlight)")
    try:
        sagemaker.create_transform_job(**request)
    except (ClientError, ConnectionError, ReadTimeoutError) as error:
        refusal = capacity_refusal(error)
        if refusal:
            raise NoCapacity(refusal) from error
        if not isinstance(error, ClientError):
            raise
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
        "output": transformjob.output_path(request),
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


def handle_record(record: S3EventRecord, seconds_left: Callable[[], float] = no_deadline) -> dict:
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
    return {**base, **submit(bucket, key, jobs.object_version(obj.version_id, obj.etag), obj.get("size"),
                             obj.version_id, seconds_left)}


def handle_upload_event(event: S3Event, seconds_left: Callable[[], float] = no_deadline) -> dict:
    """Submit a job for each upload of one S3 event. Raises NoCapacity naming
    the records that must wait (when no other record failed), or SubmitFailed
    naming the failed ones (after trying all of them)."""
    if not event.get("Records"):
        logger.info("no records in the event (e.g. the s3:TestEvent sent when notifications are configured)")
        metrics.add_metric(name="EventsWithoutRecords", unit=MetricUnit.Count, value=1)
        return {"results": []}
    results, failures, waiting, refusal = [], [], [], None
    for record in event.records:
        try:
            results.append(handle_record(record, seconds_left))
        except NoCapacity as wait:
            waiting.append(record.raw_event)
            refusal = str(wait)
            results.append({"bucket": record.s3.bucket.name, "key": unquote_plus(record.s3.get_object.key),
                            "outcome": "waiting", "reason": refusal})
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
    if waiting:
        raise NoCapacity(refusal or "no capacity", waiting)
    return {"results": results}


def wait_for_capacity(record: SQSRecord, wait: NoCapacity, now: float, function_arn: str) -> dict:
    """Send the waiting uploads back to the queue, delayed; the original message is then let go."""
    state = buffer.Wait.from_attributes(record.raw_event.get("messageAttributes") or {}, now)
    if state.waited_too_long(now):
        dead_letter(record, {"Records": wait.records}, "NoCapacity",
                    f"waited {(now - state.first_seen) / 86400:.1f} days for SageMaker capacity: {wait}", function_arn)
        return {"outcome": "failed", "reason": str(wait)}
    delay = buffer.backoff_seconds(state.waits, CAPACITY_RETRY_SECONDS, CAPACITY_RETRY_MAX_SECONDS)
    sqs.send_message(QueueUrl=UPLOADS_QUEUE_URL, MessageBody=json.dumps({"Records": wait.records}),
                     DelaySeconds=delay, MessageAttributes=state.next_attributes())
    logger.info("waiting for capacity: %s", wait, extra={"delay_seconds": delay, "waits": state.waits + 1})
    metrics.add_metric(name="UploadsWaitingForCapacity", unit=MetricUnit.Count, value=len(wait.records))
    return {"outcome": "waiting", "reason": str(wait), "delay": delay}


def dead_letter(record: SQSRecord, payload, error_type: str, message: str, function_arn: str) -> None:
    """Record an upload no retry will submit in the failed-events queue, with its reason."""
    document = buffer.failed_event_record(
        function_arn=function_arn, payload=payload, error_type=error_type, error_message=message[:4000],
        attempts=int(record.attributes.approximate_receive_count or 1), at=datetime.now(timezone.utc))
    sqs.send_message(QueueUrl=FAILED_EVENTS_QUEUE_URL, MessageBody=json.dumps(document))
    logger.error("upload recorded in the failed-events queue: %s", message)
    metrics.add_metric(name="UploadsFailed", unit=MetricUnit.Count, value=1)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> dict:
    """One message of the uploads queue. Returns normally when the message may
    go (submitted, skipped, waiting again, or recorded as failed); raises to
    have SQS deliver it again."""
    try:
        body = json.loads(record.body)
        if not isinstance(body, dict):
            raise InputError("the message is not a JSON object")
        return handle_upload_event(S3Event(body), lambda: lambda_context.get_remaining_time_in_millis() / 1000)
    except NoCapacity as wait:
        return wait_for_capacity(record, wait, time.time(), lambda_context.invoked_function_arn)
    except Exception as error:
        receives = int(record.attributes.approximate_receive_count or 1)
        if receives < buffer.MAX_RECEIVES:
            raise
        try:
            payload = json.loads(record.body)
        except ValueError:
            payload = record.body
        dead_letter(record, payload, type(error).__name__,
                    f"{error} (after {receives} attempts)", lambda_context.invoked_function_arn)
        return {"outcome": "failed", "reason": str(error)}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
