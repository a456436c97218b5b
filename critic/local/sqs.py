"""SQS on one machine: moto's queues (the protocol, in this process), kept in
the data folder across restarts, and Lambda's SQS event source mapping.

- `QueueStore` writes every queue's messages to data/sqs/<queue>.json after
  each request that changes them (send, delete, purge), atomically, and on
  start puts them back into moto. A message keeps its body, attributes, send
  time and what is left of its delay; one that was being handled when the
  stack stopped is visible again at once (as after its visibility timeout)
  and its receive count starts again from zero.
- `QueueReader` is an event source mapping (a SAM `SQS` event): pollers that
  receive up to BatchSize messages (waiting up to the batching window to fill
  a batch), invoke the function synchronously with Lambda's SQS event, and
  delete what it handled: every message, or, with ReportBatchItemFailures,
  all but the `batchItemFailures` it names (an answer naming a message not in
  the batch fails the whole batch, as AWS does). A failed invocation leaves
  the batch for SQS to deliver again after the visibility timeout, and SQS's
  redrive policy (moto implements it) moves a message received too often to
  its dead-letter queue. At most ScalingConfig.MaximumConcurrency (else 2)
  invocations run at once.

Written here because no library runs an SQS event source mapping in process
(LocalStack does, in Docker, which this machine lacks).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from moto.sqs.models import sqs_backends

from critic.local.ids import ACCOUNT_ID
from critic.local.template import Queue, QueueSource

LOG = logging.getLogger("critic.sqs")

# Requests after which the queues are saved (JSON protocol targets and query Actions).
CHANGING_ACTIONS = frozenset({"SendMessage", "SendMessageBatch", "DeleteMessage", "DeleteMessageBatch", "PurgeQueue",
                              "ReceiveMessage", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch",
                              "StartMessageMoveTask"})


def backend(region: str):
    return sqs_backends[ACCOUNT_ID][region]


def queue_url(aws_url: str, name: str) -> str:
    return f"{aws_url}/{ACCOUNT_ID}/{name}"


def create_queues(client, queues: list[Queue], region: str) -> None:
    """The template's queues, with the attributes the local stack honours
    (dead-letter queues first, so a redrive policy can name them)."""
    ordered = sorted(queues, key=lambda q: q.dead_letter_queue is not None)
    for queue in ordered:
        attributes = {"VisibilityTimeout": str(queue.visibility_timeout),
                      "MessageRetentionPeriod": str(queue.retention_seconds),
                      "DelaySeconds": str(queue.delay_seconds)}
        if queue.dead_letter_queue and queue.max_receive_count:
            attributes["RedrivePolicy"] = json.dumps({
                "deadLetterTargetArn": f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{queue.dead_letter_queue}",
                "maxReceiveCount": queue.max_receive_count})
        client.create_queue(QueueName=queue.name, Attributes=attributes)


class QueueStore:
    """Keeps moto's SQS messages in data/sqs/."""

    def __init__(self, folder: Path, region: str):
        self.folder = folder
        self.region = region
        self._lock = threading.Lock()

    def save(self) -> None:
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            now = time.time() * 1000
            for name, queue in list(backend(self.region).queues.items()):
                with queue._messages_lock:  # moto's own lock: no message added or removed while copying
                    messages = [{
                        "body": m.body,
                        "attributes": m.message_attributes,
                        "sent": m.sent_timestamp,
                        "delayMs": max(0.0, m.delayed_until - now),
                    } for m in queue._messages]
                path = self.folder / f"{name}.json"
                temporary = path.with_suffix(".tmp")
                temporary.write_text(json.dumps({"queue": name, "messages": messages}))
                os.replace(temporary, path)

    def restore(self) -> int:
        """Put saved messages back into the queues (which must exist); the count."""
        count = 0
        sqs = backend(self.region)
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                saved = json.loads(path.read_text())
            except ValueError:
                LOG.warning("ignored %s: not a saved queue", path)
                continue
            if saved.get("queue") not in sqs.queues:
                LOG.warning("queue %s is no longer in the template: its %d messages stay in %s",
                            saved.get("queue"), len(saved.get("messages", [])), path)
                continue
            for item in saved["messages"]:
                message = sqs.send_message(saved["queue"], item["body"], message_attributes=item["attributes"] or None,
                                           delay_seconds=min(900, round(item["delayMs"] / 1000)))
                if item.get("sent"):
                    message.sent_timestamp = item["sent"]  # retention counts from the first send
                count += 1
        return count


def lambda_record(message: dict, queue_arn: str, region: str) -> dict:
    """One record of the event Lambda's SQS event source sends, from ReceiveMessage's message."""
    attributes = message.get("MessageAttributes") or {}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes") or {},
        "messageAttributes": {name: {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"),
                                     "stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
                              for name, value in attributes.items()},
        "md5OfBody": message.get("MD5OfBody"),
        "md5OfMessageAttributes": message.get("MD5OfMessageAttributes"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_items(payload: Any, batch: list[dict]) -> list[str] | None:
    """The message ids a ReportBatchItemFailures answer names, or None when the
    whole batch failed (an answer Lambda cannot read, or one naming a message
    not in the batch)."""
    if payload is None or payload == {}:
        return []
    if not isinstance(payload, dict):
        return None
    failures = payload.get("batchItemFailures")
    if failures is None:
        return []
    ids = {m["MessageId"] for m in batch}
    if not isinstance(failures, list):
        return None
    named = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in ids:
            return None
        named.append(identifier)
    return named


class QueueReader:
    """One SQS event source mapping of the local stack."""

    def __init__(self, source: QueueSource, client, url: str, region: str, invoke: Callable[[dict], Any],
                 wait_seconds: int = 1):
        self.source = source
        self.client = client
        self.url = url
        self.region = region
        self.invoke = invoke  # event -> InvokeResult (ok, payload, error)
        self.wait_seconds = wait_seconds
        self.arn = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{source.queue}"
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll, name=f"sqs-{source.queue}-{i}", daemon=True)
                         for i in range(source.max_concurrency or 2)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.time() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.time()))

    def _receive(self) -> list[dict]:
        size = max(1, min(10, self.source.batch_size))
        batch: list[dict] = []
        deadline = time.time() + self.source.batching_window
        while not self._stop.is_set():
            answer = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=min(10, size - len(batch)),
                WaitTimeSeconds=self.wait_seconds if not batch else 0,
                AttributeNames=["All"], MessageAttributeNames=["All"])
            batch += answer.get("Messages", [])
            if not batch or len(batch) >= size or time.time() >= deadline:
                return batch
            time.sleep(min(0.1, max(0.0, deadline - time.time())))
        return batch

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._receive()
                if batch:
                    self._deliver(batch)
            except Exception:  # noqa: BLE001 - a poller keeps polling, as Lambda's does
                if self._stop.is_set():
                    return
                LOG.exception("%s: polling %s failed", self.source.function, self.source.queue)
                self._stop.wait(1.0)

    def _deliver(self, batch: list[dict]) -> None:
        event = {"Records": [lambda_record(m, self.arn, self.region) for m in batch]}
        result = self.invoke(event)
        if not result.ok:
            LOG.warning("%s failed on %d messages of %s: %s: %s (SQS delivers them again after the visibility "
                        "timeout)", self.source.function, len(batch), self.source.queue,
                        result.error.get("errorType"), result.error.get("errorMessage"))
            return
        failed = failed_items(result.payload, batch) if self.source.report_batch_item_failures else []
        if failed is None:
            LOG.warning("%s answered batchItemFailures Lambda cannot read: the whole batch of %d fails",
                        self.source.function, len(batch))
            return
        done = [m for m in batch if m["MessageId"] not in set(failed)]
        if failed:
            LOG.info("%s: %d of %d messages failed; SQS delivers them again", self.source.function,
                     len(failed), len(batch))
        for start in range(0, len(done), 10):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:start + 10])]
            self.client.delete_message_batch(QueueUrl=self.url, Entries=entries)
