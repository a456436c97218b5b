"""batch/shards.py's ObjectStore over an S3 client (boto3's, passed in by the
Lambda handlers and the local stack: this module imports no AWS SDK).

write_parts is one multipart upload: each part is UploadPartCopy of a byte
range (pinned to the source's version) or UploadPart of bytes; any failure
aborts the upload, so the object appears whole or not at all.
"""
from __future__ import annotations

from typing import Any, Iterable

from batch.shards import Part

NOT_FOUND = ("NoSuchKey", "404", "NotFound", "NoSuchVersion")


def _code(error: Exception) -> str | None:
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code")


class S3Store:
    not_found = NOT_FOUND  # the error codes of a missing object (or version)

    def __init__(self, client: Any):
        self.client = client

    def read_range(self, bucket: str, key: str, start: int, end: int, version: str | None = None) -> bytes:
        if end <= start:
            return b""
        extra = {"VersionId": version} if version else {}
        answer = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", **extra)
        with answer["Body"] as body:
            return body.read()

    def write_parts(self, bucket: str, key: str, parts: Iterable[Part]) -> None:
        upload = self.client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        try:
            done = []
            for number, part in enumerate(parts, start=1):
                if part.data is not None:
                    etag = self.client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                                                   Body=part.data)["ETag"]
                else:
                    source = part.source
                    copy_source = {"Bucket": source.bucket, "Key": source.key}
                    if source.version:
                        copy_source["VersionId"] = source.version
                    etag = self.client.upload_part_copy(
                        Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, CopySource=copy_source,
                        CopySourceRange=f"bytes={source.start}-{source.end - 1}")["CopyPartResult"]["ETag"]
                done.append({"PartNumber": number, "ETag": etag})
            if not done:
                raise ValueError(f"no parts to write to s3://{bucket}/{key}")
            self.client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                                  MultipartUpload={"Parts": done})
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            except Exception:  # noqa: BLE001 - the first error is the one to report; the lifecycle rule aborts it later
                pass
            raise

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def size(self, bucket: str, key: str) -> int | None:
        try:
            return self.client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        except Exception as error:  # botocore's ClientError, not imported here
            if _code(error) in NOT_FOUND:
                return None
            raise

    def get(self, bucket: str, key: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=bucket, Key=key)
        except Exception as error:
            if _code(error) in NOT_FOUND:
                return None
            raise
        with answer["Body"] as body:
            return body.read()

    def delete(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
            batch = keys[start:start + 1000]
            answer = self.client.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": key} for key in batch], "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise RuntimeError(f"could not delete s3://{bucket}/{first.get('Key')}: {first.get('Message')}")
