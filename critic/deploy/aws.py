"""Sessions for real runs and for --dry-run, and AWS errors as messages.

A real run (`Live`) uses a boto3 session with the caller's credentials and
runs commands. A dry run (`DryRun`) uses a boto3 session whose clients never
send anything: botocore builds and validates each request as usual, then the
plan prints it as `service.Operation(params)` and answers from a table of
assumptions (the answer's note is printed too); commands and file writes are
printed, not done. The code of deploy, destroy and training is the same for
both, so the plan is the run.
"""
from __future__ import annotations

import contextlib
import contextvars
import io
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    SSOError,
    TokenRetrievalError,
    WaiterError,
)

from critic.errors import UsageError

# A dry run cannot ask AWS who you are: account ids print as this.
DRY_RUN_ACCOUNT = "ACCOUNT"

NO_CREDENTIALS = (
    "no AWS credentials found. Configure them with `aws configure` (access keys) or `aws configure sso` "
    "and `aws sso login` (then export AWS_PROFILE=<profile>), or set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY. (--dry-run needs none.)")
NO_REGION = "no AWS region: pass --region, or set AWS_REGION, or set a region in ~/.aws/config"


class AwsError(UsageError):
    """AWS said no, or the account is not in a state to proceed: the message says what to do."""


Runner = Callable[[Sequence[str], Path], int]


def run_command(command: Sequence[str], cwd: Path) -> int:
    """Runs a command with the terminal attached; the SAM CLI's telemetry is off unless asked for."""
    env = {**os.environ, "SAM_CLI_TELEMETRY": os.environ.get("SAM_CLI_TELEMETRY", "0")}
    return subprocess.run(list(command), cwd=cwd, env=env, check=False).returncode


_narrator: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("narrator", default=None)


def say(message: str) -> None:
    """Progress, on stderr (stdout carries results and plans); in a dry run, a comment in the plan."""
    narrator = _narrator.get()
    if narrator:
        narrator(message)
    else:
        print(message, file=sys.stderr, flush=True)


def region_of(*candidates: str | None) -> str:
    """The first region given, else the one boto3 finds (AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config)."""
    for region in candidates:
        if region:
            return region
    region = boto3.Session().region_name
    if not region:
        raise UsageError(NO_REGION)
    return region


class Live:
    """A real run: the caller's credentials, commands run, files written."""

    dry_run = False

    def __init__(self, region: str, runner: Runner = run_command, session: boto3.Session | None = None):
        self.region = region
        self.session = session or boto3.Session(region_name=region)
        if self.session.get_credentials() is None:
            raise AwsError(NO_CREDENTIALS)
        self.runner = runner

    def client(self, service: str):
        return self.session.client(service, region_name=self.region)

    def narrating(self):
        return contextlib.nullcontext()

    def run(self, command: Sequence[str], cwd: Path) -> int:
        say("$ " + shlex.join(command))
        return self.runner(command, cwd)

    def write(self, path: Path, text: str) -> None:
        """Whole or not at all: a temporary file beside the target, then a rename."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)


@dataclass
class Answer:
    """What a dry run assumes AWS answers to one operation."""

    response: dict = field(default_factory=dict)
    error: str | None = None  # an error code: the call raises ClientError
    status: int = 200
    note: str = ""  # printed under the call: what the plan assumes


def missing(code: str = "404", status: int = 404, message: str = "Not Found", note: str = "") -> Answer:
    return Answer(error=code, status=status, response={"Error": {"Code": code, "Message": message}}, note=note)


class DryRun:
    """--dry-run: prints each AWS call and command, makes none, writes nothing."""

    dry_run = True

    def __init__(self, region: str, answers: dict[str, Answer | list[Answer]], out=None):
        self.region = region
        self.out = out or sys.stdout
        self.answers = {op: list(a) if isinstance(a, list) else [a] for op, a in answers.items()}
        self.calls: list[tuple[str, str, dict]] = []
        self.commands: list[list[str]] = []
        self.session = boto3.Session(region_name=region, aws_access_key_id="dry-run",
                                     aws_secret_access_key="dry-run")
        events = self.session.events
        events.register("provide-client-params", self._show)
        events.register("before-call", self._answer)
        events.register("before-send", self._refuse)

    def client(self, service: str):
        return self.session.client(service, region_name=self.region)

    def print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @contextlib.contextmanager
    def narrating(self) -> Iterator[None]:
        """While active, progress messages become comments in the plan."""
        token = _narrator.set(lambda message: self.print(f"# {message}"))
        try:
            yield
        finally:
            _narrator.reset(token)

    def run(self, command: Sequence[str], cwd: Path) -> int:
        self.commands.append(list(command))
        self.print("$ " + shlex.join(command))
        return 0

    def write(self, path: Path, text: str) -> None:
        self.print(f"write {path}:")
        for line in text.rstrip("\n").splitlines():
            self.print(f"    {line}")

    def _show(self, params: dict, model, **_) -> None:
        service = model.service_model.service_name
        self.calls.append((service, model.name, dict(params)))
        shown = ", ".join(f"{key}={_shown(value)}" for key, value in params.items())
        self.print(f"{service}.{model.name}({shown})")

    def _answer(self, model, **_):
        queue = self.answers.get(model.name) or [Answer()]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer.note:
            self.print(f"    # dry run: {answer.note}")
        response = {**answer.response, "ResponseMetadata": {"HTTPStatusCode": answer.status}}
        return AWSResponse(None, answer.status, {}, None), response

    @staticmethod
    def _refuse(request, **_):
        raise RuntimeError(f"dry run: refusing to send {request.method} {request.url}")


def _shown(value) -> str:
    if isinstance(value, (io.IOBase,)) or hasattr(value, "read"):
        name = getattr(value, "name", "<stream>")
        size = os.fstat(value.fileno()).st_size if hasattr(value, "fileno") else None
        return f"<file {name}" + (f", {size} bytes>" if size is not None else ">")
    return repr(value)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def aws_errors() -> Iterator[None]:
    """AWS failures as one-line messages that say what to do, never a trace."""
    try:
        yield
    except NoCredentialsError:
        raise AwsError(NO_CREDENTIALS) from None
    except (TokenRetrievalError, SSOError) as error:
        raise AwsError(f"your AWS sign-in has expired or is missing ({error}): run `aws sso login`") from None
    except WaiterError as error:
        raise AwsError(f"gave up waiting: {error}") from None
    except ClientError as error:
        code, message = error_code(error), error.response.get("Error", {}).get("Message", "")
        operation = error.operation_name
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
            raise AwsError(f"your AWS credentials have expired ({operation}): refresh them "
                           "(`aws sso login`, or new keys) and run again") from None
        if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
                    "InvalidAccessKeyId"):
            raise AwsError(f"AWS rejected your credentials ({operation}: {code}): check the keys or "
                           "profile in use (`aws sts get-caller-identity`)") from None
        if code in ("AccessDenied", "AccessDeniedException", "403", "Forbidden"):
            raise AwsError(f"AWS denied {operation}: {message or code}. The identity you deploy with needs "
                           "permission for it (see README, Deploy to AWS)") from None
        raise AwsError(f"{operation} failed: {code}: {message}") from None
    except EndpointConnectionError as error:
        raise AwsError(f"cannot reach AWS: {error}") from None
    except BotoCoreError as error:
        raise AwsError(f"AWS: {error}") from None


def caller_account(ctx) -> str:
    """The account id of the credentials in use (sts.GetCallerIdentity)."""
    return ctx.client("sts").get_caller_identity()["Account"]
