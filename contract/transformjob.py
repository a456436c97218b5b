"""A SageMaker transform job as Critic writes and reads it: the parts of
CreateTransformJob's request that Critic sets, and the parts of the job's
description (DescribeTransformJob, and the detail of EventBridge's
"SageMaker Transform Job State Change", which carries the same fields) that
Critic reads back.

Why here and not in batch/jobs.py: the request is written by one party (the
batch function, through batch/jobs.py's transform_job_request) and read by
others that must not depend on how it was built: the completion function
reads the job's description, `critic score` describes the job it waits for,
and the local SageMaker (critic/local/) runs the request. The shape and the
paths to its S3 URIs are what they agree on, so they are defined here; what
Critic asks of a job (the formats, SplitType, BatchStrategy, the join, the
output folder) is batch scoring's domain and stays in batch/jobs.py.

The shapes are TypedDicts, for the reason contract/reviews.py gives.
"""
from __future__ import annotations

import re
from typing import TypedDict

# TransformInput.DataSource.S3DataSource.S3Uri and TransformOutput.S3OutputPath
# (botocore's sagemaker service model, shape S3Uri): s3:// or https://, at
# most 1024 characters, matching (https|s3)://([^/]+)/?(.*). SageMaker checks
# them in Java, so a character is a UTF-16 code unit and "." matches no line
# terminator (\n, \r, U+0085, U+2028, U+2029).
S3_URI_SCHEMES = ("s3", "https")
S3_URI_MAX = 1024
S3_URI_PATTERN = re.compile("(https|s3)://([^/]+)/?([^\n\r\u0085\u2028\u2029]*)")

FINAL_STATUSES = ("Completed", "Failed", "Stopped")  # TransformJobStatus once the job is over


class S3DataSource(TypedDict):
    S3DataType: str
    S3Uri: str


class DataSource(TypedDict):
    S3DataSource: S3DataSource


class _TransformInputRequired(TypedDict):
    DataSource: DataSource


class TransformInput(_TransformInputRequired, total=False):
    ContentType: str
    CompressionType: str
    SplitType: str


class _TransformOutputRequired(TypedDict):
    S3OutputPath: str


class TransformOutput(_TransformOutputRequired, total=False):
    Accept: str
    AssembleWith: str


class TransformResources(TypedDict):
    InstanceType: str
    InstanceCount: int


class DataProcessing(TypedDict, total=False):
    InputFilter: str
    JoinSource: str
    OutputFilter: str


class _TransformJobRequired(TypedDict):
    TransformJobName: str
    TransformInput: TransformInput
    TransformOutput: TransformOutput


class TransformJobRequest(_TransformJobRequired, total=False):
    """CreateTransformJob's parameters, as far as Critic or its local SageMaker uses them."""

    ModelName: str
    BatchStrategy: str
    MaxPayloadInMB: int
    MaxConcurrentTransforms: int
    ModelClientConfig: dict
    TransformResources: TransformResources
    DataProcessing: DataProcessing


class TransformJobDescription(TransformJobRequest, total=False):
    """DescribeTransformJob's answer, or a state change event's detail."""

    TransformJobStatus: str
    FailureReason: str
    CreationTime: object  # epoch milliseconds or ISO 8601 in events; datetime from boto3
    TransformStartTime: object
    TransformEndTime: object


def input_uri(job: TransformJobRequest) -> str:
    """The S3 URI the job reads (S3Prefix: every object whose key starts with it)."""
    return job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]


def output_path(job: TransformJobRequest) -> str:
    """The S3 URI under which the job writes `<input path>.out`."""
    return job["TransformOutput"]["S3OutputPath"]
