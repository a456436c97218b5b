"""critic train: train the model locally and package model.tar.gz."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from critic.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the sentiment model on IMDB (see `critic train -h`)", add_help=False,
        description="Trains on IMDB train/ and writes RUN/model.tar.gz, RUN/metrics.json, RUN/training.png.")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<date-time>)")
    aws = p.add_argument_group("SageMaker", "train as a SageMaker PyTorch job instead (see README, Deploy to AWS)")
    aws.add_argument("--sagemaker", action="store_true",
                     help="run model/train.py on SageMaker; --data (tarball or s3://) and --role are required")
    aws.add_argument("--role", metavar="ARN", help="IAM role the training job runs as")
    aws.add_argument("--instance-type", metavar="TYPE", help="training instance (default: ml.m5.xlarge)")
    aws.add_argument("--region", help="AWS region (default: AWS_REGION / ~/.aws/config)")
    aws.add_argument("--bucket", metavar="NAME", help="bucket for data, code and model (default: sagemaker-<region>-<account>)")
    aws.add_argument("--wait", action=argparse.BooleanOptionalAction, default=None,
                     help="stream the job's log until it ends and print the model's S3 URI (default: --wait)")
    aws.add_argument("--max-run", type=int, metavar="SECONDS", help="stop the job after this long (default: 4 h)")
    aws.add_argument("--dry-run", action="store_true", default=None, help="print every AWS call it would make; make none")
    p.set_defaults(func=run, passthrough=True, help_text=p.format_help)  # other options go to model/train.py


SAGEMAKER_ONLY = ("role", "instance_type", "region", "bucket", "wait", "max_run", "dry_run")


def _sagemaker(args) -> int:
    from critic.deploy import training

    if args.out:
        raise UsageError("--out: a SageMaker job writes to S3 (see --bucket)")
    data, rest = training.split_data(args.extra)
    return training.train(training.TrainingOptions(
        data=data, role=args.role, hyperparameters=training.hyperparameters(rest),
        instance_type=args.instance_type or training.DEFAULT_INSTANCE_TYPE, region=args.region,
        bucket=args.bucket, wait=args.wait is not False, max_run=args.max_run or training.DEFAULT_MAX_RUN,
        dry_run=bool(args.dry_run)))


def run(args) -> int:
    from model import train
    from model.data import DataError
    from model.package import package

    if any(a in ("-h", "--help") for a in args.extra):
        print(args.help_text(), file=sys.stderr)
        train.parse_args(["--help"])
    if args.sagemaker:
        return _sagemaker(args)
    given = [f"--{name.replace('_', '-')}" for name in SAGEMAKER_ONLY if getattr(args, name) is not None]
    if given:
        raise UsageError(f"{', '.join(given)}: only with --sagemaker")
    out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        metrics = train.main([*args.extra, "--model-dir", str(out / "model"), "--output-dir", str(out)])
    except DataError as error:
        raise UsageError(str(error)) from None
    artifact = package(out / "model", out / "model.tar.gz")
    print(f"artifact: {artifact}\nvalidation accuracy: {metrics['validation']['accuracy']:.4f}\n"
          f"report: {out / 'metrics.json'}, {out / 'training.png'}", file=sys.stderr)
    return 0
