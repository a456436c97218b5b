"""boto3 clients of the local stack's AWS endpoint, made one way for the
stack itself and for the commands that talk to it (`critic score`).

The endpoint checks no credentials; boto3 needs some to sign with, so these
are placeholders. Path-style S3 addressing: bucket names are not host names
on 127.0.0.1.

S3ObjectStore: a transform job's objects (critic/local/transform_runner.py)
through such a client."""
from __future__ import annotations

import boto3
from botocore.config import Config

PLACEHOLDER_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def local_client(service: str, endpoint_url: str, region: str, retries: dict | None = None):
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region, **PLACEHOLDER_CREDENTIALS,
                        config=Config(retries=retries or {"max_attempts": 2}, s3={"addressing_style": "path"}))


class S3ObjectStore:
    """critic.local.transform_runner's ObjectStore over S3 (here: the local endpoint)."""

    def __init__(self, client):
        self.client = client

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def download(self, bucket: str, key: str, fileobj) -> None:
        self.client.download_fileobj(bucket, key, fileobj)

    def upload(self, bucket: str, key: str, fileobj) -> None:
        self.client.upload_fileobj(fileobj, bucket, key)
