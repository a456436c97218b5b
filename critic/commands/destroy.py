"""critic destroy: delete the deployed stack; buckets that hold data only when named."""
from __future__ import annotations

from critic.deploy.flows import DEFAULT_STACK, DestroyOptions, destroy


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "destroy", help="delete the deployed stack (buckets holding data are kept unless named)",
        description="Deletes the CloudFormation stack and waits until it is gone, then prints what remains: "
                    "the input and output buckets (kept by their DeletionPolicy) and the artifact bucket, with "
                    "the exact command that deletes them. Buckets are deleted only when named with "
                    "--delete-bucket.")
    p.add_argument("--stack-name", dest="stack", metavar="NAME",
                   help=f"CloudFormation stack (default: samconfig.toml's, else {DEFAULT_STACK})")
    p.add_argument("--region", help="AWS region (default: samconfig.toml's, else AWS_REGION / ~/.aws/config)")
    p.add_argument("--delete-bucket", dest="delete_buckets", action="append", default=[], metavar="NAME",
                   help="also delete this bucket of your account and every object version in it (repeatable)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    p.add_argument("--dry-run", action="store_true",
                   help="print every AWS call it would make, with parameters; make none")
    p.set_defaults(func=run)


def run(args) -> int:
    return destroy(DestroyOptions(stack=args.stack, region=args.region, delete_buckets=args.delete_buckets,
                                  yes=args.yes, dry_run=args.dry_run))
