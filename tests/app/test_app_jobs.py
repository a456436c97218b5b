"""batch.jobs: input detection, job names, the CreateTransformJob request
(validated against the real SageMaker service model), output naming (checked
against the local runner's SageMaker semantics), result counting."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import given, settings
from hypothesis import strategies as st

from batch import jobs
from contract.locations import transform_output_key as sagemaker_output_key

JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)


@settings(max_examples=300, deadline=None)
@given(key=keys, version=st.text(min_size=1, max_size=40), prefix=st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,6}){0,2}", fullmatch=True))
def test_job_names_are_valid_deterministic_and_prefixed(key, version, prefix):
    name = jobs.job_name(prefix, "bucket", key, version)
    assert JOB_NAME.fullmatch(name) and len(name) <= 63
    assert name == name.lower() and name.startswith(prefix + "-") and jobs.is_stack_job(name, prefix)
    assert name == jobs.job_name(prefix, "bucket", key, version)


def test_job_names_differ_per_object_version():
    names = {
        jobs.job_name("critic-ab12cd34", bucket, key, version)
        for bucket in ("in-a", "in-b")
        for key in ("reviews.txt", "dir/reviews.txt", "reviews.csv")
        for version in ("v1", "v2")
    }
    assert len(names) == 12


def test_job_name_is_readable():
    name = jobs.job_name("critic-ab12cd34", "b", "2024/Best Films (Final).jsonl", "v1")
    assert re.fullmatch(r"critic-ab12cd34-best-films-final-[0-9a-f]{16}", name)
    assert re.fullmatch(r"critic-ab12cd34-[0-9a-f]{16}", jobs.job_name("critic-ab12cd34", "b", "dir/✓✓.txt", "v1"))


@pytest.mark.parametrize("prefix", ["", "Critic", "critic_x", "-critic", "critic-", "c" * 25])
def test_invalid_prefixes_are_refused(prefix):
    with pytest.raises(ValueError):
        jobs.job_name(prefix, "b", "k.txt", "v")


def test_object_version():
    assert jobs.object_version("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", '"abc"') == "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
    assert jobs.object_version("null", '"d41d8cd98f00b204e9800998ecf8427e"') == "d41d8cd98f00b204e9800998ecf8427e"
    assert jobs.object_version(None, "abc-2") == "abc-2"
    with pytest.raises(ValueError):
        jobs.object_version(None, "")


@pytest.mark.parametrize(
    "key, size, reason",
    [
        ("a.txt", 10, None), ("dir/b.jsonl", 1, None), ("c d.csv", 5, None), ("x.txt", None, None),
        ("folder/", 0, "folder marker"),
        ("empty.txt", 0, "empty object"),
        ("README.md", 10, "not an input file (input files end in .txt, .jsonl, .csv)"),
        ("upper.TXT", 10, "not an input file (input files end in .txt, .jsonl, .csv)"),
        ("data.json", 10, "not an input file (input files end in .txt, .jsonl, .csv)"),
        ("a.txt.out", 10, "not an input file (input files end in .txt, .jsonl, .csv)"),
    ],
)
def test_skip_reason(key, size, reason):
    assert jobs.skip_reason(key, size) == reason


CREATE_TRANSFORM_JOB = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTransformJob")


@pytest.mark.parametrize(
    "key, content_type, accept, joined, output_path",
    [
        ("reviews.txt", "text/plain", "application/jsonlines", False, "s3://out"),
        ("a/b/reviews.jsonl", "application/jsonlines", "application/jsonlines", True, "s3://out/a/b"),
        ("with id.csv", "text/csv", "text/csv", True, "s3://out"),
    ],
)
def test_request_per_format_is_valid_for_sagemaker(key, content_type, accept, joined, output_path):
    request = jobs.transform_job_request(name="critic-x-reviews-0123456789abcdef", model_name="Model-1", bucket="in",
                                         key=key, output_bucket="out", instance_type="ml.m5.large", instance_count=2,
                                         max_payload_mb=1)
    report = ParamValidator().validate(request, CREATE_TRANSFORM_JOB.input_shape)
    assert not report.has_errors(), report.generate_report()
    assert request["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://in/{key}"}},
        "ContentType": content_type, "CompressionType": "None", "SplitType": "Line",
    }
    assert request["TransformOutput"] == {"S3OutputPath": output_path, "Accept": accept, "AssembleWith": "Line"}
    assert request["BatchStrategy"] == "MultiRecord" and request["MaxPayloadInMB"] == 1
    assert request["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 2}
    assert ("DataProcessing" in request) is joined
    if joined:
        assert request["DataProcessing"] == {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$"}


def test_request_refuses_non_input():
    with pytest.raises(ValueError):
        jobs.transform_job_request(name="n", model_name="m", bucket="b", key="x.md", output_bucket="o",
                                   instance_type="ml.m5.large", instance_count=1)


@pytest.mark.parametrize("key", ["r.txt", "a/r.jsonl", "a/b c/é r.csv", "deep/er/still/r.txt"])
def test_output_is_key_dot_out_by_sagemaker_naming(key):
    request = jobs.transform_job_request(name="n", model_name="m", bucket="in", key=key, output_bucket="out",
                                         instance_type="ml.m5.large", instance_count=1)
    s3_uri = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    out_path = request["TransformOutput"]["S3OutputPath"]
    bucket, out = jobs.output_location(s3_uri, out_path)
    assert (bucket, out) == ("out", key + ".out")
    # SageMaker's naming for any input prefix (contract/locations.py), as the local runner applies it
    assert sagemaker_output_key(key, key, jobs.parse_s3_uri(out_path)[1]) == out
    assert jobs.status_key(out) == key + ".status.json"


@pytest.mark.parametrize("key, out", [("a//r.txt", "a/r.txt.out"), ("/lead.txt", "lead.txt.out"), ("/x/r.txt", "x/r.txt.out")])
def test_empty_path_segments_follow_sagemaker_naming(key, out):
    """An S3OutputPath cannot end in an empty segment, so such keys are
    written where SageMaker's naming puts them; the status sits beside."""
    request = jobs.transform_job_request(name="n", model_name="m", bucket="in", key=key, output_bucket="out",
                                         instance_type="ml.m5.large", instance_count=1)
    out_path = request["TransformOutput"]["S3OutputPath"]
    assert jobs.output_location(f"s3://in/{key}", out_path) == ("out", out)
    assert sagemaker_output_key(key, key, jobs.parse_s3_uri(out_path)[1]) == out
    assert jobs.status_key(out) == out.removesuffix(".out") + ".status.json"


def test_parse_s3_uri():
    assert jobs.parse_s3_uri("s3://b/k/x y.txt") == ("b", "k/x y.txt")
    assert jobs.parse_s3_uri("s3://b") == ("b", "")
    for bad in ("https://b/k", "s3:///k", "b/k"):
        with pytest.raises(ValueError):
            jobs.parse_s3_uri(bad)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_iter_lines_ignores_chunk_boundaries(data, cuts):
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert list(jobs.iter_lines(chunks)) == [line.removesuffix(b"\r") for line in expected]


@pytest.mark.parametrize(
    "suffix, lines, counts",
    [
        (".txt", [b'{"label": "positive", "score": 0.9}', b'{"error": "review is empty"}', b"garbage",
                  b'{"label": "negative", "score": 0.1}'], (4, 2, 2)),
        (".jsonl", [b'{"id": 1, "SageMakerOutput": {"label": "positive", "score": 0.9}}',
                    b'{"SageMakerInput": "not an object", "SageMakerOutput": {"label": "negative", "score": 0.2}}',
                    b'{"id": 3, "SageMakerOutput": {"error": "invalid JSON"}}',
                    b'{"id": 4, "SageMakerOutput": "odd"}', b'{"id": 5}'], (5, 2, 3)),
        (".csv", [b'1,"a, quoted review",positive,0.93,', b"2,,,,review is empty", b"only,two",
                  b"\xff\xfe,positive,0.5,", b"review,negative,0.02,"], (5, 2, 3)),
    ],
)
def test_count_results(suffix, lines, counts):
    got = jobs.count_results(lines, jobs.FORMATS[suffix])
    assert (got.records, got.scored, got.errors) == counts


@pytest.mark.parametrize(
    "value, expected",
    [
        (1795342531000, datetime(2026, 11, 22, 10, 15, 31, tzinfo=timezone.utc)),
        ("1795342531000", datetime(2026, 11, 22, 10, 15, 31, tzinfo=timezone.utc)),
        (1795342531.5, datetime(2026, 11, 22, 10, 15, 31, 500000, tzinfo=timezone.utc)),
        ("2026-11-22T10:15:31Z", datetime(2026, 11, 22, 10, 15, 31, tzinfo=timezone.utc)),
        ("2026-11-22T10:15:31.250+00:00", datetime(2026, 11, 22, 10, 15, 31, 250000, tzinfo=timezone.utc)),
        ("2026-11-22T10:15:31", datetime(2026, 11, 22, 10, 15, 31, tzinfo=timezone.utc)),
        (None, None), ("", None),
    ],
)
def test_parse_time(value, expected):
    assert jobs.parse_time(value) == expected


def test_status_document_of_a_failed_job():
    detail = {
        "TransformJobName": "critic-x-a-0123456789abcdef", "TransformJobStatus": "Failed",
        "FailureReason": "AlgorithmError: boom",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://in/a.txt"}}},
        "CreationTime": "2026-11-22T10:00:00Z", "TransformEndTime": "2026-11-22T10:01:30Z",
    }
    document = jobs.status_document(detail, output_uri=None, counts=None,
                                    recorded_at=datetime(2026, 11, 22, 10, 2, tzinfo=timezone.utc))
    assert document == {
        "status": "Failed", "job": "critic-x-a-0123456789abcdef", "input": "s3://in/a.txt", "output": None,
        "counts": None, "failureReason": "AlgorithmError: boom", "createdAt": "2026-11-22T10:00:00Z",
        "startedAt": None, "endedAt": "2026-11-22T10:01:30Z", "durationSeconds": 90.0,
        "recordedAt": "2026-11-22T10:02:00Z",
    }


# ------------------------------------------- what SageMaker would refuse

S3_URI_SHAPE = CREATE_TRANSFORM_JOB.input_shape.members["TransformInput"].members["DataSource"].members[
    "S3DataSource"].members["S3Uri"]
JAVA_LINE_TERMINATORS = "\n\r\u0085\u2028\u2029"


def test_the_limits_are_sagemakers():
    """The 1024 and the pattern are botocore's model of CreateTransformJob,
    for both S3 URIs of the request."""
    output = CREATE_TRANSFORM_JOB.input_shape.members["TransformOutput"].members["S3OutputPath"]
    for shape in (S3_URI_SHAPE, output):
        assert shape.metadata["max"] == jobs.S3_URI_MAX == 1024
        assert shape.metadata["pattern"] == "(https|s3)://([^/]+)/?(.*)"


@pytest.mark.parametrize("key, problem", [
    ("a" * (1024 - len("s3://in/")), None),                      # exactly 1024 characters
    ("a" * (1025 - len("s3://in/")), "the job's TransformInput S3Uri would be 1,025 characters"),
    ("😀" * 509 + ".txt", "the job's TransformInput S3Uri would be 1,030 characters"),  # 2 UTF-16 units each
    ("x" * 1100 + ".csv", "at most 1,016 characters"),
    ("two\nlines.txt", "line break"), ("cr\r.txt", "line break"), ("nel\u0085.txt", "line break"),
    ("ls\u2028.txt", "line break"), ("\u2029.txt", "line break"),
    ("tab\tand nul\x00 and é ✓.txt", None),                       # not line terminators
])
def test_submission_problem(key, problem):
    reason = jobs.submission_problem("in", key, "out")
    if problem is None:
        assert reason is None
    else:
        assert reason is not None and problem in reason


def test_an_output_path_too_long_is_a_problem_too():
    folder = "f" * (1024 - len("s3://out-a-much-longer-bucket-name/")) + "x"
    reason = jobs.submission_problem("in", f"{folder}/r.txt", "out-a-much-longer-bucket-name")
    assert reason and "TransformOutput S3OutputPath would be 1,025 characters" in reason and "folder path" in reason


@settings(max_examples=300, deadline=None)
@given(key=st.one_of(keys, st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "😀", "\n", "/"]), st.integers(900, 1100)),
                     st.builds(lambda a, t, b: a + t + b, keys, st.sampled_from(list(JAVA_LINE_TERMINATORS)), keys)))
def test_no_problem_means_sagemaker_takes_both_uris(key):
    """A key with no submission problem gives S3 URIs within SageMaker's
    length (counted in Java's UTF-16 units) and its pattern (Java's "."); a
    key with one gives URIs outside them."""
    request = jobs.transform_job_request(name="critic-x-0123456789abcdef", model_name="m", bucket="critic-in",
                                         key=key + ".txt", output_bucket="critic-out", instance_type="ml.m5.large",
                                         instance_count=1)
    uris = [request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"], request["TransformOutput"]["S3OutputPath"]]
    accepted = all(len(uri.encode("utf-16-le")) // 2 <= 1024 and not set(uri) & set(JAVA_LINE_TERMINATORS)
                   and re.fullmatch(S3_URI_SHAPE.metadata["pattern"], uri, re.DOTALL) for uri in uris)
    assert (jobs.submission_problem("critic-in", key + ".txt", "critic-out") is None) == accepted
    if accepted:
        report = ParamValidator().validate(request, CREATE_TRANSFORM_JOB.input_shape)
        assert not report.has_errors(), report.generate_report()
    assert JOB_NAME.fullmatch(request["TransformJobName"])  # the job-name rules hold for any key


def test_skipped_status_key_sits_where_a_jobs_would():
    assert jobs.skipped_status_key("in", "a/b.txt", "out") == "a/b.txt.status.json"
    assert jobs.skipped_status_key("in", "a//b.txt", "out") == "a/b.txt.status.json"  # SageMaker's naming
    assert jobs.skipped_status_key("in", "k" * (1024 - 16) + ".txt", "out") == "k" * 1008 + ".txt.status.json"
    assert jobs.skipped_status_key("in", "k" * (1024 - 15) + ".txt", "out") is None  # over S3's 1,024 bytes
    assert jobs.skipped_status_key("in", "é" * 510 + ".txt", "out") is None  # 1,024 bytes + 12


def test_skipped_status_document_has_a_jobs_fields():
    document = jobs.skipped_status_document("in", "a.txt", "the key is too long",
                                            recorded_at=datetime(2026, 11, 22, 10, 2, tzinfo=timezone.utc))
    finished = jobs.status_document({"TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://in/a.txt"}}}},
                                    output_uri=None, counts=None, recorded_at=datetime.now(timezone.utc))
    assert set(document) == set(finished)
    assert document == {
        "status": "Skipped", "job": None, "input": "s3://in/a.txt", "output": None, "counts": None,
        "failureReason": "the key is too long", "createdAt": None, "startedAt": None, "endedAt": None,
        "durationSeconds": None, "recordedAt": "2026-11-22T10:02:00Z",
    }


@pytest.mark.parametrize("reason, readable", [
    (None, None),
    ("", None),
    ("ClientError: See job logs for more information", "ClientError: See job logs for more information"),
    ("AlgorithmError: boom\nTraceback (most recent call last):\n  File \"x.py\"", "AlgorithmError: boom"),
    ("AlgorithmError: boom Traceback (most recent call last): File \"x.py\"", "AlgorithmError: boom"),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: x",
     "the job failed; its logs are in CloudWatch Logs (/aws/sagemaker/TransformJobs)"),
    ("\n\n  ClientError: x  \nmore", "ClientError: x"),
    ("x" * 5000, "x" * 1024),
])
def test_readable_reason_is_one_line_without_a_traceback(reason, readable):
    assert jobs.readable_reason(reason) == readable
