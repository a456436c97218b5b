"""critic score: score review files through the running local stack, the way
a user of the deployed application would: upload, let S3 start the transform
job, wait for it, download the result."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from critic.errors import UsageError

POLL_SECONDS = 0.5


@dataclass
class Upload:
    path: Path
    key: str
    job: str
    started: float
    status: str = "uploaded"
    reason: str | None = None
    output: Path | None = None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="score review files (.txt, .jsonl, .csv) through the running local stack",
        description="Uploads each FILE to the input bucket of the local stack (start it with `make run`), "
                    "waits for the SageMaker transform job the upload starts, and downloads the result "
                    "as FILE.out beside it (or into --out). .txt: one review per line, one JSON result per "
                    "line; .jsonl: objects with a \"review\", each returned with \"SageMakerOutput\"; .csv: "
                    "the review is the last field, each row returned with label,score,error appended. "
                    "Exits 1 if a job fails, with its reason.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--out", type=Path, help="folder for the results (default: beside each input)")
    p.add_argument("--aws-url", default=None,
                   help="the local stack's AWS endpoint (default: http://127.0.0.1:$CRITIC_AWS_PORT or :4566)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for all jobs (default: %(default)s)")
    p.add_argument("--start-timeout", type=float, default=600,
                   help="seconds to wait for an upload's job to appear; an upload waits in the uploads queue "
                        "while SageMaker has no capacity (default: %(default)s)")
    p.set_defaults(func=run)


def _stack_info(aws_url: str) -> dict:
    try:
        with urllib.request.urlopen(f"{aws_url}/_critic/stack", timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        raise UsageError(f"no local stack answers at {aws_url}: start it with `make run` "
                         "(or pass --aws-url)") from None


def _client(service: str, info: dict):
    from critic.local.clients import local_client

    return local_client(service, info["aws"], info["region"], retries={"mode": "standard", "max_attempts": 5})


def _target(info: dict, path: Path) -> tuple[dict, str]:
    """The notification an upload of `path` triggers, and its key."""
    notifications = info.get("notifications") or []
    for notification in notifications:
        key = notification["prefix"] + path.name
        if key.endswith(notification["suffix"]):
            return notification, key
    accepted = sorted({n["suffix"] for n in notifications if n["suffix"]})
    raise UsageError(f"{path}: the stack scores files ending in {', '.join(accepted) or '(no upload is wired)'}")


def run(args) -> int:
    from botocore.exceptions import ClientError

    from batch import jobs
    from contract import transformjob
    from contract.locations import s3_uri
    from critic.commands.options import local_aws_url

    info = _stack_info((args.aws_url or local_aws_url()).rstrip("/"))
    for path in args.files:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    s3, sagemaker = _client("s3", info), _client("sagemaker", info)

    uploads: list[Upload] = []
    notification_of: dict[str, dict] = {}
    for path in args.files:
        notification, key = _target(info, path)
        skip = jobs.skip_reason(key, path.stat().st_size)
        if skip:
            raise UsageError(f"{path}: not scored: {skip}")
        environment = info["functions"][notification["function"]]["environment"]
        prefix = environment.get("JOB_NAME_PREFIX")
        if not prefix:
            raise UsageError(f"{notification['function']} has no JOB_NAME_PREFIX: cannot tell its job's name")
        started = time.time()
        s3.upload_file(str(path), notification["bucket"], key)
        head = s3.head_object(Bucket=notification["bucket"], Key=key)
        version = jobs.object_version(head.get("VersionId"), head["ETag"])
        name = jobs.job_name(prefix, notification["bucket"], key, version)
        print(f"{path}: uploaded to {s3_uri(notification['bucket'], key)} ({path.stat().st_size} bytes); "
              f"job {name}", file=sys.stderr, flush=True)
        uploads.append(Upload(path, key, name, started))
        notification_of[key] = notification

    deadline = time.time() + args.timeout
    pending = list(uploads)
    while pending and time.time() < deadline:
        for upload in list(pending):
            try:
                job = sagemaker.describe_transform_job(TransformJobName=upload.job)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ValidationException":
                    raise
                skipped = _skipped_reason(s3, info, notification_of[upload.key], upload.key)
                if skipped:  # the batch function recorded why it will never start a job
                    pending.remove(upload)
                    upload.status, upload.reason = "NotStarted", f"skipped: {skipped}"
                    continue
                if time.time() - upload.started > args.start_timeout:  # the upload started no job
                    pending.remove(upload)
                    upload.status = "NotStarted"
                    upload.reason = (f"no transform job started within {args.start_timeout:.0f} s: the upload "
                                     f"function skipped or failed it (see the `make run` console and "
                                     f"{info['data']}/dead-letter/)")
                continue
            status = job["TransformJobStatus"]
            if status != upload.status:
                upload.status = status
                elapsed = time.time() - upload.started
                print(f"{upload.path}: {status} after {elapsed:.1f} s", file=sys.stderr, flush=True)
            if status in transformjob.FINAL_STATUSES:
                pending.remove(upload)
                upload.reason = job.get("FailureReason")
                if status == "Completed":
                    out_bucket, result_key = jobs.output_location(transformjob.input_uri(job),
                                                                  transformjob.output_path(job))
                    upload.output = _download(s3, out_bucket, result_key, upload.path, args.out)
        if pending:
            time.sleep(POLL_SECONDS)

    failed = 0
    for upload in uploads:
        if upload.output:
            print(f"{upload.path}: scored -> {upload.output}")
        elif upload.status in ("Failed", "Stopped", "NotStarted"):
            failed += 1
            print(f"{upload.path}: {upload.status}: {upload.reason or 'no reason given'}")
        else:
            failed += 1
            what = "no job started" if upload.status == "uploaded" else f"still {upload.status}"
            print(f"{upload.path}: {what} after {args.timeout:.0f} s (see the `make run` console)")
    return 1 if failed else 0


def _skipped_reason(s3, info: dict, notification: dict, key: str) -> str | None:
    """The reason in the Skipped status record the batch function writes for an
    upload it will never submit, if there is one."""
    from batch import jobs
    from contract.jsonreader import loads as read_json

    output = info["functions"][notification["function"]]["environment"].get("OUTPUT_BUCKET")
    status_key = jobs.skipped_status_key(notification["bucket"], key, output) if output else None
    if status_key is None:
        return None
    try:
        document = read_json(s3.get_object(Bucket=output, Key=status_key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None
    except ValueError:
        return None
    if isinstance(document, dict) and document.get("status") == "Skipped":
        return str(document.get("failureReason") or document.get("reason") or "no reason recorded")
    return None


def _download(s3, bucket: str, key: str, source: Path, out_dir: Path | None) -> Path:
    target = (out_dir or source.parent) / (source.name + ".out")
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(handle)
    try:
        s3.download_file(bucket, key, temporary)
        os.replace(temporary, target)  # never a half-written result under the final name
    except BaseException:
        os.unlink(temporary)
        raise
    return target
