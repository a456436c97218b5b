"""The `critic` command. Each subcommand lives in critic/commands/<name>.py and
exposes `register(subparsers)`, which adds its parser with `func=` set."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("train", "evaluate", "predict", "bench", "serve", "invoke", "score", "deploy", "destroy")


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
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as error:
        print(f"critic {args.command}: {error}", file=sys.stderr)
        return 2


class UsageError(Exception):
    """A problem the user can fix (bad path, bad option): printed without a trace."""

