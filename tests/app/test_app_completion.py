"""CompletionFunction (transform job finished -> <key>.status.json), against
moto's S3, with the output files SageMaker writes for each input format."""
from __future__ import annotations

import copy
import json

import boto3
import pytest
from moto import mock_aws

from app_support import load_event

OUTPUT = "critic-output-123456789012-us-east-1-local"
INPUT = "critic-input-123456789012-us-east-1-local"


@pytest.fixture
def s3(completion, fresh_client):
    with mock_aws():
        fresh_client(completion, "s3", "s3")
        client = boto3.client("s3")
        client.create_bucket(Bucket=OUTPUT)
        yield client


def status_of(s3, key: str) -> dict:
    obj = s3.get_object(Bucket=OUTPUT, Key=key)
    assert obj["ContentType"] == "application/json"
    return json.loads(obj["Body"].read())


def job_event(status: str, key: str, output_path: str) -> dict:
    event = copy.deepcopy(load_event("sagemaker-transform-completed" if status == "Completed" else "sagemaker-transform-failed"))
    event["detail"]["TransformJobStatus"] = status
    event["detail"]["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{INPUT}/{key}"
    event["detail"]["TransformOutput"]["S3OutputPath"] = output_path
    return event


def test_completed_event_records_counts_beside_the_output(completion, s3, context, capsys):
    s3.put_object(Bucket=OUTPUT, Key="batch/reviews.txt.out", Body=(
        b'{"label": "positive", "score": 0.91}\n'
        b'{"error": "review is empty"}\n'
        b'{"label": "negative", "score": 0.08}\n'
    ))
    event = load_event("sagemaker-transform-completed")
    document = completion.lambda_handler(event, context)
    assert status_of(s3, "batch/reviews.txt.status.json") == document
    assert document == {
        "status": "Completed",
        "job": "critic-local-reviews-df2b65b603cd5a20",
        "input": f"s3://{INPUT}/batch/reviews.txt",
        "output": f"s3://{OUTPUT}/batch/reviews.txt.out",
        "counts": {"records": 3, "scored": 2, "errors": 1},
        "failureReason": None,
        "createdAt": "2026-11-22T10:15:31Z",
        "startedAt": "2026-11-22T10:19:02Z",
        "endedAt": "2026-11-22T10:23:58Z",
        "durationSeconds": 296.0,
        "recordedAt": document["recordedAt"],
    }
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert emf and emf[-1]["TransformJobsCompleted"] == [1.0] and emf[-1]["BatchRecordErrors"] == [1.0]
    assert emf[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Critic"


def test_failed_event_records_the_reason_and_logs_an_error(completion, s3, context, logs):
    lines = logs(completion)
    event = load_event("sagemaker-transform-failed")
    document = completion.lambda_handler(event, context)
    assert status_of(s3, "batch/broken.txt.status.json") == document
    assert document["status"] == "Failed" and document["output"] is None and document["counts"] is None
    assert document["failureReason"] == "ClientError: See job logs for more information"
    assert document["createdAt"] == "2026-11-22T10:15:31Z" and document["durationSeconds"] == 259.0  # epoch-ms times
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert errors and errors[0]["reason"] == document["failureReason"] and errors[0]["correlation_id"] == event["id"]


def test_the_status_record_never_echoes_a_traceback(completion, s3, context, logs):
    """A reason that quotes a model container's answer can carry the Python
    traceback the inference toolkit appends to its message: the record keeps
    the first line (the log keeps everything)."""
    lines = logs(completion)
    event = load_event("sagemaker-transform-failed")
    event["detail"]["FailureReason"] = (
        "AlgorithmError: the model answered HTTP 500: maximum recursion depth exceeded\n"
        'Traceback (most recent call last):\n  File "/opt/ml/model/code/inference.py", line 76\nRecursionError'
    )
    document = completion.lambda_handler(event, context)
    assert document["failureReason"] == "AlgorithmError: the model answered HTTP 500: maximum recursion depth exceeded"
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert "inference.py" in errors[0]["sagemaker_reason"]


@pytest.mark.parametrize(
    "key, output, counts",
    [
        ("data/in.jsonl",
         b'{"id": 1, "review": "great", "SageMakerOutput": {"label": "positive", "score": 0.9}}\n'
         b'{"id": 2, "review": "", "SageMakerOutput": {"error": "review is empty"}}\n',
         {"records": 2, "scored": 1, "errors": 1}),
        ("data/with id.csv",
         b'1,"great, truly",positive,0.93,\n'
         b'2,,,,review is empty\n'
         b'3,awful,negative,0.04,\r\n',
         {"records": 3, "scored": 2, "errors": 1}),
    ],
)
def test_joined_outputs_are_counted(completion, s3, context, key, output, counts):
    s3.put_object(Bucket=OUTPUT, Key=key + ".out", Body=output)
    document = completion.lambda_handler(job_event("Completed", key, f"s3://{OUTPUT}/data"), context)
    assert document["counts"] == counts
    assert status_of(s3, key + ".status.json")["output"] == f"s3://{OUTPUT}/{key}.out"


def test_key_at_the_bucket_root(completion, s3, context):
    s3.put_object(Bucket=OUTPUT, Key="top.txt.out", Body=b'{"label": "positive", "score": 0.7}')  # no final newline
    document = completion.lambda_handler(job_event("Completed", "top.txt", f"s3://{OUTPUT}"), context)
    assert document["counts"] == {"records": 1, "scored": 1, "errors": 0}
    assert status_of(s3, "top.txt.status.json")["status"] == "Completed"


def test_completed_job_without_output_is_recorded_and_logged(completion, s3, context, logs):
    lines = logs(completion)
    document = completion.lambda_handler(job_event("Completed", "batch/gone.txt", f"s3://{OUTPUT}/batch"), context)
    assert document["output"] is None and document["counts"] is None
    assert status_of(s3, "batch/gone.txt.status.json")["status"] == "Completed"
    assert any(line["level"] == "ERROR" and "no output" in line["message"] for line in lines)


def test_stopped_job_is_recorded(completion, s3, context):
    document = completion.lambda_handler(job_event("Stopped", "batch/x.csv", f"s3://{OUTPUT}/batch"), context)
    assert document["status"] == "Stopped" and status_of(s3, "batch/x.csv.status.json")["status"] == "Stopped"


@pytest.mark.parametrize(
    "change",
    [
        {"TransformJobName": "someone-elses-job-0123456789abcdef"},
        {"TransformJobName": "critic-localx-reviews-0123456789abcdef"},
        {"TransformJobStatus": "InProgress"},
        {"TransformJobStatus": "Stopping"},
    ],
)
def test_other_jobs_and_states_are_ignored(completion, s3, context, change):
    event = load_event("sagemaker-transform-completed")
    event["detail"].update(change)
    assert completion.lambda_handler(event, context) is None
    assert s3.list_objects_v2(Bucket=OUTPUT).get("KeyCount") == 0


def test_output_outside_the_stack_bucket_is_ignored(completion, s3, context):
    assert completion.lambda_handler(job_event("Completed", "a.txt", "s3://another-bucket/a"), context) is None
    assert s3.list_objects_v2(Bucket=OUTPUT).get("KeyCount") == 0
