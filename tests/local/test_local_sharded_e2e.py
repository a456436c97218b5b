"""End to end through `critic serve` with two batch instances and a 2 KB
threshold: big uploads of the three formats are split, scored by one job
whose instances share the shards, and assembled into `<key>.out` in input
order; the status counts every record once and the staging objects are gone."""
from __future__ import annotations

import csv
import io
import json

import pytest

from test_local_stack_e2e import PRAISE, SCORN, Served, input_bucket, job_for, output_bucket, wait_for_job, \
    wait_for_object

pytestmark = pytest.mark.slow

LINES = 121  # (the last one not blank) about 4 KB and more per file: 8 shards of a 2-instance job


@pytest.fixture(scope="module")
def sharded(repo_root, tiny_artifact, tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    server = Served(repo_root, tiny_artifact, root / "data", root / "serve.log", fresh=True,
                    extra=("--parameter", "BatchInstanceCount=2", "--parameter", "ShardAboveMB=0.002"))
    yield server
    if server.process.poll() is None:
        server.stop()


def review(n: int) -> str:
    return "" if n % 10 == 9 else (f"{PRAISE} été ✓ {n}" if n % 2 == 0 else f"{SCORN} {n}")


def test_big_uploads_are_sharded_scored_by_one_job_and_assembled_in_order(sharded):
    s3 = sharded.client("s3")
    bucket, out = input_bucket(sharded), output_bucket(sharded)
    files = {
        "big/reviews été.txt": "\r\n".join(review(n) for n in range(LINES)).encode(),  # CRLF, no final newline
        "big/reviews.jsonl": "".join(json.dumps({"id": n, "review": review(n)}, ensure_ascii=False) + "\n"
                                     for n in range(LINES)).encode(),
        "big/rows.csv": "".join(f'{n},"{review(n)}"\n' for n in range(LINES)).encode(),
    }
    for key, body in files.items():
        assert len(body) > 2 * 1024 * 1.05
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    for key in files:
        job = wait_for_job(sharded, job_for(sharded, key), timeout=240)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("/in/")
        assert job["TransformResources"]["InstanceCount"] == 2

    blanks = sum(1 for n in range(LINES) if not review(n))
    for key in files:
        status = json.loads(wait_for_object(s3, out, f"{key}.status.json", timeout=120))
        assert status["status"] == "Completed", status
        assert status["input"] == f"s3://{bucket}/{key}" and status["shards"] == 8
        assert status["counts"] == {"records": LINES, "scored": LINES - blanks, "errors": blanks}

    text = [json.loads(line) for line in wait_for_object(s3, out, "big/reviews été.txt.out").decode().splitlines()]
    assert [r.get("label") for r in text] == [
        None if not review(n) else ("positive" if n % 2 == 0 else "negative") for n in range(LINES)]
    joined = [json.loads(line) for line in wait_for_object(s3, out, "big/reviews.jsonl.out").decode().splitlines()]
    assert [j["id"] for j in joined] == list(range(LINES))
    assert [j["review"] for j in joined] == [review(n) for n in range(LINES)]
    rows = list(csv.reader(io.StringIO(wait_for_object(s3, out, "big/rows.csv.out").decode())))
    assert [row[:2] for row in rows] == [[str(n), review(n)] for n in range(LINES)]

    for listed_bucket in (bucket, out):  # staging removed after success
        assert "Contents" not in s3.list_objects_v2(Bucket=listed_bucket, Prefix="critic-shards/")
