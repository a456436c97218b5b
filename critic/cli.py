"""The `critic` command. Each subcommand lives in critic/commands/<name>.py and
exposes `register(subparsers)`, which adds its parser with `func=` set."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("train", "evaluate", "predict", "bench", "serve", "invoke", "score")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="critic", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"critic.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
