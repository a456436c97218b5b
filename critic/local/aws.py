"""The AWS endpoint (default http://127.0.0.1:4566): one URL for every
service, like LocalStack's, so `aws --endpoint-url` and boto3's
AWS_ENDPOINT_URL work.

SageMaker (`X-Amz-Target: SageMaker.*`) and SageMaker Runtime (requests
signed for "sagemaker" to /endpoints/<name>/invocations) go to
critic/local/sagemaker.py, except the models and endpoint configs, which moto
records once sagemaker.py has checked the request (critic/local/models.py);
Lambda's Invoke, GetFunctionConfiguration and UpdateFunctionConfiguration go
to the stack's functions;
everything else goes to moto's server, which answers S3 and SQS (and any
other service a client might try, so nothing reaches a real account). A
web browser's S3 requests get what S3 gives them and moto's server does not
(critic/local/s3browser.py): CORS by the bucket's configuration, and a
browser-based upload's POST policy checked. After
a request that changes queued messages, the queues are saved. A request moto cannot parse (it raises, where AWS would
refuse the request) gets AWS's XML error shape with status 400, not an HTML
page and a traceback.
"""
from __future__ import annotations

import io
import json
import logging
import re
from typing import Any, Callable
from urllib.parse import unquote
from xml.sax.saxutils import escape

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.wrappers import Request, Response

from critic.local import s3 as local_s3, s3browser
from critic.local.sagemaker import MOTO_OPERATIONS, Endpoint, TransformJobs, check_moto_request, handle_sagemaker
from critic.local.sqs import CHANGING_ACTIONS

_INVOCATIONS = re.compile(r"^/endpoints/([^/]+)/invocations$")
_LAMBDA_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_LAMBDA_CONFIGURATION = re.compile(r"^/2015-03-31/functions/([^/]+)/configuration/?$")
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")
LOG = logging.getLogger("critic.aws")


class AwsEndpoint:
    def __init__(self, jobs: TransformJobs, endpoint: Endpoint, after_s3_change: Callable[[str], None],
                 info: Callable[[], dict], after_sqs_change: Callable[[], None] | None = None,
                 invoke_function: Callable[[str, Any, bool], Any] | None = None, registry=None,
                 configure_function: Callable[[str, dict | None], dict | None] | None = None):
        """invoke_function(name or ARN, event, asynchronous): True (queued),
        an InvokeResult, or None when there is no such function;
        configure_function(name or ARN, changes or None to read): the
        function's configuration, or None when there is no such function;
        registry: the models (critic/local/models.py), for UpdateEndpoint and
        the checks of the requests moto answers."""
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.jobs = jobs
        self.endpoint = endpoint
        self.after_s3_change = after_s3_change
        self.after_sqs_change = after_sqs_change
        self.invoke_function = invoke_function
        self.configure_function = configure_function
        self.registry = registry
        self.info = info

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = scope.group(1) if scope else None
        if path == "/_critic/stack" and environ.get("REQUEST_METHOD") == "GET":
            return Response(json.dumps(self.info()), content_type="application/json")(environ, start_response)
        if target.startswith("SageMaker."):
            data = Request(environ).get_data()
            operation = target.split(".", 1)[1]
            if operation in MOTO_OPERATIONS and self.registry is not None:
                refused = check_moto_request(self.registry, self.jobs.region, operation, data)
                if refused is None:
                    environ["wsgi.input"] = io.BytesIO(data)  # read once already
                    return self.moto(environ, start_response)
                status, headers, body = refused
            else:
                status, headers, body = handle_sagemaker(self.jobs, target, data, self.registry)
            return Response(body, status=status, headers=headers)(environ, start_response)
        invocation = _INVOCATIONS.match(path)
        if invocation and environ.get("REQUEST_METHOD") == "POST" and service in (None, "sagemaker"):
            request = Request(environ)
            status, headers, body = self.endpoint.handle(
                unquote(invocation.group(1)), request.get_data(),
                request.headers.get("Content-Type", ""), request.headers.get("Accept", ""))
            return Response(body, status=status, headers=headers)(environ, start_response)
        function = _LAMBDA_INVOKE.match(path)
        if function and environ.get("REQUEST_METHOD") == "POST" and service == "lambda" and self.invoke_function:
            return self._invoke(unquote(function.group(1)), Request(environ))(environ, start_response)
        configuration = _LAMBDA_CONFIGURATION.match(path)
        if configuration and service == "lambda" and self.configure_function:
            return self._configure(unquote(configuration.group(1)), Request(environ))(environ, start_response)
        sqs_action = _sqs_action(environ, target) if service == "sqs" else None
        if service is None and s3browser.bucket_of(path) in local_s3.backend().buckets:
            browser = self._browser(environ)
            if browser is not None:
                return browser(environ, start_response)
            start_response = _with_bucket_cors(environ, start_response)
        try:
            result = self.moto(environ, start_response)
        except Exception as error:  # noqa: BLE001 - moto's parser gave up on the request
            return self._unparseable(environ, error)(environ, start_response)
        if environ.get("REQUEST_METHOD") in ("PUT", "DELETE", "POST") and service in (None, "s3"):
            self.after_s3_change(environ["REQUEST_METHOD"])  # buckets created or deleted, objects deleted
        if sqs_action in CHANGING_ACTIONS and self.after_sqs_change:
            self.after_sqs_change()
        return result

    @staticmethod
    def _browser(environ) -> Response | None:
        """S3's own answer to a browser's request to a bucket, when it is not
        moto's: a CORS preflight, or a POST its policy refuses."""
        path, origin = environ.get("PATH_INFO", ""), environ.get("HTTP_ORIGIN")
        method = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
        if environ.get("REQUEST_METHOD") == "OPTIONS" and origin and method:
            return s3browser.preflight(path, origin, method, environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", ""))
        if not s3browser.is_form_post(environ):
            return None
        try:
            s3browser.check_form_post(environ)
        except s3browser.PolicyRefused as refused:
            LOG.info("refused a browser upload to %s: %s", path, refused.message)
            response = s3browser.error_response(refused.status, refused.code, refused.message)
            for name, value in s3browser.cors_headers(path, origin, "POST"):
                response.headers[name] = value
            return response
        return None

    def _invoke(self, name: str, request: Request) -> Response:
        """Lambda's Invoke: InvocationType Event (202, queued) or RequestResponse."""
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        try:
            event = json.loads(request.get_data() or b"{}")
        except ValueError:
            return _lambda_error(400, "InvalidRequestContentException", "Could not parse request body into json")
        result = self.invoke_function(name, event, kind == "Event")
        if result is None:
            return _lambda_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        if kind == "Event":
            return Response(b"", status=202)
        if result.ok:
            return Response(json.dumps(result.payload), status=200, content_type="application/json",
                            headers={"X-Amz-Executed-Version": "$LATEST"})
        return Response(json.dumps(result.error), status=200, content_type="application/json",
                        headers={"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"})

    def _configure(self, name: str, request: Request) -> Response:
        """GetFunctionConfiguration (GET) and UpdateFunctionConfiguration (PUT:
        the Environment only, what a stack update changes when the model does)."""
        changes = None
        if request.method == "PUT":
            try:
                changes = json.loads(request.get_data() or b"{}")
            except ValueError:
                return _lambda_error(400, "InvalidRequestContentException", "Could not parse request body into json")
            unsupported = sorted(set(changes) - {"Environment"})
            if unsupported:
                return _lambda_error(400, "InvalidParameterValueException",
                                     "The local stack changes a function's Environment only, not "
                                     + ", ".join(unsupported))
        elif request.method != "GET":
            return _lambda_error(405, "MethodNotAllowedException", f"{request.method} is not allowed here")
        configuration = self.configure_function(name, changes)
        if configuration is None:
            return _lambda_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        return Response(json.dumps(configuration), status=200, content_type="application/json")

    @staticmethod
    def _unparseable(environ, error: Exception) -> Response:
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        LOG.warning("refused %s %s: moto could not handle it (%s: %s)", method, path, type(error).__name__, error)
        LOG.debug("moto's traceback", exc_info=error)
        message = (f"{method} {path} is not a request the local AWS endpoint understands "
                   "(S3, SageMaker and SageMaker Runtime requests are)")
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidRequest</Code>"
                f"<Message>{escape(message)}</Message><Resource>{escape(path)}</Resource></Error>")
        return Response(body, status=400, content_type="application/xml")


def _with_bucket_cors(environ, start_response):
    """start_response with moto server's any-origin CORS headers replaced by
    those the bucket's CORS configuration gives."""
    added = s3browser.cors_headers(environ.get("PATH_INFO", ""), environ.get("HTTP_ORIGIN"),
                                   environ.get("REQUEST_METHOD", ""))

    def replaced(status, headers, exc_info=None):
        kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-") and k.lower() != "vary"]
        return start_response(status, kept + added, exc_info)
    return replaced


def _sqs_action(environ, target: str) -> str | None:
    """The SQS operation of a request: the JSON protocol's X-Amz-Target (what
    boto3 and the AWS CLI send), or a query string's Action."""
    if target.startswith("AmazonSQS."):
        return target.split(".", 1)[1]
    query = environ.get("QUERY_STRING", "")
    for pair in query.split("&"):
        if pair.startswith("Action="):
            return pair[len("Action="):]
    return None


def _lambda_error(status: int, code: str, message: str) -> Response:
    return Response(json.dumps({"Type": "User", "message": message}), status=status,
                    content_type="application/json", headers={"x-amzn-ErrorType": code})
