"""RealtimeFunction (POST /score) against botocore's Stubber, which checks each
InvokeEndpoint request against the real SageMaker Runtime service model."""
from __future__ import annotations

import base64
import importlib.util
import io
import json

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from app_support import REPO, function_timeout, handler_environment, load_event, worst_case_seconds
from contract import reviews

ORIGIN = "http://127.0.0.1:8000"


@pytest.fixture
def runtime(realtime, fresh_client):
    client = fresh_client(realtime, "sagemaker_runtime", "sagemaker-runtime")
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def model_answer(stubber: Stubber, review: str, answer: dict | bytes) -> None:
    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
        {
            "EndpointName": "critic-endpoint",
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps({"review": review}).encode(),
        },
    )


def endpoint_error(stubber: Stubber, code: str, message: str, status: int, **extra) -> None:
    stubber.add_client_error("invoke_endpoint", service_error_code=code, service_message=message,
                             http_status_code=status, modeled_fields=extra or None)


def request(body: str | bytes, content_type: str | None = "application/json", b64: bool = False, origin: str | None = ORIGIN) -> dict:
    event = load_event("api-post-json")
    raw = body.encode("utf-8") if isinstance(body, str) else body
    event["headers"] = {k: v for k, v in event["headers"].items() if k not in ("content-type", "origin")}
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    if origin is not None:
        event["headers"]["origin"] = origin
    event["body"] = base64.b64encode(raw).decode() if b64 else raw.decode("utf-8")
    event["isBase64Encoded"] = b64
    return event


def call(realtime, event: dict, context) -> tuple[int, dict, dict]:
    response = realtime.lambda_handler(event, context)
    assert response["isBase64Encoded"] is False
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"]), headers


# ---------------------------------------------------------------- the events


def test_json_event_scores_the_review(realtime, runtime, context):
    event = load_event("api-post-json")
    review = json.loads(event["body"])["review"]
    model_answer(runtime, review, {"label": "positive", "score": 0.9731})
    status, body, headers = call(realtime, event, context)
    assert (status, body) == (200, {"label": "positive", "score": 0.9731})
    assert headers["access-control-allow-origin"] == "*"


def test_text_event_sends_the_whole_body_as_one_review(realtime, runtime, context):
    event = load_event("api-post-text")
    model_answer(runtime, event["body"], {"label": "negative", "score": 0.0412})
    assert call(realtime, event, context)[:2] == (200, {"label": "negative", "score": 0.0412})


def test_base64_event_is_decoded(realtime, runtime, context):
    event = load_event("api-post-base64")
    assert event["isBase64Encoded"] is True
    review = json.loads(base64.b64decode(event["body"]))["review"]
    assert "🎬" in review
    model_answer(runtime, review, {"label": "positive", "score": 0.88})
    assert call(realtime, event, context)[:2] == (200, {"label": "positive", "score": 0.88})


@pytest.mark.parametrize("name, status", [("api-empty-review", 400), ("api-oversized", 413), ("api-malformed-json", 400)])
def test_bad_events_are_refused_without_calling_the_model(realtime, runtime, context, name, status):
    code, body, headers = call(realtime, load_event(name), context)
    assert code == status
    assert set(body) == {"message"} and body["message"]
    assert headers["access-control-allow-origin"] == "*"


# --------------------------------------------------------------- the request


def test_multiline_text_is_one_review(realtime, runtime, context):
    text = "First line of the review.\nSecond line, same review.\n"
    model_answer(runtime, text, {"label": "positive", "score": 0.7})
    assert call(realtime, request(text, "text/plain"), context)[0] == 200


def test_content_type_parameters_are_understood(realtime, runtime, context):
    model_answer(runtime, "fine", {"label": "positive", "score": 0.6})
    assert call(realtime, request('{"review": "fine"}', "Application/JSON; charset=UTF-8"), context)[0] == 200


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/csv", "multipart/form-data; boundary=x"])
def test_unsupported_content_type_is_415(realtime, runtime, context, content_type):
    status, body, _ = call(realtime, request('{"review": "x"}', content_type), context)
    assert status == 415 and "application/json" in body["message"]


def test_non_utf8_charset_is_415(realtime, runtime, context):
    assert call(realtime, request("fine", "text/plain; charset=latin-1"), context)[0] == 415


@pytest.mark.parametrize(
    "body",
    ['{"review": 5}', '["a review"]', '{"text": "a review"}', '"a review"', "null", '{"review": "   "}', ""],
)
def test_json_without_a_usable_review_is_400(realtime, runtime, context, body):
    status, response, _ = call(realtime, request(body), context)
    assert status == 400 and response["message"]


@pytest.mark.parametrize("body, message", [
    ('{"review": "great", "x": ' + "[" * 1_100 + "]" * 1_100 + "}", "malformed JSON: nested deeper than 64 levels"),
    ('{"review": "great", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "malformed JSON: nested deeper than 64 levels"),
    ('{"review": "ok", "n": ' + "9" * 5_000 + "}", "malformed JSON: a number longer than 100 characters"),
    ('{"review": "great", "x": Infinity}', "malformed JSON: Infinity is not valid JSON"),
    ('{"review": "great", "x": NaN}', "malformed JSON: NaN is not valid JSON"),
    ('{"review": "bad", "review": "wonderful film"}', 'malformed JSON: duplicate key "review"'),
    (r'{"review": "\\ud800 bad"}', None),  # an escaped backslash, then text: a fine review
    (r'{"review": "\ud800 bad"}', "malformed JSON: a string holds a lone UTF-16 surrogate, which is not a character"),
])
def test_json_parser_bombs_are_400_with_a_clear_message(realtime, runtime, context, body, message):
    """Each is under the 256 KiB limit; none reaches the model (the Stubber
    has no answer queued) except the one valid review."""
    if message is None:
        model_answer(runtime, json.loads(body)["review"], {"label": "negative", "score": 0.2})
        assert call(realtime, request(body), context)[0] == 200
        return
    assert len(body.encode()) <= 256 * 1024
    assert call(realtime, request(body), context)[:2] == (400, {"message": message})


def test_a_leading_byte_order_mark_is_ignored(realtime, runtime, context):
    model_answer(runtime, "good", {"label": "positive", "score": 0.9})
    assert call(realtime, request('\ufeff{"review": "good"}'), context)[0] == 200


def test_blank_text_is_400(realtime, runtime, context):
    assert call(realtime, request(" \n\t\r\n", "text/plain"), context)[:2] == (400, {"message": "review is empty"})


@pytest.mark.parametrize("body, message", [
    ('{"review": 5}', reviews.REVIEW_NOT_A_STRING),
    ('["a review"]', reviews.NOT_A_REVIEW_OBJECT),
    ('{"review": "  "}', reviews.REVIEW_EMPTY),
])
def test_json_without_a_usable_review_gets_the_contract_message(realtime, runtime, context, body, message):
    """The model answers the same body with the same message (tests/contract/test_reviews.py)."""
    assert call(realtime, request(body), context)[:2] == (400, {"message": message})


def test_base64_body_that_is_not_utf8_is_400(realtime, runtime, context):
    status, body, _ = call(realtime, request(b"\xff\xfe bad bytes", "text/plain", b64=True), context)
    assert status == 400 and "UTF-8" in body["message"]


def test_body_limit_is_inclusive(realtime, runtime, context):
    limit = realtime.MAX_BODY_BYTES
    assert limit == 256 * 1024
    at_limit = "é" * ((limit - 1) // 2) + "a" * ((limit - 1) % 2 + 1)  # multibyte: the limit counts bytes
    assert len(at_limit.encode()) == limit
    model_answer(runtime, at_limit, {"label": "positive", "score": 0.5})
    assert call(realtime, request(at_limit, "text/plain"), context)[0] == 200
    assert call(realtime, request(at_limit + "a", "text/plain"), context)[0] == 413
    assert call(realtime, request((at_limit + "a").encode(), "text/plain", b64=True), context)[0] == 413


def test_other_routes_are_404_json(realtime, runtime, context):
    event = request('{"review": "x"}')
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/other"
    event["routeKey"] = event["requestContext"]["routeKey"] = "POST /other"
    status, body, headers = call(realtime, event, context)
    assert status == 404 and body == {"message": "not found: POST /score"}
    assert headers["access-control-allow-origin"] == "*"


def test_no_cors_headers_without_an_origin(realtime, runtime, context):
    model_answer(runtime, "ok", {"label": "positive", "score": 0.6})
    _, _, headers = call(realtime, request('{"review": "ok"}', origin=None), context)
    assert "access-control-allow-origin" not in headers


# ----------------------------------------------------------- endpoint errors


@pytest.mark.parametrize(
    "code, message, http, extra, status, retry_after",
    [
        ("ModelError", "Received server error (500) from primary with message \"boom\". See https://... in account 123456789012",
         424, {"OriginalStatusCode": 500, "OriginalMessage": "boom"}, 502, None),
        ("ThrottlingException", "Rate exceeded", 400, {}, 429, "2"),
        ("ModelNotReadyException", "Model is not ready", 429, {}, 503, "5"),  # a serverless endpoint starting
        ("ServiceUnavailable", "Service unavailable", 503, {}, 503, "2"),
        ("ServiceUnavailable", "Service unavailable", 429, {}, 503, "2"),  # found by make fuzz
        ("ValidationError", "Endpoint critic-endpoint of account 123456789012 not found.", 400, {}, 502, None),
        ("ValidationError", "1 validation error detected: Value at 'body' failed to satisfy constraint", 400, {}, 400, None),
        ("InternalFailure", "An internal error occurred", 500, {}, 502, None),
        ("InternalDependencyException", "Dependency failed", 530, {}, 502, None),
        ("AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/x is not authorized", 403, {}, 502, None),
    ],
)
def test_endpoint_errors_map_to_clear_answers(realtime, runtime, context, logs, code, message, http, extra, status, retry_after):
    lines = logs(realtime)
    endpoint_error(runtime, code, message, http, **extra)
    got, body, headers = call(realtime, request('{"review": "a fine film"}'), context)
    assert got == status
    assert set(body) == {"message"}
    assert "123456789012" not in body["message"] and "Traceback" not in body["message"]
    assert headers.get("retry-after") == retry_after
    assert headers["access-control-allow-origin"] == "*"
    assert code in {line.get("code") for line in lines}  # the details go to the logs, not to the client


@pytest.mark.parametrize(
    "error, status",
    [
        (ReadTimeoutError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com"), 504),
        (ConnectTimeoutError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com"), 504),
        (EndpointConnectionError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com"), 502),
    ],
)
def test_transport_failures(realtime, context, monkeypatch, error, status):
    def fail(**_):
        raise error

    monkeypatch.setattr(realtime.sagemaker_runtime, "invoke_endpoint", fail)
    assert call(realtime, request('{"review": "a fine film"}'), context)[0] == status


URL = "https://runtime.sagemaker.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    "outcome, status, message, retry_after",
    [
        # Cold: SageMaker says so, or holds the request past the read timeout.
        (("ModelNotReadyException", "Model is not ready", 429), 503, "the model is warming up; retry shortly", "5"),
        (ReadTimeoutError(endpoint_url=URL), 504,
         "the model did not answer in time; it may be warming up, retry shortly", "5"),
        # Busy or briefly unavailable: retry soon.
        (("ThrottlingException", "Rate exceeded", 400), 429, "too many requests; retry shortly", "2"),
        (("ServiceUnavailable", "Service unavailable", 503), 503, "the model is not ready; retry shortly", "2"),
        (ConnectTimeoutError(endpoint_url=URL), 504, "the model did not answer in time", "2"),
        # Broken: no Retry-After, so the page says so at once.
        (("ValidationError", "Endpoint critic-endpoint of account 123456789012 not found.", 400), 502,
         "the model endpoint is missing", None),
        (("ModelError", "Received server error (500) from primary", 424), 502, "the model failed to score the review",
         None),
        (("InternalFailure", "An internal error occurred", 500), 502, "the model endpoint failed", None),
    ],
    ids=["model-not-ready", "read-timeout", "throttled", "service-unavailable", "connect-timeout", "missing",
         "model-error", "internal-failure"],
)
def test_a_cold_endpoint_is_told_apart_from_a_broken_one(realtime, runtime, context, monkeypatch, outcome, status,
                                                         message, retry_after):
    if isinstance(outcome, Exception):
        def fail(**_):
            raise outcome
        monkeypatch.setattr(realtime.sagemaker_runtime, "invoke_endpoint", fail)
    else:
        endpoint_error(runtime, *outcome)
    got, body, headers = call(realtime, request('{"review": "a fine film"}'), context)
    assert (got, body, headers.get("retry-after")) == (status, {"message": message}, retry_after)


def test_a_review_the_model_cannot_score_is_422(realtime, runtime, context):
    model_answer(runtime, "!!!", {"error": "no words in the review"})
    assert call(realtime, request('{"review": "!!!"}'), context)[:2] == (
        422, {"message": "the review cannot be scored: no words in the review"})


@pytest.mark.parametrize("answer", [b"not json", b'{"label": "maybe", "score": 0.5}', b'{"label": "positive", "score": "high"}',
                                    b'{"label": "positive", "score": true}', b"[1, 2]"])
def test_unexpected_model_answers_are_502(realtime, runtime, context, answer):
    model_answer(runtime, "a fine film", answer)
    assert call(realtime, request('{"review": "a fine film"}'), context)[:2] == (
        502, {"message": "the model returned an unexpected response"})


def test_unexpected_failure_is_500_without_details(realtime, context, monkeypatch, logs):
    def explode(_review, _explain=False):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(realtime, "invoke_model", explode)
    lines = logs(realtime)
    status, body, headers = call(realtime, request('{"review": "x"}'), context)
    assert (status, body) == (500, {"message": "internal error"})
    assert headers["access-control-allow-origin"] == "*"
    assert any("secret internals" in line.get("exception", "") for line in lines)


def test_logs_carry_the_request_correlation_id(realtime, runtime, context, logs):
    lines = logs(realtime)
    event = load_event("api-malformed-json")
    call(realtime, event, context)
    assert lines and all(line["correlation_id"] == event["requestContext"]["requestId"] for line in lines)


def test_client_fits_the_api_timeout(realtime):
    config = realtime.sagemaker_runtime.meta.config
    # Every attempt and retry delay the SDK may spend must end before the
    # function's timeout (28 s; API Gateway allows 29 s), leaving the handler
    # time to answer.
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert worst_case_seconds(config) <= function_timeout("RealtimeFunction") - 2


def test_allowed_origin_comes_from_the_environment(context):
    """With ALLOWED_ORIGIN set to one origin, only that origin gets CORS headers."""
    spec = importlib.util.spec_from_file_location("realtime_one_origin", REPO / "functions" / "realtime" / "app.py")
    module = importlib.util.module_from_spec(spec)
    with handler_environment(ALLOWED_ORIGIN="https://critic.example.com", POWERTOOLS_SERVICE_NAME="critic-realtime"):
        spec.loader.exec_module(module)
    status, _, headers = call(module, request('{"review": " "}', origin="https://critic.example.com"), context)
    assert status == 400 and headers["access-control-allow-origin"] == "https://critic.example.com"
    assert headers["access-control-expose-headers"] == "Retry-After"
    _, _, headers = call(module, request('{"review": " "}', origin="https://evil.example.net"), context)
    assert "access-control-allow-origin" not in headers


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_preflight_is_answered(realtime, runtime, context):
    """API Gateway answers preflight itself in AWS; the local API passes it on."""
    event = request("", origin=ORIGIN)
    event["requestContext"]["http"]["method"] = "OPTIONS"
    event["routeKey"] = event["requestContext"]["routeKey"] = "OPTIONS /score"
    event["headers"]["access-control-request-method"] = "POST"
    response = realtime.lambda_handler(event, context)
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert response["statusCode"] == 204
    assert headers["access-control-allow-origin"] == "*" and "POST" in headers["access-control-allow-methods"]


# ---------------------------------------------------------------- explanations

EXPLANATION = {"baseline": -0.1, "spans": [{"start": 0, "end": 5, "text": "Great", "contribution": 2.3}]}


def explained_answer(stubber: Stubber, review: str) -> None:
    body = json.dumps({"label": "positive", "score": 0.9, "explanation": EXPLANATION}).encode()
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
        {"EndpointName": "critic-endpoint", "ContentType": "application/json", "Accept": "application/json",
         "Body": json.dumps({"review": review, "explain": True}).encode()},
    )


def with_query(event: dict, **parameters: str) -> dict:
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in parameters.items())
    event["queryStringParameters"] = parameters
    return event


@pytest.mark.parametrize("how", ["query", "body", "text-query"])
def test_explain_asked_in_the_query_or_the_body_reaches_the_model_and_comes_back(realtime, runtime, context, how):
    review = "Great fun."
    if how == "body":
        event = request(json.dumps({"review": review, "explain": True}))
    elif how == "query":
        event = with_query(request(json.dumps({"review": review})), explain="true")
    else:
        event = with_query(request(review, "text/plain"), explain="TRUE")
    explained_answer(runtime, review)
    status, body, _ = call(realtime, event, context)
    assert (status, body) == (200, {"label": "positive", "score": 0.9, "explanation": EXPLANATION})


def test_explain_false_asks_the_model_exactly_as_before(realtime, runtime, context):
    model_answer(runtime, "Fine.", {"label": "positive", "score": 0.6})
    event = with_query(request(json.dumps({"review": "Fine.", "explain": False})), explain="false")
    assert call(realtime, event, context)[:2] == (200, {"label": "positive", "score": 0.6})


@pytest.mark.parametrize("event", [
    request(json.dumps({"review": "Fine.", "explain": "true"})),
    request(json.dumps({"review": "Fine.", "explain": 1})),
    request(json.dumps({"review": "Fine.", "explain": None})),
    with_query(request(json.dumps({"review": "Fine."})), explain="yes"),
    with_query(request("Fine.", "text/plain"), explain=""),
])
def test_an_explain_that_is_not_a_boolean_is_a_400(realtime, runtime, context, event):
    status, body, _ = call(realtime, event, context)
    assert (status, body) == (400, {"message": reviews.EXPLAIN_NOT_A_BOOLEAN})


def test_a_malformed_explanation_from_the_model_is_a_502(realtime, runtime, context):
    body = json.dumps({"label": "positive", "score": 0.9, "explanation": {"spans": "?"}}).encode()
    runtime.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body))})
    status, answer, _ = call(realtime, with_query(request(json.dumps({"review": "Fine."})), explain="true"), context)
    assert (status, answer) == (502, {"message": "the model returned an unexpected response"})
