"""One Lambda execution environment: `python -m critic.local.lambda_worker`.

Started by critic/local/lambdas.py with the function's environment, in the
function's code folder. Its import path is Lambda's: the function's code, its
layers (CRITIC_LAMBDA_PATH), then the standard library; nothing else this
interpreter has installed. Like the Lambda Python runtime it imports the handler
once (the init phase, where handlers create their clients), then runs one
invocation at a time. Requests arrive as JSON lines on stdin; answers leave as
JSON lines on the original stdout, while anything the handler prints (its
logs) goes to stderr, where the local stack shows it.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback


class LambdaContext:
    """The context object the Lambda Python runtime passes to handlers."""

    def __init__(self, request: dict):
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn = request.get("invoked_function_arn", "")
        self.aws_request_id = request["request_id"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = request["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _error(error: BaseException, error_type: str | None = None) -> dict:
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(traceback.extract_tb(error.__traceback__)[1:]),
    }


def _peak_memory_mb() -> int:
    # This process's own peak (VmHWM): getrusage's ru_maxrss would carry over
    # the peak of the process that started it, which is the whole stack.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _load(handler: str):
    module_name, _, function_name = handler.rpartition(".")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - reported as the runtime does
        return None, _error(error, "Runtime.ImportModuleError") | {
            "errorMessage": f"Unable to import module '{module_name}': {error}"}
    function = getattr(module, function_name, None)
    if not callable(function):
        return None, {"errorMessage": f"Handler '{function_name}' missing on module '{module_name}'",
                      "errorType": "Runtime.HandlerNotFound", "stackTrace": []}
    return function, None


# Import machinery of the interpreter itself (Lambda's runtime has no other):
# what site-packages adds at start-up, such as the finder of an editable
# install, goes.
_STANDARD_FINDERS = {"_frozen_importlib", "_frozen_importlib_external", "importlib._bootstrap",
                     "importlib._bootstrap_external"}


def _lambda_path(code_dirs: list[str]) -> None:
    """sys.path as Lambda builds it: the function's code and its layers, then
    the runtime's standard library. This interpreter's site-packages (the
    project venv with everything the tests and the local stack use, and the
    editable install of this checkout) is on it only where a layer maps to it
    (template.py); without DependenciesLayer a function cannot import boto3
    here, which in AWS would silently get the runtime's own, untested one."""
    base = [os.path.realpath(p) for p in {sys.base_prefix, sys.base_exec_prefix}]
    stdlib = [p for p in sys.path if p and os.path.realpath(p).startswith(tuple(b + os.sep for b in base))
              and not {"site-packages", "dist-packages"} & set(p.split(os.sep))]
    sys.path[:] = code_dirs + [p for p in stdlib if p not in code_dirs]
    sys.meta_path[:] = [f for f in sys.meta_path
                        if (f.__module__ if isinstance(f, type) else type(f).__module__) in _STANDARD_FINDERS]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    # `-m critic.local.lambda_worker` imported the critic package; a function
    # in AWS has none (this module runs on as __main__).
    for name in [n for n in sys.modules if n == "critic" or n.startswith("critic.")]:
        del sys.modules[name]


def main() -> None:
    # Ctrl-C reaches the whole process group: the local stack, not each
    # environment, decides when they end (it closes stdin, or kills).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # the handler's prints and logs go to stderr
    sys.stdout = os.fdopen(1, "w", encoding="utf-8", buffering=1, closefd=False)
    code_dirs = [p for p in os.environ.get("CRITIC_LAMBDA_PATH", "").split(os.pathsep) if p]
    _lambda_path(code_dirs)
    handler, init_error = _load(os.environ["_HANDLER"])
    answers.write(json.dumps({"ready": init_error is None, "error": init_error}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(request)
        started = time.perf_counter()
        if init_error is not None:
            answer = {"error": init_error}
        else:
            try:
                answer = {"result": handler(request["event"], context)}
            except Exception as error:  # noqa: BLE001 - the invocation's error, as Lambda reports it
                answer = {"error": {**_error(error), "requestId": context.aws_request_id}}
                print(f"[ERROR] {type(error).__name__}: {error}", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)
        elapsed = (time.perf_counter() - started) * 1000
        used = _peak_memory_mb()
        print(f"REPORT RequestId: {context.aws_request_id}\tDuration: {elapsed:.2f} ms\t"
              f"Memory Size: {context.memory_limit_in_mb} MB\tMax Memory Used: {used} MB", file=sys.stderr)
        try:
            text = json.dumps(answer)
        except (TypeError, ValueError) as error:  # a result that is not JSON fails as in Lambda
            text = json.dumps({"error": {"errorMessage": f"Unable to marshal response: {error}",
                                         "errorType": "Runtime.MarshalError", "stackTrace": []}})
        answers.write(text + "\n")


if __name__ == "__main__":
    main()
