"""Fixtures of the deploy tests that run `critic deploy` against moto."""
from __future__ import annotations

import shutil

import boto3
import pytest
from moto import mock_aws

from critic.deploy.flows import Paths
from deploy_support import ARTIFACT_BUCKET, REGION


@pytest.fixture
def aws(monkeypatch):
    """moto with the artifact bucket: the S3 client."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        # Created ahead, without the TLS-only policy: moto enforces a policy's
        # Deny statements without their conditions. The creation path itself is
        # tested with Stubber and moto in test_deploy_buckets.py.
        s3.create_bucket(Bucket=ARTIFACT_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield s3


@pytest.fixture
def paths(tmp_path, repo_root):
    """The project's template and page config, with samconfig.toml and config.js in a temporary folder."""
    web = tmp_path / "web"
    web.mkdir()
    shutil.copy(repo_root / "web" / "config.js", web / "config.js")
    return Paths(template=repo_root / "template.yaml", samconfig=tmp_path / "samconfig.toml",
                 web_config=web / "config.js", workdir=tmp_path)
