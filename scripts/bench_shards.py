#!/usr/bin/env python3
"""Benchmark of a big upload on the local stack, 1 batch instance against 2:
prints figures, asserts only that the outputs are right.

Builds a file of the IMDB test reviews repeated to `--lines` lines (.txt),
then for each instance count starts `critic serve --fresh` with
`--parameter BatchInstanceCount=N --parameter ShardAboveMB=<threshold>`,
uploads the file and times it from the upload to its `<key>.status.json`
(split, the job, assembly and counting included). Each `<key>.out` is
compared line for line with `critic predict` on the same file.

The figures depend on the machine and on what else runs on it (the load
average is printed). Usage:
  .venv/bin/python scripts/bench_shards.py [--imdb aclImdb_v1.tar.gz] [--lines 200000]
      [--instances 1 2] [--shard-above-mb 8]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_local import imdb_test_reviews, start  # noqa: E402
from critic import SHIPPED_ARTIFACT  # noqa: E402

KEY = "bench/imdb-repeated.txt"


def serve(artifact: Path, data: Path, instances: int, above_mb: float):
    process, aws_url, _ = start(artifact, data, ("--parameter", f"BatchInstanceCount={instances}",
                                                 "--parameter", f"ShardAboveMB={above_mb}"))
    return process, aws_url


def run(aws: str, path: Path, folder: Path) -> tuple[dict, Path]:
    import urllib.request

    import boto3

    info = json.loads(urllib.request.urlopen(f"{aws}/_critic/stack").read())
    kw = dict(endpoint_url=aws, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    s3 = boto3.client("s3", **kw)
    bucket, out = info["buckets"]["InputBucket"], info["buckets"]["OutputBucket"]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    s3.upload_file(str(path), bucket, KEY)
    uploaded = time.perf_counter()
    while True:
        try:
            status = json.loads(s3.get_object(Bucket=out, Key=KEY.removesuffix(".txt") + ".txt.status.json")
                                ["Body"].read())
            break
        except s3.exceptions.NoSuchKey:
            time.sleep(0.5)
    done = time.perf_counter()
    result = folder / f"out-{time.time_ns()}.jsonl"
    s3.download_file(out, KEY + ".out", str(result))
    return {"status": status["status"], "shards": status.get("shards"), "job_s": status["durationSeconds"],
            "upload_s": round(uploaded - started, 1), "upload_to_status_s": round(done - uploaded, 1),
            "counts": status["counts"], "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2)}, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, default=SHIPPED_ARTIFACT)
    parser.add_argument("--imdb", type=Path, default=None)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shard-above-mb", type=float, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reviews = imdb_test_reviews(args.imdb, None, folder).read_bytes().splitlines(keepends=True)
        path = folder / "imdb-repeated.txt"
        with path.open("wb") as file:
            for n in range(args.lines):
                file.write(reviews[n % len(reviews)])
        print(json.dumps({"lines": args.lines, "bytes": path.stat().st_size, "cpus": os.cpu_count()}), flush=True)
        started = time.perf_counter()
        expected = folder / "predict.jsonl"
        with expected.open("wb") as sink:
            subprocess.run([sys.executable, "-m", "critic", "predict", "--artifact", str(args.artifact), str(path)],
                           cwd=REPO, stdout=sink, check=True)
        print(json.dumps({"critic_predict_s": round(time.perf_counter() - started, 1)}), flush=True)
        want = expected.read_bytes().splitlines()
        for instances in args.instances:
            process, aws = serve(args.artifact, folder / f"data-{instances}", instances, args.shard_above_mb)
            try:
                figures, result = run(aws, path, folder)
            finally:
                process.terminate()
                process.wait(60)
            got = result.read_bytes().splitlines()
            print(json.dumps({"instances": instances, **figures, **compare(got, want)}), flush=True)


def compare(got: list[bytes], want: list[bytes]) -> dict:
    """How the job's output lines match `critic predict`'s, line for line."""
    pairs = [(json.loads(a), json.loads(b)) for a, b in zip(got, want)]
    return {"lines_match": len(got) == len(want),
            "byte_identical_lines": sum(a == b for a, b in zip(got, want)),
            "same_label_lines": sum(a.get("label") == b.get("label") for a, b in pairs),
            "max_score_difference": max((abs(a["score"] - b["score"]) for a, b in pairs
                                         if "score" in a and "score" in b), default=0.0)}

if __name__ == "__main__":
    main()
