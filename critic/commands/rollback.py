"""critic rollback: the endpoint and batch jobs back to an earlier model, through a stack update."""
from __future__ import annotations

from critic.deploy.flows import DEFAULT_STACK, RollbackOptions, rollback


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rollback", help="return the stack to the previous (or --to) model through a CloudFormation update",
        description="Updates the stack, with its deployed template and parameters, to an earlier model's artifact: "
                    "the endpoint switches blue/green (rolling back on its error alarm), the batch function "
                    "starts new jobs on it, running jobs finish on theirs. No build; nothing is compared.")
    p.add_argument("--to", metavar="SHA256", help="the model to return to (a prefix of its SHA-256, see "
                                                  "`critic models`); default: the latest other model")
    p.add_argument("--stack-name", dest="stack", metavar="NAME", help=f"default: samconfig.toml's, else {DEFAULT_STACK}")
    p.add_argument("--region")
    p.add_argument("--dry-run", action="store_true",
                   help="read the stack and its models (needs credentials), print the update; change nothing")
    p.set_defaults(func=run)


def run(args) -> int:
    return rollback(RollbackOptions(stack=args.stack, region=args.region, to=args.to, dry_run=args.dry_run))
