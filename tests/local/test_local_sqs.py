"""critic/local/sqs.py: queues kept across restarts, and the SQS event
source mapping (batches, partial batch responses, redrive), on moto's SQS."""
from __future__ import annotations

import json
import threading
import time

import boto3
import pytest
from moto import mock_aws

from critic.local.lambdas import InvokeResult
from critic.local.sqs import QueueReader, QueueStore, create_queues, failed_items
from critic.local.template import Queue, QueueSource

REGION = "us-east-1"


@pytest.fixture
def sqs():
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t")


def everything(sqs, url: str) -> list[dict]:
    got = []
    for _ in range(5):
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                   AttributeNames=["All"]).get("Messages", [])
    return got


def test_messages_survive_a_restart_with_their_attributes_and_what_is_left_of_their_delay(sqs, tmp_path):
    create_queues(sqs, [Queue("Q", "q", visibility_timeout=5)], REGION)
    url = sqs.get_queue_url(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="now", MessageAttributes={
        "critic-capacity-waits": {"DataType": "Number", "StringValue": "2"}})
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    store = QueueStore(tmp_path / "sqs", REGION)
    store.save()
    sqs.delete_queue(QueueUrl=url)  # the stack stops; a new one starts empty
    create_queues(sqs, [Queue("Q", "q", visibility_timeout=5)], REGION)
    assert store.restore() == 2
    [now] = everything(sqs, url)
    assert now["Body"] == "now" and now["MessageAttributes"]["critic-capacity-waits"]["StringValue"] == "2"
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"  # "later" still waits its ~600 s


def test_a_queue_no_longer_in_the_template_keeps_its_file(sqs, tmp_path):
    create_queues(sqs, [Queue("Q", "gone")], REGION)
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName="gone")["QueueUrl"], MessageBody="x")
    store = QueueStore(tmp_path / "sqs", REGION)
    store.save()
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName="gone")["QueueUrl"])
    assert store.restore() == 0 and (tmp_path / "sqs" / "gone.json").is_file()


def test_batch_item_failures_are_read_as_lambda_reads_them():
    batch = [{"MessageId": "a"}, {"MessageId": "b"}]
    assert failed_items({"batchItemFailures": []}, batch) == []
    assert failed_items(None, batch) == [] and failed_items({}, batch) == []
    assert failed_items({"batchItemFailures": [{"itemIdentifier": "b"}]}, batch) == ["b"]
    assert failed_items({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, batch) is None  # not in the batch
    assert failed_items({"batchItemFailures": [{"itemIdentifier": ""}]}, batch) is None
    assert failed_items("nonsense", batch) is None


class Function:
    """Records the events it gets; answers with `answer(event)`."""

    def __init__(self, answer):
        self.answer, self.events, self.lock = answer, [], threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.events.append(event)
        return self.answer(event)


def run_reader(sqs, source: QueueSource, function, until, timeout: float = 10.0) -> None:
    url = sqs.get_queue_url(QueueName=source.queue)["QueueUrl"]
    reader = QueueReader(source, sqs, url, REGION, function, wait_seconds=0)
    reader.start()
    deadline = time.time() + timeout
    try:
        while not until() and time.time() < deadline:
            time.sleep(0.05)
    finally:
        reader.stop()
    assert until(), "the reader did not get there in time"


def test_the_reader_deletes_what_the_function_handled_and_keeps_the_failures(sqs):
    create_queues(sqs, [Queue("Q", "uploads", visibility_timeout=30)], REGION)
    url = sqs.get_queue_url(QueueName="uploads")["QueueUrl"]
    for body in ("one", "two", "three"):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    def answer(event):
        return InvokeResult(payload={"batchItemFailures": [{"itemIdentifier": r["messageId"]}
                                                           for r in event["Records"] if r["body"] == "two"]})

    function = Function(answer)
    source = QueueSource("Fn", "uploads", batch_size=10, batching_window=0.5, report_batch_item_failures=True,
                         max_concurrency=2)
    run_reader(sqs, source, function, lambda: sum(len(e["Records"]) for e in function.events) >= 3)
    record = function.events[0]["Records"][0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":uploads")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # "two", back after its visibility timeout


def test_a_failing_function_leaves_the_batch_and_the_redrive_policy_moves_it_to_the_dead_letter_queue(sqs):
    create_queues(sqs, [Queue("Q", "uploads", visibility_timeout=0, dead_letter_queue="failed", max_receive_count=2),
                        Queue("F", "failed")], REGION)
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName="uploads")["QueueUrl"], MessageBody=json.dumps({"x": 1}))
    function = Function(lambda event: InvokeResult(error={"errorType": "Boom", "errorMessage": "always"}))
    failed = sqs.get_queue_url(QueueName="failed")["QueueUrl"]

    def moved():
        return sqs.get_queue_attributes(QueueUrl=failed, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"]["ApproximateNumberOfMessages"] == "1"

    run_reader(sqs, QueueSource("Fn", "uploads", batch_size=1), function, moved)
    assert len(function.events) == 2  # delivered maxReceiveCount times, then moved
