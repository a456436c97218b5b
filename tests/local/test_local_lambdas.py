"""Lambda execution environments of the local stack: environment, isolation,
context, errors, timeouts, and Lambda's async retries with a dead letter."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from critic.local.lambdas import AsyncInvoker, LambdaFunction, endpoint_variables, function_environment
from critic.local.template import Function


def make_function(folder: Path, code: str, name: str = "Fn", timeout: int = 5, env: dict | None = None) -> Function:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(textwrap.dedent(code))
    return Function(logical_id=name, name=f"critic-{name.lower()}", handler="app.lambda_handler",
                    code_dir=folder, runtime="python3.12", timeout=timeout, memory=256,
                    environment=env or {})


def start(spec: Function, **kwargs) -> LambdaFunction:
    env = function_environment(spec, endpoint_variables("http://127.0.0.1:9"), "us-east-1")
    return LambdaFunction(spec, env, log=lambda name, line: None, **kwargs)


ECHO = """
    import os
    WHO = os.environ["WHO"]  # read at import, like a handler's clients

    def lambda_handler(event, context):
        print("a log line on stdout must not break the protocol")
        return {"who": WHO, "event": event, "request_id": context.aws_request_id,
                "function_name": context.function_name, "memory": context.memory_limit_in_mb,
                "arn": context.invoked_function_arn,
                "remaining": context.get_remaining_time_in_millis(),
                "endpoint": os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"],
                "key": os.environ["AWS_ACCESS_KEY_ID"], "sam_local": os.environ["AWS_SAM_LOCAL"],
                "profile": os.environ.get("AWS_PROFILE")}
"""


def test_functions_with_the_same_module_name_stay_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    first = start(make_function(tmp_path / "one", ECHO, "One", env={"WHO": "one"}))
    second = start(make_function(tmp_path / "two", ECHO, "Two", env={"WHO": "two"}))
    try:
        a, b, again = first.invoke({"n": 1}), second.invoke({"n": 2}), first.invoke({"n": 3})
    finally:
        first.close()
        second.close()
    assert a.ok and b.ok
    assert (a.payload["who"], b.payload["who"]) == ("one", "two")
    assert a.payload["event"] == {"n": 1}
    assert a.payload["function_name"] == "critic-one" and a.payload["memory"] == "256"
    assert a.payload["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:critic-one"
    assert 0 < a.payload["remaining"] <= 5000
    assert a.payload["endpoint"] == "http://127.0.0.1:9"
    assert a.payload["key"] == "test" and a.payload["sam_local"] == "true"
    assert a.payload["profile"] is None  # the developer's profile never reaches a function
    assert again.ok and again.payload["request_id"] != a.payload["request_id"]


def test_errors_come_back_as_lambda_error_objects(tmp_path):
    function = start(make_function(tmp_path / "f", """
        def lambda_handler(event, context):
            raise KeyError("missing")
    """))
    broken = start(make_function(tmp_path / "g", "import nowhere_to_be_found\n"))
    unmarshallable = start(make_function(tmp_path / "h", """
        def lambda_handler(event, context):
            return {"x": object()}
    """))
    try:
        error = function.invoke({}).error
        assert error["errorType"] == "KeyError" and "missing" in error["errorMessage"]
        assert broken.invoke({}).error["errorType"] == "Runtime.ImportModuleError"
        assert unmarshallable.invoke({}).error["errorType"] == "Runtime.MarshalError"
        assert function.invoke({}).error["errorType"] == "KeyError"  # the environment survives an error
    finally:
        for f in (function, broken, unmarshallable):
            f.close()


def test_a_function_that_overruns_its_timeout_is_killed_and_replaced(tmp_path):
    function = start(make_function(tmp_path / "slow", """
        import time
        def lambda_handler(event, context):
            if event.get("sleep"):
                time.sleep(30)
            return "ok"
    """, timeout=1))
    try:
        result = function.invoke({"sleep": True})
        assert result.error["errorType"] == "Sandbox.Timedout"
        assert "Task timed out after 1.00 seconds" in result.error["errorMessage"]
        assert function.invoke({}).payload == "ok"
    finally:
        function.close()


def test_async_events_are_retried_twice_then_dead_lettered(tmp_path):
    counter = tmp_path / "count"
    function = start(make_function(tmp_path / "flaky", f"""
        from pathlib import Path
        COUNTER = Path({str(counter)!r})
        def lambda_handler(event, context):
            n = int(COUNTER.read_text()) if COUNTER.exists() else 0
            COUNTER.write_text(str(n + 1))
            if n + 1 < event["succeed_on"]:
                raise RuntimeError(f"attempt {{n + 1}} fails")
            return "done"
    """))
    invoker = AsyncInvoker(tmp_path / "dlq", retry_delays=(0.05, 0.05))
    try:
        invoker.submit(function, {"succeed_on": 3}, "test")
        assert invoker.drain(30)
        assert counter.read_text() == "3"
        assert not (tmp_path / "dlq").exists()

        counter.unlink()
        invoker.submit(function, {"succeed_on": 99}, "s3://bucket/key")
        assert invoker.drain(30)
        assert counter.read_text() == "3"  # one try and two retries
        [letter] = list((tmp_path / "dlq" / "Fn").glob("*.json"))
        content = json.loads(letter.read_text())
        assert content["requestPayload"] == {"succeed_on": 99}
        assert content["source"] == "s3://bucket/key"
        assert content["requestContext"]["condition"] == "RetriesExhausted"
        assert content["requestContext"]["approximateInvokeCount"] == 3
        assert "attempt 3 fails" in content["responsePayload"]["errorMessage"]
    finally:
        invoker.close()
        function.close()


def test_environments_are_reused_and_bounded(tmp_path):
    function = start(make_function(tmp_path / "pid", """
        import os, time
        def lambda_handler(event, context):
            time.sleep(event.get("sleep", 0))
            return os.getpid()
    """), concurrency=2)
    try:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(6) as pool:
            pids = set(pool.map(lambda _: function.invoke({"sleep": 0.3}).payload, range(6)))
        assert len(pids) <= 2  # never more environments than the concurrency
        assert function.invoke({}).payload in pids  # warm environments are reused
    finally:
        function.close()


WHAT_IT_IMPORTS = """
    import importlib.util, sys

    def lambda_handler(event, context):
        def origin(name):
            try:
                spec = importlib.util.find_spec(name)
            except ModuleNotFoundError:
                return None
            return spec and spec.origin
        return {name: origin(name) for name in
                ("boto3", "aws_lambda_powertools", "batch.jobs", "contract", "critic", "model", "pytest")}
"""


def test_a_function_imports_its_code_its_layers_and_the_standard_library_only(tmp_path, repo_root):
    """The worker's path is Lambda's: with the project's layers a function gets
    boto3 and Powertools from the venv (DependenciesLayer), batch and contract
    from this checkout (DomainLayer), and nothing of this checkout's editable
    install (critic, model); without layers, not even boto3 or batch."""
    from critic.local.template import read_template

    spec = make_function(tmp_path / "layered", WHAT_IT_IMPORTS, "Layered")
    spec.layers = read_template(repo_root / "template.yaml").function("BatchFunction").layers
    bare = make_function(tmp_path / "bare", WHAT_IT_IMPORTS, "Bare")
    layered, alone = start(spec), start(bare)
    try:
        found, without = layered.invoke({}).payload, alone.invoke({}).payload
    finally:
        layered.close()
        alone.close()
    site_packages, domain = map(str, spec.layers)
    assert found["boto3"].startswith(site_packages) and found["aws_lambda_powertools"].startswith(site_packages)
    assert found["batch.jobs"] == str(repo_root / "layers" / "domain" / "batch" / "jobs.py")
    assert found["contract"] == str(repo_root / "layers" / "domain" / "contract" / "__init__.py")
    assert found["critic"] is None and found["model"] is None
    assert found["pytest"].startswith(site_packages)  # the venv stands for the layer: it holds more than the pins
    assert without == dict.fromkeys(without)  # nothing but the standard library


@pytest.mark.parametrize("bad", ["no_dot", ""])
def test_template_functions_need_module_dot_function(tmp_path, bad):
    from critic.local.template import TemplateError, read_template

    (tmp_path / "fn").mkdir()
    (tmp_path / "template.yaml").write_text(textwrap.dedent(f"""
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {{CodeUri: fn/, Handler: "{bad}", Runtime: python3.12}}
    """))
    with pytest.raises(TemplateError, match="Handler"):
        read_template(tmp_path / "template.yaml")


def test_events_still_queued_when_the_stack_stops_are_dead_lettered(tmp_path):
    function = start(make_function(tmp_path / "slow2", """
        import time
        def lambda_handler(event, context):
            time.sleep(0.5)
            return "ok"
    """), concurrency=1)
    invoker = AsyncInvoker(tmp_path / "dlq", retry_delays=(0.05, 0.05), workers=1)
    try:
        for n in range(3):
            invoker.submit(function, {"n": n}, f"event {n}")
    finally:
        invoker.close()
        function.close()
    letters = [json.loads(p.read_text()) for p in (tmp_path / "dlq" / "Fn").glob("*.json")]
    stopped = sorted(letter["requestPayload"]["n"] for letter in letters
                     if letter["responsePayload"]["errorType"] == "LocalStackStopped")
    assert stopped and set(stopped) <= {1, 2}  # the queued ones; the running one ends as it may


def wait_until_queued(function: LambdaFunction, count: int) -> None:
    """Until `count` invocations wait for an environment of `function`."""
    import time

    deadline = time.time() + 10
    while function._slots.waiting() < count:
        assert time.time() < deadline, "the invocation never queued"
        time.sleep(0.005)


def test_invocations_waiting_for_an_environment_are_served_in_arrival_order(tmp_path):
    """A client that just got its answer and invokes again at once queues
    behind the invocations already waiting; it does not take the environment
    it just left (the tail latency under load depends on that)."""
    import threading
    import time

    function = start(make_function(tmp_path / "order", """
        import time
        from pathlib import Path
        HISTORY = []
        def lambda_handler(event, context):
            HISTORY.append(event["client"])
            Path(event["started"]).touch()
            time.sleep(event["sleep"])
            return list(HISTORY)
    """), concurrency=1)
    histories: list[list[str]] = []
    started = tmp_path / "a-started"

    def client(name: str, first_sleep: float) -> None:
        for n in range(4):
            histories.append(function.invoke({"client": name, "sleep": first_sleep if n == 0 else 0.02,
                                              "started": str(started if name == "A" else tmp_path / "x")}).payload)

    try:
        function.warm()
        threads = [threading.Thread(target=client, args=("A", 0.5))]
        threads[0].start()
        deadline = time.time() + 10
        while not started.exists():  # A holds the one environment (its first call takes 0.5 s)...
            assert time.time() < deadline
            time.sleep(0.005)
        for count, name in enumerate("BC", start=1):
            threads.append(threading.Thread(target=client, args=(name, 0.02)))
            threads[-1].start()
            wait_until_queued(function, count)  # ...while B, then C, queue
        for thread in threads:
            thread.join(30)
        assert max(histories, key=len) == list("ABCABCABCABC")
    finally:
        function.close()


def test_stopping_wakes_invocations_waiting_for_an_environment(tmp_path):
    import threading

    function = start(make_function(tmp_path / "slow", """
        import time
        def lambda_handler(event, context):
            time.sleep(1.0)
            return "done"
    """), concurrency=1)
    results = []
    threads = [threading.Thread(target=lambda: results.append(function.invoke({}))) for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_until_queued(function, 1)  # one runs, the other waits
    function.close()
    for thread in threads:
        thread.join(10)
    assert sorted(r.payload if r.ok else r.error["errorType"] for r in results) == ["Runtime.StartError", "done"]


def test_each_invocation_logs_a_report_line_with_duration_and_peak_memory(tmp_path):
    import re
    import time

    lines: list[str] = []
    spec = make_function(tmp_path / "report", """
        def lambda_handler(event, context):
            return bytearray(20 * 1024 * 1024)[:1].decode()  # 20 MB touched
    """)
    env = function_environment(spec, endpoint_variables("http://127.0.0.1:9"), "us-east-1")
    ballast = b"x" * (300 << 20)  # the starting process peaks at 300 MB: not the function's figure
    function = LambdaFunction(spec, env, log=lambda name, text: lines.extend(text.splitlines()))
    del ballast
    try:
        result = function.invoke({})
        assert result.ok
        deadline = time.time() + 5
        while not any(line.startswith("REPORT") for line in lines) and time.time() < deadline:
            time.sleep(0.01)
    finally:
        function.close()
    report = next(line for line in lines if line.startswith("REPORT"))
    match = re.search(r"Duration: ([\d.]+) ms\tMemory Size: 256 MB\tMax Memory Used: (\d+) MB", report)
    assert match, report
    assert 20 <= int(match.group(2)) < 256  # this environment's own peak, in MB
