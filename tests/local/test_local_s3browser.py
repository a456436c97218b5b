"""critic/local/s3browser.py on its own: a browser upload's POST policy as S3
checks it (what tests/local/test_local_uploads_e2e.py cannot wait for: a
policy's expiry)."""
from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from werkzeug.test import EnvironBuilder

from critic.local import s3browser

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def form_post(conditions: list, expires: datetime, fields: dict | None = None, data: bytes = b"12345") -> dict:
    policy = base64.b64encode(json.dumps({"expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                          "conditions": conditions}).encode()).decode()
    form = {"key": "uploads/a/r.txt", "Content-Type": "text/plain", "policy": policy, "x-amz-signature": "s",
            **(fields or {}), "file": (io.BytesIO(data), "r.txt")}
    return EnvironBuilder(path="/bucket", method="POST", data=form).get_environ()


CONDITIONS = [{"bucket": "bucket"}, {"key": "uploads/a/r.txt"}, {"Content-Type": "text/plain"},
              ["content-length-range", 5, 5]]


def test_a_valid_post_passes_and_stays_readable():
    environ = form_post(CONDITIONS, NOW + timedelta(minutes=10))
    assert s3browser.is_form_post(environ)
    s3browser.check_form_post(environ, now=NOW)
    assert b"12345" in environ["wsgi.input"].read()  # moto reads the same body next


@pytest.mark.parametrize("conditions, expires, fields, data, code", [
    (CONDITIONS, NOW, None, b"12345", "AccessDenied"),  # expired (at its expiration)
    (CONDITIONS, NOW + timedelta(minutes=1), None, b"123456", "EntityTooLarge"),
    (CONDITIONS, NOW + timedelta(minutes=1), None, b"1234", "EntityTooSmall"),
    (CONDITIONS, NOW + timedelta(minutes=1), {"key": "uploads/b/r.txt"}, b"12345", "AccessDenied"),
    (CONDITIONS, NOW + timedelta(minutes=1), {"x-amz-meta-owner": "me"}, b"12345", "AccessDenied"),  # not covered
    ([["starts-with", "$key", "other/"]], NOW + timedelta(minutes=1), None, b"12345", "AccessDenied"),
])
def test_what_s3_refuses_is_refused_with_its_code(conditions, expires, fields, data, code):
    with pytest.raises(s3browser.PolicyRefused) as refused:
        s3browser.check_form_post(form_post(conditions, expires, fields, data), now=NOW)
    assert refused.value.code == code


def test_an_expired_policy_says_so_as_s3_does():
    with pytest.raises(s3browser.PolicyRefused) as refused:
        s3browser.check_form_post(form_post(CONDITIONS, NOW - timedelta(seconds=1)), now=NOW)
    assert (refused.value.status, refused.value.message) == (403, "Invalid according to Policy: Policy expired.")
