"""S3 on one machine: moto's S3 (the protocol, in this process), made
persistent, with the notifications AWS would send.

- Every object created or removed through the stack's endpoint, by any client
  and any way (PutObject, POST, CopyObject, CompleteMultipartUpload,
  DeleteObject(s)), passes through moto's notification hook; the stack's
  ObjectEvents listens there, its S3Store writes the object to the data folder
  (so it survives a restart) and its event bus (critic/local/events.py) sends
  what S3 would, in the records built here.
- Buckets are saved when they are created or deleted, and after a DELETE the
  saved objects are checked (moto sends no event for a delete marker); on
  start, everything is loaded back into moto without sending notifications.

Only the latest version of each object is kept across restarts (with its
VersionId, ETag, metadata and last-modified time).
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote_plus

from moto.s3 import notifications as moto_notifications
from moto.s3.models import s3_backends

from critic.local.ids import ACCOUNT_ID, eventbridge_event

LOG = logging.getLogger("critic.s3")


class ObjectEvents:
    """moto's S3 notification hook for one stack: while installed (from the
    stack's start to its stop), every object event raised by a request the
    stack's endpoint serves goes to `listener(event_name, bucket, key)`
    (event_name like "s3:ObjectCreated:Put"; bucket and key are moto's).

    moto raises its events through one module function,
    moto.s3.notifications.send_event, in the thread that handles the request:
    install() wraps it, and serve(app) marks the threads running this stack's
    WSGI application, so two stacks in one process (they share moto's S3)
    each hear only their own requests. A listener's failure is logged and
    never fails the S3 request."""

    def __init__(self, listener: Callable[[str, Any, Any], None]):
        self.listener = listener
        self._scope = threading.local()
        self._installed = False
        self._next: Callable = moto_notifications.send_event

    def install(self) -> None:
        self._next = moto_notifications.send_event
        moto_notifications.send_event = self._send_event
        self._installed = True

    def remove(self) -> None:
        self._installed = False
        if moto_notifications.send_event == self._send_event:
            moto_notifications.send_event = self._next
        # Otherwise a hook installed later wraps this one, which now passes events on.

    def __enter__(self) -> ObjectEvents:
        self.install()
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Events raised in this thread inside the block reach the listener."""
        self._scope.depth = getattr(self._scope, "depth", 0) + 1
        try:
            yield
        finally:
            self._scope.depth -= 1

    def serve(self, app: Callable) -> Callable:
        """The WSGI application `app`, with its requests' events reaching the listener."""
        def scoped(environ, start_response):
            with self.scope():
                return app(environ, start_response)
        return scoped

    def _send_event(self, account_id, event_name, bucket, key) -> None:
        self._next(account_id, event_name, bucket, key)
        if not (self._installed and getattr(self._scope, "depth", 0)):
            return
        try:
            self.listener(str(getattr(event_name, "value", event_name)), bucket, key)
        except Exception:  # noqa: BLE001 - a listener's failure must not fail the S3 request
            LOG.exception("S3 event listener failed")


def backend():
    return s3_backends[ACCOUNT_ID]["aws"]


def _safe(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


class S3Store:
    """Keeps moto's S3 in the data folder: data/s3/<bucket>/bucket.json and
    objects/<hash>.json + .data."""

    def __init__(self, folder: Path, region: str):
        self.folder = folder
        self.region = region
        self._lock = threading.Lock()
        self._saved: set[tuple[str, str]] = set()  # (bucket, key) of the objects kept on disk

    # -- start ------------------------------------------------------------- #

    def restore(self) -> int:
        """Load saved buckets and objects into moto; return the object count."""
        count = 0
        s3 = backend()
        if not self.folder.is_dir():
            return 0
        for meta_path in sorted(self.folder.glob("*/bucket.json")):
            meta = json.loads(meta_path.read_text())
            if meta["name"] not in s3.buckets:
                s3.create_bucket(meta["name"], meta.get("region", self.region))
                if meta.get("versioned"):
                    s3.put_bucket_versioning(meta["name"], "Enabled")
            for object_path in (meta_path.parent / "objects").glob("*.json"):
                info = json.loads(object_path.read_text())
                data_path = object_path.with_suffix(".data")
                if not data_path.is_file():
                    continue
                key = s3.put_object(meta["name"], info["key"], data_path.read_bytes(), etag=info["etag"],
                                    disable_notification=True)
                key.set_metadata(dict(info.get("metadata") or {}))
                key.last_modified = datetime.datetime.fromisoformat(info["last_modified"])
                if info.get("version_id") and key.version_id != "null":
                    key._version_id = info["version_id"]  # the same VersionId as before the restart
                self._saved.add((meta["name"], info["key"]))
                count += 1
        return count

    # -- changes ----------------------------------------------------------- #

    def sync_buckets(self) -> None:
        """Save new buckets and forget deleted ones."""
        s3 = backend()
        with self._lock:
            live = set(s3.buckets)
            saved = {p.parent.name: p for p in self.folder.glob("*/bucket.json")} if self.folder.is_dir() else {}
            for name in live - set(saved):
                bucket = s3.buckets[name]
                folder = self.folder / name
                (folder / "objects").mkdir(parents=True, exist_ok=True)
                _write_json(folder / "bucket.json", {"name": name, "region": bucket.region_name,
                                                     "versioned": bool(bucket.is_versioned)})
            for name in set(saved) - live:
                shutil.rmtree(self.folder / name, ignore_errors=True)

    def on_object_event(self, event_name: str, bucket, key) -> None:
        if not (event_name.startswith("s3:ObjectCreated") or event_name.startswith("s3:ObjectRemoved")):
            return
        self.sync_buckets()
        self._sync_key(bucket, key.name)

    def sync_deletions(self) -> None:
        """Forget saved objects that are gone (moto sends no event when a
        versioned bucket gets a delete marker)."""
        s3 = backend()
        for bucket_name, key_name in list(self._saved):
            bucket = s3.buckets.get(bucket_name)
            if bucket is None:
                self._saved.discard((bucket_name, key_name))
            else:
                self._sync_key(bucket, key_name)

    def _sync_key(self, bucket, key_name: str) -> None:
        current = bucket.keys.get(key_name)
        folder = self.folder / bucket.name / "objects"
        base = folder / _safe(key_name)
        with self._lock:
            if current is None or not hasattr(current, "value"):  # deleted, or a delete marker
                base.with_suffix(".json").unlink(missing_ok=True)
                base.with_suffix(".data").unlink(missing_ok=True)
                self._saved.discard((bucket.name, key_name))
                return
            if (bucket.name, key_name) in self._saved and base.with_suffix(".json").is_file():
                saved = json.loads(base.with_suffix(".json").read_text())
                if saved.get("version_id") == current.version_id and saved.get("etag") == current.etag.strip('"'):
                    return  # already on disk
            self._saved.add((bucket.name, key_name))
            folder.mkdir(parents=True, exist_ok=True)
            tmp = base.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(current.value)
            os.replace(tmp, base.with_suffix(".data"))
            _write_json(base.with_suffix(".json"), {
                "key": current.name,
                "etag": current.etag.strip('"'),
                "metadata": dict(current.metadata),
                "last_modified": current.last_modified.isoformat(),
                "version_id": current.version_id,
            })


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- #
# The event S3 sends
# --------------------------------------------------------------------------- #

class Sequencer:
    """S3's `sequencer`: a hex string that grows with every event on a key."""

    def __init__(self):
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return f"{self._last:018X}"


def s3_event_record(event_name: str, bucket, key, configuration_id: str, region: str, sequencer: str) -> dict:
    """One record of the event S3 sends to Lambda (event structure 2.1).
    The key is URL-encoded as S3 does ("red flower.jpg" -> "red+flower.jpg")."""
    now = datetime.datetime.now(datetime.timezone.utc)
    obj = {
        "key": quote_plus(key.name, safe="/"),
        "size": key.size,
        "eTag": key.etag.strip('"'),
        "sequencer": sequencer,
    }
    if bucket.is_versioned:
        obj["versionId"] = key.version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "eventName": event_name.removeprefix("s3:"),
        "userIdentity": {"principalId": f"AWS:{ACCOUNT_ID}"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
            "x-amz-id-2": uuid.uuid4().hex + uuid.uuid4().hex,
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": bucket.name,
                "ownerIdentity": {"principalId": ACCOUNT_ID},
                "arn": f"arn:aws:s3:::{bucket.name}",
            },
            "object": obj,
        },
    }


def eventbridge_object_created(event_name: str, bucket, key, region: str, sequencer: str) -> dict:
    """The EventBridge event S3 sends for a bucket with EventBridge enabled."""
    action = event_name.rsplit(":", 1)[-1]
    reason = {"Put": "PutObject", "Post": "POST Object", "Copy": "CopyObject",
              "CompleteMultipartUpload": "CompleteMultipartUpload"}.get(action, action)
    detail = {
        "version": "0",
        "bucket": {"name": bucket.name},
        "object": {"key": key.name, "size": key.size, "etag": key.etag.strip('"'), "sequencer": sequencer},
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": ACCOUNT_ID,
        "source-ip-address": "127.0.0.1",
        "reason": reason,
    }
    if bucket.is_versioned:
        detail["object"]["version-id"] = key.version_id
    return eventbridge_event("aws.s3", "Object Created", region, [f"arn:aws:s3:::{bucket.name}"], detail)
