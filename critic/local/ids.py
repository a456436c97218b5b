"""The local stack's identity, and the envelope its AWS events come in: the
account and region every local ARN names, and EventBridge's wrapping of a
service event (S3 notifications through EventBridge, SageMaker job state
changes)."""
from __future__ import annotations

import datetime
import uuid

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"


def eventbridge_event(source: str, detail_type: str, region: str, resources: list[str], detail: dict) -> dict:
    """The envelope EventBridge wraps every AWS service event in."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT_ID,
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": resources,
        "detail": detail,
    }
