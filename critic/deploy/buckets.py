"""Buckets Critic creates for itself, and what it puts in them.

A bucket Critic creates is private and encrypted from its first moment:
object ownership enforced (no ACLs), every public access block on, default
encryption (SSE-S3), and a policy that refuses plain HTTP and TLS older than
1.2. If any of that fails, the new, empty bucket is deleted again: no bucket
is left half-configured. A bucket that already exists is used as it is.

Objects are content-addressed: the key holds the file's SHA-256, and S3
checks the upload against that same digest (ChecksumSHA256). Uploading the
same file again is a no-op; a different file gets a different key. Every call
names the expected bucket owner, so nothing is read from or written to a
bucket of the same name in someone else's account.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from botocore.exceptions import ClientError

from contract.locations import parse_s3_uri
from critic.errors import UsageError
from critic.deploy.aws import AwsError, error_code, say

NOT_FOUND = ("404", "NoSuchBucket", "NotFound", "NoSuchKey")
FORBIDDEN = ("403", "AccessDenied", "Forbidden")


def artifact_bucket_name(account: str, region: str) -> str:
    return f"critic-artifacts-{account}-{region}"


def tls_only_policy(bucket: str) -> str:
    resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": resources, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Sid": "DenyOldTls", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": resources, "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}}},
        ],
    })


def bucket_exists(s3, bucket: str, account: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
        return True
    except ClientError as error:
        if error_code(error) in NOT_FOUND:
            return False
        if error_code(error) in FORBIDDEN:
            raise AwsError(f"bucket {bucket} exists but is not yours (or you may not read it); "
                           "choose another name with --bucket") from None
        raise


def ensure_bucket(s3, bucket: str, account: str, region: str) -> bool:
    """Creates the bucket, private and encrypted, unless it exists. True if created."""
    if bucket_exists(s3, bucket, account):
        return False
    say(f"creating bucket s3://{bucket} (encrypted, public access blocked, TLS only)")
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerEnforced", **location)
    except ClientError as error:
        if error_code(error) == "BucketAlreadyExists":
            raise AwsError(f"bucket name {bucket} is taken by another account; choose another with --bucket") \
                from None
        if error_code(error) != "BucketAlreadyOwnedByYou":
            raise
    try:
        s3.put_public_access_block(
            Bucket=bucket, ExpectedBucketOwner=account,
            PublicAccessBlockConfiguration={"BlockPublicAcls": True, "IgnorePublicAcls": True,
                                            "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
        s3.put_bucket_encryption(
            Bucket=bucket, ExpectedBucketOwner=account,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        s3.put_bucket_policy(Bucket=bucket, ExpectedBucketOwner=account, Policy=tls_only_policy(bucket))
    except BaseException:
        try:  # still empty: remove it rather than leave it half-configured
            s3.delete_bucket(Bucket=bucket, ExpectedBucketOwner=account)
        except ClientError:
            pass
        raise
    return True


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def upload(s3, path: Path, bucket: str, key: str, account: str, sha256: str,
           content_type: str = "application/gzip") -> str:
    """Puts the file at s3://bucket/key unless it is there already; S3 verifies
    the SHA-256. Returns the S3 URI."""
    uri = f"s3://{bucket}/{key}"
    try:
        s3.head_object(Bucket=bucket, Key=key, ExpectedBucketOwner=account)
        say(f"{uri} is already there (same SHA-256): not uploading again")
        return uri
    except ClientError as error:
        if error_code(error) not in NOT_FOUND:
            raise
    say(f"uploading {path} ({Path(path).stat().st_size:,} bytes) to {uri}")
    with open(path, "rb") as body:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, ExpectedBucketOwner=account,
                      ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode())
    return uri


def empty_and_delete(s3, bucket: str, account: str) -> bool:
    """Deletes every object version and delete marker, then the bucket. False if it was not there."""
    if not bucket_exists(s3, bucket, account):
        return False
    say(f"deleting s3://{bucket} and everything in it (every version)")
    markers: dict = {}
    while True:
        page = s3.list_object_versions(Bucket=bucket, ExpectedBucketOwner=account, **markers)
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if objects:
            result = s3.delete_objects(Bucket=bucket, ExpectedBucketOwner=account,
                                       Delete={"Objects": objects, "Quiet": True})
            if result.get("Errors"):
                first = result["Errors"][0]
                raise AwsError(f"could not delete {len(result['Errors'])} objects of s3://{bucket}, e.g. "
                               f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")
        if not page.get("IsTruncated"):
            break
        markers = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    s3.delete_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    return True


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an object's s3:// URI, or a UsageError."""
    try:
        bucket, key = parse_s3_uri(uri)
    except ValueError:
        key = ""
    if not key:
        raise UsageError(f"{uri} is not an s3://bucket/key URI")
    return bucket, key
