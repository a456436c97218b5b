"""End to end: a file scored the way the web page does it, through `critic
serve` (tiny model): POST /uploads, the file POSTed to the presigned URL as a
browser does (CORS preflight, then a multipart form), GET /uploads/{id} until
Completed, the results downloaded; and what the local AWS endpoint refuses
as S3 would (another origin, another key, another size)."""
from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.request

import pytest
import requests

from test_local_stack_e2e import PRAISE, SCORN, Served, post

pytestmark = pytest.mark.slow

ORIGIN = "https://critic.example"  # the stack's AllowedOrigin here


@pytest.fixture(scope="module")
def served(repo_root, tiny_artifact, tmp_path_factory):
    root = tmp_path_factory.mktemp("uploads-stack")
    server = Served(repo_root, tiny_artifact, root / "data", root / "serve.log", fresh=True,
                    extra=("--parameter", f"AllowedOrigin={ORIGIN}", "--parameter", "MaxUploadMB=1"))
    yield server
    if server.process.poll() is None:
        server.stop()


def create_upload(served, filename: str, size: int) -> tuple[int, dict]:
    status, headers, body = post(f"{served.api}/uploads", json.dumps({"filename": filename, "size": size}).encode(),
                                 "application/json", {"Origin": ORIGIN})
    assert headers.get("Access-Control-Allow-Origin") == ORIGIN
    return status, json.loads(body)


def get_upload(served, upload_id: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{served.api}/uploads/{upload_id}", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def browser_post(upload: dict, name: str, data: bytes, origin: str = ORIGIN) -> requests.Response:
    """What the page's XMLHttpRequest sends: a preflight (upload progress makes
    one), then the policy's fields and the file last, as multipart/form-data."""
    preflight = requests.options(upload["url"], headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == origin
    return requests.post(upload["url"], data=upload["fields"], files={"file": (name, data, "text/csv")},
                         headers={"Origin": origin})


def test_a_file_goes_from_the_page_to_its_results(served):
    rows = [("1", PRAISE), ("2", SCORN), ("3", PRAISE)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    data = buffer.getvalue().encode()
    status, created = create_upload(served, "My reviews.csv", len(data))
    assert status == 201
    upload_id = created["id"]
    assert get_upload(served, upload_id)[0] == 404  # the file has not arrived

    response = browser_post(created["upload"], "My reviews.csv", data)
    assert response.status_code == 204, response.text
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN  # the page may read the answer

    seen, deadline = [], time.time() + 120
    while time.time() < deadline:
        status, state = get_upload(served, upload_id)
        assert status == 200
        seen.append(state["status"])
        if state["status"] not in ("Waiting", "InProgress"):
            break
        time.sleep(0.2)
    assert state["status"] == "Completed", state
    assert set(seen) <= {"Waiting", "InProgress", "Completed"}
    assert state["counts"] == {"records": 3, "scored": 3, "errors": 0} and state["failureReason"] is None

    download = requests.get(state["download"])
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == 'attachment; filename="My-reviews.scored.csv"'
    results = list(csv.reader(io.StringIO(download.text)))
    assert [row[:2] for row in results] == [list(row) for row in rows]  # every line, in order
    assert [row[2] for row in results] == ["positive", "negative", "positive"]
    assert all(0 <= float(row[3]) <= 1 and row[4] == "" for row in results)


def test_the_api_refuses_what_cannot_be_scored(served):
    assert create_upload(served, "reviews.xlsx", 10)[0] == 400
    assert create_upload(served, "reviews.csv", 0)[0] == 400
    status, answer = create_upload(served, "big.txt", 1024 * 1024 + 1)  # MaxUploadMB=1
    assert status == 413 and "1,048,576 bytes" in answer["message"]
    assert get_upload(served, "0" * 32)[0] == 404


def test_the_local_endpoint_holds_the_upload_to_its_policy_as_s3_does(served):
    _, created = create_upload(served, "reviews.txt", 10)
    upload = created["upload"]

    other = requests.options(upload["url"], headers={"Origin": "https://evil.example",
                                                     "Access-Control-Request-Method": "POST"})
    assert other.status_code == 403 and "Access-Control-Allow-Origin" not in other.headers

    too_big = requests.post(upload["url"], data=upload["fields"], files={"file": ("r.txt", b"x" * 11)},
                            headers={"Origin": ORIGIN})
    assert too_big.status_code == 400 and "<Code>EntityTooLarge</Code>" in too_big.text
    assert too_big.headers["Access-Control-Allow-Origin"] == ORIGIN  # the page can tell why
    too_small = requests.post(upload["url"], data=upload["fields"], files={"file": ("r.txt", b"x" * 9)})
    assert too_small.status_code == 400 and "<Code>EntityTooSmall</Code>" in too_small.text

    elsewhere = dict(upload["fields"], key="uploads/someone-else.txt")
    moved = requests.post(upload["url"], data=elsewhere, files={"file": ("r.txt", b"x" * 10)})
    assert moved.status_code == 403 and "Policy Condition failed" in moved.text

    unsigned = {k: v for k, v in upload["fields"].items() if k != "policy"}
    assert requests.post(upload["url"], data=unsigned, files={"file": ("r.txt", b"x" * 10)}).status_code == 403

    s3 = served.client("s3")
    listed = s3.list_objects_v2(Bucket=served.info["buckets"]["InputBucket"], Prefix="uploads/")
    assert not [item["Key"] for item in listed.get("Contents", []) if created["id"] in item["Key"]
                or item["Key"] == "uploads/someone-else.txt"]
