"""critic train: train the model locally and package model.tar.gz."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from critic.cli import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the sentiment model on IMDB (see `critic train -h`)", add_help=False,
        description="Trains on IMDB train/ and writes RUN/model.tar.gz, RUN/metrics.json, RUN/training.png.")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<date-time>)")
    p.set_defaults(func=run, passthrough=True)  # every other option goes to model/train.py


def run(args) -> int:
    from model import train
    from model.data import DataError
    from model.package import package

    if any(a in ("-h", "--help") for a in args.extra):
        train.parse_args(["--help"])
    out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        metrics = train.main([*args.extra, "--model-dir", str(out / "model"), "--output-dir", str(out)])
    except DataError as error:
        raise UsageError(str(error)) from None
    artifact = package(out / "model", out / "model.tar.gz")
    print(f"artifact: {artifact}\nvalidation accuracy: {metrics['validation']['accuracy']:.4f}\n"
          f"report: {out / 'metrics.json'}, {out / 'training.png'}", file=sys.stderr)
    return 0
