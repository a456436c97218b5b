"""EventBridge "SageMaker Transform Job State Change" (this stack's jobs, final
states) -> record the outcome beside the output and emit metrics.

For a job that scored `s3://<input bucket>/<key>`, writes
`s3://<OUTPUT_BUCKET>/<key>.status.json`: status, job name, input and output
URIs, counts of records / scored / errors (read from `<key>.out` when the job
completed), failure reason, and timings. A sharded upload's job (its input is
under batch/shards.py's staging prefix) has its shard outputs counted and
assembled into the upload's `<key>.out` first (finish_sharded). A failed job also logs an error with
its reason.

It reads only the event's detail, which carries the job's description
(contract/transformjob.py's TransformJobDescription): TransformJobName,
TransformJobStatus, FailureReason, TransformInput.DataSource.S3DataSource.S3Uri,
TransformOutput.S3OutputPath, CreationTime, TransformStartTime,
TransformEndTime.

Environment: OUTPUT_BUCKET, JOB_NAME_PREFIX, POWERTOOLS_SERVICE_NAME,
POWERTOOLS_METRICS_NAMESPACE.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError

from batch import jobs, shards
from batch.s3store import S3Store
from contract import transformjob
from contract.locations import s3_uri

OUTPUT_BUCKET = os.environ["OUTPUT_BUCKET"]
JOB_NAME_PREFIX = os.environ["JOB_NAME_PREFIX"]
COUNTING_THREADS = 8  # shard outputs counted at once

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client(
    "s3", config=Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "max_attempts": 5},
                        max_pool_connections=COUNTING_THREADS)
)
store = S3Store(s3)


def count_output(bucket: str, key: str, fmt: jobs.InputFormat) -> jobs.Counts | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        logger.error("the completed job left no output", extra={"output": s3_uri(bucket, key)})
        return None
    with body:
        return jobs.count_results(jobs.iter_lines(body.iter_chunks(1024 * 1024)), fmt)


def finish_sharded(detail: transformjob.TransformJobDescription, plan: shards.Plan, result_key: str) -> dict:
    """A sharded upload's job is over: on success, count the shards' outputs,
    assemble them into `<key>.out` (copies inside S3; a failure aborts it, so
    no partial `.out` appears) and remove the staging objects; then record
    the status as for any job. A failed job's staging objects are left for the
    lifecycle rule (and for a look at what was scored)."""
    counts, output_uri = None, None
    fmt = jobs.input_format(plan.key)
    if detail.get("TransformJobStatus") == "Completed" and fmt is not None:
        outputs = plan.output_keys()
        sizes = [store.size(OUTPUT_BUCKET, key) for key in outputs]
        missing = [key for key, size in zip(outputs, sizes) if size is None]
        if missing:  # raise: retried, then in the failed-events queue; no .out
            raise RuntimeError(f"the completed job left no output for {len(missing)} of {len(outputs)} shards "
                               f"(first: s3://{OUTPUT_BUCKET}/{missing[0]})")
        with ThreadPoolExecutor(COUNTING_THREADS) as pool:
            parts = list(pool.map(lambda key: count_output(OUTPUT_BUCKET, key, fmt), outputs))
        counts = jobs.Counts(*(sum(getattr(part, field) for part in parts) for field in ("records", "scored", "errors")))
        shards.assemble(store, [shards.Source(OUTPUT_BUCKET, key, 0, size) for key, size in zip(outputs, sizes)],
                        OUTPUT_BUCKET, result_key)
        output_uri = s3_uri(OUTPUT_BUCKET, result_key)
        logger.info("shard outputs assembled", extra={"shards": len(outputs), "output": output_uri})
    document = jobs.status_document(detail, output_uri=output_uri, counts=counts, recorded_at=datetime.now(timezone.utc),
                                    upload_uri=plan.upload_uri, shards=len(plan.shards))
    write_status(result_key, document)
    if output_uri:
        inputs, staged_outputs = shards.staging_keys(plan)
        store.delete(plan.staging_bucket, inputs)
        store.delete(OUTPUT_BUCKET, staged_outputs)
    return document


def write_status(result_key: str, document: dict) -> None:
    s3.put_object(
        Bucket=OUTPUT_BUCKET,
        Key=jobs.status_key(result_key),
        Body=json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8"),
        ContentType="application/json",
    )


def record_metrics(document: dict) -> None:
    metrics.add_metric(name=f"TransformJobs{document['status']}", unit=MetricUnit.Count, value=1)
    if document["counts"]:
        metrics.add_metric(name="BatchRecordsScored", unit=MetricUnit.Count, value=document["counts"]["scored"])
        metrics.add_metric(name="BatchRecordErrors", unit=MetricUnit.Count, value=document["counts"]["errors"])
    if document["durationSeconds"] is not None:
        metrics.add_metric(name="TransformJobDuration", unit=MetricUnit.Seconds, value=document["durationSeconds"])


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict | None:
    detail: transformjob.TransformJobDescription = event.detail
    name, status = detail.get("TransformJobName", ""), detail.get("TransformJobStatus")
    logger.append_keys(job=name)
    if not jobs.is_stack_job(name, JOB_NAME_PREFIX) or status not in transformjob.FINAL_STATUSES:
        logger.info("ignored: not a final state of this stack's jobs", extra={"job_status": status})
        metrics.add_metric(name="EventsIgnored", unit=MetricUnit.Count, value=1)
        return None
    input_uri = transformjob.input_uri(detail)
    bucket, result_key = jobs.output_location(input_uri, transformjob.output_path(detail))
    if bucket != OUTPUT_BUCKET:
        logger.warning("ignored: the job writes outside this stack's output bucket", extra={"output_bucket": bucket})
        metrics.add_metric(name="EventsIgnored", unit=MetricUnit.Count, value=1)
        return None
    if shards.is_staging_key(jobs.parse_s3_uri(input_uri)[1]):
        body = store.get(OUTPUT_BUCKET, shards.plan_key(name))
        if body is None:  # removed after the output was assembled: a repeated event
            logger.info("ignored: the sharded upload's output was already assembled")
            metrics.add_metric(name="EventsIgnored", unit=MetricUnit.Count, value=1)
            return None
        plan = shards.Plan.from_json(body)
        result_key = jobs.output_location(plan.upload_uri, jobs.output_path(OUTPUT_BUCKET, plan.key))[1]
        document = finish_sharded(detail, plan, result_key)
    else:
        counts, output_uri = None, None
        fmt = jobs.input_format(jobs.parse_s3_uri(input_uri)[1])
        if status == "Completed" and fmt is not None:
            counts = count_output(bucket, result_key, fmt)
            output_uri = s3_uri(bucket, result_key) if counts is not None else None
        document = jobs.status_document(
            detail, output_uri=output_uri, counts=counts, recorded_at=datetime.now(timezone.utc)
        )
        write_status(result_key, document)
    record_metrics(document)
    if status == "Failed":
        # The record keeps the reason's first line; the log keeps all of it.
        logger.error("transform job failed", extra={
            "reason": document["failureReason"], "sagemaker_reason": detail.get("FailureReason"), "input": input_uri,
        })
    else:
        logger.info("transform job finished", extra={"job_status": status, "counts": document["counts"]})
    return document
