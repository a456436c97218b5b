"""critic serve: run all of Critic on this machine (what `make run` starts)."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from critic import REPO_ROOT, SHIPPED_ARTIFACT
from critic.commands.options import port_from_environment, template_parameters
from critic.errors import UsageError


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds from 0 to 3600")
    return seconds


def _count(value: str) -> int:
    if not value.isdigit() or int(value) > 10_000:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number from 0 to 10000")
    return int(value)


def _fraction(value: str) -> float:
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not 0 <= fraction <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value!r} is not a fraction from 0 to 1")
    return fraction


def register(subparsers) -> None:
    from critic.local.stack import API_PORT_VARIABLE, AWS_PORT_VARIABLE, DEFAULT_API_PORT, DEFAULT_AWS_PORT

    p = subparsers.add_parser(
        "serve", help="run the whole stack locally: S3, SageMaker, the API, the Lambda functions, the web page",
        description="Runs Critic on 127.0.0.1 with no AWS account and no Docker: an AWS endpoint "
                    "(S3 from moto, SageMaker and SageMaker Runtime with the model loaded once), the HTTP "
                    "API of template.yaml calling its Lambda handlers, S3 upload notifications and "
                    "transform-job events, and the web page. For development and evaluation on one "
                    "machine; deploy to AWS for scale.")
    p.add_argument("--artifact", type=Path, default=SHIPPED_ARTIFACT,
                   help="model.tar.gz to serve (default: %(default)s)")
    p.add_argument("--data", type=Path, default=REPO_ROOT / ".critic",
                   help="folder for buckets, objects and jobs, kept across restarts (default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="empty the data folder first")
    p.add_argument("--aws-port", type=int, default=None,
                   help=f"port of the AWS endpoint (default: ${AWS_PORT_VARIABLE} or {DEFAULT_AWS_PORT})")
    p.add_argument("--api-port", type=int, default=None,
                   help=f"port of the API and web page (default: ${API_PORT_VARIABLE} or {DEFAULT_API_PORT})")
    p.add_argument("--template", type=Path, default=REPO_ROOT / "template.yaml", help="SAM template (default: %(default)s)")
    p.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                   help="override a template parameter (repeatable)")
    p.add_argument("--lambda-concurrency", type=int, default=4,
                   help="warm execution environments per function at most (default: %(default)s)")
    p.add_argument("--endpoint-cold-start", type=_seconds, default=0.0, metavar="SECONDS",
                   help="play a serverless endpoint's cold start: the first invocation after start-up (and after "
                        "--endpoint-idle-timeout) is held SECONDS before it is served, as AWS holds it while the "
                        "container starts (default: 0, always warm)")
    p.add_argument("--endpoint-idle-timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="with --endpoint-cold-start: the endpoint is cold again after SECONDS without an invocation "
                        "(default: never)")
    p.add_argument("--transform-quota", type=_count, default=None, metavar="N",
                   help="play a small AWS account: running transform jobs may hold at most N instances of a type, "
                        "and CreateTransformJob answers ResourceLimitExceeded beyond that, as AWS does "
                        "(0 holds every upload in the queue; default: no limit)")
    p.add_argument("--transform-throttle", type=_fraction, default=0.0, metavar="F",
                   help="answer a fraction F (0 to 1) of CreateTransformJob calls with ThrottlingException "
                        "(default: 0)")
    p.add_argument("--verbose", action="store_true", help="log every HTTP request")
    p.set_defaults(func=run)


def run(args) -> int:
    from critic.local.stack import (
        API_PORT_VARIABLE,
        AWS_PORT_VARIABLE,
        DEFAULT_API_PORT,
        DEFAULT_AWS_PORT,
        Stack,
        StackError,
        StackOptions,
    )

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.INFO if args.verbose and noisy == "werkzeug" else logging.WARNING)
    options = StackOptions(
        template=args.template,
        artifact=args.artifact,
        data_dir=args.data.resolve(),
        aws_port=args.aws_port or port_from_environment(AWS_PORT_VARIABLE, DEFAULT_AWS_PORT),
        api_port=args.api_port or port_from_environment(API_PORT_VARIABLE, DEFAULT_API_PORT),
        fresh=args.fresh,
        parameters=template_parameters(args.parameter),
        lambda_concurrency=args.lambda_concurrency,
        endpoint_cold_start=args.endpoint_cold_start,
        endpoint_idle_timeout=args.endpoint_idle_timeout or None,
        transform_quota=args.transform_quota,
        transform_throttle=args.transform_throttle,
    )
    if args.endpoint_idle_timeout and not args.endpoint_cold_start:
        raise UsageError("--endpoint-idle-timeout needs --endpoint-cold-start SECONDS")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stack = Stack(options)
    print(f"Starting Critic's local stack (model {options.artifact}) ...", file=sys.stderr, flush=True)
    try:
        stack.start()
    except StackError as error:
        raise UsageError(str(error)) from None
    try:
        print(stack.banner(), flush=True)
        stop.wait()
        print("\nStopping ...", file=sys.stderr, flush=True)
    finally:
        stack.stop()
    print("Stopped.", file=sys.stderr, flush=True)
    return 0
