"""Private buckets and content-addressed uploads: the exact S3 requests
(botocore Stubber, against S3's real service model) and their effect (moto)."""
from __future__ import annotations

import base64
import hashlib
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from moto import mock_aws

from critic.deploy.aws import AwsError
from critic.deploy.buckets import (
    artifact_bucket_name,
    empty_and_delete,
    ensure_bucket,
    sha256_of,
    split_s3_uri,
    upload,
)

ACCOUNT = "111122223333"
BUCKET = "critic-artifacts-111122223333-eu-west-1"
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                       "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


@pytest.fixture
def s3():
    client = boto3.client("s3", region_name="eu-west-1")
    with Stubber(client) as stub:
        client.stub = stub
        yield client
        stub.assert_no_pending_responses()


def expect_creation(s3, bucket=BUCKET, location="eu-west-1"):
    s3.stub.add_client_error("head_bucket", "404", http_status_code=404,
                             expected_params={"Bucket": bucket, "ExpectedBucketOwner": ACCOUNT})
    create = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
    if location:
        create["CreateBucketConfiguration"] = {"LocationConstraint": location}
    s3.stub.add_response("create_bucket", {"Location": f"/{bucket}"}, create)
    s3.stub.add_response("put_public_access_block", {}, {
        "Bucket": bucket, "ExpectedBucketOwner": ACCOUNT, "PublicAccessBlockConfiguration": PUBLIC_ACCESS_BLOCK})


def test_artifact_bucket_is_named_by_account_and_region():
    assert artifact_bucket_name(ACCOUNT, "eu-west-1") == BUCKET


def test_a_missing_bucket_is_created_private_encrypted_and_tls_only(s3):
    expect_creation(s3)
    s3.stub.add_response("put_bucket_encryption", {}, {
        "Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT,
        "ServerSideEncryptionConfiguration": {
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}})
    s3.stub.add_response("put_bucket_policy", {}, {"Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT, "Policy": ANY})
    policies = []
    s3.meta.events.register("provide-client-params.s3.PutBucketPolicy",
                            lambda params, **_: policies.append(json.loads(params["Policy"])))

    assert ensure_bucket(s3, BUCKET, ACCOUNT, "eu-west-1") is True

    statements = {s["Sid"]: s for s in policies[0]["Statement"]}
    resources = [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
    assert statements["DenyInsecureTransport"] == {
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": resources, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    assert statements["DenyOldTls"]["Effect"] == "Deny"
    assert statements["DenyOldTls"]["Condition"] == {"NumericLessThan": {"s3:TlsVersion": "1.2"}}


def test_us_east_1_takes_no_location_constraint(s3):
    bucket = "critic-artifacts-111122223333-us-east-1"
    expect_creation(s3, bucket, location=None)
    s3.stub.add_response("put_bucket_encryption", {}, None)
    s3.stub.add_response("put_bucket_policy", {}, None)
    assert ensure_bucket(s3, bucket, ACCOUNT, "us-east-1") is True


def test_an_existing_bucket_of_ours_is_used_as_it_is(s3):
    s3.stub.add_response("head_bucket", {}, {"Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT})
    assert ensure_bucket(s3, BUCKET, ACCOUNT, "eu-west-1") is False  # and nothing else is called


def test_a_bucket_of_another_account_is_refused(s3):
    s3.stub.add_client_error("head_bucket", "403", http_status_code=403)
    with pytest.raises(AwsError, match="not yours.*--bucket"):
        ensure_bucket(s3, BUCKET, ACCOUNT, "eu-west-1")


def test_a_name_taken_elsewhere_is_refused(s3):
    s3.stub.add_client_error("head_bucket", "404", http_status_code=404)
    s3.stub.add_client_error("create_bucket", "BucketAlreadyExists", http_status_code=409)
    with pytest.raises(AwsError, match="taken by another account"):
        ensure_bucket(s3, BUCKET, ACCOUNT, "eu-west-1")


def test_a_bucket_that_cannot_be_secured_is_deleted_again(s3):
    expect_creation(s3)
    s3.stub.add_client_error("put_bucket_encryption", "AccessDenied", http_status_code=403)
    s3.stub.add_response("delete_bucket", {}, {"Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT})
    with pytest.raises(ClientError, match="AccessDenied"):
        ensure_bucket(s3, BUCKET, ACCOUNT, "eu-west-1")


def test_upload_sends_the_sha256_for_s3_to_verify(s3, tmp_path):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"weights and code")
    digest = hashlib.sha256(b"weights and code")
    key = f"models/{digest.hexdigest()}/model.tar.gz"
    s3.stub.add_client_error("head_object", "404", http_status_code=404,
                             expected_params={"Bucket": BUCKET, "Key": key, "ExpectedBucketOwner": ACCOUNT})
    s3.stub.add_response("put_object", {"ETag": '"x"'}, {
        "Bucket": BUCKET, "Key": key, "Body": ANY, "ContentType": "application/gzip", "ExpectedBucketOwner": ACCOUNT,
        "ChecksumSHA256": base64.b64encode(digest.digest()).decode()})
    assert sha256_of(path) == digest.hexdigest()
    assert upload(s3, path, BUCKET, key, ACCOUNT, digest.hexdigest()) == f"s3://{BUCKET}/{key}"


def test_upload_of_a_file_already_there_is_a_no_op(s3, tmp_path):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"same")
    s3.stub.add_response("head_object", {"ContentLength": 4}, None)
    assert upload(s3, path, BUCKET, "models/x/model.tar.gz", ACCOUNT, sha256_of(path)).endswith("/model.tar.gz")


def test_emptying_pages_through_every_version_and_delete_marker(s3):
    s3.stub.add_response("head_bucket", {}, None)
    s3.stub.add_response("list_object_versions", {
        "IsTruncated": True, "NextKeyMarker": "b", "NextVersionIdMarker": "v2",
        "Versions": [{"Key": "a", "VersionId": "v1"}, {"Key": "b", "VersionId": "v2"}]},
        {"Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT})
    s3.stub.add_response("delete_objects", {}, {
        "Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT,
        "Delete": {"Objects": [{"Key": "a", "VersionId": "v1"}, {"Key": "b", "VersionId": "v2"}], "Quiet": True}})
    s3.stub.add_response("list_object_versions", {
        "IsTruncated": False, "DeleteMarkers": [{"Key": "c", "VersionId": "m1"}]},
        {"Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT, "KeyMarker": "b", "VersionIdMarker": "v2"})
    s3.stub.add_response("delete_objects", {}, {
        "Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT,
        "Delete": {"Objects": [{"Key": "c", "VersionId": "m1"}], "Quiet": True}})
    s3.stub.add_response("delete_bucket", {}, {"Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT})
    assert empty_and_delete(s3, BUCKET, ACCOUNT) is True


def test_objects_that_will_not_go_stop_the_deletion_with_a_message(s3):
    s3.stub.add_response("head_bucket", {}, None)
    s3.stub.add_response("list_object_versions", {"IsTruncated": False, "Versions": [{"Key": "a", "VersionId": "1"}]})
    s3.stub.add_response("delete_objects", {"Errors": [{"Key": "a", "Code": "AccessDenied", "Message": "no"}]})
    with pytest.raises(AwsError, match="could not delete 1 objects.*a: AccessDenied"):
        empty_and_delete(s3, BUCKET, ACCOUNT)


@mock_aws
def test_created_bucket_really_is_configured_and_uploads_are_idempotent(tmp_path):
    s3 = boto3.client("s3", region_name="eu-west-1")
    account = boto3.client("sts", region_name="eu-west-1").get_caller_identity()["Account"]
    bucket = artifact_bucket_name(account, "eu-west-1")
    assert ensure_bucket(s3, bucket, account, "eu-west-1") is True
    assert ensure_bucket(s3, bucket, account, "eu-west-1") is False

    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == PUBLIC_ACCESS_BLOCK
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert "DenyInsecureTransport" in s3.get_bucket_policy(Bucket=bucket)["Policy"]
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    # moto applies a bucket policy's Deny statements without their conditions
    # (so the TLS-only policy would refuse moto's own reads); AWS honours them.
    s3.delete_bucket_policy(Bucket=bucket)

    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"\x1f\x8b model bytes")
    puts = []
    s3.meta.events.register("before-call.s3.PutObject", lambda **_: puts.append(1))
    for _ in range(2):
        upload(s3, path, bucket, f"models/{sha256_of(path)}/model.tar.gz", account, sha256_of(path))
    assert len(puts) == 1
    body = s3.get_object(Bucket=bucket, Key=f"models/{sha256_of(path)}/model.tar.gz")["Body"].read()
    assert body == path.read_bytes()


@mock_aws
def test_empty_and_delete_removes_a_versioned_bucket_whole():
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="critic-input-x", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_versioning(Bucket="critic-input-x", VersioningConfiguration={"Status": "Enabled"})
    for body in (b"one", b"two"):
        s3.put_object(Bucket="critic-input-x", Key="reviews.txt", Body=body)
    s3.delete_object(Bucket="critic-input-x", Key="reviews.txt")  # a delete marker on top
    assert empty_and_delete(s3, "critic-input-x", "123456789012") is True
    assert "critic-input-x" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert empty_and_delete(s3, "critic-input-x", "123456789012") is False


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket", "s3://bucket/", "https://bucket/key", "bucket/key"])
def test_s3_uris_must_name_bucket_and_key(uri):
    with pytest.raises(Exception, match="not an s3://bucket/key URI"):
        split_s3_uri(uri)
