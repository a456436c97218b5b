"""The bad-input corpus (tests/reliability/corpus/, plus a 10 MB body and a
zip archive made here) end to end through `critic serve` with the tiny
model: each case posted to the API, and dropped as a file into the input
bucket, with the expected outcome of each asserted. Then the stack is killed
(SIGKILL, no clean shutdown) in the middle of a transform job and started
again: the job ends Failed, no partial .out is left, the upload scores again."""
from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))

from test_local_stack_e2e import Served, input_bucket, job_for, output_bucket, post, wait_for_job, wait_for_object  # noqa: E402

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).with_name("corpus")
TEN_MB = 10 * 1024 * 1024


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def zip_of_reviews() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("reviews.txt", "A wonderful, moving film.\nAn awful, boring mess.\n" * 20)
    return out.getvalue()


@pytest.fixture(scope="module")
def stack(repo_root, tiny_artifact, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus-stack")
    server = Served(repo_root, tiny_artifact, root / "data", root / "serve.log", fresh=True)
    server.root = root
    yield server
    if server.process.poll() is None:
        server.stop()


# --------------------------------------------------------------------- API

API_CASES = [
    # (case, body, content type, expected status)
    ("empty text", b"", "text/plain", 400),
    ("empty json", b"", "application/json", 400),
    ("whitespace", "whitespace.txt", "text/plain", 400),
    ("10 MB", b"a" * TEN_MB, "text/plain", 413),  # the HTTP API's own limit
    ("over 256 KiB", b"a " * (128 * 1024 + 1), "text/plain", 413),  # the function's limit
    ("invalid UTF-8", "invalid-utf8.txt", "text/plain", 400),
    ("binary as text", "binary.bin", "text/plain", 400),
    ("binary", "binary.bin", "application/octet-stream", 415),
    ("zip", "zip", "application/zip", 415),
    ("zip as text", "zip", "text/plain", 400),
    ("NUL bytes", "nul-bytes.txt", "text/plain", 200),
    ("HTML and script", "html-script.txt", "text/plain", 200),
    ("HTML and script in JSON", json.dumps({"review": corpus("html-script.txt").decode()}).encode(), "application/json", 200),
    ("emoji", "emoji.txt", "text/plain", 200),
    ("right-to-left", "right-to-left.txt", "text/plain; charset=utf-8", 200),
    ("malformed JSON", "malformed.json", "application/json", 400),
    ("JSON of the wrong shape", "wrong-shape.json", "application/json", 400),
    ("review not a string", b'{"review": 5}', "application/json", 400),
    ("wrong content type (HTML)", "html-script.txt", "text/html", 415),
    ("wrong content type (XML)", b"<review>good</review>", "application/xml", 415),
    ("CSV as CSV", "quoted-newlines.csv", "text/csv", 415),
    ("CSV with quoted newlines as text", "quoted-newlines.csv", "text/plain", 200),
    ("JSON Lines with a broken line as JSON", "broken-line.jsonl", "application/json", 400),
    ("JSON Lines with a broken line as text", "broken-line.jsonl", "text/plain", 200),
    # JSON parser bombs, all under the 256 KiB limit: refused by the shared reader's limits
    ("nested 1,100 deep", "nested-1100.json", "application/json", 400),
    ("nested 100,000 deep", b'{"review": "great", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json", 400),
    ("5,000-digit number", "number-5000-digits.json", "application/json", 400),
    ("Infinity", "infinity.json", "application/json", 400),
    ("NaN", "nan.json", "application/json", 400),
    ("duplicate key", "duplicate-key.json", "application/json", 400),
    ("lone surrogate", "lone-surrogate.json", "application/json", 400),
    ("JSON Lines with a parser bomb as JSON", "parser-bomb.jsonl", "application/json", 400),
    # an unclosed string of 100,000 escaped quotes, then brackets: the reader's bracket scan was quadratic here
    ("unclosed string of escaped quotes", b'{"review": "' + b'\\"' * 100_000 + b"[" * 70, "application/json", 400),
    # ... and what they must not catch
    ("brackets and escaped quotes in a string", "brackets-in-string.json", "application/json", 200),
    ("byte order mark", "bom.json", "application/json", 200),
    ("10,000-character key", "long-key.json", "application/json", 200),
    ("huge flat array", b'{"review": "A wonderful, moving film.", "x": [' + b",".join([b"0"] * 100_000) + b"]}",
     "application/json", 200),
    ("nested 1,100 deep as text", "nested-1100.json", "text/plain", 200),
]

PARSER_BOMB_MESSAGES = {
    "nested 1,100 deep": "malformed JSON: nested deeper than 64 levels",
    "nested 100,000 deep": "malformed JSON: nested deeper than 64 levels",
    "5,000-digit number": "malformed JSON: a number longer than 100 characters",
    "Infinity": "malformed JSON: Infinity is not valid JSON",
    "NaN": "malformed JSON: NaN is not valid JSON",
    "duplicate key": 'malformed JSON: duplicate key "review"',
    "lone surrogate": "malformed JSON: a string holds a lone UTF-16 surrogate, which is not a character",
}


def body_of(source) -> bytes:
    if isinstance(source, bytes):
        return source
    return zip_of_reviews() if source == "zip" else corpus(source)


@pytest.mark.parametrize("case, source, content_type, expected", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_answers_each_bad_input_as_documented(stack, case, source, content_type, expected):
    status, headers, raw = post(f"{stack.api}/score", body_of(source), content_type)
    assert status == expected, raw[:300]
    assert headers.get("Content-Type", headers.get("content-type")) == "application/json"
    document = json.loads(raw)
    if status == 200:
        assert set(document) == {"label", "score"} and 0 <= document["score"] <= 1  # nothing of the input echoed
    else:
        assert set(document) == {"message"} and document["message"]
        assert "Traceback" not in document["message"]
    if case in PARSER_BOMB_MESSAGES:
        assert document["message"] == PARSER_BOMB_MESSAGES[case]


def test_parser_bombs_sent_straight_to_the_endpoint_are_400_with_a_message(stack):
    """InvokeEndpoint with the nested body: the model answers 400 with its
    one-sentence message (SageMaker reports any non-2xx from the model as
    ModelError, OriginalStatusCode 400), no traceback, no 500."""
    runtime = stack.client("sagemaker-runtime")
    name = stack.info["functions"]["RealtimeFunction"]["environment"]["ENDPOINT_NAME"]
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Accept="application/json",
                                Body=corpus("nested-1100.json"))
    error = caught.value.response
    assert error["OriginalStatusCode"] == 400
    assert json.loads(error["OriginalMessage"]) == {"message": "invalid JSON: nested deeper than 64 levels"}
    assert "Traceback" not in error["Error"]["Message"]


# --------------------------------------------------------------------- dropped files

def results_of(stack, key: str) -> list:
    return wait_for_object(stack.client("s3"), output_bucket(stack), f"{key}.out").decode("utf-8").splitlines()


def finished(stack, key: str) -> dict:
    return wait_for_job(stack, job_for(stack, key))


def status_json(stack, key: str, job: str | None = None, timeout: float = 60) -> dict:
    """`<key>.status.json`; with `job`, once it is that job's record (the
    completion function writes it after the job ends, asynchronously, over
    any earlier job's record)."""
    deadline = time.time() + timeout
    while True:
        document = json.loads(wait_for_object(stack.client("s3"), output_bucket(stack), f"{key}.status.json"))
        if job is None or document.get("job") == job:
            return document
        assert time.time() < deadline, f"the status record is still {document.get('job')}'s, not {job}'s"
        time.sleep(0.25)


def assert_no_output(stack, key: str) -> None:
    listed = stack.client("s3").list_objects_v2(Bucket=output_bucket(stack), Prefix=key).get("Contents", [])
    assert f"{key}.out" not in [o["Key"] for o in listed]


def labels(lines: list[str], field: str | None = None) -> list:
    out = []
    for line in lines:
        result = json.loads(line)
        result = result[field] if field else result
        assert set(result) in ({"label", "score"}, {"error"}), result
        out.append(result.get("label", "error"))
    return out


DROPS = {
    "corpus/whitespace.txt": corpus("whitespace.txt"),
    "corpus/invalid-utf8.txt": corpus("invalid-utf8.txt"),
    "corpus/nul-bytes.txt": corpus("nul-bytes.txt"),
    "corpus/html-script.txt": corpus("html-script.txt"),
    "corpus/emoji.txt": corpus("emoji.txt"),
    "corpus/right-to-left.txt": corpus("right-to-left.txt"),
    "corpus/binary.txt": corpus("binary.bin"),
    "corpus/archive.zip.txt": zip_of_reviews(),
    "corpus/quoted-newlines.csv": corpus("quoted-newlines.csv"),
    "corpus/broken-line.jsonl": corpus("broken-line.jsonl"),
    "corpus/wrong-shape.jsonl": corpus("wrong-shape.jsonl"),
    "corpus/parser-bomb.jsonl": corpus("parser-bomb.jsonl"),
    "corpus/bom-and-brackets.jsonl": corpus("bom-and-brackets.jsonl"),
    "corpus/one-10MB-line.txt": b"a" * TEN_MB + b"\n",
    "corpus/empty.txt": corpus("empty.txt"),
    "corpus/malformed.json": corpus("malformed.json"),
    "corpus/binary.bin": corpus("binary.bin"),
}


@pytest.fixture(scope="module")
def dropped(stack):
    s3 = stack.client("s3")
    for key, body in DROPS.items():
        s3.put_object(Bucket=input_bucket(stack), Key=key, Body=body)
    return DROPS


def line_count(data: bytes) -> int:
    lines = data.split(b"\n")
    return len(lines) - (lines[-1] == b"")


@pytest.mark.parametrize("key", ["corpus/whitespace.txt", "corpus/invalid-utf8.txt", "corpus/nul-bytes.txt",
                                 "corpus/html-script.txt", "corpus/emoji.txt", "corpus/right-to-left.txt",
                                 "corpus/binary.txt", "corpus/archive.zip.txt"])
def test_text_files_get_one_result_per_line(stack, dropped, key):
    job = finished(stack, key)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    got = labels(results_of(stack, key))
    assert len(got) == line_count(dropped[key])
    expected = {
        "corpus/whitespace.txt": ["error", "error", "error"],
        "corpus/invalid-utf8.txt": ["positive", "error", "negative"],
        "corpus/nul-bytes.txt": ["positive", "error", "negative"],
    }.get(key)
    if expected:
        assert got == expected
    if key == "corpus/html-script.txt":
        assert got[:2] == ["positive", "negative"]
    document = status_json(stack, key)
    assert document["status"] == "Completed" and document["counts"]["records"] == len(got)
    assert document["counts"]["errors"] == got.count("error")


def test_json_lines_of_the_wrong_shape_are_answered_line_by_line(stack, dropped):
    key = "corpus/wrong-shape.jsonl"
    job = finished(stack, key)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    lines = results_of(stack, key)
    assert labels(lines, "SageMakerOutput") == ["error", "error", "positive"]
    assert [json.loads(line).get("review") for line in lines] == [None, 5, "A wonderful, moving film."]


def test_json_lines_with_a_broken_line_fail_the_job_with_its_line_number(stack, dropped):
    key = "corpus/broken-line.jsonl"
    job = finished(stack, key)
    assert job["TransformJobStatus"] == "Failed"
    assert "line 2" in job["FailureReason"]
    assert_no_output(stack, key)
    assert status_json(stack, key)["status"] == "Failed"


def test_json_lines_with_a_parser_bomb_fail_the_job_naming_the_line_and_the_problem(stack, dropped):
    """SageMaker parses each JSON Lines record itself to join it with its
    result (JoinSource=Input); a record it cannot parse fails the job and no
    output is written. The local stack parses with the product's reader."""
    key = "corpus/parser-bomb.jsonl"
    job = finished(stack, key)
    assert job["TransformJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.endswith("input line 2 is not valid JSON (nested deeper than 64 levels)"), reason
    assert "\n" not in reason and "Traceback" not in reason
    assert_no_output(stack, key)
    document = status_json(stack, key)
    assert document["status"] == "Failed" and document["failureReason"] == reason


def test_json_lines_with_a_bom_and_brackets_in_strings_are_scored(stack, dropped):
    key = "corpus/bom-and-brackets.jsonl"
    job = finished(stack, key)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    lines = results_of(stack, key)
    assert labels(lines, "SageMakerOutput") == ["positive", "negative"]
    assert [json.loads(line)["id"] for line in lines] == [1, 2]


def test_csv_with_a_quoted_newline_fails_the_job_with_its_line_number(stack, dropped):
    """SplitType=Line splits inside the quotes (as SageMaker does), so line 1
    is half a CSV row, which JoinSource=Input cannot join: the job fails,
    naming the line, and writes nothing that looks like a result."""
    key = "corpus/quoted-newlines.csv"
    job = finished(stack, key)
    assert job["TransformJobStatus"] == "Failed"
    assert "input line 1 is not a valid CSV row" in job["FailureReason"]
    assert_no_output(stack, key)
    assert status_json(stack, key)["status"] == "Failed"


def test_a_record_over_the_payload_limit_fails_the_job_with_a_reason(stack, dropped):
    key = "corpus/one-10MB-line.txt"
    job = finished(stack, key)
    assert job["TransformJobStatus"] == "Failed"
    assert "MaxPayloadInMB" in job["FailureReason"]
    assert_no_output(stack, key)
    assert status_json(stack, key)["status"] == "Failed"


@pytest.mark.parametrize("key", ["corpus/empty.txt", "corpus/malformed.json", "corpus/binary.bin"])
def test_files_that_are_not_input_make_no_job(stack, dropped, key):
    # Every other dropped file has finished by now (the tests above waited for
    # them), and the batch function handles each upload as it arrives.
    for other in ("corpus/whitespace.txt", "corpus/one-10MB-line.txt"):
        finished(stack, other)
    sm = stack.client("sagemaker")
    names = [j["TransformJobName"] for j in sm.list_transform_jobs(MaxResults=100)["TransformJobSummaries"]]
    assert job_for(stack, key) not in names
    assert_no_output(stack, key)


# --------------------------------------------------------------------- killed mid-job

KILL_LINES = 40_000


def descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for child in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = child.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(child.parent.name))
                queue.append(int(child.parent.name))
    return found


def test_a_stack_killed_mid_transform_fails_the_job_and_the_upload_scores_again(stack, dropped, repo_root, tiny_artifact):
    for key in DROPS:  # the corpus jobs are done: only this one runs when the stack dies
        if key.endswith((".txt", ".csv", ".jsonl")) and key != "corpus/empty.txt":
            finished(stack, key)
    s3, sm = stack.client("s3"), stack.client("sagemaker")
    key = "kill/many reviews.txt"
    body = "".join("A wonderful, moving film.\n" if i % 2 == 0 else "An awful, boring mess.\n"
                   for i in range(KILL_LINES)).encode()
    s3.put_object(Bucket=input_bucket(stack), Key=key, Body=body)
    name = job_for(stack, key)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            job = sm.describe_transform_job(TransformJobName=name)
        except sm.exceptions.ClientError:
            job = {}
        if job.get("TransformStartTime"):
            break
        time.sleep(0.05)
    assert job.get("TransformJobStatus") == "InProgress", job
    time.sleep(0.5)  # well into the scoring of the mini-batches
    family = [stack.process.pid, *descendants(stack.process.pid)]
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stack.process.wait(30)
    stack.log.close()

    again = Served(repo_root, tiny_artifact, stack.root / "data", stack.root / "serve.log", fresh=False)
    try:
        s3, sm = again.client("s3"), again.client("sagemaker")
        job = sm.describe_transform_job(TransformJobName=name)
        assert job["TransformJobStatus"] == "Failed" and "interrupted" in job["FailureReason"]
        assert_no_output(again, key)  # nothing that looks like a result
        document = status_json(again, key, job=name)
        assert document["status"] == "Failed" and document["output"] is None

        s3.put_object(Bucket=input_bucket(again), Key=key, Body=body)  # the same file, uploaded again
        retry = job_for(again, key)
        assert retry != name
        job = wait_for_job(again, retry, timeout=300)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        lines = results_of(again, key)
        assert len(lines) == KILL_LINES
        assert labels(lines) == ["positive", "negative"] * (KILL_LINES // 2)
        assert status_json(again, key, job=retry)["counts"] == {"records": KILL_LINES, "scored": KILL_LINES,
                                                                 "errors": 0}
        assert again.stop() == 0
    finally:
        if again.process.poll() is None:
            again.process.kill()
            again.process.wait(30)
