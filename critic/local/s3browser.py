"""What S3 does for a web browser that moto's server does not, for the local
AWS endpoint (critic/local/aws.py):

- CORS as the bucket's CORS configuration says, where moto's server allows
  any origin on every response (flask-cors). S3's rules: the first rule whose
  origins, methods and headers allow the request answers it; a preflight no
  rule allows gets 403; an actual request no rule allows gets no CORS headers
  (so the browser refuses to show it to the page).
- Browser-based uploads (POST Object, multipart/form-data): moto stores any
  POST; S3 checks the POST policy first. Checked here as S3 does, with its
  error codes: the policy's expiration, each condition (exact match,
  ["eq", ...], ["starts-with", ...], ["content-length-range", min, max]) and
  that every form field is covered by one. The signature is not checked: the
  local stack enforces no IAM (README, "How it differs from AWS").
"""
from __future__ import annotations

import base64
import binascii
import fnmatch
import io
import json
from datetime import datetime, timezone
from typing import Any, Iterable
from xml.sax.saxutils import escape

from werkzeug.formparser import parse_form_data
from werkzeug.wrappers import Response

from critic.local import s3 as local_s3

# Form fields no policy condition needs to cover (S3's documentation of POST Object).
_UNCOVERED = {"policy", "x-amz-signature", "file", "signature", "awsaccesskeyid"}


def bucket_of(path: str) -> str:
    """The bucket a path-style request names (`/bucket/key` -> bucket)."""
    return path.lstrip("/").split("/", 1)[0]


def cors_rules(bucket_name: str) -> list:
    bucket = local_s3.backend().buckets.get(bucket_name)
    return list(bucket.cors) if bucket is not None else []


def _origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    return any(pattern == "*" or fnmatch.fnmatchcase(origin, pattern) for pattern in allowed)


def matching_rule(bucket_name: str, origin: str, method: str, headers: Iterable[str] = ()):
    """The first CORS rule of the bucket allowing this origin, method and headers."""
    wanted = [h.strip().lower() for h in headers if h.strip()]
    for rule in cors_rules(bucket_name):
        allowed_headers = [h.lower() for h in rule.allowed_headers or []]
        if (_origin_allowed(origin, rule.allowed_origins or []) and method in (rule.allowed_methods or [])
                and all(any(fnmatch.fnmatchcase(h, a) for a in allowed_headers) for h in wanted)):
            return rule
    return None


def _allow_origin(rule, origin: str) -> str:
    return "*" if "*" in (rule.allowed_origins or []) else origin


def preflight(path: str, origin: str, method: str, request_headers: str) -> Response:
    """S3's answer to `OPTIONS` with Origin and Access-Control-Request-Method."""
    requested = request_headers.split(",") if request_headers else []
    rule = matching_rule(bucket_of(path), origin, method, requested)
    if rule is None:
        return error_response(403, "AccessForbidden", "CORSResponse: This CORS request is not allowed. This is "
                              "usually because the evalution of Origin, request method / Access-Control-Request-"
                              "Method or Access-Control-Request-Headers are not whitelisted by the resource's "
                              "CORS spec.")
    response = Response(status=200)
    response.headers.remove("Content-Type")
    response.headers["Access-Control-Allow-Origin"] = _allow_origin(rule, origin)
    response.headers["Access-Control-Allow-Methods"] = ", ".join(rule.allowed_methods)
    if requested:
        response.headers["Access-Control-Allow-Headers"] = ", ".join(h.strip() for h in requested)
    if rule.exposed_headers:
        response.headers["Access-Control-Expose-Headers"] = ", ".join(rule.exposed_headers)
    if rule.max_age_seconds:
        response.headers["Access-Control-Max-Age"] = str(rule.max_age_seconds)
    response.headers["Vary"] = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
    return response


def cors_headers(path: str, origin: str | None, method: str) -> list[tuple[str, str]]:
    """The CORS headers S3 adds to an actual request's response (none without a matching rule)."""
    if not origin:
        return []
    rule = matching_rule(bucket_of(path), origin, method)
    if rule is None:
        return []
    headers = [("Access-Control-Allow-Origin", _allow_origin(rule, origin)),
               ("Access-Control-Allow-Methods", ", ".join(rule.allowed_methods)),
               ("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method")]
    if rule.exposed_headers:
        headers.append(("Access-Control-Expose-Headers", ", ".join(rule.exposed_headers)))
    return headers


def error_response(status: int, code: str, message: str) -> Response:
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>")
    return Response(body, status=status, content_type="application/xml")


class PolicyRefused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def is_form_post(environ) -> bool:
    """A browser-based upload: POST to a bucket (no key, no query) with a multipart form."""
    path = environ.get("PATH_INFO", "")
    return (environ.get("REQUEST_METHOD") == "POST" and "/" not in path.strip("/") and path.strip("/") != ""
            and not environ.get("QUERY_STRING") and
            environ.get("CONTENT_TYPE", "").lower().startswith("multipart/form-data"))


def check_form_post(environ, now: datetime | None = None) -> None:
    """Raise PolicyRefused as S3 would refuse this POST Object; leave the
    request readable again (its body is read here) either way."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
    environ["wsgi.input"] = io.BytesIO(body)
    _, form, files = parse_form_data(dict(environ, **{"wsgi.input": io.BytesIO(body)}))
    environ["wsgi.input"] = io.BytesIO(body)
    fields = {name.lower(): value for name, value in form.items()}
    file = files.get("file")
    if file is None:
        raise PolicyRefused(400, "InvalidArgument", "POST requires exactly one file upload per request.")
    file.stream.seek(0, io.SEEK_END)
    size = file.stream.tell()
    encoded = fields.get("policy")
    if not encoded:  # anonymous: the stack's buckets are not public
        raise PolicyRefused(403, "AccessDenied", "Access Denied")
    try:
        policy = json.loads(base64.b64decode(encoded, validate=True))
        expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
        conditions = policy["conditions"]
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise PolicyRefused(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
    if (now or datetime.now(timezone.utc)) >= expiration:
        raise PolicyRefused(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    fields["bucket"] = bucket_of(environ.get("PATH_INFO", ""))
    covered = {"bucket"}
    for condition in conditions:
        covered |= _check(condition, fields, size)
    extra = sorted(name for name in fields if name not in covered and name not in _UNCOVERED
                   and not name.startswith("x-ignore-"))
    if extra:
        raise PolicyRefused(403, "AccessDenied",
                            f"Invalid according to Policy: Extra input fields: {', '.join(extra)}")


def _failed(condition: Any) -> PolicyRefused:
    return PolicyRefused(403, "AccessDenied",
                         f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}")


def _check(condition: Any, fields: dict[str, str], size: int) -> set[str]:
    """Check one condition; the (lower-case) field names it covers."""
    if isinstance(condition, dict):
        names = set()
        for name, value in condition.items():
            if fields.get(name.lower()) != value:
                raise _failed(["eq", f"${name}", value])
            names.add(name.lower())
        return names
    if isinstance(condition, list) and len(condition) == 3 and condition[0] == "content-length-range":
        low, high = int(condition[1]), int(condition[2])
        if size > high:
            raise PolicyRefused(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        if size < low:
            raise PolicyRefused(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
        return set()
    if isinstance(condition, list) and len(condition) == 3 and condition[0] in ("eq", "starts-with"):
        name = str(condition[1]).lstrip("$").lower()
        value = fields.get(name, "")
        if (value != condition[2]) if condition[0] == "eq" else not value.startswith(condition[2]):
            raise _failed(condition)
        return {name}
    raise PolicyRefused(400, "InvalidPolicyDocument", f"Invalid Policy: Invalid condition: {json.dumps(condition)}")
