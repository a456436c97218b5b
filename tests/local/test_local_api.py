"""The local HTTP API: requests become API Gateway HTTP API payload 2.0
events, handler answers become HTTP responses, with the HTTP API's CORS,
errors and base64 rules; the web page and its generated config.js."""
from __future__ import annotations

import base64
import json
import textwrap

import pytest
from werkzeug.test import Client

from critic.local.api import HttpApiGateway
from critic.local.lambdas import LambdaFunction, endpoint_variables, function_environment
from critic.local.template import Function, HttpApi, Route

HANDLER = """
    import base64, json

    def lambda_handler(event, context):
        mode = (event.get("queryStringParameters") or {}).get("mode", "echo")
        if mode == "echo":
            return {"statusCode": 200, "headers": {"content-type": "application/json"},
                    "body": json.dumps(event)}
        if mode == "plain":
            return {"label": "positive"}
        if mode == "binary":
            return {"statusCode": 201, "isBase64Encoded": True, "headers": {"content-type": "image/png"},
                    "body": base64.b64encode(b"\\x89PNG").decode(), "cookies": ["a=1", "b=2"]}
        if mode == "cors":
            return {"statusCode": 200, "headers": {"access-control-allow-origin": "https://evil.example"},
                    "body": "x"}
        if mode == "bad":
            return {"statusCode": "not a number"}
        raise RuntimeError("boom")
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    (folder / "fn").mkdir()
    (folder / "fn" / "app.py").write_text(textwrap.dedent(HANDLER))
    (folder / "web").mkdir()
    (folder / "web" / "index.html").write_text("<!doctype html><title>page</title>")
    (folder / "web" / "config.js").write_text("window.CRITIC_CONFIG = {apiUrl: 'https://deployed'};")
    spec = Function("Fn", "critic-fn", "app.lambda_handler", folder / "fn", "python3.12", 5, 128, {})
    function = LambdaFunction(spec, function_environment(spec, endpoint_variables("http://127.0.0.1:9"), "us-east-1"),
                              log=lambda name, line: None)
    api = HttpApi("Api", "abc123", {"AllowOrigins": ["http://allowed.example"], "AllowMethods": ["POST"],
                                    "AllowHeaders": ["content-type"], "MaxAge": 600,
                                    "ExposeHeaders": ["retry-after"]},
                  [Route("POST", "/score", "Fn"), Route("GET", "/items/{id}", "Fn"), Route("ANY", "/files/{path+}", "Fn")])
    yield Client(HttpApiGateway(api, {"Fn": function}, "us-east-1", folder / "web"), use_cookies=False)
    function.close()


def test_a_request_becomes_a_payload_2_event(gateway):
    response = gateway.post("/score?mode=echo&a=1&a=2", data=b'{"review": "good"}',
                            headers={"Content-Type": "application/json", "X-Custom": "v", "Cookie": "c1=x; c2=y"})
    assert response.status_code == 200
    event = json.loads(response.data)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /score"
    assert event["rawPath"] == "/score"
    assert event["rawQueryString"] == "mode=echo&a=1&a=2"
    assert event["queryStringParameters"] == {"mode": "echo", "a": "1,2"}
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["x-custom"] == "v"
    assert "cookie" not in event["headers"] and event["cookies"] == ["c1=x", "c2=y"]
    assert event["body"] == '{"review": "good"}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"]["method"] == "POST" and context["http"]["path"] == "/score"
    assert context["http"]["sourceIp"] and context["apiId"] == "abc123" and context["stage"] == "$default"
    assert context["routeKey"] == "POST /score" and context["requestId"] == response.headers["apigw-requestid"]
    assert isinstance(context["timeEpoch"], int)


def test_binary_bodies_are_base64_and_path_parameters_are_passed(gateway):
    event = json.loads(gateway.get("/items/42?mode=echo").data)
    assert event["pathParameters"] == {"id": "42"} and "body" not in event
    event = json.loads(gateway.post("/files/a/b.png?mode=echo", data=b"\x89PNG\xff",
                                    headers={"Content-Type": "image/png"}).data)
    assert event["routeKey"] == "ANY /files/{path+}" and event["pathParameters"] == {"path": "a/b.png"}
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x89PNG\xff"


def test_handler_answers_become_http_responses(gateway):
    plain = gateway.post("/score?mode=plain", data=b"x", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 200 and plain.headers["Content-Type"] == "application/json"
    assert json.loads(plain.data) == {"label": "positive"}
    binary = gateway.post("/score?mode=binary", data=b"x", headers={"Content-Type": "text/plain"})
    assert binary.status_code == 201 and binary.data == b"\x89PNG"
    assert binary.headers.getlist("Set-Cookie") == ["a=1", "b=2"]


@pytest.mark.parametrize("mode", ["bad", "raise"])
def test_a_failing_function_is_a_500_with_a_message(gateway, mode):
    response = gateway.post(f"/score?mode={mode}", data=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 500
    assert json.loads(response.data) == {"message": "Internal Server Error"}


def test_unknown_routes_and_oversized_bodies(gateway):
    assert gateway.get("/score").status_code == 404  # POST only
    assert json.loads(gateway.delete("/nowhere").data) == {"message": "Not Found"}
    big = gateway.post("/score", data=b"x" * (10 * 1024 * 1024 + 1), headers={"Content-Type": "text/plain"})
    assert big.status_code == 413 and json.loads(big.data) == {"message": "Request Entity Too Large"}


def test_cors_preflight_and_headers_follow_the_api_configuration(gateway):
    preflight = gateway.options("/score", headers={"Origin": "http://allowed.example",
                                                   "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"
    assert preflight.headers["Access-Control-Max-Age"] == "600"
    refused = gateway.options("/score", headers={"Origin": "http://other.example",
                                                 "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in refused.headers
    actual = gateway.post("/score?mode=cors", data=b"x",
                          headers={"Content-Type": "text/plain", "Origin": "http://allowed.example"})
    assert actual.headers["Access-Control-Allow-Origin"] == "http://allowed.example"  # not the handler's
    assert actual.headers["Access-Control-Expose-Headers"] == "retry-after"


def test_the_web_page_is_served_with_a_config_pointing_at_this_api(gateway):
    page = gateway.get("/")
    assert page.status_code == 200 and b"<title>page</title>" in page.data
    assert page.headers["Content-Type"].startswith("text/html")
    config = gateway.get("/config.js", base_url="http://127.0.0.1:3999")
    assert config.status_code == 200
    assert b'window.CRITIC_CONFIG = { apiUrl: "http://127.0.0.1:3999" };' in config.data
    assert gateway.get("/../api/fn/app.py").status_code == 404
