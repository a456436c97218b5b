"""Shared by the SAM application's tests: the environment template.yaml gives
the handlers, sample events, a Lambda context."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"

# What template.yaml sets (intrinsic functions resolved as the local stack
# does), before any handler module is imported.
ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "ENDPOINT_NAME": "critic-endpoint",
    "ALLOWED_ORIGIN": "*",
    "MODEL_NAME": "Model-AbCdEf123456",
    "INPUT_BUCKET": "critic-input-123456789012-us-east-1-local",
    "OUTPUT_BUCKET": "critic-output-123456789012-us-east-1-local",
    "JOB_NAME_PREFIX": "critic-local",
    "BATCH_INSTANCE_TYPE": "ml.m5.large",
    "BATCH_INSTANCE_COUNT": "1",
    "MAX_PAYLOAD_MB": "1",
    "UPLOADS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/critic-UploadsQueue",
    "FAILED_EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/critic-FailedEventsQueue",
    "MAX_JOBS_IN_FLIGHT": "0",  # template.yaml's default is 2; the cap's own tests set it
    "CAPACITY_RETRY_SECONDS": "60",
    "CAPACITY_RETRY_MAX_SECONDS": "900",
    "SHARD_ABOVE_MB": "256",
    "MAX_UPLOAD_MB": "100",
    "POWERTOOLS_METRICS_NAMESPACE": "Critic",
}
ENDPOINT_OVERRIDES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SAGEMAKER",
                       "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_LAMBDA")


@contextmanager
def handler_environment(**extra: str):
    """The environment a handler module reads when imported (its clients are
    made then); the process's own environment is restored afterwards."""
    saved = dict(os.environ)
    os.environ.update({**ENV, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", **extra})
    for name in (*ENDPOINT_OVERRIDES, "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class FakeLambdaContext:
    function_name: str = "critic-test"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:critic-test"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "5b1c8f2e-0000-4000-8000-000000000001"
    log_group_name: str = "/aws/lambda/critic-test"
    log_stream_name: str = "2026/11/22/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 28_000


def function_timeout(logical_id: str) -> int:
    """The Timeout template.yaml gives a function (seconds)."""
    from cfnlint.decode import cfn_yaml

    return int(cfn_yaml.load(str(REPO / "template.yaml"))["Resources"][logical_id]["Properties"]["Timeout"])


def worst_case_seconds(config) -> float:
    """The longest one SDK call with this botocore Config can take: each
    attempt may wait connect_timeout + read_timeout, and before each retry
    botocore's standard mode waits at most min(scale * 2**(i-1), 20) s (scale:
    1 s after throttling, the larger), raised by up to 5 s more when the
    answer carries x-amz-retry-after. Read from the pinned botocore itself."""
    from botocore.retries.standard import ExponentialBackoff

    attempts = config.retries["total_max_attempts"]
    scale = max(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG.values())
    delays = sum(min(scale * ExponentialBackoff._BASE ** (i - 1), ExponentialBackoff._MAX_BACKOFF)
                 + ExponentialBackoff._RETRY_AFTER_MAX_ADDITIONAL for i in range(1, attempts))
    return attempts * (config.connect_timeout + config.read_timeout) + delays


def load_event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
