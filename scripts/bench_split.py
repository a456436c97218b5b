#!/usr/bin/env python3
"""Benchmark of splitting a big upload (issue #21): the BatchFunction's split
path alone, on files of growing size, against a local S3: prints figures,
asserts only that the shards cover the file.

What runs is what functions/batch/app.py's submit_sharded does with S3:
batch/shards.py's plan (ranged reads after each nominal cut) and split (one
multipart upload of one UploadPartCopy per shard) over batch/s3store.py, then
the plan's PutObject. The S3 is moto's server (the one `critic serve` embeds)
in a process of its own, so that the splitting process holds only what the
function would. For each size a file of text lines (200 to 3,000 bytes each)
is generated and uploaded to a versioned bucket, then a fresh process splits
it and reports: wall time, S3 requests by operation (a botocore before-call
hook; HTTP sends too, to show retries), its peak RSS (VmHWM, before and
after splitting: the first is its imports) and tracemalloc's peak of Python
allocations during the split, and the shards made. The S3 objects and the
local file are removed before the next size; nothing is left behind.

moto is not S3: its UploadPartCopy reads the whole source object, so the
times here are moto's (and this machine's), not AWS's. The request counts
and the splitting process's memory are the function's own.

Usage:
  .venv/bin/python scripts/bench_split.py [--sizes-mb 256 1024 2048] [--instances 16]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from batch import shards  # noqa: E402
from batch.jobs import DEFAULT_MAX_PAYLOAD_MB  # noqa: E402

BUCKET = "bench-uploads"
KEY = "bench/big.txt"
CREDENTIALS = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


def client(endpoint: str, read_timeout: int = 20):
    import boto3
    from botocore.config import Config

    # functions/batch/app.py's client settings: its timeouts and retries apply to each copy here too
    config = Config(connect_timeout=5, read_timeout=read_timeout, retries={"mode": "standard", "max_attempts": 5})
    return boto3.client("s3", endpoint_url=endpoint, config=config, **CREDENTIALS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto(folder: Path) -> tuple[subprocess.Popen, str]:
    """moto's server on a free port; its spooled object files in `folder` (removed afterwards)."""
    port = free_port()
    env = {**os.environ, "TMPDIR": str(folder)}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            return process, endpoint
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("moto's server did not start")


def write_lines(path: Path, size: int) -> None:
    """About `size` bytes of text lines of 200 to 3,000 bytes (IMDB reviews are 50 to 14,000), every one ending in \\n."""
    rng = random.Random(0)
    letters = b"abcdefghijklmnopqrstuvwxyz      .,"
    block = b"".join(bytes(rng.choices(letters, k=rng.randint(200, 3000))) + b"\n" for _ in range(10_000))
    with path.open("wb") as file:
        written = 0
        while written + len(block) <= size:
            file.write(block)
            written += len(block)
        tail = block[:block.rfind(b"\n", 0, size - written) + 1]
        file.write(tail)


def rss_mib(pid: int | str = "self", field: str = "VmHWM") -> float | None:
    """A process's peak resident set (VmHWM) or current one (VmRSS), MiB. Not
    getrusage's ru_maxrss: a process started by fork and exec reports its
    parent's peak there when that is larger."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def split_once(endpoint: str, version: str, size: int, instances: int) -> dict:
    """In a fresh process: the function's split path, measured."""
    import tracemalloc

    from batch.s3store import S3Store

    s3 = client(endpoint)
    calls: Counter = Counter()
    sends: Counter = Counter()
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
    s3.meta.events.register("before-send.s3", lambda **_: sends.update(["http"]))
    store = S3Store(s3)
    rss_before = rss_mib()
    tracemalloc.start()
    started = time.perf_counter()
    plan = shards.plan(store, job="bench-split", bucket=BUCKET, key=KEY, version=version, size=size,
                       instances=instances, max_line=DEFAULT_MAX_PAYLOAD_MB * shards.MIB + 2)
    planned = time.perf_counter()
    shards.split(store, plan)
    store.put(BUCKET, shards.plan_key(plan.job), plan.to_json(), "application/json")
    done = time.perf_counter()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"shards": len(plan.shards), "largest_shard_mib": round(max(e - s for s, e in plan.shards) / shards.MIB, 1),
            "plan_s": round(planned - started, 2), "split_s": round(done - planned, 2),
            "total_s": round(done - started, 2), "requests": dict(sorted(calls.items())),
            "requests_total": sum(calls.values()), "http_sends": sends["http"],
            "peak_rss_before_split_mib": rss_before, "peak_rss_mib": rss_mib(),
            "tracemalloc_peak_mib": round(traced_peak / shards.MIB, 2), "bounds": plan.shards}


def measure(endpoint: str, folder: Path, size_mb: int, instances: int) -> dict:
    s3 = client(endpoint, read_timeout=900)  # moto joins a 2 GiB upload's parts in memory: more than 20 s
    path = folder / "big.txt"
    write_lines(path, size_mb * shards.MIB)
    size = path.stat().st_size
    s3.upload_file(str(path), BUCKET, KEY)
    path.unlink()
    version = s3.head_object(Bucket=BUCKET, Key=KEY)["VersionId"]
    child = subprocess.run([sys.executable, __file__, "--child", endpoint, version, str(size), str(instances)],
                           cwd=REPO, capture_output=True, text=True)
    if child.returncode:
        sys.exit(f"the split failed:\n{child.stderr[-3000:]}")
    figures = json.loads(child.stdout)
    bounds = figures.pop("bounds")
    keys = [f"{shards.shard_input_prefix('bench-split')}{index:05d}" for index in range(len(bounds))]
    # the shards cover the file, in order, each as long as planned
    assert bounds[0][0] == 0 and bounds[-1][1] == size and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert [s3.head_object(Bucket=BUCKET, Key=k)["ContentLength"] for k in keys] == [e - s for s, e in bounds]
    versions = s3.list_object_versions(Bucket=BUCKET)
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]}
                                                         for v in versions.get("Versions", [])], "Quiet": True})
    return {"size_mib": round(size / shards.MIB, 1), "instances": instances, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--instances", type=int, default=16, help="BatchInstanceCount: 4 shards per instance")
    parser.add_argument("--child", nargs=4, metavar=("ENDPOINT", "VERSION", "SIZE", "INSTANCES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        endpoint, version, size, instances = args.child
        print(json.dumps(split_once(endpoint, version, int(size), int(instances))))
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-split-"))
    moto, endpoint = start_moto(folder)
    try:
        s3 = client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        print(json.dumps({"cpus": os.cpu_count(), "load": round(os.getloadavg()[0], 2),
                          "free_disk_gib": round(shutil.disk_usage(folder).free / 2**30, 1)}), flush=True)
        for size_mb in args.sizes_mb:
            figures = measure(endpoint, folder, size_mb, args.instances)
            print(json.dumps({**figures, "moto_peak_rss_mib": rss_mib(moto.pid),
                              "load": round(os.getloadavg()[0], 2)}), flush=True)
    finally:
        moto.terminate()
        moto.wait(60)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
