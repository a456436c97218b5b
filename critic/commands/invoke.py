"""critic invoke: run one Lambda function of template.yaml once, with an
event, like `sam local invoke` but without Docker."""
from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from contract.jsonreader import JSONInputError, loads as read_json
from critic import REPO_ROOT
from critic.commands.options import local_aws_url, template_parameters
from critic.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "invoke", help="invoke one Lambda function of template.yaml with an event (sam local invoke, no Docker)",
        description="Runs FUNCTION's handler (Handler, CodeUri, Environment and Timeout from template.yaml) "
                    "once with the event, in a fresh execution environment whose AWS clients point at the "
                    "local stack (start it with `make run`). Prints the function's result as JSON; on an "
                    "error prints Lambda's error object and exits 1. Logs go to stderr. "
                    "With --write-env-vars, writes instead a file for `sam local invoke --env-vars` that "
                    "points the functions at the local stack (where Docker exists).")
    p.add_argument("function", nargs="?", metavar="FUNCTION", help="logical id (or name) of the function")
    p.add_argument("-e", "--event", metavar="FILE", help="event JSON file, or - for stdin (default: {})")
    p.add_argument("--template", type=Path, default=REPO_ROOT / "template.yaml", help="SAM template (default: %(default)s)")
    p.add_argument("--aws-url", default=None,
                   help="the local stack's AWS endpoint (default: http://127.0.0.1:$CRITIC_AWS_PORT or :4566)")
    p.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                   help="override a template parameter (repeatable)")
    p.add_argument("--write-env-vars", type=Path, metavar="FILE",
                   help="write a `sam local invoke --env-vars` file for every function and exit")
    p.add_argument("--docker-host", default="127.0.0.1",
                   help="host the endpoint URLs in --write-env-vars use (127.0.0.1 with "
                        "`sam local invoke --docker-network host`; host.docker.internal with Docker Desktop)")
    p.set_defaults(func=run)


def _read_event(source: str | None):
    if source is None:
        return {}
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read the event: {error}") from None
    try:
        return read_json(text)
    except JSONInputError as error:
        raise UsageError(f"{source}: not JSON: {error}") from None


def stack_running(aws_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{aws_url}/_critic/stack", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def env_vars_file(template, aws_url: str) -> dict:
    """{"<LogicalId>": {VARIABLE: value}} for `sam local invoke --env-vars`:
    the template's variables with their local values, and the endpoints.
    sam only sets variables the template declares for the function, so the
    AWS_ENDPOINT_URL* variables take effect where the template declares them."""
    from critic.local.lambdas import endpoint_variables

    return {logical_id: {**function.environment, **endpoint_variables(aws_url)}
            for logical_id, function in template.functions.items()}


def run(args) -> int:
    from critic.local.lambdas import LambdaFunction, endpoint_variables, function_environment
    from critic.local.template import TemplateError, read_template

    try:
        template = read_template(args.template, parameters=template_parameters(args.parameter))
    except TemplateError as error:
        raise UsageError(str(error)) from None
    aws_url = (args.aws_url or local_aws_url()).rstrip("/")

    if args.write_env_vars:
        port = aws_url.rsplit(":", 1)[-1]
        content = env_vars_file(template, f"http://{args.docker_host}:{port}")
        args.write_env_vars.write_text(json.dumps(content, indent=2) + "\n")
        print(f"wrote {args.write_env_vars}: use it with sam local invoke FUNCTION -e EVENT "
              f"--env-vars {args.write_env_vars}"
              + (" --docker-network host" if args.docker_host == "127.0.0.1" else ""), file=sys.stderr)
        return 0

    if not args.function:
        raise UsageError(f"name a function: {', '.join(template.functions)}")
    try:
        spec = template.function(args.function)
    except TemplateError as error:
        raise UsageError(str(error)) from None
    event = _read_event(args.event)
    if not stack_running(aws_url):
        print(f"critic invoke: warning: no local stack answers at {aws_url} (start it with `make run`); "
              "the function's AWS calls will fail", file=sys.stderr)
    env = function_environment(spec, endpoint_variables(aws_url), template.region)
    function = LambdaFunction(spec, env, concurrency=1, log=lambda _name, text: print(text, file=sys.stderr))
    try:
        result = function.invoke(event)
    finally:
        function.close()
    if result.ok:
        print(json.dumps(result.payload, indent=2))
        return 0
    print(json.dumps(result.error, indent=2))
    return 1
