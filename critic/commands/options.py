"""What more than one command reads from its options and environment: the
template parameters (`--parameter NAME=VALUE`, serve and invoke), the local
stack's ports (serve) and the URL of its AWS endpoint (invoke and score)."""
from __future__ import annotations

import os

from critic.errors import UsageError


def template_parameters(pairs: list[str]) -> dict[str, str]:
    parameters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--parameter {pair}: expected NAME=VALUE")
        parameters[name] = value
    return parameters


def port_from_environment(variable: str, default: int) -> int:
    value = os.environ.get(variable)
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise UsageError(f"{variable}={value} is not a port number")
    return int(value)


def local_aws_url() -> str:
    """The running local stack's AWS endpoint, on this machine."""
    from critic.local.stack import AWS_PORT_VARIABLE, DEFAULT_AWS_PORT  # the stack's module loads moto: only when asked

    return f"http://127.0.0.1:{os.environ.get(AWS_PORT_VARIABLE) or DEFAULT_AWS_PORT}"
