"""Lambda functions on one machine, without Docker.

Each function runs in its own worker processes (critic/local/lambda_worker.py),
started with the environment Lambda would give it: the template's variables
(Globals merged), the runtime's own variables, dummy credentials, and
AWS_ENDPOINT_URL* pointing at the local services. A process serves one
invocation at a time and is kept warm, like an execution environment; up to
`concurrency` of them run at once per function, and invocations beyond that
wait their turn, first come, first served (critic/local/pool.py). A process that
overruns the function's Timeout is killed, as Lambda does.

UpdateFunctionConfiguration (its Environment, what a stack update changes
when the model does) retires the warm environments, as Lambda does for a new
configuration: an invocation running finishes in its environment, and every
invocation from then on gets an environment started with the new variables.

Asynchronous invocations (S3 notifications, EventBridge) are queued and retried
twice on error, as Lambda's event queue does; an event that still fails is
written to the data folder's dead-letter/ with its error.
"""
from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from critic.local.template import Function
from critic.local.pool import FairPool, PoolClosed

LOG = logging.getLogger("critic.lambda")

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "test"}
# Variables of this machine a function may see (Lambda's environment is not
# the developer's shell: no profile, no real credentials).
_PASSED = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV")


@dataclass
class InvokeResult:
    payload: Any = None
    error: dict | None = None  # {"errorType", "errorMessage", "stackTrace"}
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def function_environment(function: Function, endpoints: dict[str, str], region: str) -> dict:
    """The environment of one function's processes."""
    env = {key: os.environ[key] for key in _PASSED if key in os.environ}
    env.update(DUMMY_CREDENTIALS)
    env.update({
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        # What `sam local` sets: Powertools Tracer stays off without X-Ray.
        "AWS_SAM_LOCAL": "true",
        "LAMBDA_TASK_ROOT": str(function.code_dir),
        "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
        "_HANDLER": function.handler,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
        "CRITIC_LAMBDA_PATH": os.pathsep.join([str(function.code_dir), *map(str, function.layers)]),
    })
    # No ~/.aws config or credentials file may redirect a client.
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env.update(endpoints)
    env.update(function.environment)
    return env


class _Process:
    """One warm execution environment."""

    def __init__(self, function: Function, env: dict, log: Callable[[str], None]):
        self.function = function
        self.configuration = 0  # which configuration of the function it was started with
        self.process = subprocess.Popen(
            [sys.executable, "-m", "critic.local.lambda_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=function.code_dir, env=env, text=True, encoding="utf-8", bufsize=1,  # stderr read as bytes
        )
        threading.Thread(target=self._pump_logs, args=(log,), daemon=True,
                         name=f"logs-{function.logical_id}").start()
        hello = self._read(60)
        if hello is None:
            raise RuntimeError(f"{function.logical_id}: the runtime did not start")

    def _pump_logs(self, log: Callable[[str], None]) -> None:
        """Hand the function's output on in blocks of whole lines."""
        fd, pending = self.process.stderr.fileno(), b""
        while chunk := os.read(fd, 65536):
            pending += chunk
            complete, _, pending = pending.rpartition(b"\n")
            if complete:
                log(complete.decode("utf-8", "replace"))
        if pending:
            log(pending.decode("utf-8", "replace"))

    def _read(self, timeout: float) -> dict | None:
        ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, timeout))
        if not ready:
            return None
        line = self.process.stdout.readline()
        if not line:
            raise EOFError("the runtime exited")
        return json.loads(line)

    def invoke(self, event: Any, request_id: str, timeout: float) -> dict | None:
        deadline = time.time() + timeout
        request = {"event": event, "request_id": request_id, "deadline_ms": deadline * 1000,
                   "invoked_function_arn": self.function.arn}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read(deadline - time.time())

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class LambdaFunction:
    def __init__(self, function: Function, env: dict, concurrency: int = 4,
                 log: Callable[[str, str], None] | None = None):
        """`log(function, text)` receives the function's output, whole lines."""
        self.spec = function
        self.env = env
        self.concurrency = max(1, min(concurrency, function.reserved_concurrency or concurrency))
        self._log = log or (lambda name, line: print(f"[{name}] {line}", file=sys.stderr))
        # Warm environments, and None for room to start one more. Invocations
        # that find none queue, first come, first served.
        self._slots: FairPool[_Process | None] = FairPool([None] * self.concurrency)
        self._configuration = 0  # UpdateFunctionConfiguration calls so far
        self._configuring = threading.Lock()
        self.last_modified = time.time()

    def configuration(self) -> dict:
        """GetFunctionConfiguration's answer (the parts the local stack knows)."""
        spec = self.spec
        return {"FunctionName": spec.name, "FunctionArn": spec.arn, "Runtime": spec.runtime,
                "Handler": spec.handler, "Timeout": spec.timeout, "MemorySize": spec.memory,
                "Environment": {"Variables": dict(spec.environment)},
                "LastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(self.last_modified)),
                "Version": "$LATEST", "State": "Active", "LastUpdateStatus": "Successful"}

    def configure(self, variables: dict[str, str]) -> dict:
        """UpdateFunctionConfiguration's Environment: the variables replace the
        function's (as Lambda's do); environments started before are retired."""
        with self._configuring:
            base = {k: v for k, v in self.env.items() if k not in self.spec.environment}
            self.spec = replace(self.spec, environment=dict(variables))
            self.env = {**base, **variables}
            self._configuration += 1
            self.last_modified = time.time()
        LOG.info("%s: new configuration; warm environments are retired", self.spec.logical_id)
        return self.configuration()

    def warm(self) -> None:
        """Start one environment now, so the first request has no cold start.
        A function that cannot start is reported on each invocation instead."""
        try:
            process = self._acquire()
        except Exception as error:  # noqa: BLE001 - the stack still serves the other functions
            LOG.warning("%s could not start: %s", self.spec.logical_id, error)
            return
        self._release(process)

    def _spawn(self) -> _Process:
        with self._configuring:
            spec, env, configuration = self.spec, self.env, self._configuration
        process = _Process(spec, env, lambda line: self._log(spec.logical_id, line))
        process.configuration = configuration
        return process

    def _current(self, process: _Process) -> bool:
        return process.alive() and process.configuration == self._configuration

    def _acquire(self) -> _Process:
        try:
            process = self._slots.get()
        except PoolClosed:
            raise RuntimeError("the local stack is stopping") from None
        if process is not None:
            if self._current(process):
                return process
            process.kill()  # it died idle, or has an old configuration: start another in its place
        try:
            return self._spawn()
        except Exception:
            self._slots.put(None, spare=True)
            raise

    def _release(self, process: _Process | None) -> None:
        """Give an environment back (None: it is gone, its slot is free)."""
        if process is not None and not self._current(process):
            process.kill()
            process = None
        if not self._slots.put(process, spare=process is None) and process is not None:
            process.kill()  # the stack is stopping

    def invoke(self, event: Any) -> InvokeResult:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            process = self._acquire()
        except Exception as error:  # noqa: BLE001 - reported as an invocation error
            return InvokeResult(error={"errorType": "Runtime.StartError", "errorMessage": str(error)})
        timeout = self.spec.timeout
        try:
            answer = process.invoke(event, request_id, timeout)
        except (EOFError, OSError, ValueError) as error:
            process.kill()
            self._release(None)
            return InvokeResult(error={"errorType": "Runtime.ExitError",
                                       "errorMessage": f"RequestId: {request_id} Error: Runtime exited ({error})"},
                                duration_ms=(time.perf_counter() - started) * 1000)
        if answer is None:
            process.kill()  # Lambda ends an environment whose invocation timed out
            self._release(None)
            self._log(self.spec.logical_id, f"{request_id} Task timed out after {timeout:.2f} seconds")
            return InvokeResult(error={"errorType": "Sandbox.Timedout",
                                       "errorMessage": f"RequestId: {request_id} Error: "
                                                       f"Task timed out after {timeout:.2f} seconds"},
                                duration_ms=timeout * 1000)
        self._release(process)
        duration = (time.perf_counter() - started) * 1000
        if "error" in answer:
            return InvokeResult(error=answer["error"], duration_ms=duration)
        return InvokeResult(payload=answer.get("result"), duration_ms=duration)

    def close(self) -> None:
        for process in self._slots.close():
            if process is not None:
                process.kill()


class AsyncInvoker:
    """Lambda's event invocation: a queue, two retries, then a dead letter."""

    def __init__(self, dead_letter_dir: Path, retry_delays: tuple[float, ...] = (1.0, 2.0), workers: int = 4,
                 on_failure: Callable[[str, dict], None] | None = None):
        self.dead_letter_dir = dead_letter_dir
        self.retry_delays = retry_delays
        self.on_failure = on_failure
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="lambda-async")
        self._stopping = threading.Event()
        self._inflight = 0
        self._idle = threading.Condition()
        self._queued: dict = {}  # future -> (function, event, source), until it runs

    def submit(self, function: LambdaFunction, event: dict, source: str) -> None:
        with self._idle:
            self._inflight += 1
            future = self._pool.submit(self._run, function, event, source)
            if not future.done():
                self._queued[future] = (function, event, source)

    def _run(self, function: LambdaFunction, event: dict, source: str) -> None:
        with self._idle:
            self._queued = {f: item for f, item in self._queued.items() if not (f.running() or f.done())}
        try:
            retries = min(function.spec.maximum_retry_attempts, len(self.retry_delays))
            attempts = 0
            for attempt in range(retries + 1):
                attempts += 1
                result = function.invoke(event)
                if result.ok:
                    return
                LOG.warning("%s failed on %s (attempt %d of %d): %s: %s", function.spec.logical_id, source,
                            attempt + 1, retries + 1, result.error.get("errorType"), result.error.get("errorMessage"))
                if attempt < retries and self._stopping.wait(self.retry_delays[attempt]):
                    break
            self._dead_letter(function, event, source, result.error, attempts)
        except Exception:  # noqa: BLE001 - never lose an event silently
            LOG.exception("%s: event from %s could not be delivered", function.spec.logical_id, source)
            self._dead_letter(function, event, source, {"errorType": "LocalStackError"}, 0)
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def _dead_letter(self, function: LambdaFunction, event: dict, source: str, error: dict | None,
                     attempts: int) -> None:
        """Lambda's on-failure destination record, kept in dead-letter/ and
        sent to the function's OnFailure destination when it is a queue."""
        now = time.time()
        record = {
            "version": "1.0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": f"{function.spec.arn}:$LATEST",
                               "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": error,
        }
        folder = self.dead_letter_dir / function.spec.logical_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps({"source": source, **record}, indent=2))
        LOG.error("%s: gave up on an event from %s; it is in %s", function.spec.logical_id, source, path)
        if function.spec.on_failure and self.on_failure:
            try:
                self.on_failure(function.spec.on_failure, record)
            except Exception:  # noqa: BLE001 - the record is in the folder all the same
                LOG.exception("could not send the failure record to %s", function.spec.on_failure)

    def drain(self, timeout: float) -> bool:
        """Wait until no event is being delivered; True if all were."""
        deadline = time.time() + timeout
        with self._idle:
            while self._inflight:
                remaining = deadline - time.time()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self) -> None:
        """Stop: events still queued are written to the dead letters, not lost."""
        self._stopping.set()
        with self._idle:
            queued, self._queued = self._queued, {}
        for future, (function, event, source) in queued.items():
            if future.cancel():
                self._dead_letter(function, event, source, {"errorType": "LocalStackStopped",
                                  "errorMessage": "the local stack stopped before delivering this event"}, 0)
        self._pool.shutdown(wait=False, cancel_futures=True)


def endpoint_variables(aws_url: str) -> dict[str, str]:
    """AWS_ENDPOINT_URL* for every client a handler may make: S3, SageMaker,
    SageMaker Runtime, and (the generic one) anything else, so nothing ever
    reaches a real AWS account."""
    return {
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_ENDPOINT_URL_S3": aws_url,
        "AWS_ENDPOINT_URL_SAGEMAKER": aws_url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": aws_url,
    }

