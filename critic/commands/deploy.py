"""critic deploy: the model and the SAM application to AWS, and the web page wired to it."""
from __future__ import annotations

from critic.deploy.flows import DEFAULT_STACK, DeployOptions, deploy


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "deploy", help="deploy to AWS: upload the model, sam build + sam deploy, point web/config.js at the API",
        description="Uploads the model artifact to a private bucket (critic-artifacts-<account>-<region>, created "
                    "if missing) under its SHA-256, runs `sam build` and `sam deploy` (guided the first time from "
                    "a terminal, then samconfig.toml), writes web/config.js from the stack's ApiUrl output and "
                    "prints the API URL, the bucket names and how to try them.")
    p.add_argument("--artifact", metavar="PATH|s3://...",
                   help="model.tar.gz, a model dir, or the s3:// URI `critic train --sagemaker` printed "
                        "(default: the shipped model/artifact/model.tar.gz)")
    p.add_argument("--stack-name", dest="stack", metavar="NAME",
                   help=f"CloudFormation stack (default: samconfig.toml's, else {DEFAULT_STACK})")
    p.add_argument("--region", help="AWS region (default: samconfig.toml's, else AWS_REGION / ~/.aws/config)")
    p.add_argument("--image-uri", metavar="URI",
                   help="inference container image, for a region template.yaml has no PyTorch image for")
    p.add_argument("--parameter", dest="parameters", action="append", default=[], metavar="NAME=VALUE",
                   help="a template.yaml parameter, e.g. EndpointKind=provisioned (repeatable); "
                        "parameters not given keep their deployed values")
    p.add_argument("--bucket", metavar="NAME", help="artifact bucket (default: critic-artifacts-<account>-<region>)")
    p.add_argument("--use-container", action="store_true",
                   help="sam build inside a Lambda-like container (needs Docker) instead of the local Python 3.12")
    p.add_argument("--yes", action="store_true", help="deploy without reviewing the change set (needed without a terminal)")
    p.add_argument("--dry-run", action="store_true",
                   help="print every AWS call and command it would make, with parameters; make none (the model "
                        "comparison runs, with the shipped model standing in for the deployed one)")
    p.add_argument("--force", action="store_true",
                   help="deploy even if the new model is worse than the deployed one on the check set")
    p.add_argument("--check-data", metavar="PATH",
                   help="labelled reviews to compare the new and deployed models on (JSON Lines with review and "
                        "label, or an IMDB tarball/folder); default: the check set (model/checkset.json) read from "
                        "IMDB's aclImdb_v1.tar.gz in the cache, downloaded once if absent")
    p.add_argument("--max-drop", type=float, default=0.5, metavar="POINTS",
                   help="points of accuracy or ROC AUC the new model may lose (default 0.5)")
    p.add_argument("--local", action="store_true",
                   help="switch the running local stack (`critic serve`) to --artifact instead, with the calls a "
                        "stack update makes: CreateModel, CreateEndpointConfig, UpdateEndpoint, and the functions' "
                        "MODEL_NAME; running transform jobs finish on the model they started with "
                        "(docs/model-updates.md)")
    p.set_defaults(func=run)


_AWS_ONLY = {"stack": "--stack-name", "region": "--region", "image_uri": "--image-uri", "parameters": "--parameter",
             "bucket": "--bucket", "use_container": "--use-container", "dry_run": "--dry-run", "force": "--force",
             "check_data": "--check-data"}


def run(args) -> int:
    if args.local:
        from critic import SHIPPED_ARTIFACT
        from critic.commands.options import local_aws_url
        from critic.deploy.local import switch
        from critic.errors import UsageError

        given = [flag for name, flag in _AWS_ONLY.items() if getattr(args, name)]
        if given:
            raise UsageError("--local switches the local stack's model only; it takes --artifact, not "
                             + ", ".join(given))
        switch(args.artifact or SHIPPED_ARTIFACT, local_aws_url())
        return 0
    return deploy(DeployOptions(
        artifact=args.artifact, stack=args.stack, region=args.region, image_uri=args.image_uri,
        parameters=args.parameters, bucket=args.bucket, use_container=args.use_container, yes=args.yes,
        dry_run=args.dry_run, force=args.force, check_data=args.check_data, max_drop=args.max_drop))
