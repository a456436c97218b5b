"""critic models: the models a deployed stack has served, with their tags."""
from __future__ import annotations

from critic.deploy.flows import DEFAULT_STACK


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="the models a deployed stack has served: SHA-256, metrics, when live",
                              description="Lists the stack's SageMaker models (tagged by critic deploy and critic "
                                          "rollback), the latest first; * marks the one serving now.")
    p.add_argument("--stack-name", dest="stack", metavar="NAME", help=f"default: samconfig.toml's, else {DEFAULT_STACK}")
    p.add_argument("--region")
    p.set_defaults(func=run)


def run(args) -> int:
    from critic.deploy import sam
    from critic.deploy.aws import Live, aws_errors, region_of
    from critic.deploy.models import deployed_models, stack_parameters, table
    from critic.deploy.stack import describe

    config = sam.read_config()
    stack_name = args.stack or config.get("stack_name") or DEFAULT_STACK
    ctx = Live(region_of(args.region, config.get("region")))
    with aws_errors():
        current = stack_parameters(describe(ctx.client("cloudformation"), stack_name)).get("ModelDataUrl", "")
        models = deployed_models(ctx.client("sagemaker"), stack_name)
    print(f"Models of stack {stack_name} in {ctx.region}:\n{table(models, current)}")
    return 0
