"""SageMaker batch transform semantics of critic/local/transform.py and
critic/local/transform_runner.py, with an in-memory store and a model double whose
answers are computed from the request (so order and joins can be checked)."""
from __future__ import annotations

import gzip
import io
import json
import threading

import pytest

from critic.local.transform_runner import JobFailed, JobStopped, ModelAnswer, TransformJob, TransformRunner
from critic.local.transform import (
    DataProcessing,
    JsonPath,
    TransformError,
    assemble,
    mini_batches,
    split_records,
)
from contract.locations import transform_output_key as output_key


# --------------------------------------------------------------------------- #
# Pure pieces
# --------------------------------------------------------------------------- #

def test_split_keeps_blank_lines_and_drops_the_final_newline():
    data = b"one\n\nthree\r\nfour"
    assert list(split_records(io.BytesIO(data), "Line")) == [b"one", b"", b"three\r", b"four"]
    assert list(split_records(io.BytesIO(b"a\nb\n"), "Line")) == [b"a", b"b"]
    assert list(split_records(io.BytesIO(b"a\nb\n"), "None")) == [b"a\nb\n"]


def test_mini_batches_respect_max_payload():
    records = [b"x" * 400_000] * 7  # 400 KB each (+1 newline)
    batches = list(mini_batches(records, 1))
    assert [len(b) for b in batches] == [2, 2, 2, 1]
    assert all(sum(len(r) + 1 for r in b) <= 1024 * 1024 for b in batches)
    assert [len(b) for b in mini_batches([b"a", b"b"], 6, "SingleRecord")] == [1, 1]
    assert [len(b) for b in mini_batches(records, 0)] == [7]  # 0: no limit


def test_a_record_above_max_payload_fails():
    with pytest.raises(TransformError, match="record 2 is .* more than MaxPayloadInMB"):
        list(mini_batches([b"small", b"x" * (1024 * 1024)], 1))


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("$", {"a": 1}, {"a": 1}),
        ("$.review", {"id": 1, "review": "r"}, "r"),
        ("$['id','SageMakerOutput']", {"id": 1, "x": 2, "SageMakerOutput": 3}, {"id": 1, "SageMakerOutput": 3}),
        ("$[1:]", ["a", "b", "c"], ["b", "c"]),
        ("$[0,-1]", ["a", "b", "c"], ["a", "c"]),
        ("$[1:2]", ["a", "b", "c", "d"], ["b", "c"]),  # SageMaker's slices include the end
        ("$[:1]", ["a", "b", "c"], ["a", "b"]),
        ("$[0,2:]", ["a", "b", "c", "d"], ["a", "c", "d"]),
        ("$[-1]", ["a", "b"], "b"),
        ("$.a.b", {"a": {"b": 5}}, 5),
        ("$.a.*", {"a": {"b": 5, "c": 6}}, [5, 6]),
    ],
)
def test_jsonpath_subset(path, value, expected):
    assert JsonPath.parse(path).apply(value) == expected


def test_jsonpath_rejects_what_sagemaker_does_not_support():
    with pytest.raises(ValueError):
        JsonPath.parse("$..review")
    with pytest.raises(ValueError):
        JsonPath.parse("review")
    with pytest.raises(TransformError, match="index 5 is outside"):
        JsonPath.parse("$[5]").apply(["a"])


def test_json_join_adds_sagemaker_output_or_wraps_non_objects():
    processing = DataProcessing.from_request({"JoinSource": "Input"}, "application/jsonlines", "application/jsonlines")
    assert json.loads(processing.joined(b'{"id": 7, "review": "r"}', b'{"label": "positive", "score": 0.9}', 1)) == {
        "id": 7, "review": "r", "SageMakerOutput": {"label": "positive", "score": 0.9}}
    assert json.loads(processing.joined(b'"just text"', b'{"error": "x"}', 1)) == {
        "SageMakerInput": "just text", "SageMakerOutput": {"error": "x"}}
    with pytest.raises(TransformError, match="input line 3 is not valid JSON"):
        processing.joined(b"{broken", b'{"error": "invalid JSON"}', 3)


def test_csv_join_appends_result_columns_and_keeps_quoting():
    processing = DataProcessing.from_request({"JoinSource": "Input"}, "text/csv", "text/csv")
    joined = processing.joined(b'12,"Great, truly ""great"" film"', b"positive,0.93,", 1)
    assert joined == b'12,"Great, truly ""great"" film",positive,0.93,'


def test_input_and_output_filters():
    processing = DataProcessing.from_request(
        {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-3:]"}, "text/csv", "text/csv")
    assert processing.filter_input(b"id9,the review", 1) == b"the review"
    assert processing.joined(b"id9,the review", b"negative,0.1,", 1) == b"id9,negative,0.1,"
    json_processing = DataProcessing.from_request(
        {"InputFilter": "$.review", "JoinSource": "Input", "OutputFilter": "$['id','SageMakerOutput']"},
        "application/jsonlines", "application/jsonlines")
    assert json_processing.filter_input(b'{"id": 1, "review": "ok"}', 1) == b'"ok"'


def test_data_processing_needs_csv_or_json():
    with pytest.raises(ValueError, match="CSV and JSON input only"):
        DataProcessing.from_request({"JoinSource": "Input"}, "text/plain", "application/jsonlines")
    assert not DataProcessing.from_request(None, "text/plain", "application/jsonlines").active


def test_assemble_checks_the_number_of_results_when_joining():
    processing = DataProcessing.from_request({"JoinSource": "Input"}, "text/csv", "text/csv")
    with pytest.raises(TransformError, match="answered 1 lines for a mini-batch of 2"):
        assemble([b"a", b"b"], 1, b"positive,0.9,\n", processing, "Line")
    plain = DataProcessing.from_request(None, "text/plain", "application/jsonlines")
    assert assemble([b"a"], 1, b'{"x": 1}', plain, "Line") == b'{"x": 1}\n'
    assert assemble([b"a"], 1, b'{"x": 1}\n', plain, "Line") == b'{"x": 1}\n'
    assert assemble([b"a"], 1, b'{"x": 1}', plain, "None") == b'{"x": 1}'


def test_output_key_keeps_the_path_below_the_input_folder():
    assert output_key("in/reviews.txt", "in/reviews.txt", "out") == "out/reviews.txt.out"
    assert output_key("in/a/b.csv", "in/", "out/") == "out/a/b.csv.out"
    assert output_key("x.jsonl", "x.jsonl", "") == "x.jsonl.out"


# --------------------------------------------------------------------------- #
# The runner
# --------------------------------------------------------------------------- #

class MemoryStore:
    def __init__(self, objects: dict[tuple[str, str], bytes]):
        self.objects = dict(objects)
        self.uploads: list[tuple[str, str]] = []

    def list_keys(self, bucket, prefix):
        return sorted(k for (b, k) in self.objects if b == bucket and k.startswith(prefix))

    def download(self, bucket, key, fileobj):
        fileobj.write(self.objects[(bucket, key)])

    def upload(self, bucket, key, fileobj):
        self.objects[(bucket, key)] = fileobj.read()
        self.uploads.append((bucket, key))


def echo_model(body: bytes, content_type: str, accept: str) -> ModelAnswer:
    """Answers one line per record: the record's length, or an error for a blank line."""
    lines = body.split(b"\n")[:-1]
    out = []
    for line in lines:
        if accept == "text/csv":
            out.append(b",,blank line" if not line.strip() else b"positive,%d," % len(line))
        else:
            out.append(json.dumps({"error": "blank line"} if not line.strip() else {"length": len(line)}).encode())
    return ModelAnswer(200, b"".join(line + b"\n" for line in out))


def request(uri="s3://in/reviews.txt", content_type="text/plain", accept="application/jsonlines", **extra):
    base = {
        "TransformJobName": "job-1",
        "ModelName": "critic",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            "ContentType": content_type,
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": "s3://out/results", "Accept": accept, "AssembleWith": "Line"},
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1,
    }
    for key, value in extra.items():
        if isinstance(value, dict) and key in base:
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def run(store, req, invoke=echo_model, stop=None):
    runner = TransformRunner(TransformJob.from_request(req), store, invoke, stop or threading.Event())
    return runner.run()


def test_runner_keeps_input_order_across_concurrent_mini_batches():
    lines = [b"r" * (i % 50 + 1) * 1000 for i in range(400)]  # ~10 MB: several mini-batches
    store = MemoryStore({("in", "reviews.txt"): b"\n".join(lines) + b"\n"})

    def slow_first(body, content_type, accept):
        if body.startswith(lines[0]):
            threading.Event().wait(0.2)  # the first mini-batch answers last
        return echo_model(body, content_type, accept)

    outputs = run(store, request(MaxConcurrentTransforms=4), slow_first)
    assert outputs == ["s3://out/results/reviews.txt.out"]
    result = store.objects[("out", "results/reviews.txt.out")].decode().splitlines()
    assert [json.loads(line)["length"] for line in result] == [len(line) for line in lines]


def test_runner_joins_jsonl_and_csv_and_decompresses_gzip():
    jsonl = b'{"id": 1, "review": "good"}\n{"id": 2, "review": "bad film"}\n'
    csv_data = b'a,"one, two"\nb,\n'
    store = MemoryStore({("in", "r.jsonl"): gzip.compress(jsonl), ("in", "r.csv"): csv_data})
    run(store, request("s3://in/r.jsonl", "application/jsonlines", "application/jsonlines",
                       TransformInput={"CompressionType": "Gzip"}, DataProcessing={"JoinSource": "Input"}))
    out = [json.loads(line) for line in store.objects[("out", "results/r.jsonl.out")].splitlines()]
    assert [o["id"] for o in out] == [1, 2]
    assert all("SageMakerOutput" in o for o in out)
    run(store, request("s3://in/r.csv", "text/csv", "text/csv", DataProcessing={"JoinSource": "Input"}))
    assert store.objects[("out", "results/r.csv.out")] == b'a,"one, two",positive,12,\nb,,positive,2,\n'


def test_a_failing_mini_batch_fails_the_object_and_writes_nothing():
    store = MemoryStore({("in", "reviews.txt"): b"ok\n" * 10})
    calls = []

    def broken(body, content_type, accept):
        calls.append(1)
        return ModelAnswer(415, b'{"message": "unsupported content type"}')

    with pytest.raises(JobFailed, match=r"ClientError: s3://in/reviews.txt: the model answered HTTP 415"):
        run(store, request(), broken)
    assert store.uploads == []
    assert len(calls) == 1  # client errors are not retried


def test_server_errors_are_retried_then_fail_as_algorithm_errors():
    store = MemoryStore({("in", "reviews.txt"): b"ok\n"})
    calls = []

    def flaky(body, content_type, accept):
        calls.append(1)
        return ModelAnswer(500, b"boom") if len(calls) < 3 else echo_model(body, content_type, accept)

    run(store, request(ModelClientConfig={"InvocationsMaxRetries": 3}), flaky)
    assert len(calls) == 3 and store.uploads == [("out", "results/reviews.txt.out")]

    calls.clear()
    with pytest.raises(JobFailed, match="AlgorithmError: .*HTTP 500: boom"):
        run(MemoryStore({("in", "reviews.txt"): b"ok\n"}), request(ModelClientConfig={"InvocationsMaxRetries": 1}),
            lambda *a: (calls.append(1), ModelAnswer(500, b"boom"))[1])
    assert len(calls) == 2


def test_a_broken_jsonl_line_fails_the_join_with_its_line_number():
    store = MemoryStore({("in", "r.jsonl"): b'{"review": "fine"}\n{not json\n'})
    with pytest.raises(JobFailed, match="input line 2 is not valid JSON"):
        run(store, request("s3://in/r.jsonl", "application/jsonlines", "application/jsonlines",
                           DataProcessing={"JoinSource": "Input"}))
    assert store.uploads == []


@pytest.mark.parametrize("line, problem", [
    (b'{"review": "great", "x": ' + b"[" * 1_100 + b"]" * 1_100 + b"}", "nested deeper than 64 levels"),
    (b'{"review": "ok", "n": ' + b"9" * 5_000 + b"}", "a number longer than 100 characters"),
    (b'{"review": "great", "x": Infinity}', "Infinity is not valid JSON"),
    (b'{"review": "bad", "review": "wonderful film"}', 'duplicate key "review"'),
])
def test_a_jsonl_parser_bomb_fails_the_join_naming_its_line_and_the_problem(line, problem):
    store = MemoryStore({("in", "r.jsonl"): b'{"review": "fine"}\n' + line + b"\n"})
    with pytest.raises(JobFailed) as failed:
        run(store, request("s3://in/r.jsonl", "application/jsonlines", "application/jsonlines",
                           DataProcessing={"JoinSource": "Input"}))
    assert str(failed.value) == f"ClientError: s3://in/r.jsonl: input line 2 is not valid JSON ({problem})"
    assert store.uploads == []


@pytest.mark.parametrize("status, body", [
    (500, b"maximum recursion depth exceeded\nTraceback (most recent call last):\n  File \"x.py\", line 1\nRecursionError"),
    (400, b'{"message": "invalid JSON: nested deeper than 64 levels"}'),
])
def test_a_failed_model_answer_gives_a_one_line_reason_without_a_traceback(status, body):
    with pytest.raises(JobFailed) as failed:
        run(MemoryStore({("in", "reviews.txt"): b"ok\n"}), request(ModelClientConfig={"InvocationsMaxRetries": 0}),
            lambda *a: ModelAnswer(status, body))
    reason = str(failed.value)
    assert "\n" not in reason and "Traceback" not in reason and "File " not in reason
    assert reason.endswith((": maximum recursion depth exceeded (records 1-1)",
                            ": invalid JSON: nested deeper than 64 levels (records 1-1)"))


def test_other_objects_still_get_their_output_when_one_fails():
    store = MemoryStore({("in", "d/a.jsonl"): b'{"review": "x"}\n', ("in", "d/b.jsonl"): b"{bad\n"})
    with pytest.raises(JobFailed, match="s3://in/d/b.jsonl"):
        run(store, request("s3://in/d/", "application/jsonlines", "application/jsonlines",
                           DataProcessing={"JoinSource": "Input"}))
    assert store.uploads == [("out", "results/a.jsonl.out")]


def test_no_input_object_fails_like_sagemaker():
    with pytest.raises(JobFailed, match="No S3 objects found under S3 URL"):
        run(MemoryStore({}), request("s3://in/missing.txt"))


def test_stop_leaves_no_output():
    store = MemoryStore({("in", "reviews.txt"): b"ok\n" * 1000})
    stop = threading.Event()

    def stopping(body, content_type, accept):
        stop.set()
        return echo_model(body, content_type, accept)

    with pytest.raises(JobStopped):
        run(store, request(MaxPayloadInMB=1, BatchStrategy="SingleRecord"), stopping, stop)
    assert store.uploads == []


def test_invocation_timeout_fails_the_job():
    store = MemoryStore({("in", "reviews.txt"): b"ok\n"})
    release = threading.Event()

    def hanging(body, content_type, accept):
        release.wait(5)
        return echo_model(body, content_type, accept)

    try:
        with pytest.raises(JobFailed, match="did not answer within 0.2 s"):
            run(store, request(ModelClientConfig={"InvocationsTimeoutInSeconds": 0.2, "InvocationsMaxRetries": 0}),
                hanging)
    finally:
        release.set()
