"""Fuzzing POST /score (RealtimeFunction) with arbitrary API Gateway HTTP API
v2 events: methods, paths, headers, bodies, base64 flags, content types; and
arbitrary answers of the SageMaker endpoint (scores, per-review errors,
garbage, every error code, transport failures). The runtime client is
botocore's Stubber, which checks each request against the service model.

Every answer must have a documented status (see the handler's docstring),
never 500, and every answer but 200/204 a JSON body {"message": "..."}."""
from __future__ import annotations

import base64
import copy
import io
import json
from contextlib import ExitStack
from unittest import mock

import boto3
import pytest
from botocore.exceptions import (ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError,
                                 ReadTimeoutError)
from botocore.response import StreamingBody
from botocore.stub import Stubber
from hypothesis import event as label, given, strategies as st

from app_support import handler_environment, load_event
from hostile_json import DOCUMENTS

DOCUMENTED = {200, 400, 404, 413, 415, 422, 429, 502, 503, 504}
RETRY = {429, 503, 504}  # "not yet": the page retries them
NO_MODEL_CALL = {400, 404, 413, 415}
URL = "https://runtime.sagemaker.us-east-1.amazonaws.com"


@pytest.fixture(scope="module")
def runtime_client(realtime_module):
    with handler_environment():
        return boto3.client("sagemaker-runtime", config=realtime_module.sagemaker_runtime.meta.config)


# ------------------------------------------------------------------ events

def big_body(size: int, char: str) -> str:
    return char * (size // len(char.encode()))


LIMIT = 256 * 1024
REVIEW_TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["a fine film", "  ", "\x00", "<script>alert(1)</script>", "😀", "مرحبا", "\ufeff", "\u202e"]),
)
BODY_TEXT = st.one_of(
    st.text(max_size=300),
    REVIEW_TEXT.map(lambda r: json.dumps({"review": r})),
    st.builds(lambda k, v: json.dumps({k: v}), st.sampled_from(["review", "Review", "text"]),
              st.one_of(st.none(), st.integers(), st.booleans(), st.lists(st.text(max_size=3), max_size=2), st.text(max_size=10))),
    st.sampled_from(["", "{", "null", "[]", '"review"', '{"review": "x"', "{'review': 'x'}", "1e999", "NaN",
                     '{"review": "a", "review": 1}', '{"review": "\\ud800"}']),
    st.builds(big_body, st.integers(LIMIT - 4, LIMIT + 4), st.sampled_from(["a", "é", "😀"])),
    DOCUMENTS,  # parser bombs: deep nesting, long numbers, NaN, duplicate keys...
)
CONTENT_TYPE = st.one_of(
    st.none(),
    st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8", "text/plain;charset=UTF-8",
                     "Application/JSON", "text/plain; charset=latin-1", "text/plain; charset=\"utf-8\"", "text/csv",
                     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json;",
                     ";", "", "*/*", "application/jsonlines"]),
    st.text(max_size=40),
)
HEADER_NAMES = st.one_of(st.sampled_from(["accept", "origin", "content-length", "content-encoding", "x-forwarded-for",
                                          "cookie", "authorization", "transfer-encoding"]),
                         st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=12))


GOOD_TYPES = st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8", "text/plain;charset=UTF-8"])


@st.composite
def api_events(draw) -> dict:
    """Three in four events are POST /score with a JSON or text content type
    (so that most reach the model); the rest are anything."""
    event = copy.deepcopy(load_event("api-post-json"))
    wild = draw(st.integers(0, 3)) == 3
    method, path, content_type = "POST", "/score", draw(GOOD_TYPES)
    if wild:
        method = draw(st.sampled_from(["POST", "GET", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"]))
        path = draw(st.one_of(st.sampled_from(["/score", "/", "/score/", "/SCORE", "/score/x", "//score"]),
                              st.text(max_size=10).map(lambda p: "/" + p)))
        content_type = draw(CONTENT_TYPE)
    headers = draw(st.dictionaries(HEADER_NAMES, st.text(max_size=40), max_size=4))
    headers.pop("content-type", None)
    if content_type is not None:
        headers["content-type"] = content_type
    raw = draw(st.one_of(BODY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200)))
    b64 = draw(st.booleans())
    if b64:
        body = draw(st.one_of(st.just(base64.b64encode(raw).decode()), st.text(max_size=30)))  # valid or not
    else:
        body = raw.decode("utf-8", "replace")
    event.update({"routeKey": "$default" if path != "/score" else f"{method} /score", "rawPath": path, "headers": headers,
                  "isBase64Encoded": b64})
    if not wild or draw(st.booleans()):
        event["body"] = body
    else:
        event.pop("body")
    if wild and draw(st.booleans()):
        event["queryStringParameters"] = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in event["queryStringParameters"].items())
    event["requestContext"]["http"].update({"method": method, "path": path})
    return event


# ------------------------------------------------------------------ the endpoint

ANSWERS = st.one_of(
    st.builds(lambda s: {"label": "positive" if s >= 0.5 else "negative", "score": s}, st.floats(0, 1)),
    st.builds(lambda e: {"error": e}, st.text(max_size=30)),
    st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"[]", b"null", b'{"label": "x"}', b'{"score": 0.5}',
                                                        b'{"label": "positive", "score": NaN}', b"\xff\xfe"])),
    st.builds(lambda label, score: {"label": label, "score": score}, st.sampled_from(["positive", "negative", "POSITIVE", ""]),
              st.one_of(st.none(), st.text(max_size=3), st.integers(), st.booleans(), st.floats(allow_nan=True))),
)
ERROR_CODES = st.one_of(st.sampled_from(["ThrottlingException", "TooManyRequestsException", "ModelNotReadyException",
                                         "ServiceUnavailable", "ModelError", "ValidationError", "InternalFailure",
                                         "InternalDependencyException", "AccessDeniedException", "ModelStreamError"]),
                        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", max_size=20))
ERROR_MESSAGES = st.one_of(st.text(max_size=40), st.just("Endpoint critic-endpoint of account 123456789012 not found."))
TRANSPORT = st.sampled_from([ReadTimeoutError(endpoint_url=URL), ConnectTimeoutError(endpoint_url=URL),
                             EndpointConnectionError(endpoint_url=URL), ConnectionClosedError(endpoint_url=URL)])
OUTCOMES = st.one_of(
    st.tuples(st.just("answer"), ANSWERS),
    st.tuples(st.just("error"), st.tuples(ERROR_CODES, ERROR_MESSAGES, st.sampled_from([400, 403, 404, 424, 429, 500, 502, 503, 530]))),
    st.tuples(st.just("transport"), TRANSPORT),
)


def arrange(stack: ExitStack, client, outcome) -> Stubber | None:
    kind, value = outcome
    if kind == "transport":
        stack.enter_context(mock.patch.object(client, "invoke_endpoint", side_effect=value))
        return None
    stubber = stack.enter_context(Stubber(client))
    if kind == "answer":
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        stubber.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body)),
                                                 "ContentType": "application/json"})
    else:
        code, message, status = value
        stubber.add_client_error("invoke_endpoint", service_error_code=code, service_message=message,
                                 http_status_code=status)
    return stubber


def expected_status(outcome) -> set[int]:
    kind, value = outcome
    if kind == "transport":
        return {504} if isinstance(value, (ReadTimeoutError, ConnectTimeoutError)) else {502}
    if kind == "error":
        code, message, status = value
        if code in ("ThrottlingException", "TooManyRequestsException"):
            return {429}
        if code in ("ModelNotReadyException", "ServiceUnavailable"):
            return {503}
        if code == "ValidationError" and "not found" in message.lower() and status not in (429, 503):
            return {502}  # a missing endpoint is broken, not cold
        return {429} if status == 429 else {400, 502, 503}
    if isinstance(value, dict) and isinstance(value.get("error"), str) and set(value) == {"error"}:
        return {422}
    return {200, 502}


def strict_json(name: str):
    raise AssertionError(f"{name} is not JSON")


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@given(event=api_events(), outcome=OUTCOMES)
def test_fuzz_realtime_handler_answers_every_event(realtime_module, runtime_client, lambda_context, event, outcome):
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(realtime_module, "sagemaker_runtime", runtime_client))
        stubber = arrange(stack, runtime_client, outcome)
        called = mock.patch.object(runtime_client, "invoke_endpoint", wraps=runtime_client.invoke_endpoint)
        spy = stack.enter_context(called)
        response = realtime_module.lambda_handler(event, lambda_context)
    status = response["statusCode"]
    label(f"status {status}")
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    method, path = event["requestContext"]["http"]["method"], event["rawPath"]
    if method == "OPTIONS":  # CORS preflight, answered by the resolver
        assert status in (204, 404)
        return
    assert status in DOCUMENTED, (status, response.get("body"))
    assert response["isBase64Encoded"] is False
    assert headers["content-type"] == "application/json"
    document = json.loads(response["body"], parse_constant=strict_json)  # a browser's JSON.parse reads it
    if (method, path) != ("POST", "/score"):
        assert status == 404 and not spy.called
    if status == 200:
        assert spy.call_count == 1
        assert document["label"] in ("positive", "negative") and 0 <= document["score"] <= 1
        assert set(document) == {"label", "score"}
        kind, answer = outcome
        assert document == {"label": answer["label"], "score": answer["score"]}
        return
    assert set(document) == {"message"} and isinstance(document["message"], str) and document["message"]
    assert "Traceback" not in document["message"] and "123456789012" not in document["message"]
    assert ("retry-after" in headers) == (status in RETRY)
    if not spy.called:
        assert status in NO_MODEL_CALL
    else:
        sent = spy.call_args.kwargs
        assert sent["EndpointName"] == "critic-endpoint" and sent["ContentType"] == "application/json"
        review = json.loads(sent["Body"])["review"]
        assert isinstance(review, str) and review.strip() and len(sent["Body"]) <= LIMIT * 6 + 20
        assert status in expected_status(outcome)
    if stubber is not None and spy.called:
        stubber.assert_no_pending_responses()


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@given(body=DOCUMENTS)
def test_fuzz_realtime_hostile_json_is_400_or_scored(realtime_module, runtime_client, lambda_context, body):
    """Parser bombs under the size limit: 400 with a one-line message, or
    (JSON the reader takes, e.g. brackets inside strings) scored; never 500."""
    event = load_event("api-post-json")
    event["body"], event["isBase64Encoded"] = body, False
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(realtime_module, "sagemaker_runtime", runtime_client))
        arrange(stack, runtime_client, ("answer", {"label": "positive", "score": 0.9}))
        response = realtime_module.lambda_handler(event, lambda_context)
    label(f"status {response['statusCode']}")
    assert response["statusCode"] in (200, 400), response["body"]
    document = json.loads(response["body"], parse_constant=strict_json)
    if response["statusCode"] == 400:
        assert "\n" not in document["message"] and "Traceback" not in document["message"]


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@pytest.mark.parametrize("score", [b"NaN", b"Infinity", b"-Infinity", b"1.5", b"-0.1", b"1e400"])
def test_scores_outside_zero_to_one_are_502_not_invalid_json(realtime_module, runtime_client, lambda_context, score):
    """Found by the fuzzer: an endpoint answer with score NaN came back as 200
    with the body {"score": NaN}, which is not JSON (JSON.parse throws)."""
    event = load_event("api-post-json")
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(realtime_module, "sagemaker_runtime", runtime_client))
        arrange(stack, runtime_client, ("answer", b'{"label": "positive", "score": ' + score + b"}"))
        response = realtime_module.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 502
    assert json.loads(response["body"], parse_constant=strict_json) == {"message": "the model returned an unexpected response"}
