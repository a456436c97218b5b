#!/usr/bin/env python3
"""Benchmark of the local stack (`critic serve`): prints figures, asserts none.

Starts `critic serve` on free ports with a fresh data folder, then measures:
- realtime: latency of POST /score through the local HTTP API (API -> Lambda
  -> SageMaker Runtime -> model) at concurrency 1 and 16: p50, p99, req/s;
- batch: one upload of the IMDB test reviews (25,000 lines, .txt) until its
  transform job completes: seconds and reviews/s;
- memory: proportional set size (PSS) of the whole stack (the server, its
  model workers and its Lambda environments) after the runs.

The stack runs as `make run` starts it (default settings). The figures depend
on the machine and on what else runs on it.

Usage: .venv/bin/python scripts/bench_local.py [--artifact model.tar.gz]
       [--imdb aclImdb_v1.tar.gz | --reviews FILE] [--requests 400] [--skip-batch]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from critic import SHIPPED_ARTIFACT  # noqa: E402

SAMPLE = ("A wonderful, moving film with a cast at the top of its game; the script takes risks "
          "and the ending earns every tear. One of the best of the year.")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(artifact: Path, data: Path, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str, str]:
    """`critic serve` on free ports with a fresh data folder (and `extra` options); (process, AWS URL, API host)."""
    aws_port, api_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "critic", "serve", "--artifact", str(artifact), "--data", str(data), "--fresh",
         "--aws-port", str(aws_port), "--api-port", str(api_port), *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            if line.startswith(b"Ctrl-C stops everything"):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(300) or process.poll() is not None:
        process.kill()
        sys.exit("critic serve did not start")
    return process, f"http://127.0.0.1:{aws_port}", f"127.0.0.1:{api_port}"


def realtime(api: str, concurrency: int, requests: int) -> dict:
    body = json.dumps({"review": SAMPLE}).encode()
    local = threading.local()

    def one(_: int) -> float:
        if not hasattr(local, "connection"):
            local.connection = HTTPConnection(api, timeout=60)
        started = time.perf_counter()
        local.connection.request("POST", "/score", body=body, headers={"Content-Type": "application/json"})
        response = local.connection.getresponse()
        response.read()
        if response.getheader("Connection", "").lower() == "close":
            local.connection.close()
            del local.connection
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(min(requests, 4 * concurrency))))  # warm every environment
        started = time.perf_counter()
        latencies = sorted(pool.map(one, range(requests)))
        elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": requests,
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
            "req_per_s": round(requests / elapsed, 1)}


def imdb_test_reviews(imdb: Path | None, reviews: Path | None, folder: Path) -> Path:
    if reviews:
        return reviews
    from model.data import load_imdb

    data = load_imdb(imdb, splits=("test",))
    path = folder / "imdb-test.txt"
    path.write_text("".join(" ".join(text.split()) + "\n" for text, *_ in data.test), encoding="utf-8")
    return path


def batch(aws: str, reviews: Path) -> dict:
    import boto3

    from batch import jobs

    info = json.loads(urllib.request.urlopen(f"{aws}/_critic/stack").read())
    kw = dict(endpoint_url=aws, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    s3, sm = boto3.client("s3", **kw), boto3.client("sagemaker", **kw)
    bucket = info["buckets"]["InputBucket"]
    prefix = info["functions"]["BatchFunction"]["environment"]["JOB_NAME_PREFIX"]
    lines = sum(1 for _ in reviews.open("rb"))
    started = time.perf_counter()
    s3.upload_file(str(reviews), bucket, "bench/imdb-test.txt")
    head = s3.head_object(Bucket=bucket, Key="bench/imdb-test.txt")
    name = jobs.job_name(prefix, bucket, "bench/imdb-test.txt", jobs.object_version(head.get("VersionId"), head["ETag"]))
    while True:
        try:
            job = sm.describe_transform_job(TransformJobName=name)
            if job["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
                break
        except sm.exceptions.ClientError:
            pass
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    job_seconds = (job["TransformEndTime"] - job["TransformStartTime"]).total_seconds()
    return {"reviews": lines, "status": job["TransformJobStatus"], "upload_to_done_s": round(elapsed, 1),
            "job_s": round(job_seconds, 1), "reviews_per_s": round(lines / job_seconds, 1),
            "bytes": reviews.stat().st_size}


def memory(pid: int) -> dict:
    """PSS of the process tree (shared pages counted once, split among sharers)."""
    tree, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        tree.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            frontier += [int(c) for c in children.read_text().split()]
    total = 0
    for member in tree:
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return {"processes": len(tree), "pss_mb": round(total / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=SHIPPED_ARTIFACT)
    parser.add_argument("--imdb", type=Path, help="aclImdb_v1.tar.gz or the aclImdb folder (default: the cached download)")
    parser.add_argument("--reviews", type=Path, help="a .txt file of reviews to score instead of the IMDB test set")
    parser.add_argument("--requests", type=int, default=400, help="requests per realtime run")
    parser.add_argument("--skip-batch", action="store_true")
    args = parser.parse_args()
    if not args.artifact.is_file():
        sys.exit(f"{args.artifact}: no model artifact (train one, or pass --artifact)")
    with tempfile.TemporaryDirectory(prefix="critic-bench-") as tmp:
        folder = Path(tmp)
        reviews = None if args.skip_batch else imdb_test_reviews(args.imdb, args.reviews, folder)
        process, aws, api = start(args.artifact, folder / "data")
        figures: dict = {"artifact": str(args.artifact), "cpus": os.cpu_count()}
        try:
            figures["memory_idle"] = memory(process.pid)
            figures["realtime"] = [realtime(api, 1, args.requests), realtime(api, 16, args.requests)]
            if reviews:
                figures["batch"] = batch(aws, reviews)
            figures["memory_after"] = memory(process.pid)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
