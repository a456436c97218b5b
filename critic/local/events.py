"""The local stack's event bus: what AWS does between a change and the code
that hears of it.

- S3 bucket notifications: an object created in one of the template's buckets
  goes, as the record S3 sends, to the target of every notification whose
  bucket, event type, prefix and suffix match; and, when the bucket has
  EventBridge enabled, to EventBridge as an "Object Created" event.
- EventBridge's default bus: an event goes to the target of every rule whose
  pattern matches it (moto's EventPattern, the matcher moto's EventBridge
  uses), as the event itself or as the rule's Input / InputPath.
- Lambda's on-failure destination: the record of an event a function gave
  up on, after its retries, goes to the destination's queue.

Every delivery names a Target, and targets are dispatched by kind: a Lambda
function is invoked asynchronously (Lambda's event queue: retries, then the
dead letters, critic/local/lambdas.py); an SQS queue gets the event as a
message. An S3 notification targets a function (LambdaConfigurations, SAM S3
events) or a queue (QueueConfigurations); a function's SQS event source
mapping (critic/local/sqs.py) then reads that queue in batches.

One bus per stack, holding all its state: nothing here is module-wide.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from moto.events.models import EventPattern

from critic.local import s3 as local_s3
from critic.local.lambdas import AsyncInvoker, LambdaFunction
from critic.local.template import LocalStack, Rule, S3Notification


LAMBDA = "lambda"
SQS = "sqs"


@dataclass(frozen=True)
class Target:
    """Where an event is delivered: a function (by logical id) or a queue (by name)."""
    kind: str  # LAMBDA or SQS
    name: str


class EventBus:
    def __init__(self, template: LocalStack, functions: Mapping[str, LambdaFunction], dead_letter_dir: Path,
                 retry_delays: tuple[float, ...], sqs: Callable[[], Any]):
        """`sqs` makes the SQS client queues are reached with (called when a
        message is first sent: the endpoint may not be up yet)."""
        self.template = template
        self.functions = functions
        self.lambda_events = AsyncInvoker(dead_letter_dir, retry_delays, on_failure=self.send_failure)
        self._sqs_factory = sqs
        self._sqs = None
        self._sequencer = local_s3.Sequencer()
        self._deliver: dict[str, Callable[[Target, Any, str], None]] = {
            LAMBDA: self._invoke_async,
            SQS: self._send_message,
        }

    def close(self) -> None:
        """Stop delivering: events still queued for a function go to its dead letters."""
        self.lambda_events.close()

    def deliver(self, target: Target, event: Any, source: str) -> None:
        """Hand `event` to `target`; `source` says where it came from (logs, dead letters)."""
        self._deliver[target.kind](target, event, source)

    # -- sources ------------------------------------------------------------- #

    def object_created(self, event_name: str, bucket, key) -> None:
        """S3: an object was created (event_name like "s3:ObjectCreated:Put");
        `bucket` and `key` are moto's."""
        template = self.template
        sequencer = self._sequencer.next()
        for notification in template.s3_notifications:
            if not _notification_matches(notification, event_name, bucket.name, key.name):
                continue
            record = local_s3.s3_event_record(event_name, bucket, key, notification.configuration_id,
                                              template.region, sequencer)
            self.deliver(_notification_target(notification), {"Records": [record]},
                         f"s3://{bucket.name}/{key.name}")
        spec = template.bucket_named(bucket.name)
        if spec and spec.eventbridge:
            self.publish(local_s3.eventbridge_object_created(event_name, bucket, key, template.region, sequencer))

    def publish(self, event: dict) -> None:
        """EventBridge's default bus: deliver the event to every matching rule."""
        for rule in self.template.rules:
            if EventPattern(None, rule.pattern).matches_event(event):
                self.deliver(Target(LAMBDA, rule.function), _rule_input(rule, event),
                             f"EventBridge rule {rule.name}")

    def send_failure(self, destination: str, record: dict) -> None:
        """Lambda's on-failure destination, when it is one of the template's queues."""
        if destination.startswith("arn:aws:sqs:"):
            queue = destination.rsplit(":", 1)[-1]
            self.deliver(Target(SQS, queue), record, f"on-failure destination {destination}")

    def invoke_async(self, function: str, event: Any, source: str) -> None:
        """Lambda's Invoke with InvocationType Event (e.g. from `critic redrive`)."""
        self.deliver(Target(LAMBDA, function), event, source)

    # -- targets ------------------------------------------------------------- #

    def _invoke_async(self, target: Target, event: Any, source: str) -> None:
        self.lambda_events.submit(self.functions[target.name], event, source)

    def _send_message(self, target: Target, event: Any, source: str) -> None:
        if self._sqs is None:
            self._sqs = self._sqs_factory()
        url = self._sqs.get_queue_url(QueueName=target.name)["QueueUrl"]
        self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))


def _notification_target(notification: S3Notification) -> Target:
    if notification.queue is not None:  # S3 -> SQS (a QueueConfiguration); the queue's reader takes it from there
        return Target(SQS, notification.queue)
    return Target(LAMBDA, notification.function)


def _notification_matches(notification: S3Notification, event_name: str, bucket: str, key: str) -> bool:
    return (notification.bucket == bucket
            and any(_event_matches(pattern, event_name) for pattern in notification.events)
            and key.startswith(notification.prefix) and key.endswith(notification.suffix))


def _event_matches(pattern: str, event_name: str) -> bool:
    """An S3 notification's event type ("s3:ObjectCreated:*", "s3:ObjectCreated:Put")
    against the event that happened ("s3:ObjectCreated:Put")."""
    pattern = pattern if pattern.startswith("s3:") else f"s3:{pattern}"
    if pattern.endswith(":*"):
        return event_name.startswith(pattern[:-1])
    return pattern == event_name


def _rule_input(rule: Rule, event: dict) -> Any:
    """What a rule's target receives: its Input, the part of the event its
    InputPath names, or the whole event."""
    if rule.input is not None:
        return json.loads(rule.input) if isinstance(rule.input, str) else rule.input
    if rule.input_path:
        value: Any = event
        for part in rule.input_path.removeprefix("$").strip(".").split("."):
            if part:
                value = value.get(part) if isinstance(value, dict) else None
        return value
    return event
