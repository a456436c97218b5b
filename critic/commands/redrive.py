"""critic redrive: send what sits in the failed-events queue back through the
batch path, on the running local stack or on a deployed stack.

Each message is read as batch/buffer.py's `redrive_target` says: an upload
(an S3 event, recorded by the batch function with its reason or moved by the
uploads queue's redrive policy) goes back to the uploads queue; any other
event a function gave up on (a transform job's completion) is invoked again,
asynchronously, on that function. A message that is neither is left where it
is. Each one is deleted only after it was sent on, so a failure part-way
loses nothing (a message sent twice is a duplicate delivery, which the batch
path turns into one job).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TextIO

from critic.errors import UsageError

LOOK_SECONDS = 60  # how long a message read by --dry-run stays hidden (made visible again at the end)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "redrive", help="send the failed-events queue's uploads and events back through the batch path",
        description="Reads every message of the stack's failed-events queue, prints what it is and why it "
                    "failed, and sends it back: an upload to the uploads queue (it is scored as if just "
                    "uploaded), a finished job's event to the function that failed on it. Without --stack, "
                    "the running local stack (`make run`); with --stack, the deployed stack of that name. "
                    "Exits 1 if a message could not be sent back (it stays in the queue).")
    p.add_argument("--dry-run", action="store_true", help="print what would be sent back; change nothing")
    p.add_argument("--stack", metavar="NAME", help="a deployed stack (default: the local stack)")
    p.add_argument("--region", help="the deployed stack's region (default: your AWS configuration's)")
    p.add_argument("--aws-url", default=None,
                   help="the local stack's AWS endpoint (default: http://127.0.0.1:$CRITIC_AWS_PORT or :4566)")
    p.set_defaults(func=run)


@dataclass
class Outcome:
    sent: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def redrive(sqs, lambda_, failed_url: str, uploads_url: str, dry_run: bool = False, out: TextIO = sys.stdout) -> Outcome:
    """Move every message of failed_url back; see the module docstring."""
    from batch.buffer import redrive_target

    outcome = Outcome()
    seen: dict[str, str] = {}  # message id -> receipt handle, of messages left in the queue
    while True:
        messages = sqs.receive_message(QueueUrl=failed_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       VisibilityTimeout=LOOK_SECONDS).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            target = redrive_target(message["Body"])
            if target is None:
                print(f"left: {message['MessageId']}: not an event Critic recorded", file=out)
                outcome.left.append(message["MessageId"])
                seen[message["MessageId"]] = message["ReceiptHandle"]
                continue
            where = "the uploads queue" if target.kind == "uploads" else target.function_arn
            print(f"{'would send' if dry_run else 'sending'} {target.summary} to {where} (failed: {target.reason})",
                  file=out)
            if dry_run:
                outcome.sent.append(target.summary)
                seen[message["MessageId"]] = message["ReceiptHandle"]
                continue
            try:
                if target.kind == "uploads":
                    sqs.send_message(QueueUrl=uploads_url, MessageBody=json.dumps(target.payload))
                else:
                    lambda_.invoke(FunctionName=target.function_arn, InvocationType="Event",
                                   Payload=json.dumps(target.payload).encode())
            except Exception as error:  # noqa: BLE001 - reported; the message stays in the queue
                print(f"  could not send it back: {type(error).__name__}: {error}", file=out)
                outcome.failed.append(target.summary)
                seen[message["MessageId"]] = message["ReceiptHandle"]
                continue
            sqs.delete_message(QueueUrl=failed_url, ReceiptHandle=message["ReceiptHandle"])
            outcome.sent.append(target.summary)
    for handle in seen.values():  # what stays is visible again at once, not after LOOK_SECONDS
        sqs.change_message_visibility(QueueUrl=failed_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return outcome


def _local_queues(aws_url: str) -> tuple[object, object, str, str]:
    from critic.commands.score import _client, _stack_info

    info = _stack_info(aws_url)
    queues = info.get("queues") or {}
    if not queues.get("failedEvents") or not queues.get("uploads"):
        raise UsageError("the local stack's template has no uploads and failed-events queues")
    return _client("sqs", info), _client("lambda", info), queues["failedEvents"], queues["uploads"]


def _deployed_queues(stack: str, region: str | None) -> tuple[object, object, str, str]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.Session(region_name=region)
    try:
        described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except (ClientError, BotoCoreError) as error:
        raise UsageError(f"stack {stack}: {error}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    missing = [name for name in ("FailedEventsQueueUrl", "UploadsQueueUrl") if name not in outputs]
    if missing:
        raise UsageError(f"stack {stack} has no output {', '.join(missing)} (deployed before uploads were queued?)")
    return (session.client("sqs"), session.client("lambda"), outputs["FailedEventsQueueUrl"],
            outputs["UploadsQueueUrl"])


def run(args) -> int:
    from critic.commands.options import local_aws_url

    if args.stack:
        sqs, lambda_, failed_url, uploads_url = _deployed_queues(args.stack, args.region)
    else:
        sqs, lambda_, failed_url, uploads_url = _local_queues((args.aws_url or local_aws_url()).rstrip("/"))
    outcome = redrive(sqs, lambda_, failed_url, uploads_url, dry_run=args.dry_run)
    verb = "would send back" if args.dry_run else "sent back"
    print(f"{verb} {len(outcome.sent)}; left {len(outcome.left)} (not Critic's); "
          f"could not send {len(outcome.failed)}", file=sys.stderr)
    return 1 if outcome.failed else 0
