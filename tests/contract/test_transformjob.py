"""The transform job's shape (contract/transformjob.py) is SageMaker's, and the
party that writes a request (batch/jobs.py) and those that read it back (the
local SageMaker, the completion function, `critic score`) find the same S3
URIs in it."""
from __future__ import annotations

import typing

import botocore.session
import pytest
from botocore.validate import validate_parameters

from batch import jobs
from contract import transformjob
from contract.locations import parse_s3_uri, s3_uri, transform_output_key
from critic.local.transform_runner import TransformJob

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
CREATE = SAGEMAKER.operation_model("CreateTransformJob").input_shape
DESCRIBE = SAGEMAKER.operation_model("DescribeTransformJob").output_shape


def _check(typed_dict, shape, where: str) -> None:
    """Every key of the TypedDict is a member of SageMaker's shape, with the
    same nesting."""
    for key, hint in typing.get_type_hints(typed_dict).items():
        assert key in shape.members, f"{where}.{key} is not in SageMaker's {shape.name}"
        member = shape.members[key]
        if typing.is_typeddict(hint):
            assert member.type_name == "structure", f"{where}.{key}"
            _check(hint, member, f"{where}.{key}")


def test_the_request_shape_is_createtransformjobs():
    _check(transformjob.TransformJobRequest, CREATE, "CreateTransformJob")
    assert transformjob.TransformJobRequest.__required_keys__ <= set(CREATE.required_members)


def test_the_description_shape_is_describetransformjobs():
    _check(transformjob.TransformJobDescription, DESCRIBE, "DescribeTransformJob")


def test_final_statuses_are_sagemakers():
    statuses = DESCRIBE.members["TransformJobStatus"].enum
    assert set(transformjob.FINAL_STATUSES) == set(statuses) - {"InProgress", "Stopping"}


def test_s3_uri_limits_are_sagemakers():
    shape = CREATE.members["TransformInput"].members["DataSource"].members["S3DataSource"].members["S3Uri"]
    assert shape.metadata["max"] == transformjob.S3_URI_MAX
    # SageMaker matches in Java, where "." matches no line terminator.
    assert transformjob.S3_URI_PATTERN.pattern == shape.metadata["pattern"].replace(
        "(.*)", "([^\n\r\u0085\u2028\u2029]*)")
    for scheme in transformjob.S3_URI_SCHEMES:
        assert transformjob.S3_URI_PATTERN.fullmatch(f"{scheme}://bucket/key")


@pytest.mark.parametrize("key", ["reviews.txt", "a/b/reviews.jsonl", "deep/er/x y é.csv"])
def test_the_writer_and_the_readers_find_the_same_uris(key):
    request = jobs.transform_job_request(name="critic-x-0123456789abcdef", model_name="m", bucket="in", key=key,
                                         output_bucket="out", instance_type="ml.m5.large", instance_count=1)
    validate_parameters(request, CREATE)
    assert transformjob.input_uri(request) == s3_uri("in", key)
    assert transformjob.output_path(request) == jobs.output_path("out", key)
    local = TransformJob.from_request(request)  # what the local SageMaker runs
    assert (local.input_uri, local.output_uri) == (transformjob.input_uri(request), transformjob.output_path(request))
    # Where the job writes its result, as SageMaker's rule gives it, is where
    # the completion function and `critic score` look (jobs.output_location).
    _, prefix = parse_s3_uri(local.input_uri)
    out_bucket, out_prefix = parse_s3_uri(local.output_uri)
    expected = (out_bucket, transform_output_key(key, prefix, out_prefix))
    assert jobs.output_location(transformjob.input_uri(request), transformjob.output_path(request)) == expected
    assert expected == ("out", f"{key}.out")


def test_s3_uri_is_the_inverse_of_parse_s3_uri():
    for bucket, key in (("b", "k"), ("b", "a/b/c.txt"), ("b", "")):
        assert parse_s3_uri(s3_uri(bucket, key)) == (bucket, key)
