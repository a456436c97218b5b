"""The `critic` command. Each subcommand lives in critic/commands/<name>.py and
exposes `register(subparsers)`, which adds its parser with `func=` set."""
from __future__ import annotations

import argparse
import importlib
import sys

from critic.dependencies import require
from critic.errors import UsageError

COMMANDS = ("train", "evaluate", "compare", "predict", "bench", "serve", "invoke", "score", "redrive", "deploy", "models",
            "rollback", "destroy")
# The dependency group (pyproject.toml) each command needs; `make run` installs only serve.
NEEDS = {"train": "train", "evaluate": "train", "compare": "serve", "predict": "serve", "bench": "serve", "serve": "serve",
         "invoke": "serve", "score": "serve", "redrive": "serve", "deploy": "deploy", "models": "deploy",
         "rollback": "deploy", "destroy": "deploy"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="critic", description="Critic: sentiment scoring of movie reviews.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"critic.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # A command that wraps another program's options (train) takes the rest as they are.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    # `critic train --sagemaker` runs the training elsewhere: it needs the SDK, not scikit-learn.
    needs = "deploy" if getattr(args, "sagemaker", False) else NEEDS[args.command]
    try:
        if not {"-h", "--help"} & set(extra):
            require(needs, args.command)
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as error:
        print(f"critic {args.command}: {error}", file=sys.stderr)
        return 2
