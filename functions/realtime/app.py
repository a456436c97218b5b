"""POST /score: score one movie review with the SageMaker endpoint.

Request: `application/json` {"review": "..."} or `text/plain` (the whole body
is the review), UTF-8, at most MAX_BODY_BYTES (256 KiB) after base64
decoding. Response: 200 {"label": "positive"|"negative", "score": P(positive)};
with ?explain=true (or "explain": true in a JSON body) it also carries
"explanation" (model/explain.py), else it is exactly that.
These shapes, and the messages for a body without a usable review, are
contract/reviews.py's, which the model's handler uses too.

Every other answer is JSON {"message": "..."}:
  400 body empty, not UTF-8, "explain" not true or false, malformed JSON (or JSON that the shared reader,
      contract/jsonreader.py, refuses: too deep, a number too long,
      NaN/Infinity, a duplicate key...), no string "review", blank review;
      or the endpoint rejected the request as invalid
  413 body over MAX_BODY_BYTES          415 content type not JSON or text
  422 the model could not score this review (e.g. nothing readable in it)
  429/503/504 "not yet": see the table below (Retry-After)
  502 model or endpoint failure, the endpoint missing, or the connection dropped
  404 any other route                   500 anything unexpected (logged)

A serverless endpoint that has been idle starts cold: SageMaker holds the
request while it starts the container and the model loads (tens of seconds),
or answers ModelNotReadyException. 429, 503 and 504 mean "not yet": the web
page retries them for about 90 s, waiting Retry-After (every one carries
it); an answer that means "broken" is never one of them. How SageMaker's answers map,
conservatively (a cold endpoint is named only where SageMaker says so, or
where a timeout most likely is one):

  InvokeEndpoint answer                       meaning                        POST /score
  ModelNotReadyException (any HTTP status,    the serverless variant's       503 "the model is warming
    usually 429)                              resources are still being          up", Retry-After 5
                                              provisioned (SageMaker's docs)
  no answer within the read timeout, twice    a cold start holds the first   504 "may be warming up",
    (ReadTimeoutError)                        request (or the model hangs)       Retry-After 5
  ThrottlingException, TooManyRequests-       throttled (MaxConcurrency      429, Retry-After 2
    Exception, a bare 429                     reached, or the account's rate)
  ServiceUnavailable, a bare 503              SageMaker cannot serve now     503 "not ready", Retry-After 2
  connect timeout                             SageMaker Runtime unreachable  504, Retry-After 2
  ValidationError "... not found"             the endpoint does not exist    502, no Retry-After
  ModelError (424), InternalFailure (500),    the container or SageMaker     502, no Retry-After
    anything else                             failed
  connection dropped                          network                        502, no Retry-After

Environment: ENDPOINT_NAME, ALLOWED_ORIGIN, POWERTOOLS_SERVICE_NAME,
POWERTOOLS_METRICS_NAMESPACE.
"""
from __future__ import annotations

import binascii
import json
import os
from http import HTTPStatus

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from contract.jsonreader import JSONInputError, loads as read_json
from contract import reviews
from contract.media import JSON, TEXT, charset, media_type

MAX_BODY_BYTES = 256 * 1024  # far below a serverless endpoint's 4 MB payload limit
RETRY_AFTER_SECONDS = 2  # throttled, or SageMaker briefly unavailable
# A cold start takes tens of seconds: asking again sooner only spends an attempt.
WARM_UP_RETRY_AFTER_SECONDS = 5

ENDPOINT_NAME = os.environ["ENDPOINT_NAME"]

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver(
    cors=CORSConfig(allow_origin=os.environ.get("ALLOWED_ORIGIN", "*"), expose_headers=["Retry-After"], max_age=300)
)

# API Gateway gives the integration 29 s (the function's timeout is 28 s).
# Worst case: two attempts of at most 2 s connect + 8 s read, and one retry
# delay of botocore's standard mode (at most 1 s after throttling, raised by
# up to 5 s more when the answer carries x-amz-retry-after): 26 s.
sagemaker_runtime = boto3.client(
    "sagemaker-runtime",
    config=Config(connect_timeout=2, read_timeout=8, retries={"mode": "standard", "total_max_attempts": 2}),
)


class ApiError(Exception):
    """An answer other than 200: status, a message for the client, and for
    "not yet" (429/503/504) how long to wait before retrying."""

    def __init__(self, status: HTTPStatus, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def read_request(event: APIGatewayProxyEventV2) -> tuple[str, bool]:
    """(the review, whether an explanation is asked for: ?explain=true or a JSON body's "explain": true)."""
    content_type = event.headers.get("content-type")
    media, encoding = media_type(content_type), charset(content_type)
    if media not in (JSON, TEXT):
        raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type must be {JSON} or {TEXT}")
    if encoding not in (None, "utf-8", "utf8", "us-ascii"):
        raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the body must be UTF-8")
    try:
        body = event.decoded_body or ""
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(HTTPStatus.BAD_REQUEST, "the body is not valid UTF-8 text") from None
    if len(body.encode("utf-8")) > MAX_BODY_BYTES:
        raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
    if not body:
        raise ApiError(HTTPStatus.BAD_REQUEST, "the body is empty")
    try:
        asked = reviews.explain_flag(event.get_query_string_value(reviews.EXPLAIN))
        if media == TEXT:
            return reviews.review_text(body), asked
        document = read_json(body)
        return reviews.review_from_request(document), reviews.explain_from_request(document) or asked
    except JSONInputError as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {error}") from None
    except reviews.InvalidReview as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, str(error)) from None


def _endpoint_error(error: ClientError) -> ApiError:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    details = {"code": code, "error_message": message, "http_status": status}
    throttled = code in ("ThrottlingException", "TooManyRequestsException")
    # An error code that names the problem wins over a bare 429 status.
    if throttled or (status == 429 and code not in ("ModelNotReadyException", "ServiceUnavailable")):
        logger.warning("endpoint throttled", extra=details)
        return ApiError(HTTPStatus.TOO_MANY_REQUESTS, "too many requests; retry shortly", RETRY_AFTER_SECONDS)
    if code == "ModelNotReadyException":  # SageMaker says so: a serverless endpoint still starting
        logger.warning("endpoint warming up", extra=details)
        metrics.add_metric(name="EndpointWarmingUp", unit=MetricUnit.Count, value=1)
        return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "the model is warming up; retry shortly",
                        WARM_UP_RETRY_AFTER_SECONDS)
    if code == "ServiceUnavailable" or status == 503:  # also a bare 503
        logger.warning("endpoint unavailable", extra=details)
        return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "the model is not ready; retry shortly", RETRY_AFTER_SECONDS)
    if code == "ModelError":
        logger.error("model error", extra={
            **details,
            "original_status": error.response.get("OriginalStatusCode"),
            "original_message": error.response.get("OriginalMessage"),
        })
        return ApiError(HTTPStatus.BAD_GATEWAY, "the model failed to score the review")
    if code == "ValidationError" and "not found" in message.lower():
        # Broken, not cold: waiting does not bring a deleted endpoint back.
        logger.error("endpoint missing", extra=details)
        return ApiError(HTTPStatus.BAD_GATEWAY, "the model endpoint is missing")
    if code == "ValidationError":
        logger.warning("endpoint rejected the request", extra=details)
        return ApiError(HTTPStatus.BAD_REQUEST, "the model endpoint rejected the request as invalid")
    logger.error("endpoint call failed", extra=details)
    return ApiError(HTTPStatus.BAD_GATEWAY, "the model endpoint failed")


def invoke_model(review: str, explain: bool = False) -> reviews.Result:
    try:
        response = sagemaker_runtime.invoke_endpoint(
            EndpointName=ENDPOINT_NAME,
            ContentType=JSON,
            Accept=JSON,
            Body=json.dumps(reviews.request(review, explain)).encode("utf-8"),
        )
        payload = response["Body"].read()
    except ClientError as error:
        raise _endpoint_error(error) from None
    except ReadTimeoutError as error:
        # The model answers a warm call in milliseconds; two attempts without an
        # answer are most likely a cold start holding the request.
        logger.warning("endpoint did not answer in time (cold start?)", extra={"error": str(error)})
        metrics.add_metric(name="EndpointWarmingUp", unit=MetricUnit.Count, value=1)
        raise ApiError(HTTPStatus.GATEWAY_TIMEOUT, "the model did not answer in time; it may be warming up, "
                       "retry shortly", WARM_UP_RETRY_AFTER_SECONDS) from None
    except ConnectTimeoutError as error:  # SageMaker Runtime itself out of reach: not a cold endpoint
        logger.error("endpoint unreachable in time", extra={"error": str(error)})
        raise ApiError(HTTPStatus.GATEWAY_TIMEOUT, "the model did not answer in time", RETRY_AFTER_SECONDS) from None
    except BotoCoreError as error:
        logger.error("endpoint unreachable", extra={"error": str(error)})
        raise ApiError(HTTPStatus.BAD_GATEWAY, "the model endpoint is unreachable") from None
    try:
        result = reviews.read_result(read_json(payload))
    except ValueError:  # not JSON, JSON past the reader's limits, or not a result
        logger.error("unexpected endpoint response", extra={"response": payload[:512].decode("utf-8", "replace")})
        raise ApiError(HTTPStatus.BAD_GATEWAY, "the model returned an unexpected response") from None
    if reviews.ERROR in result:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"the review cannot be scored: {result[reviews.ERROR]}")
    return result


@app.post("/score")
def score() -> reviews.Result:
    result = invoke_model(*read_request(app.current_event))
    metrics.add_metric(name="ReviewsScored", unit=MetricUnit.Count, value=1)
    return result


def _error_response(status: HTTPStatus, message: str, retry_after: int | None = None) -> Response:
    metrics.add_metric(name="ClientErrors" if status < 500 else "ServerErrors", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"message": message},
        headers={"Retry-After": str(retry_after)} if retry_after else None,
    )


@app.exception_handler(ApiError)
def api_error(error: ApiError) -> Response:
    logger.info("request refused", extra={"status": int(error.status), "reason": error.message})
    return _error_response(error.status, error.message, error.retry_after)


@app.not_found
def not_found(_: NotFoundError) -> Response:
    return _error_response(HTTPStatus.NOT_FOUND, "not found: POST /score")


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response:
    logger.exception("unhandled error")
    return _error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
