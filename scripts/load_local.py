#!/usr/bin/env python3
"""Load test of the local stack (`critic serve`), bounded in time and count,
on 127.0.0.1 only. Prints figures as JSON; exits 1 if any request or output
line was wrong.

- realtime: POST /score through the local HTTP API at each concurrency (default
  1, 16, 64) for DURATION seconds each (at most MAX_REQUESTS per run): requests,
  throughput, p50/p95/p99 latency, errors (any answer but 200 with a verdict),
  and the CPU time each request cost the stack (user + system, from /proc),
  split into the stack's own process (HTTP API and AWS endpoint), the Lambda
  environments and the model workers, beside this load generator's own;
- batch: FILES files of LINES lines each (.txt, .jsonl and .csv in turn) dropped
  into the input bucket at once: every job must complete and every output line
  must carry the verdict the API gives for the same review, in input order;
  seconds until all are done, and the peak memory (PSS) of the whole stack.

It starts `critic serve` itself (fresh data folder, free ports) the way
scripts/bench_local.py does, and stops it with Ctrl-C at the end.

Usage: .venv/bin/python scripts/load_local.py [--artifact model.tar.gz]
       [--duration 60] [--concurrency 1 16 64] [--files 10] [--lines 10000]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_local import memory, start  # noqa: E402

from contract.reviews import CSV_RESULT_COLUMNS, SCORE, csv_result, is_scored  # noqa: E402
from critic import SHIPPED_ARTIFACT  # noqa: E402

REVIEWS = [
    "A wonderful, moving film.",
    "An awful, boring mess.",
    "The cast is superb and the ending stayed with me for days.",
    "Dull, predictable and far too long; I nearly walked out.",
    "A delight from start to finish, funny and warm.",
    "The worst script I have sat through in years.",
    "Beautifully shot, tender, unforgettable.",
    "Lazy, loud and empty.",
]


def percentile(ordered: list[float], q: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1) if ordered else float("nan")


def _tree(pid: int) -> list[int]:
    tree, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        tree.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        try:
            frontier += [int(c) for c in children.read_text().split()]
        except OSError:
            pass
    return tree


def _role(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "gone"
    if b"critic.local.lambda_worker" in command:
        return "lambda"
    if b"critic.local.container" in command:
        return "model"
    return "stack"


def cpu_times(pid: int) -> dict[int, tuple[str, float]]:
    """{pid: (role, CPU seconds used so far)} for the stack's process tree."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[member] = (_role(member), (int(fields[11]) + int(fields[12])) / ticks)  # utime + stime
    return out


def cpu_per_request(before: dict, after: dict, requests: int, client_seconds: float) -> dict:
    """Milliseconds of CPU per request, by role (processes started during the
    run count from zero; one that ended during it is left out)."""
    roles = {"stack": 0.0, "lambda": 0.0, "model": 0.0}
    for member, (role, seconds) in after.items():
        if role in roles:
            roles[role] += seconds - before.get(member, (role, 0.0))[1]
    per = {role: round(seconds * 1000 / max(1, requests), 2) for role, seconds in roles.items()}
    per["total"] = round(sum(roles.values()) * 1000 / max(1, requests), 2)
    per["load_generator"] = round(client_seconds * 1000 / max(1, requests), 2)
    return per


def realtime(api: str, concurrency: int, duration: float, max_requests: int, pid: int | None = None) -> dict:
    """Each worker keeps one connection and sends requests back to back until
    the time or the request budget runs out."""
    budget = threading.Semaphore(max_requests)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def worker(deadline: float, record: bool) -> None:
        connection = HTTPConnection(api, timeout=30)
        i = 0
        while time.perf_counter() < deadline and (not record or budget.acquire(blocking=False)):
            review = REVIEWS[i % len(REVIEWS)]
            i += 1
            started = time.perf_counter()
            try:
                connection.request("POST", "/score", body=json.dumps({"review": review}).encode(),
                                   headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                body = json.loads(response.read())
                ok = response.status == 200 and body.get("label") in ("positive", "negative")
                problem = None if ok else f"HTTP {response.status}"
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except Exception as error:  # noqa: BLE001 - counted, then a new connection
                problem = type(error).__name__
                connection.close()
                connection = HTTPConnection(api, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            if record:
                with lock:
                    if problem:
                        errors[problem] = errors.get(problem, 0) + 1
                    else:
                        latencies.append(elapsed)
        connection.close()

    with ThreadPoolExecutor(concurrency) as pool:  # warm-up: one second, not counted
        list(pool.map(lambda _: worker(time.perf_counter() + 1, False), range(concurrency)))
    cpu_before, client_before = (cpu_times(pid) if pid else {}), time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: worker(started + duration, True), range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_after, client_seconds = (cpu_times(pid) if pid else {}), time.process_time() - client_before
    ordered = sorted(latencies)
    total = len(ordered) + sum(errors.values())
    figures = {"concurrency": concurrency, "seconds": round(elapsed, 1), "requests": total,
               "req_per_s": round(total / elapsed, 1), "p50_ms": percentile(ordered, 0.50),
               "p95_ms": percentile(ordered, 0.95), "p99_ms": percentile(ordered, 0.99),
               "max_ms": round(ordered[-1], 1) if ordered else None, "errors": sum(errors.values()),
               "error_kinds": errors}
    if pid:
        figures["cpu_ms_per_request"] = cpu_per_request(cpu_before, cpu_after, total, client_seconds)
    return figures


def verdicts(api: str) -> dict[str, dict]:
    """What the API answers for each review: the expected batch results."""
    out = {}
    for review in REVIEWS:
        request = urllib.request.Request(f"http://{api}/score", data=json.dumps({"review": review}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        out[review] = json.loads(urllib.request.urlopen(request, timeout=30).read())
    return out


def make_file(index: int, lines: int) -> tuple[str, bytes]:
    kind = ("txt", "jsonl", "csv")[index % 3]
    rows = [REVIEWS[(i + index) % len(REVIEWS)] for i in range(lines)]
    if kind == "txt":
        body = "".join(r + "\n" for r in rows)
    elif kind == "jsonl":
        body = "".join(json.dumps({"id": i, "review": r}) + "\n" for i, r in enumerate(rows))
    else:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([i, r] for i, r in enumerate(rows))
        body = out.getvalue()
    return f"load/file-{index:02d}.{kind}", body.encode()


def check_output(key: str, output: bytes, lines: int, index: int, expected: dict[str, dict]) -> int:
    """Number of wrong lines (count, order, verdict and score)."""
    got = output.decode("utf-8").splitlines()
    wrong = abs(len(got) - lines)
    for i, line in enumerate(got[:lines]):
        review = REVIEWS[(i + index) % len(REVIEWS)]
        if key.endswith(".txt"):
            result = json.loads(line)
        elif key.endswith(".jsonl"):
            joined = json.loads(line)
            result = joined.get("SageMakerOutput", {}) if joined.get("id") == i and joined.get("review") == review else {}
        else:
            row = next(csv.reader([line]))  # the input's id and review, then the result's columns
            fields = csv_result(row) if row[:2] == [str(i), review] and len(row) == 2 + len(CSV_RESULT_COLUMNS) else None
            result = {**fields, SCORE: float(fields[SCORE])} if is_scored(fields) else {}
        want = expected[review]
        if result.get("label") != want["label"] or abs(float(result.get("score", -1)) - want["score"]) > 1e-5:
            wrong += 1
    return wrong


def batch(aws: str, api: str, pid: int, files: int, lines: int, timeout: float) -> dict:
    import boto3

    from batch import jobs

    expected = verdicts(api)
    info = json.loads(urllib.request.urlopen(f"{aws}/_critic/stack").read())
    kw = dict(endpoint_url=aws, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    s3, sm = boto3.client("s3", **kw), boto3.client("sagemaker", **kw)
    bucket, out_bucket = info["buckets"]["InputBucket"], info["buckets"]["OutputBucket"]
    prefix = info["functions"]["BatchFunction"]["environment"]["JOB_NAME_PREFIX"]
    bodies = dict(make_file(i, lines) for i in range(files))
    peak = memory(pid)["pss_mb"]
    started = time.perf_counter()
    with ThreadPoolExecutor(files) as pool:  # dropped at once
        list(pool.map(lambda item: s3.put_object(Bucket=bucket, Key=item[0], Body=item[1]), bodies.items()))
    names = {}
    for key in bodies:
        head = s3.head_object(Bucket=bucket, Key=key)
        names[key] = jobs.job_name(prefix, bucket, key, jobs.object_version(head.get("VersionId"), head["ETag"]))
    final: dict[str, dict] = {}
    while len(final) < len(names) and time.perf_counter() - started < timeout:
        for key, name in names.items():
            if key in final:
                continue
            try:
                job = sm.describe_transform_job(TransformJobName=name)
            except sm.exceptions.ClientError:
                continue
            if job["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
                final[key] = job
        peak = max(peak, memory(pid)["pss_mb"])
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    statuses = {key: final.get(key, {}).get("TransformJobStatus", "Timeout") for key in names}
    wrong = 0
    for index, key in enumerate(names):
        if statuses[key] == "Completed":
            output = s3.get_object(Bucket=out_bucket, Key=f"{key}.out")["Body"].read()
            wrong += check_output(key, output, lines, index, expected)
        else:
            wrong += lines
    return {"files": files, "lines_per_file": lines, "completed": sum(s == "Completed" for s in statuses.values()),
            "statuses": sorted(set(statuses.values())), "seconds": round(elapsed, 1),
            "lines_per_s": round(files * lines / elapsed, 1), "wrong_lines": wrong, "peak_pss_mb": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=SHIPPED_ARTIFACT)
    parser.add_argument("--duration", type=float, default=60, help="seconds per realtime run")
    parser.add_argument("--max-requests", type=int, default=200_000, help="request budget per realtime run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--batch-timeout", type=float, default=900)
    parser.add_argument("--skip-batch", action="store_true")
    args = parser.parse_args()
    if not args.artifact.is_file():
        sys.exit(f"{args.artifact}: no model artifact (train one, or pass --artifact)")
    with tempfile.TemporaryDirectory(prefix="critic-load-") as tmp:
        process, aws, api = start(args.artifact, Path(tmp) / "data")
        figures: dict = {"artifact": str(args.artifact), "memory_idle": memory(process.pid)}
        try:
            figures["realtime"] = [realtime(api, c, args.duration, args.max_requests, process.pid)
                                  for c in args.concurrency]
            if not args.skip_batch:
                figures["batch"] = batch(aws, api, process.pid, args.files, args.lines, args.batch_timeout)
            figures["memory_after"] = memory(process.pid)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)
    print(json.dumps(figures, indent=2))
    failed = any(run["errors"] for run in figures["realtime"]) or (
        "batch" in figures and (figures["batch"]["wrong_lines"] or figures["batch"]["completed"] < args.files))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
