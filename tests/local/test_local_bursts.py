"""Bursts and quotas through the local stack (`critic serve --transform-quota
N`): thirty files dropped at once are all scored, every line right, never
more than N jobs running, nothing in the failed-events queue; the same with
throttling injected; and a stack killed while uploads wait scores each of
them once after a restart."""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from test_local_stack_e2e import PRAISE, SCORN, Served

pytestmark = pytest.mark.slow

FILES = 30
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


def drop(served: Served, count: int, folder: str) -> list[str]:
    """Upload `count` files at once; each holds praise and scorn in an order of its own."""
    s3 = served.client("s3")
    bucket = served.info["buckets"]["InputBucket"]

    def put(i: int) -> str:
        key = f"{folder}/reviews {i:02d}.txt"
        lines = [PRAISE, SCORN] if i % 2 else [SCORN, PRAISE, SCORN]
        s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
        return key

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(put, range(count)))


def expected_labels(key: str) -> list[str]:
    i = int(key.rsplit(" ", 1)[1][:2])
    return ["positive", "negative"] if i % 2 else ["negative", "positive", "negative"]


def wait_for_results(served: Served, keys: list[str], timeout: float) -> dict[str, list[str]]:
    s3 = served.client("s3")
    bucket = served.info["buckets"]["OutputBucket"]
    found: dict[str, list[str]] = {}
    deadline = time.time() + timeout
    while len(found) < len(keys) and time.time() < deadline:
        for key in keys:
            if key in found:
                continue
            try:
                status = json.loads(s3.get_object(Bucket=bucket, Key=key + ".status.json")["Body"].read())
            except s3.exceptions.NoSuchKey:
                continue
            assert status["status"] == "Completed", status
            body = s3.get_object(Bucket=bucket, Key=key + ".out")["Body"].read().decode()
            found[key] = [json.loads(line)["label"] for line in body.splitlines()]
        time.sleep(0.5)
    missing = sorted(set(keys) - set(found))
    assert not missing, f"{len(missing)} of {len(keys)} uploads not scored in {timeout:.0f} s: {missing[:3]}"
    return found


def stack_info(served: Served) -> dict:
    return json.loads(urllib.request.urlopen(f"{served.aws}/_critic/stack", timeout=5).read())


def failed_events(served: Served) -> list[dict]:
    sqs = served.client("sqs")
    url = stack_info(served)["queues"]["failedEvents"]
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])


def jobs_of(served: Served) -> list[dict]:
    sm = served.client("sagemaker")
    return [job for page in sm.get_paginator("list_transform_jobs").paginate() for job in page["TransformJobSummaries"]]


def record(name: str, figures: dict) -> None:
    """Keep the drain times as test output (README quotes them)."""
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / "bursts.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[name] = figures
    path.write_text(json.dumps(saved, indent=2))


@pytest.mark.parametrize("quota, throttle", [(2, 0.0), (1, 0.0), (2, 0.3)],
                         ids=["quota-2", "quota-1", "quota-2-throttled"])
def test_a_burst_beyond_the_quota_is_scored_in_full(repo_root, tiny_artifact, tmp_path, quota, throttle):
    served = Served(repo_root, tiny_artifact, tmp_path / "data", tmp_path / "serve.log", fresh=True,
                    extra=["--transform-quota", str(quota), "--transform-throttle", str(throttle)])
    try:
        started = time.time()
        keys = drop(served, FILES, f"burst-{quota}-{throttle}")
        results = wait_for_results(served, keys, timeout=600)
        drained = time.time() - started
        for key in keys:
            assert results[key] == expected_labels(key), key
        info = stack_info(served)
        assert 1 <= info["transformJobs"]["peakInProgress"] <= quota
        assert len(jobs_of(served)) == FILES  # one job per upload
        assert failed_events(served) == []
        log = (tmp_path / "serve.log").read_text()
        assert "ResourceLimitExceeded" in log or "jobs in flight" in log or throttle  # they did wait
        if throttle:  # throttled, and the function's SDK retries (or the queue) got past it
            assert info["transformJobs"]["throttled"] > 0
        record(f"{FILES} files, quota {quota}" + (f", {throttle:.0%} of CreateTransformJob throttled" if throttle else ""),
               {"seconds": round(drained, 1), "peakInProgress": info["transformJobs"]["peakInProgress"],
                "throttled": info["transformJobs"]["throttled"]})
    finally:
        if served.process.poll() is None:
            served.stop()


def test_a_stack_killed_while_uploads_wait_scores_each_once_after_a_restart(repo_root, tiny_artifact, tmp_path):
    data, log = tmp_path / "data", tmp_path / "serve.log"
    served = Served(repo_root, tiny_artifact, data, log, fresh=True, extra=["--transform-quota", "0"])
    try:
        keys = drop(served, 10, "killed")
        uploads = stack_info(served)["queues"]["uploads"]
        deadline = time.time() + 60
        while time.time() < deadline:  # every upload refused at least once, now waiting in the queue
            if log.read_text().count("waiting for capacity") >= 10:
                break
            time.sleep(0.25)
        assert log.read_text().count("waiting for capacity") >= 10
        assert jobs_of(served) == []
        for pid in served.children():
            os.kill(pid, signal.SIGKILL)
        served.process.kill()  # no Ctrl-C: nothing is saved on the way out
        served.process.wait(30)
        served.log.close()
    finally:
        if served.process.poll() is None:
            served.process.kill()
    again = Served(repo_root, tiny_artifact, data, log, fresh=False, extra=["--transform-quota", "2"])
    try:
        results = wait_for_results(again, keys, timeout=300)
        for key in keys:
            assert results[key] == expected_labels(key), key
        time.sleep(3)  # any duplicate still in the queue would have made its job by now
        assert len(jobs_of(again)) == 10
        assert failed_events(again) == []
        assert again.client("sqs").get_queue_attributes(QueueUrl=uploads, AttributeNames=["All"])["Attributes"][
            "ApproximateNumberOfMessages"] == "0"
    finally:
        again.stop()
