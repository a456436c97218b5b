"""`critic train --sagemaker`: model/train.py as a SageMaker PyTorch
script-mode training job (SageMaker Python SDK v2, `sagemaker.pytorch`).

The job runs the very script `critic train` runs locally. Its source dir is
a copy of the contract/ and model/ packages plus a requirements.txt, packed
deterministically and uploaded under its SHA-256 (so an unchanged package is
not uploaded again); the entry point is model/train.py inside it. The IMDB
tarball goes up the same way, as the "training" channel. The image is AWS's
PyTorch 2.6 CPU training container (GPU if the instance has one): the same
PyTorch as the inference image template.yaml serves with. The model dir the
script writes is a complete inference artifact, which SageMaker packs into
<output>/<job>/output/model.tar.gz: `critic deploy --artifact` takes that URI.

Everything the SDK sends goes through the session of critic.deploy.aws, so
--dry-run prints the exact CreateTrainingJob request and sends nothing. The
SDK's own telemetry is switched off and its defaults files are not read.
"""
from __future__ import annotations

import gzip
import io
import logging
import os
import re
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from critic.errors import UsageError
from critic.deploy.aws import (
    DRY_RUN_ACCOUNT,
    Answer,
    AwsError,
    DryRun,
    Live,
    aws_errors,
    caller_account,
    missing,
    region_of,
    say,
)
from critic.deploy.buckets import ensure_bucket, sha256_of, split_s3_uri, upload

ENTRY_POINT = "model/train.py"
CHANNEL = "training"
FRAMEWORK_VERSION, PY_VERSION = "2.6", "py312"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_MAX_RUN = 4 * 3600  # seconds: a runaway job stops (and stops billing) here
PREFIX = "critic"  # key prefix in the training bucket: critic/data, critic/code, critic/training
# What the PyTorch training container lacks: pip installs it before the script runs.
# (The model's own code needs nothing beyond the image: see model/package.py.)
EXTRA_TRAINING_REQUIREMENTS = "tqdm>=4.66,<5\nmatplotlib>=3.8,<4\nscikit-learn>=1.4,<2\ngensim>=4.3,<5\n"
# model/train.py prints, once per epoch:
#   epoch=3 train_loss=0.2810 train_acc=0.8871 valid_loss=0.3012 valid_acc=0.8760
# SageMaker reads these from the job's log into training metrics.
NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
METRIC_DEFINITIONS = [
    {"Name": "epoch", "Regex": r"\bepoch=([0-9]+) train_loss="},
    {"Name": "train:loss", "Regex": rf"\btrain_loss={NUMBER}"},
    {"Name": "train:accuracy", "Regex": rf"\btrain_acc={NUMBER}"},
    {"Name": "validation:loss", "Regex": rf"\bvalid_loss={NUMBER}"},
    {"Name": "validation:accuracy", "Regex": rf"\bvalid_acc={NUMBER}"},
]
# The SDK's defaults: no telemetry (it would call home from `fit`), no
# defaults files from ~/.config/sagemaker or S3.
SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+")
# train.py options that SageMaker sets itself, or that make no sense there.
NOT_HYPERPARAMETERS = {
    "data": "pass the data with --data; it becomes the training channel",
    "model_dir": "SageMaker sets the model dir (SM_MODEL_DIR)",
    "output_dir": "SageMaker sets the output dir (SM_OUTPUT_DATA_DIR)",
    "resume": "a SageMaker job starts from an empty model dir",
}


@dataclass
class TrainingOptions:
    data: str | None
    role: str | None
    hyperparameters: dict = field(default_factory=dict)
    instance_type: str = DEFAULT_INSTANCE_TYPE
    region: str | None = None
    bucket: str | None = None  # None: the SageMaker default bucket, sagemaker-<region>-<account>
    wait: bool = True
    max_run: int = DEFAULT_MAX_RUN
    dry_run: bool = False


def _sdk():
    """The SageMaker SDK, imported quietly (it takes seconds; only --sagemaker needs it)."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    import sagemaker
    import sagemaker.image_uris
    import sagemaker.pytorch

    return sagemaker


def split_data(argv: list[str]) -> tuple[str | None, list[str]]:
    """--data PATH (or --data=PATH) out of the options meant for train.py."""
    data, rest, args = None, [], iter(argv)
    for token in args:
        if token == "--data":
            data = next(args, None)
        elif token.startswith("--data="):
            data = token.split("=", 1)[1]
        else:
            rest.append(token)
    return data, rest


def hyperparameters(argv: list[str]) -> dict[str, object]:
    """train.py's options as SageMaker hyperparameters: {"epochs": 3, "no-lstm": True}.
    SageMaker hands them back to the script as `--epochs 3 --no-lstm True`
    (train.py reads a flag's value: `--negation-scope False` turns one off). Only options that
    differ from train.py's defaults are sent; unknown options are refused."""
    from model import train

    defaults = vars(train.parse_args([]))
    for token in argv:
        if not token.startswith("-") or re.fullmatch(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", token):
            continue  # a value
        name = token.lstrip("-").split("=", 1)[0].replace("-", "_")
        if not token.startswith("--") or name not in defaults:
            raise UsageError(f"unknown training option {token.split('=', 1)[0]} (see `critic train --help`)")
        if name in NOT_HYPERPARAMETERS:
            raise UsageError(f"{token.split('=', 1)[0]} does not apply with --sagemaker: {NOT_HYPERPARAMETERS[name]}")
    given = vars(train.parse_args(argv))
    return {name.replace("_", "-"): value for name, value in given.items()
            if name not in NOT_HYPERPARAMETERS and value != defaults[name]}


def training_requirements() -> str:
    return EXTRA_TRAINING_REQUIREMENTS


def source_tarball(target: Path) -> Path:
    """sourcedir.tar.gz: contract/ and model/ (their files, not
    model/artifact/; the model dir's code/ gets both) and requirements.txt.
    The same code gives the same bytes (sorted names, zero times and owners),
    hence the same SHA-256 and S3 key."""
    from model.package import CONTRACT_PACKAGE, MODEL_PACKAGE

    entries = [("requirements.txt", training_requirements().encode())]
    for package in (CONTRACT_PACKAGE, MODEL_PACKAGE):
        files = sorted(p for p in package.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix not in (".pyc", ".tmp"))
        entries += [(f"{package.name}/{p.name}", p.read_bytes()) for p in files]
    with open(target, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return target


def training_image(region: str, instance_type: str) -> str:
    """The AWS PyTorch training image for the region and instance type, from the SDK's own table (offline)."""
    image_uris = _sdk().image_uris

    try:
        return image_uris.retrieve("pytorch", region=region, version=FRAMEWORK_VERSION, py_version=PY_VERSION,
                                   instance_type=instance_type, image_scope="training")
    except ValueError as error:
        raise UsageError(f"no PyTorch {FRAMEWORK_VERSION} training image for {instance_type} in {region}: "
                         f"{error}") from None


def estimator(session, *, role: str, instance_type: str, image_uri: str, source_uri: str,
              hyperparameters: dict, output_path: str, max_run: int):
    """The PyTorch estimator: script mode, model/train.py inside the source tarball."""
    PyTorch = _sdk().pytorch.PyTorch  # noqa: N806

    return PyTorch(
        entry_point=ENTRY_POINT,
        source_dir=source_uri,
        role=role,
        image_uri=image_uri,
        framework_version=FRAMEWORK_VERSION,
        py_version=PY_VERSION,
        instance_type=instance_type,
        instance_count=1,
        hyperparameters=hyperparameters,
        metric_definitions=METRIC_DEFINITIONS,
        output_path=output_path,
        base_job_name=PREFIX,
        max_run=max_run,
        debugger_hook_config=False,
        disable_profiler=True,
        tags=[{"Key": "project", "Value": "critic"}],
        sagemaker_session=session,
    )


def _assumptions(region: str) -> dict:
    return {
        "GetCallerIdentity": Answer({"Account": DRY_RUN_ACCOUNT, "Arn": "arn", "UserId": "user"},
                                    note=f"your account id is shown as {DRY_RUN_ACCOUNT}"),
        "HeadBucket": missing(note="the bucket does not exist yet (one that exists is used as it is)"),
        "HeadObject": missing(note="this file has not been uploaded yet"),
        "CreateTrainingJob": Answer(
            {"TrainingJobArn": f"arn:aws:sagemaker:{region}:{DRY_RUN_ACCOUNT}:training-job/critic"}),
    }


def train(options: TrainingOptions, out=None) -> int:
    out = out or sys.stdout
    region = region_of(options.region)
    if not options.role:
        raise UsageError("--role ARN is required with --sagemaker: the IAM role the training job runs as "
                         "(it reads the data and code and writes the model; see README, Deploy to AWS)")
    if not ROLE_ARN.fullmatch(options.role):
        raise UsageError(f"--role {options.role}: expected an IAM role ARN, arn:aws:iam::<account>:role/<name>")
    if not options.data:
        raise UsageError("--data is required with --sagemaker: the IMDB tarball aclImdb_v1.tar.gz (plain "
                         "`critic train` downloads it to ~/.cache/critic/) or an s3:// URI")
    data_on_s3 = options.data.startswith("s3://")
    if data_on_s3:
        split_s3_uri(options.data)
    elif not Path(options.data).is_file():
        raise UsageError(f"--data {options.data}: expected the aclImdb_v1.tar.gz file (a folder of 100,000 "
                         "small files is slow to upload) or an s3:// URI")
    if options.max_run < 60:
        raise UsageError("--max-run: at least 60 seconds")
    _sdk()
    image_uri = training_image(region, options.instance_type)
    if options.dry_run:
        ctx = DryRun(region, _assumptions(region), out=out)
        ctx.print(f"# critic train --sagemaker --dry-run: {options.instance_type} in {region}; "
                  "nothing is called, uploaded or started")
    else:
        ctx = Live(region)

    with tempfile.TemporaryDirectory(prefix="critic-train-") as work, aws_errors(), ctx.narrating():
        source = source_tarball(Path(work) / "sourcedir.tar.gz")
        source_sha = sha256_of(source)
        data_sha = None if data_on_s3 else sha256_of(Path(options.data))

        account = caller_account(ctx)
        s3 = ctx.client("s3")
        bucket = options.bucket or f"sagemaker-{region}-{account}"
        ensure_bucket(s3, bucket, account, region)
        if data_on_s3:
            channel = options.data
        else:
            data_key = f"{PREFIX}/data/{data_sha}/{Path(options.data).name}"
            upload(s3, Path(options.data), bucket, data_key, account, data_sha)
            channel = f"s3://{bucket}/{PREFIX}/data/{data_sha}/"
        source_uri = upload(s3, source, bucket, f"{PREFIX}/code/{source_sha}/sourcedir.tar.gz", account, source_sha)
        output_path = f"s3://{bucket}/{PREFIX}/training"

        sagemaker = _sdk()
        session = sagemaker.Session(boto_session=ctx.session, sagemaker_config=SDK_CONFIG, default_bucket=bucket)
        job = estimator(session, role=options.role, instance_type=options.instance_type, image_uri=image_uri,
                        source_uri=source_uri, hyperparameters=options.hyperparameters,
                        output_path=output_path, max_run=options.max_run)
        wait = options.wait and not ctx.dry_run
        try:
            job.fit({CHANNEL: channel}, wait=wait, logs="All" if wait else "None")
        except KeyboardInterrupt:
            name = job.latest_training_job.name if job.latest_training_job else "(not started)"
            say(f"stopped watching; training job {name} goes on. Stop it with `aws sagemaker "
                f"stop-training-job --training-job-name {name} --region {region}`")
            return 130
        except sagemaker.exceptions.UnexpectedStatusException as error:
            raise AwsError(f"training job {job.latest_training_job.name} did not complete: {error}. Its log is "
                           f"in CloudWatch Logs, group /aws/sagemaker/TrainingJobs") from None
        name = job.latest_training_job.name
        model_uri = job.model_data if wait else f"{output_path}/{name}/output/model.tar.gz"

    if ctx.dry_run:
        if options.wait:
            ctx.print("# then, until the job ends: sagemaker.DescribeTrainingJob and logs.GetLogEvents "
                      "(its log streamed here), and the model's S3 URI printed")
        ctx.print("# dry run: nothing was called, uploaded or started")
        return 0
    if wait:
        print(f"training job {name} completed\nmodel: {model_uri}\n"
              f"deploy it: critic deploy --artifact {model_uri}", file=out)
    else:
        print(f"training job {name} started in {region}\n"
              f"wait for it: aws sagemaker wait training-job-completed-or-stopped --training-job-name {name} "
              f"--region {region}\nits model will be: {model_uri}\n"
              f"then deploy it: critic deploy --artifact {model_uri}", file=out)
    return 0
