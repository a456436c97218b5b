"""POST /score against a real socket: a tiny HTTP server on 127.0.0.1 plays
SageMaker Runtime's InvokeEndpoint, and the RealtimeFunction handler, imported
with AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME pointing at it, talks to it through
botocore's real HTTP stack (retries, timeouts, error parsing). The endpoint
answers late, fails, throttles, or drops the connection; each time the handler
must give its documented status and message, and within the function's time
budget: every call makes at most the configured attempts, and what those
attempts and their retry delays may take fits in the function's timeout.

The client's read timeout is shortened for the test by merging a Config into
the handler's own (the handler's timeouts are constants); everything else is
the handler's configuration."""
from __future__ import annotations

import importlib.util
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config

from app_support import REPO, function_timeout, handler_environment, load_event, worst_case_seconds

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

TEST_READ_TIMEOUT = 0.5  # seconds; the handler's own is read_timeout in its Config
JSON = {"Content-Type": "application/json"}
SAGEMAKER_ERROR = "x-amzn-ErrorType"  # how SageMaker Runtime names the error of an answer


class FakeRuntime(ThreadingHTTPServer):
    """InvokeEndpoint on 127.0.0.1: records each request, then acts out
    `behaviour`: ("answer", status, headers, body), "slow" (accept, read the
    request, never answer in time), "close" (close without answering) or
    "truncate" (announce a body, send part of it, close)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.behaviour: object = None
        self.release = threading.Event()  # ends the "slow" answers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeRuntime

    def log_message(self, *_):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        behaviour = self.server.behaviour
        if behaviour == "slow":
            self.server.release.wait(30)  # far past the client's read timeout
            self.close_connection = True
        elif behaviour == "close":
            self.close_connection = True
        elif behaviour == "truncate":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                             b'{"label": "posi')
            self.close_connection = True
        else:
            _, status, headers, payload = behaviour
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)


@pytest.fixture(scope="module")
def runtime():
    server = FakeRuntime()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def handler(runtime):
    """A copy of functions/realtime/app.py imported as Lambda would, with the
    endpoint override in its environment (its client is made at import)."""
    spec = importlib.util.spec_from_file_location("realtime_on_a_socket", REPO / "functions" / "realtime" / "app.py")
    module = importlib.util.module_from_spec(spec)
    with handler_environment(POWERTOOLS_SERVICE_NAME="critic-realtime"):
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = runtime.url
        spec.loader.exec_module(module)
    module.handler_config = module.sagemaker_runtime.meta.config
    return module


@pytest.fixture
def realtime(handler, runtime, monkeypatch):
    """The handler with a fresh client (a fresh retry quota) made as its own,
    from the same environment and Config, but a short read timeout."""
    runtime.requests.clear()
    with handler_environment():
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = runtime.url
        client = boto3.client("sagemaker-runtime",
                              config=handler.handler_config.merge(Config(read_timeout=TEST_READ_TIMEOUT)))
    monkeypatch.setattr(handler, "sagemaker_runtime", client)
    return handler


def score(realtime, lambda_context, review: str = "A wonderful, moving film.") -> tuple[int, dict, dict]:
    """POST /score in a thread: the test fails, rather than hangs, if the
    handler never returns (the bound is generous: it is no timing)."""
    event = load_event("api-post-json")
    event["body"] = json.dumps({"review": review})
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(response=realtime.lambda_handler(event, lambda_context)),
                              daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the handler did not return"
    response = out["response"]
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"]), headers


def attempts_allowed(realtime) -> int:
    return realtime.sagemaker_runtime.meta.config.retries["total_max_attempts"]


# ------------------------------------------------------------------ the budget


def test_the_test_client_is_the_handlers_but_for_its_read_timeout(handler, realtime, runtime):
    ours, theirs = realtime.sagemaker_runtime.meta, handler.handler_config
    assert ours.endpoint_url == runtime.url  # AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, as the handler's own client
    assert theirs.read_timeout > TEST_READ_TIMEOUT
    assert (ours.config.connect_timeout, ours.config.retries) == (theirs.connect_timeout, theirs.retries)
    # With the handler's own timeouts, every attempt and retry delay fits the function's timeout.
    assert worst_case_seconds(theirs) <= function_timeout("RealtimeFunction") - 2


def test_a_healthy_endpoint_answers_through_the_socket(realtime, runtime, lambda_context):
    runtime.behaviour = ("answer", 200, JSON, json.dumps({"label": "positive", "score": 0.97}).encode())
    assert score(realtime, lambda_context)[:2] == (200, {"label": "positive", "score": 0.97})
    request, = runtime.requests
    assert request["path"] == "/endpoints/critic-endpoint/invocations"
    assert json.loads(request["body"]) == {"review": "A wonderful, moving film."}
    assert request["headers"]["Content-Type"] == request["headers"]["Accept"] == "application/json"
    assert "/sagemaker/aws4_request" in request["headers"]["Authorization"]  # signed as SageMaker Runtime


# ------------------------------------------------------------------ slow


def test_an_endpoint_that_answers_too_late_is_504(realtime, runtime, lambda_context):
    runtime.behaviour = "slow"
    status, body, headers = score(realtime, lambda_context)
    # As a cold serverless endpoint holds the first request: "not yet", not "broken".
    assert (status, body) == (504, {"message": "the model did not answer in time; it may be warming up, retry shortly"})
    assert headers["retry-after"] == "5"
    # Each attempt waited one read timeout; there were exactly the attempts allowed.
    assert len(runtime.requests) == attempts_allowed(realtime) == 2


# ------------------------------------------------------------------ failing


MODEL_ERROR = {"message": 'Received server error (500) from primary with message "boom". See https://us-east-1.'
                          "console.aws.amazon.com/cloudwatch/home in account 123456789012 for more information.",
               "OriginalStatusCode": 500, "OriginalMessage": "boom", "ErrorCode": "SERVER_ERROR_FROM_MODEL"}


@pytest.mark.parametrize("status, headers, payload, answer, attempts", [
    # The container failed: SageMaker's ModelError (424), not retried.
    (424, {**JSON, SAGEMAKER_ERROR: "ModelError"}, json.dumps(MODEL_ERROR).encode(),
     (502, "the model failed to score the review", None), 1),
    # SageMaker itself failed (500) or a proxy answered 500 with a page: retried, then 502.
    (500, {**JSON, SAGEMAKER_ERROR: "InternalFailure"}, b'{"message": "An internal error occurred."}',
     (502, "the model endpoint failed", None), 2),
    (500, {"Content-Type": "text/html"}, b"<html><body>Internal Server Error</body></html>",
     (502, "the model endpoint failed", None), 2),
    # Unavailable (503), with SageMaker's error name or bare: retried, then 503 with Retry-After.
    (503, {**JSON, SAGEMAKER_ERROR: "ServiceUnavailable"}, b'{"message": "Service Unavailable"}',
     (503, "the model is not ready; retry shortly", "2"), 2),
    (503, {}, b"", (503, "the model is not ready; retry shortly", "2"), 2),
], ids=["424-model-error", "500-internal-failure", "500-html", "503-service-unavailable", "503-bare"])
def test_a_failing_endpoint_gets_its_documented_answer(realtime, runtime, lambda_context, status, headers, payload,
                                                       answer, attempts):
    runtime.behaviour = ("answer", status, headers, payload)
    got, body, response_headers = score(realtime, lambda_context)
    assert (got, body, response_headers.get("retry-after")) == (answer[0], {"message": answer[1]}, answer[2])
    assert "123456789012" not in body["message"]
    assert len(runtime.requests) == attempts <= attempts_allowed(realtime)


# ------------------------------------------------------------------ throttling


@pytest.mark.parametrize("status, headers, payload, answer, attempts", [
    # What SageMaker Runtime sends when throttled: HTTP 400, ThrottlingException.
    (400, {**JSON, SAGEMAKER_ERROR: "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/"},
     b'{"message": "Rate exceeded"}', (429, "too many requests; retry shortly", "2"), 2),
    (400, JSON, b'{"__type": "ThrottlingException", "message": "Rate exceeded"}',
     (429, "too many requests; retry shortly", "2"), 2),
    # A bare 429 (a proxy, or a throttle with no error name): retried, then 429.
    (429, {}, b"", (429, "too many requests; retry shortly", "2"), 2),
    # 429 is also how a serverless endpoint says it is still starting: 503, not retried.
    (429, {**JSON, SAGEMAKER_ERROR: "ModelNotReadyException"}, b'{"message": "Model is not ready"}',
     (503, "the model is warming up; retry shortly", "5"), 1),
], ids=["400-throttling-header", "400-throttling-body", "429-bare", "429-model-not-ready"])
def test_a_throttling_endpoint_gets_its_documented_answer(realtime, runtime, lambda_context, status, headers, payload,
                                                          answer, attempts):
    runtime.behaviour = ("answer", status, headers, payload)
    got, body, response_headers = score(realtime, lambda_context)
    assert (got, body) == (answer[0], {"message": answer[1]})
    assert response_headers["retry-after"] == answer[2]
    assert len(runtime.requests) == attempts <= attempts_allowed(realtime)


# ------------------------------------------------------------------ dropped connections


def test_a_connection_closed_before_any_answer_is_502(realtime, runtime, lambda_context):
    runtime.behaviour = "close"
    assert score(realtime, lambda_context)[:2] == (502, {"message": "the model endpoint is unreachable"})
    assert len(runtime.requests) == attempts_allowed(realtime)  # a dropped connection is retried


def test_a_connection_closed_mid_answer_is_502(realtime, runtime, lambda_context):
    runtime.behaviour = "truncate"
    assert score(realtime, lambda_context)[:2] == (502, {"message": "the model endpoint is unreachable"})
    # The body is read after the call returned: botocore does not retry it.
    assert len(runtime.requests) == 1
