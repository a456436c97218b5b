"""API Gateway HTTP API on one machine: each HTTP request becomes the payload
format 2.0 event API Gateway sends to the route's Lambda function, and the
function's answer becomes the HTTP response, with the HTTP API's rules
(inferred responses, base64 bodies, cookies, CORS preflight and headers,
404 / 413 / 500 answers with {"message": ...}).

The same server serves the web page (web/) at / with a generated config.js
that points the page at this API, for GET requests no API route claims.
"""
from __future__ import annotations

import base64
import datetime
import json
import logging
import mimetypes
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.security import safe_join
from werkzeug.wrappers import Request, Response

from critic.local.lambdas import LambdaFunction
from critic.local.ids import ACCOUNT_ID
from critic.local.template import HttpApi, Route

LOG = logging.getLogger("critic.api")

MAX_BODY = 10 * 1024 * 1024  # HTTP API's payload limit
_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|.*\+json|xml|.*\+xml|javascript|x-www-form-urlencoded|jsonlines|x-ndjson|csv))$"
)


@dataclass
class _CompiledRoute:
    route: Route
    pattern: re.Pattern | None
    rank: tuple


def _compile(route: Route) -> _CompiledRoute:
    if route.path == "$default":
        return _CompiledRoute(route, None, (3, 0, 0))
    parts, greedy, params = [], False, 0
    for segment in route.path.strip("/").split("/") if route.path != "/" else []:
        match = re.fullmatch(r"\{([A-Za-z0-9_.-]+)(\+?)\}", segment)
        if match:
            params += 1
            greedy = greedy or bool(match.group(2))
            name = re.sub(r"\W", "_", match.group(1))
            parts.append(f"(?P<{name}>.+)" if match.group(2) else f"(?P<{name}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    pattern = re.compile("^/" + "/".join(parts) + "/?$")
    # Most specific first: static paths, then with parameters, then greedy;
    # an exact method before ANY.
    return _CompiledRoute(route, pattern, (2 if greedy else 1 if params else 0, params,
                                           1 if route.method == "ANY" else 0))


class HttpApiGateway:
    def __init__(self, api: HttpApi, functions: dict[str, LambdaFunction], region: str,
                 web_dir: Path | None = None):
        self.api = api
        self.functions = functions
        self.region = region
        self.web_dir = web_dir
        self.routes = sorted((_compile(r) for r in api.routes), key=lambda c: c.rank)

    # -- WSGI --------------------------------------------------------------- #

    def __call__(self, environ, start_response):
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        request_id = base64.b32encode(uuid.uuid4().bytes[:10]).decode().rstrip("=")
        origin = request.headers.get("Origin")
        if (self.api.cors and request.method == "OPTIONS" and origin
                and request.headers.get("Access-Control-Request-Method")):
            return self._preflight(request, origin, request_id)
        route, params = self._match(request.method, request.path, catch_all=False)
        if route is None and request.method in ("GET", "HEAD") and self.web_dir is not None:
            static = self._static(request)
            if static is not None:
                return static
        if route is None:
            route, params = self._match(request.method, request.path, catch_all=True)
        if route is None:
            response = _message(404, "Not Found")
        else:
            response = self._integrate(request, route, params, request_id)
        response.headers["apigw-requestid"] = request_id
        self._cors_headers(response, origin)
        return response

    def _match(self, method: str, path: str, catch_all: bool) -> tuple[Route | None, dict]:
        """The route for a request among the specific routes, or among the
        catch-all ones ($default and greedy {name+} paths)."""
        for compiled in self.routes:
            route = compiled.route
            if (compiled.pattern is None or compiled.rank[0] == 2) != catch_all:
                continue
            if route.method not in ("ANY", method):
                continue
            if compiled.pattern is None:
                return route, {}
            match = compiled.pattern.match(path)
            if match:
                names = re.findall(r"\{([A-Za-z0-9_.-]+)\+?\}", route.path)
                return route, dict(zip(names, match.groups()))
        return None, {}

    # -- Lambda integration -------------------------------------------------- #

    def event(self, request: Request, route: Route, params: dict, request_id: str, body: bytes) -> dict:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            if key == "cookie":
                continue
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        source_ip = request.remote_addr or "127.0.0.1"
        headers.setdefault("x-forwarded-for", source_ip)
        headers.setdefault("x-forwarded-proto", request.scheme)
        headers.setdefault("x-forwarded-port", str(request.host.rsplit(":", 1)[-1]) if ":" in request.host else "80")
        now = datetime.datetime.now(datetime.timezone.utc)
        host = request.host
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode("latin-1"),
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": self.api.api_id,
                "domainName": host,
                "domainPrefix": host.split(".")[0].split(":")[0],
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    "sourceIp": source_ip,
                    "userAgent": request.headers.get("User-Agent", ""),
                },
                "requestId": request_id,
                "routeKey": route.route_key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": False,
        }
        cookie_header = request.headers.get("Cookie")
        if cookie_header:
            event["cookies"] = [c.strip() for c in cookie_header.split(";") if c.strip()]
        query: dict[str, str] = {}
        for key, value in parse_qsl(event["rawQueryString"], keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        if query:
            event["queryStringParameters"] = query
        if params:
            event["pathParameters"] = params
        if body:
            content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            text = None
            if _TEXT_TYPES.match(content_type):
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
            if text is None:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
            else:
                event["body"] = text
        return event

    def _integrate(self, request: Request, route: Route, params: dict, request_id: str) -> Response:
        if request.content_length and request.content_length > MAX_BODY:
            return _message(413, "Request Entity Too Large")
        body = request.get_data(cache=False)
        if len(body) > MAX_BODY:
            return _message(413, "Request Entity Too Large")
        function = self.functions.get(route.function)
        if function is None:
            return _message(500, "Internal Server Error")
        event = self.event(request, route, params, request_id, body)
        started = time.perf_counter()
        result = function.invoke(event)
        if not result.ok:
            LOG.warning("%s %s -> %s failed: %s: %s", request.method, request.path, route.function,
                        result.error.get("errorType"), result.error.get("errorMessage"))
            return _message(500, "Internal Server Error")
        try:
            response = self._response(result.payload)
        except (TypeError, ValueError, KeyError) as error:
            LOG.warning("%s returned a response API Gateway cannot use: %s", route.function, error)
            return _message(500, "Internal Server Error")
        LOG.debug("%s %s -> %d in %.1f ms", request.method, request.path, response.status_code,
                  (time.perf_counter() - started) * 1000)
        return response

    @staticmethod
    def _response(payload: Any) -> Response:
        """Payload format 2.0: a result with a statusCode is the response; any
        other JSON value is the body of a 200 application/json response."""
        if not (isinstance(payload, dict) and "statusCode" in payload):
            body = payload if isinstance(payload, str) else json.dumps(payload)
            return Response(body, status=200, content_type="application/json")
        status = int(payload["statusCode"])
        body = payload.get("body")
        if body is None:
            data = b""
        elif payload.get("isBase64Encoded"):
            data = base64.b64decode(body)
        else:
            data = body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode()
        response = Response(data, status=status)
        response.headers.remove("Content-Type")
        for name, value in (payload.get("headers") or {}).items():
            response.headers[name] = str(value)
        for cookie in payload.get("cookies") or []:
            response.headers.add("Set-Cookie", cookie)
        return response

    # -- CORS (the HTTP API's CorsConfiguration) ----------------------------- #

    def _origin_allowed(self, origin: str) -> bool:
        allowed = [o.rstrip("/") for o in (self.api.cors or {}).get("AllowOrigins") or []]
        return "*" in allowed or origin.rstrip("/") in allowed

    def _preflight(self, request: Request, origin: str, request_id: str) -> Response:
        response = Response(status=204)
        response.headers.remove("Content-Type")
        response.headers["apigw-requestid"] = request_id
        cors = self.api.cors or {}
        if not self._origin_allowed(origin):
            return response
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in (cors.get("AllowOrigins") or []) \
            and not cors.get("AllowCredentials") else origin
        methods = cors.get("AllowMethods") or []
        response.headers["Access-Control-Allow-Methods"] = ",".join(methods) if "*" not in methods else \
            request.headers.get("Access-Control-Request-Method", "*")
        headers = cors.get("AllowHeaders") or []
        if headers:
            response.headers["Access-Control-Allow-Headers"] = ",".join(headers) if "*" not in headers else \
                request.headers.get("Access-Control-Request-Headers", "*")
        if cors.get("MaxAge") is not None:
            response.headers["Access-Control-Max-Age"] = str(cors["MaxAge"])
        if cors.get("AllowCredentials"):
            response.headers["Access-Control-Allow-Credentials"] = "true"
        return response

    def _cors_headers(self, response: Response, origin: str | None) -> None:
        cors = self.api.cors
        if not cors or not origin or not self._origin_allowed(origin):
            return
        for name in [h for h in response.headers.keys() if h.lower().startswith("access-control-")]:
            del response.headers[name]  # the API's configuration overrides the function's
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in (cors.get("AllowOrigins") or []) \
            and not cors.get("AllowCredentials") else origin
        if cors.get("ExposeHeaders"):
            response.headers["Access-Control-Expose-Headers"] = ",".join(cors["ExposeHeaders"])
        if cors.get("AllowCredentials"):
            response.headers["Access-Control-Allow-Credentials"] = "true"

    # -- the web page --------------------------------------------------------- #

    def _static(self, request: Request) -> Response | None:
        path = request.path
        if path == "/config.js":
            api_url = f"{request.scheme}://{request.host}"
            body = ("// Written by the local stack (critic serve): the page talks to this API.\n"
                    f"window.CRITIC_CONFIG = {{ apiUrl: {json.dumps(api_url)} }};\n")
            return _no_store(Response(body, content_type="text/javascript; charset=utf-8"))
        relative = "index.html" if path in ("", "/") else path.lstrip("/")
        target = safe_join(str(self.web_dir), relative)
        if target is None or not Path(target).is_file():
            return None
        content_type = mimetypes.guess_type(target)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type in ("application/javascript", "image/svg+xml"):
            content_type += "; charset=utf-8"
        data = Path(target).read_bytes()
        return _no_store(Response(b"" if request.method == "HEAD" else data, content_type=content_type,
                                  headers={"Content-Length": str(len(data))}))


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _message(status: int, message: str) -> Response:
    return Response(json.dumps({"message": message}), status=status, content_type="application/json")
