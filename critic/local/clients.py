"""boto3 clients of the local stack's AWS endpoint, made one way for the
stack itself and for the commands that talk to it (`critic score`).

The endpoint checks no credentials; boto3 needs some to sign with, so these
are placeholders. Path-style S3 addressing: bucket names are not host names
on 127.0.0.1."""
from __future__ import annotations

import boto3
from botocore.config import Config

PLACEHOLDER_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def local_client(service: str, endpoint_url: str, region: str, retries: dict | None = None):
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region, **PLACEHOLDER_CREDENTIALS,
                        config=Config(retries=retries or {"max_attempts": 2}, s3={"addressing_style": "path"}))
