"""`critic serve --endpoint-cold-start SECONDS [--endpoint-idle-timeout SECONDS]`:
the local SageMaker Runtime plays a serverless endpoint's cold start. Time is
played, not waited for: ColdStart takes a clock and a sleep, and the
over-the-wire test holds the warm-up on an event the test releases."""
from __future__ import annotations

import threading

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError
from werkzeug.serving import make_server

from critic.local.container import InvocationResult
from critic.local.aws import AwsEndpoint
from critic.local.sagemaker import ColdStart, Endpoint


class PlayedTime:
    """A clock that moves only when someone sleeps or the test says so."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def call(self, cold: ColdStart) -> float:
        """One invocation: how long it was held."""
        waited = cold.enter()
        cold.leave()
        return waited


def test_the_first_invocation_waits_the_cold_start_and_later_ones_do_not():
    time = PlayedTime()
    cold = ColdStart(20, clock=time.clock, sleep=time.sleep)
    assert time.call(cold) == 20
    time.now += 5
    assert time.call(cold) == 0
    time.now += 3600  # no idle timeout: warm for good
    assert time.call(cold) == 0
    assert cold.cold_starts == 1 and time.sleeps == [20]


def test_invocations_arriving_during_the_warm_up_wait_for_the_same_start():
    time = PlayedTime()
    cold = ColdStart(20, clock=time.clock, sleep=lambda seconds: None)  # everyone is held; nobody moves time
    assert cold.enter() == 20
    time.now += 12
    assert cold.enter() == 8  # the rest of the same warm-up, not a second one
    time.now += 8
    assert cold.enter() == 0
    for _ in range(3):
        cold.leave()
    assert cold.cold_starts == 1


def test_an_idle_endpoint_goes_cold_again():
    time = PlayedTime()
    cold = ColdStart(20, idle_timeout=300, clock=time.clock, sleep=time.sleep)
    assert time.call(cold) == 20
    time.now += 299
    assert time.call(cold) == 0  # used within the idle timeout: still warm, and the idle time restarts
    time.now += 299
    assert time.call(cold) == 0
    time.now += 300
    assert time.call(cold) == 20  # idle for the timeout: cold again
    assert cold.cold_starts == 2


def test_an_invocation_in_flight_keeps_the_endpoint_warm():
    time = PlayedTime()
    cold = ColdStart(20, idle_timeout=300, clock=time.clock, sleep=time.sleep)
    assert time.call(cold) == 20
    cold.enter()  # a long invocation
    time.now += 1000
    assert time.call(cold) == 0
    cold.leave()
    assert cold.cold_starts == 1


@pytest.mark.parametrize("seconds, idle", [(-1, None), (20, 0), (20, -5)])
def test_nonsense_durations_are_refused(seconds, idle):
    with pytest.raises(ValueError):
        ColdStart(seconds, idle)


def test_over_the_wire_a_client_that_gives_up_times_out_and_the_endpoint_warms_anyway():
    """As on AWS: the first InvokeEndpoint is held past the caller's read timeout
    (the RealtimeFunction's 504); the warm-up goes on, and then calls are served."""
    released = threading.Event()
    cold = ColdStart(20, sleep=lambda seconds: released.wait(60))  # the warm-up ends when the test says
    calls = []

    def invoke(body, content_type, accept):
        calls.append(body)
        return InvocationResult(200, b'{"label": "positive", "score": 0.9}', "application/json")

    app = AwsEndpoint(None, Endpoint(["critic-endpoint"], "us-east-1", invoke, cold), lambda method: None,
                      lambda: {"ok": True})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        runtime = boto3.client(
            "sagemaker-runtime", endpoint_url=f"http://127.0.0.1:{server.server_port}", region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
            config=Config(read_timeout=0.5, retries={"total_max_attempts": 1}))

        def score():
            return runtime.invoke_endpoint(EndpointName="critic-endpoint", ContentType="application/json",
                                           Body=b'{"review": "A wonderful film."}')

        with pytest.raises(ReadTimeoutError):
            score()
        assert calls == []  # held, not served
        released.set()  # the container is up
        answer = score()
        assert answer["Body"].read() == b'{"label": "positive", "score": 0.9}'
        assert cold.cold_starts == 1
    finally:
        released.set()
        server.shutdown()
