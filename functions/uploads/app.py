"""POST /uploads and GET /uploads/{id}: score a file from the web page without
the browser ever holding AWS credentials.

POST /uploads {"filename": "reviews.csv", "size": 123456}
  201 {"id": "<32 hex>", "upload": {"url": ..., "fields": {...}}, "expiresIn": 600}
      a presigned S3 POST (the browser sends the fields, then the file, as
      multipart/form-data) for `uploads/<id>/<name>` in the input bucket; its
      policy allows that key only, exactly `size` bytes, the format's content
      type, for 10 minutes.
  400 not JSON, not {"filename", "size"}, another suffix than .txt/.jsonl/.csv,
      an empty file                           413 over MAX_UPLOAD_MB

GET /uploads/{id}
  200 {"id", "status": Waiting|InProgress|Completed|Failed|Skipped, "counts",
       "failureReason", "download"}: `download` is a presigned GET of the
       results (5 minutes) once Completed, else null. How the state is read
       (the job's status record, else its transform job): batch/uploads.py.
  404 an id that is not one, or whose file has not arrived

Any other answer is JSON {"message": ...}: 404 other routes, 500 anything
unexpected (logged, never sent).

What it may do (template.yaml, UploadsFunction): sign puts under `uploads/`
of the input bucket and list versions there; list `uploads/` of the output
bucket and read the status records and results there; describe this stack's
transform jobs. The ids are 128 random bits, and a request names one id's
prefix only: nothing lists other people's uploads.

Environment: INPUT_BUCKET, OUTPUT_BUCKET, JOB_NAME_PREFIX, MAX_UPLOAD_MB,
ALLOWED_ORIGIN, POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE.
"""
from __future__ import annotations

import os
from http import HTTPStatus

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError

from batch import jobs, uploads
from contract.jsonreader import JSONInputError, loads as read_json
from contract.locations import s3_uri

INPUT_BUCKET = os.environ["INPUT_BUCKET"]
OUTPUT_BUCKET = os.environ["OUTPUT_BUCKET"]
JOB_NAME_PREFIX = os.environ["JOB_NAME_PREFIX"]
MAX_UPLOAD_BYTES = int(os.environ["MAX_UPLOAD_MB"]) * 1024 * 1024

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver(cors=CORSConfig(allow_origin=os.environ.get("ALLOWED_ORIGIN", "*"), max_age=300))

_config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 2})
# Signature V4 and the bucket's regional host name: a new bucket answers on
# its region's endpoint at once, where the global one would redirect the
# browser's CORS preflight (which a browser does not follow).
s3 = boto3.client("s3", config=_config.merge(Config(signature_version="s3v4", s3={"addressing_style": "virtual"})))
sagemaker = boto3.client("sagemaker", config=_config)


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@app.post("/uploads")
def create_upload() -> Response:
    try:
        body = read_json(app.current_event.decoded_body or "")
        request = uploads.read_request(body, MAX_UPLOAD_BYTES)
    except (JSONInputError, UnicodeDecodeError) as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {error}") from None
    except uploads.UploadTooLarge as error:
        raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(error)) from None
    except uploads.InvalidUpload as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, str(error)) from None
    upload_id = uploads.new_upload_id()
    key = uploads.upload_key(upload_id, request)
    post = s3.generate_presigned_post(INPUT_BUCKET, key, Fields=uploads.post_fields(request),
                                      Conditions=uploads.post_conditions(request), ExpiresIn=uploads.LINK_SECONDS)
    logger.info("upload created", extra={"upload": upload_id, "format": request.format.suffix, "size": request.size})
    metrics.add_metric(name="UploadsCreated", unit=MetricUnit.Count, value=1)
    return Response(status_code=HTTPStatus.CREATED, content_type=content_types.APPLICATION_JSON,
                    body={"id": upload_id, "upload": {"url": post["url"], "fields": post["fields"]},
                          "expiresIn": uploads.LINK_SECONDS})


def latest_upload(upload_id: str) -> dict | None:
    """The latest version of the upload's file ({"Key", "VersionId", "ETag"}), or None."""
    listed = s3.list_object_versions(Bucket=INPUT_BUCKET, Prefix=uploads.upload_prefix(upload_id), MaxKeys=10)
    versions = [v for v in listed.get("Versions", []) if v.get("IsLatest")]
    return versions[0] if versions else None


def status_record(key: str) -> dict | None:
    """The job's `<key>.status.json`, or None while there is none (listed
    first: without s3:ListBucket a missing key answers 403, not 404)."""
    listed = s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix=key, MaxKeys=10).get("Contents", [])
    if key not in {item["Key"] for item in listed}:
        return None
    with s3.get_object(Bucket=OUTPUT_BUCKET, Key=key)["Body"] as body:
        return read_json(body.read())


def job_status(name: str) -> str | None:
    try:
        return sagemaker.describe_transform_job(TransformJobName=name)["TransformJobStatus"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ValidationException":  # no such job (yet)
            return None
        raise


@app.get("/uploads/<upload_id>")
def get_upload(upload_id: str) -> dict:
    if not uploads.is_upload_id(upload_id):
        raise ApiError(HTTPStatus.NOT_FOUND, "no such upload")
    latest = latest_upload(upload_id)
    if latest is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "no such upload (or its file has not arrived yet)")
    key = latest["Key"]
    _, result_key = jobs.output_location(s3_uri(INPUT_BUCKET, key), jobs.output_path(OUTPUT_BUCKET, key))
    record = status_record(jobs.status_key(result_key))
    state = None
    if record is None:
        version = jobs.object_version(latest.get("VersionId"), latest.get("ETag"))
        state = job_status(jobs.job_name(JOB_NAME_PREFIX, INPUT_BUCKET, key, version))
    view = uploads.upload_view(upload_id, record, state)
    if view["status"] == uploads.COMPLETED:
        disposition = f'attachment; filename="{uploads.download_name(key)}"'
        view["download"] = s3.generate_presigned_url(
            "get_object", Params={"Bucket": OUTPUT_BUCKET, "Key": result_key,
                                  "ResponseContentDisposition": disposition},
            ExpiresIn=uploads.DOWNLOAD_SECONDS)
    return view


def _error_response(status: HTTPStatus, message: str) -> Response:
    metrics.add_metric(name="ClientErrors" if status < 500 else "ServerErrors", unit=MetricUnit.Count, value=1)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"message": message})


@app.exception_handler(ApiError)
def api_error(error: ApiError) -> Response:
    logger.info("request refused", extra={"status": int(error.status), "reason": error.message})
    return _error_response(error.status, error.message)


@app.not_found
def not_found(_: NotFoundError) -> Response:
    return _error_response(HTTPStatus.NOT_FOUND, "not found: POST /uploads, GET /uploads/{id}")


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response:
    logger.exception("unhandled error")
    return _error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
