"""Where things are in S3, named once: S3 URIs, and where a SageMaker batch
transform job writes the result of each input object (used by the batch and
completion functions, the local transform runner and `critic score`)."""
from __future__ import annotations

OUTPUT_SUFFIX = ".out"  # SageMaker's own: <S3OutputPath>/<input path>.out


def s3_uri(bucket: str, key: str = "") -> str:
    """`s3://bucket/key`, the inverse of parse_s3_uri."""
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str, schemes: tuple[str, ...] = ("s3",)) -> tuple[str, str]:
    """(bucket, key) of `scheme://bucket/key`; ValueError if it is not one.
    SageMaker's S3Uri also takes https:// (the local runner passes both)."""
    scheme, sep, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if not sep or scheme not in schemes or not bucket:
        raise ValueError(f"not an S3 URI: {uri!r}")
    return bucket, key


def transform_output_key(input_key: str, input_prefix: str, output_prefix: str) -> str:
    """Where SageMaker writes the result of input_key: the output prefix, then
    the input key's path below the input prefix's folder, then ".out"."""
    folder = input_prefix[: input_prefix.rfind("/") + 1] if "/" in input_prefix else ""
    relative = input_key[len(folder):]
    prefix = output_prefix.strip("/")
    return f"{prefix}/{relative}{OUTPUT_SUFFIX}" if prefix else f"{relative}{OUTPUT_SUFFIX}"
