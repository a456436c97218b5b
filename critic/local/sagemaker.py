"""SageMaker and SageMaker Runtime on one machine, over their real wire
protocols, so boto3 (and the Lambda handlers) talk to them unmodified.

- SageMaker (JSON 1.1 protocol, `X-Amz-Target: SageMaker.<Operation>`):
  CreateTransformJob, DescribeTransformJob, ListTransformJobs,
  StopTransformJob, and UpdateEndpoint; the models and endpoint configs
  (CreateModel, DescribeModel, ...) are moto's, checked here first
  (critic/local/models.py). Requests are validated against botocore's service model
  (required members, types, lengths, ranges, patterns, enums) and answered
  with SageMaker's error codes: ValidationException, ResourceInUse for a
  duplicate job name, and, when asked to play a small account
  (`critic serve --transform-quota N`, `--transform-throttle F`),
  ResourceLimitExceeded beyond N instances of a type in running jobs and
  ThrottlingException for a fraction F of CreateTransformJob calls. Jobs run in the background (critic/local/transform_runner.py),
  move InProgress -> Completed | Failed | Stopped (via Stopping), survive a
  restart as records, and report every status change. A job runs on the
  model it was created with (critic/local/models.py).
- SageMaker Runtime (REST-JSON, `POST /endpoints/<name>/invocations`):
  InvokeEndpoint through the model container; a container error becomes
  SageMaker's ModelError (HTTP 424) with OriginalStatusCode/OriginalMessage.
  Optionally it plays a serverless endpoint's cold start (ColdStart).
"""
from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator, Protocol

import botocore.session

from critic.local.transform_runner import JobFailed, JobStopped, ModelAnswer, TransformJob, TransformRunner
from contract.jsonreader import JSONInputError, loads as read_json
from critic.local.ids import ACCOUNT_ID, eventbridge_event
from batch.jobs import readable_reason

LOG = logging.getLogger("critic.sagemaker")

INVOKE_LIMIT = 6 * 1024 * 1024  # InvokeEndpoint's payload limit
# SageMaker's own wording; an unexpected exception's text (Python internals)
# goes to the stack's log, not into a reason users read.
INTERNAL_ERROR = "InternalServerError: We encountered an internal error. Please try again."


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, **fields: Any):
        super().__init__(message)
        self.code, self.message, self.status, self.fields = code, message, status, fields


# --------------------------------------------------------------------------- #
# Request validation against botocore's service model
# --------------------------------------------------------------------------- #

_session = botocore.session.get_session()
SAGEMAKER_MODEL = _session.get_service_model("sagemaker")


# Maximums the SageMaker API reference documents but botocore's model omits.
_DOCUMENTED_MAX = {"MaxPayloadInMB": 100, "InvocationsTimeoutInSeconds": 3600}


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _check(shape, value: Any, path: str, errors: list[str]) -> None:
    def fail(constraint: str) -> None:
        shown = value if isinstance(value, (str, int, float)) else "null" if value is None else "..."
        errors.append(f"Value '{shown}' at '{path}' failed to satisfy constraint: {constraint}")

    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            errors.append(f"Value at '{path}' must be a structure")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                errors.append(f"Value null at '{_join(path, name)}' failed to satisfy constraint: "
                              "Member must not be null")
        for name, member_value in value.items():
            if name in shape.members and member_value is not None:
                _check(shape.members[name], member_value, _join(path, name), errors)
    elif kind == "string":
        if not isinstance(value, str):
            errors.append(f"Value at '{path}' must be a string")
            return
        if "min" in meta and len(value) < meta["min"]:
            fail(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            fail(f"Member must have length less than or equal to {meta['max']}")
        if shape.enum and value not in shape.enum:
            fail(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        pattern = meta.get("pattern")
        if pattern:
            try:
                if not re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value, re.DOTALL):
                    fail(f"Member must satisfy regular expression pattern: {pattern}")
            except re.error:
                pass  # a Java-only regular expression: not checked here
    elif kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"Value at '{path}' must be a number")
            return
        if "min" in meta and value < meta["min"]:
            fail(f"Member must have value greater than or equal to {meta['min']}")
        maximum = meta.get("max", _DOCUMENTED_MAX.get(shape.name))
        if maximum is not None and value > maximum:
            fail(f"Member must have value less than or equal to {maximum}")
    elif kind == "list":
        if not isinstance(value, list):
            errors.append(f"Value at '{path}' must be a list")
            return
        if "min" in meta and len(value) < meta["min"]:
            fail(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            fail(f"Member must have length less than or equal to {meta['max']}")
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}.{index + 1}.member", errors)
    elif kind == "map":
        if not isinstance(value, dict):
            errors.append(f"Value at '{path}' must be a map")
            return
        if "max" in meta and len(value) > meta["max"]:
            fail(f"Member must have length less than or equal to {meta['max']}")
        for map_key, item in value.items():
            _check(shape.key, map_key, f"{path}.key", errors)
            _check(shape.value, item, f"{path}.value", errors)
    elif kind == "boolean" and not isinstance(value, bool):
        errors.append(f"Value at '{path}' must be a boolean")


def _join(path: str, name: str) -> str:
    return f"{path}.{_camel(name)}" if path else _camel(name)


def validate(operation: str, params: dict) -> None:
    """Raise ValidationException the way SageMaker words it."""
    shape = SAGEMAKER_MODEL.operation_model(operation).input_shape
    errors: list[str] = []
    if shape is not None:
        _check(shape, params, "", errors)
    if errors:
        plural = "s" if len(errors) > 1 else ""
        raise ServiceError("ValidationException",
                           f"{len(errors)} validation error{plural} detected: " + "; ".join(errors))


# --------------------------------------------------------------------------- #
# Transform jobs
# --------------------------------------------------------------------------- #

def _now() -> float:
    return round(time.time(), 3)


class Models(Protocol):
    """What transform jobs need of the models: whether a name exists, and its
    model for the length of a job (critic/local/models.py's ModelRegistry)."""

    def known(self, model_name: str) -> bool: ...
    def lease(self, model_name: str) -> ContextManager[Callable[[bytes, str, str], Any]]: ...


class OneModel:
    """Every model name in `names` (any, if empty) served by one `invoke`."""

    def __init__(self, names: Iterable[str], invoke: Callable[[bytes, str, str], Any]):
        self.names = set(names)
        self.invoke = invoke

    def known(self, model_name: str) -> bool:
        return not self.names or model_name in self.names

    @contextmanager
    def lease(self, model_name: str) -> Iterator[Callable[[bytes, str, str], Any]]:
        yield self.invoke


class TransformJobs:
    """CreateTransformJob and friends, with jobs kept in data/transform-jobs/.

    models: a Models (each job runs on the model it names, loaded when it
    starts and kept to its end), or the model names `invoke` serves alike.
    quota: instances of one type that running jobs may hold, as an account's
    "<type> for transform job usage" quota (None: no limit); throttle: the
    fraction of CreateTransformJob calls answered ThrottlingException."""

    def __init__(
        self,
        folder: Path,
        region: str,
        models: Models | Iterable[str],
        store_factory: Callable[[], Any],
        invoke: Callable[[bytes, str, str], ModelAnswer] | None,
        on_change: Callable[[dict], None],
        max_jobs: int = 2,
        quota: int | None = None,
        throttle: float = 0.0,
        seed: int | None = None,
    ):
        self.folder = folder
        self.region = region
        self.models: Models = models if hasattr(models, "lease") else OneModel(models, invoke)
        self.store_factory = store_factory
        self.on_change = on_change
        self._jobs: dict[str, dict] = {}
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.RLock()
        self._closing = False
        self.quota = quota
        self.throttle = throttle
        self._random = random.Random(seed)
        self.peak_in_progress = 0  # most jobs InProgress at once since start (what the quota bounds)
        self.throttled = 0  # CreateTransformJob calls answered ThrottlingException
        self._pool = ThreadPoolExecutor(max(max_jobs, quota or 0), thread_name_prefix="transform-job")
        self.folder.mkdir(parents=True, exist_ok=True)

    def arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT_ID}:transform-job/{name.lower()}"

    def model_arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT_ID}:model/{name.lower()}"

    # -- persistence ------------------------------------------------------ #

    def load(self) -> list[str]:
        """Read saved jobs; a job that was running when the stack stopped is
        failed (never resumed into a half output). Returns those names."""
        interrupted = []
        for path in sorted(self.folder.glob("*.json")):
            job = json.loads(path.read_text())
            self._jobs[job["TransformJobName"]] = job
            if job["TransformJobStatus"] in ("InProgress", "Stopping"):
                interrupted.append(job["TransformJobName"])
        for name in interrupted:
            job = self._jobs[name]
            if job["TransformJobStatus"] == "Stopping":
                self._finish(name, "Stopped")
            else:
                self._finish(name, "Failed", "AlgorithmError: the job was interrupted: the local stack stopped "
                                             "while it ran (create a new job to run it again)")
        return interrupted

    def _save(self, job: dict) -> None:
        path = self.folder / f"{job['TransformJobName']}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(job, indent=1))
        tmp.replace(path)

    def _update(self, name: str, **changes: Any) -> dict:
        with self._lock:
            job = self._jobs[name]
            job.update(changes)
            job["LastModifiedTime"] = _now()
            self._save(job)
            snapshot = json.loads(json.dumps(job))
        return snapshot

    def _finish(self, name: str, status: str, reason: str | None = None) -> None:
        changes: dict[str, Any] = {"TransformJobStatus": status, "TransformEndTime": _now()}
        if reason:
            changes["FailureReason"] = reason[:1024]
        self.on_change(self._update(name, **changes))

    # -- API ---------------------------------------------------------------- #

    def create(self, request: dict) -> dict:
        validate("CreateTransformJob", request)
        name = request["TransformJobName"]
        model = request["ModelName"]
        if not self.models.known(model):
            raise ServiceError("ValidationException", f'Could not find model "{self.model_arn(model)}".')
        source = request["TransformInput"]["DataSource"].get("S3DataSource")
        if not source or source.get("S3DataType") != "S3Prefix":
            raise ServiceError("ValidationException",
                               "The local stack runs transform jobs on S3DataType S3Prefix only.")
        if request["TransformInput"].get("SplitType", "None") not in ("None", "Line"):
            raise ServiceError("ValidationException", "The local stack splits input by Line (or None) only.")
        try:
            TransformJob.from_request(request)
        except ValueError as error:
            raise ServiceError("ValidationException", str(error)) from None
        with self._lock:
            if self.throttle and self._random.random() < self.throttle:
                self.throttled += 1
                raise ServiceError("ThrottlingException", "Rate exceeded")
            if name in self._jobs:
                raise ServiceError(
                    "ResourceInUse",
                    "Transform job names must be unique within an AWS account and region, and a transform "
                    f"job with this name already exists ({self.arn(name)})")
            self._check_quota(request["TransformResources"])
            now = _now()
            job = {
                "TransformJobName": name,
                "TransformJobArn": self.arn(name),
                "TransformJobStatus": "InProgress",
                "ModelName": model,
                "MaxConcurrentTransforms": request.get("MaxConcurrentTransforms", 1),
                "ModelClientConfig": request.get("ModelClientConfig") or {
                    "InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 3},
                "MaxPayloadInMB": request.get("MaxPayloadInMB", 6),
                "BatchStrategy": request.get("BatchStrategy", "MultiRecord"),
                "Environment": request.get("Environment") or {},
                "TransformInput": {"CompressionType": "None", "SplitType": "None", **request["TransformInput"]},
                "TransformOutput": {"AssembleWith": "None", **request["TransformOutput"]},
                "TransformResources": request["TransformResources"],
                "CreationTime": now,
                "LastModifiedTime": now,
                "DataProcessing": {"InputFilter": "$", "JoinSource": "None", "OutputFilter": "$",
                                   **(request.get("DataProcessing") or {})},
                "Tags": {tag["Key"]: tag["Value"] for tag in request.get("Tags") or []},
            }
            for optional in ("DataCaptureConfig", "ExperimentConfig"):
                if optional in request:
                    job[optional] = request[optional]
            self._jobs[name] = job
            self._stops[name] = threading.Event()
            self._save(job)
            snapshot = json.loads(json.dumps(job))
            self.peak_in_progress = max(self.peak_in_progress, sum(
                1 for j in self._jobs.values() if j["TransformJobStatus"] in ("InProgress", "Stopping")))
        self.on_change(snapshot)
        self._pool.submit(self._run, name, request)
        return {"TransformJobArn": job["TransformJobArn"]}

    def _check_quota(self, resources: dict) -> None:
        """SageMaker's answer when running jobs already hold the account's instances of this type."""
        if self.quota is None:
            return
        instance_type, wanted = resources["InstanceType"], resources["InstanceCount"]
        used = sum(j["TransformResources"]["InstanceCount"] for j in self._jobs.values()
                   if j["TransformJobStatus"] in ("InProgress", "Stopping")
                   and j["TransformResources"]["InstanceType"] == instance_type)
        if used + wanted > self.quota:
            raise ServiceError(
                "ResourceLimitExceeded",
                f"The account-level service limit '{instance_type} for transform job usage' is {self.quota} "
                f"Instances, with current utilization of {used} Instances and a request delta of {wanted} "
                "Instances. Please use AWS Service Quotas to request an increase for this quota. If AWS Service "
                "Quotas is not available, contact AWS support to request an increase for this quota.")

    def describe(self, request: dict) -> dict:
        validate("DescribeTransformJob", request)
        name = request["TransformJobName"]
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                raise ServiceError("ValidationException", f"Could not find requested job with name {name}")
            return {k: v for k, v in job.items() if k != "Tags"}

    def list(self, request: dict) -> dict:
        validate("ListTransformJobs", request)
        with self._lock:
            jobs = [dict(job) for job in self._jobs.values()]
        filters = {
            "CreationTimeAfter": lambda j, v: j["CreationTime"] > v,
            "CreationTimeBefore": lambda j, v: j["CreationTime"] < v,
            "LastModifiedTimeAfter": lambda j, v: j["LastModifiedTime"] > v,
            "LastModifiedTimeBefore": lambda j, v: j["LastModifiedTime"] < v,
            "NameContains": lambda j, v: v.lower() in j["TransformJobName"].lower(),
            "StatusEquals": lambda j, v: j["TransformJobStatus"] == v,
        }
        for key, keep in filters.items():
            if key in request:
                jobs = [job for job in jobs if keep(job, request[key])]
        sort_key = {"Name": "TransformJobName", "Status": "TransformJobStatus"}.get(
            request.get("SortBy", "CreationTime"), "CreationTime")
        jobs.sort(key=lambda job: job[sort_key], reverse=request.get("SortOrder", "Descending") == "Descending")
        start = 0
        if request.get("NextToken"):
            try:
                start = int(request["NextToken"])
            except ValueError:
                raise ServiceError("ValidationException", "Invalid pagination token") from None
        size = request.get("MaxResults", 10)
        page = jobs[start:start + size]
        fields = ("TransformJobName", "TransformJobArn", "CreationTime", "TransformEndTime",
                  "LastModifiedTime", "TransformJobStatus", "FailureReason")
        answer: dict[str, Any] = {"TransformJobSummaries": [{f: j[f] for f in fields if f in j} for j in page]}
        if start + size < len(jobs):
            answer["NextToken"] = str(start + size)
        return answer

    def stop(self, request: dict) -> dict:
        validate("StopTransformJob", request)
        name = request["TransformJobName"]
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                raise ServiceError("ValidationException", f"Could not find requested job with name {name}")
            status = job["TransformJobStatus"]
            if status == "Stopping":
                return {}
            if status != "InProgress":
                raise ServiceError("ValidationException",
                                   f"The request was rejected because the transform job is in status {status}.")
            started = "TransformStartTime" in job
            stop = self._stops.get(name)
        if stop:
            stop.set()
        if started:
            self.on_change(self._update(name, TransformJobStatus="Stopping"))
        else:  # still queued: it never ran
            self._finish(name, "Stopped")
        return {}

    # -- running ------------------------------------------------------------ #

    def _run(self, name: str, request: dict) -> None:
        stop = self._stops[name]
        with self._lock:
            if self._jobs[name]["TransformJobStatus"] != "InProgress" or stop.is_set():
                return
            self._update(name, TransformStartTime=_now())
        model = request["ModelName"]
        try:
            with ExitStack() as held:
                try:  # the model it was created with, whatever the endpoint serves meanwhile
                    invoke = held.enter_context(self.models.lease(model))
                except Exception as error:  # noqa: BLE001 - the job's FailureReason says why
                    LOG.warning("transform job %s: model %s: %r", name, model, error)
                    raise JobFailed(f"ClientError: the model {model} could not be loaded: "
                                    f"{readable_reason(str(error)) or type(error).__name__}"[:1024]) from None
                runner = TransformRunner(TransformJob.from_request(request), self.store_factory(), invoke, stop,
                                         progress=lambda key, n: LOG.debug("%s: %s: %d records", name, key, n))
                outputs = runner.run()
        except JobStopped:
            if self._closing:  # the stack stops: the next start fails the job as interrupted
                LOG.warning("transform job %s interrupted: the local stack is stopping", name)
                return
            self._finish(name, "Stopped")
        except JobFailed as error:
            self._finish(name, "Failed", str(error))
            LOG.warning("transform job %s failed: %s", name, error)
        except Exception:  # noqa: BLE001 - any other problem fails the job; the details go to the log
            LOG.exception("transform job %s failed", name)
            self._finish(name, "Failed", INTERNAL_ERROR)
        else:
            if stop.is_set():
                self._finish(name, "Stopped")
            else:
                LOG.info("transform job %s wrote %s", name, ", ".join(outputs))
                self._finish(name, "Completed")
        finally:
            self._stops.pop(name, None)

    def close(self) -> None:
        """Stop running jobs where they are, leaving them InProgress on disk
        (the next start fails them as interrupted: no half output is resumed)."""
        self._closing = True
        for stop in list(self._stops.values()):
            stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- #
# EventBridge event of a status change
# --------------------------------------------------------------------------- #

def _millis(value: float | None) -> int | None:
    return None if value is None else int(value * 1000)


def state_change_event(job: dict, region: str) -> dict:
    """The "SageMaker Transform Job State Change" event EventBridge delivers."""
    detail = {k: v for k, v in job.items() if k not in ("LastModifiedTime",)}
    for key in ("CreationTime", "TransformStartTime", "TransformEndTime"):
        if key in detail:
            detail[key] = _millis(detail[key])
    return eventbridge_event("aws.sagemaker", "SageMaker Transform Job State Change", region,
                             [job["TransformJobArn"]], detail)


# --------------------------------------------------------------------------- #
# Wire protocols
# --------------------------------------------------------------------------- #

_OPERATIONS = {
    "CreateTransformJob": "create",
    "DescribeTransformJob": "describe",
    "ListTransformJobs": "list",
    "StopTransformJob": "stop",
}


# What moto's SageMaker answers (its records are the models' registry,
# critic/local/models.py), each request checked here first.
MOTO_OPERATIONS = ("CreateModel", "DescribeModel", "ListModels", "DeleteModel", "CreateEndpointConfig",
                   "DescribeEndpointConfig", "ListEndpointConfigs", "DescribeEndpoint", "ListEndpoints",
                   "AddTags", "ListTags")


def _request(body: bytes) -> dict:
    try:
        request = read_json(body or b"{}")
    except JSONInputError as error:
        raise ServiceError("SerializationException", f"Request body is not valid JSON: {error}") from None
    if not isinstance(request, dict):
        raise ServiceError("SerializationException", "Request body must be a JSON object")
    return request


def _arn(region: str, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:{kind}/{name.lower()}"


def check_moto_request(registry, region: str, operation: str, body: bytes) -> tuple[int, dict, bytes] | None:
    """SageMaker's refusal of a request moto would take (moto checks little:
    it would overwrite a model of the same name, for one), or None."""
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": str(uuid.uuid4())}
    try:
        request = _request(body)
        validate(operation, request)
        backend = registry.backend
        if operation == "CreateModel" and registry.known(request["ModelName"]):
            raise ServiceError("ValidationException", "Cannot create already existing model "
                               f'"{_arn(region, "model", request["ModelName"])}".')
        if operation == "CreateEndpointConfig" and request["EndpointConfigName"] in backend.endpoint_configs:
            raise ServiceError("ValidationException", "Cannot create already existing endpoint configuration "
                               f'"{_arn(region, "endpoint-config", request["EndpointConfigName"])}".')
        return None
    except ServiceError as error:
        return error.status, headers, json.dumps({"__type": error.code, "Message": error.message}).encode()


def update_endpoint(registry, region: str, request: dict) -> dict:
    """UpdateEndpoint: accepted at once (status Updating); the new config's
    model loads in the background and takes over once it has
    (ModelRegistry.update_endpoint)."""
    validate("UpdateEndpoint", request)
    name, config = request["EndpointName"], request["EndpointConfigName"]
    backend = registry.backend
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        raise ServiceError("ValidationException", f'Could not find endpoint "{_arn(region, "endpoint", name)}".')
    if config not in backend.endpoint_configs:
        raise ServiceError("ValidationException", "Could not find endpoint configuration "
                           f'"{_arn(region, "endpoint-config", config)}".')
    if endpoint.endpoint_status != "InService":
        raise ServiceError("ValidationException", f'Cannot update in-progress endpoint "{endpoint.arn}".')
    endpoint.endpoint_status = "Updating"
    threading.Thread(target=registry.update_endpoint, args=(name, config), daemon=True,
                     name=f"update-{name}").start()
    return {"EndpointArn": endpoint.arn}


def handle_sagemaker(jobs: TransformJobs, target: str, body: bytes, registry=None) -> tuple[int, dict, bytes]:
    """One JSON 1.1 request: (status, headers, body)."""
    operation = target.split(".", 1)[1] if "." in target else target
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": str(uuid.uuid4())}
    try:
        if operation == "UpdateEndpoint" and registry is not None:
            answer = update_endpoint(registry, jobs.region, _request(body))
            return 200, headers, json.dumps(answer).encode()
        if operation not in _OPERATIONS:
            raise ServiceError("UnknownOperationException",
                               f"The local stack does not implement SageMaker {operation}; it runs "
                               + ", ".join([*_OPERATIONS, "UpdateEndpoint", *MOTO_OPERATIONS]) + ".")
        request = _request(body)
        answer = getattr(jobs, _OPERATIONS[operation])(request)
        return 200, headers, json.dumps(answer).encode()
    except ServiceError as error:
        return error.status, headers, json.dumps({"__type": error.code, "Message": error.message}).encode()


class ColdStart:
    """A serverless endpoint's cold start, played on the warm local model.

    On AWS an idle serverless endpoint has no container: the invocation that
    finds it so is held while SageMaker starts one and the model loads, and
    answers once it is ready; invocations arriving meanwhile wait for the same
    start. Here the endpoint is cold at start-up and again after `idle_timeout`
    seconds without an invocation (None: never); the invocation that finds it
    cold starts a warm-up of `seconds`, and every invocation waits until the
    warm-up is over, then is served. A client that gives up first (the
    RealtimeFunction's 8 s read timeout) gets its timeout, as on AWS, and the
    warm-up goes on without it.

    `clock` and `sleep` are injectable so tests play time instead of waiting.
    """

    def __init__(self, seconds: float, idle_timeout: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] | None = None):
        if seconds < 0 or (idle_timeout is not None and idle_timeout <= 0):
            raise ValueError("a cold start is >= 0 seconds and an idle timeout > 0 seconds")
        self.seconds = seconds
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._closing = threading.Event()
        self._sleep = sleep or self._closing.wait  # stopping the stack ends the wait
        self._lock = threading.Lock()
        self._warm_at: float | None = None  # None: cold, no warm-up started
        self._in_flight = 0
        self._last_done = 0.0
        self.cold_starts = 0  # how many warm-ups were started

    def _cold(self, now: float) -> bool:
        if self._warm_at is None:
            return True
        idle = self._in_flight == 0 and now >= self._warm_at and now - self._last_done >= (
            self.idle_timeout if self.idle_timeout is not None else float("inf"))
        return idle

    def enter(self) -> float:
        """Called as an invocation arrives: waits out a warm-up (starting one
        if the endpoint is cold) and returns the seconds waited."""
        with self._lock:
            now = self._clock()
            if self._cold(now):
                self._warm_at = now + self.seconds
                self.cold_starts += 1
                LOG.info("endpoint is cold: warming up for %.1f s (--endpoint-cold-start)", self.seconds)
            self._in_flight += 1
            delay = max(0.0, self._warm_at - now)
        if delay:
            self._sleep(delay)
        return delay

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last_done = self._clock()

    def close(self) -> None:
        self._closing.set()


class Endpoint:
    """SageMaker Runtime's InvokeEndpoint for the endpoints of the template
    (cold at times, with `cold_start`): each request answered by the model the
    endpoint serves as it arrives (`registry`, critic/local/models.py), or,
    without a registry, all by `invoke`."""

    def __init__(self, names: Iterable[str], region: str, invoke: Callable[[bytes, str, str], Any] | None,
                 cold_start: ColdStart | None = None, registry=None):
        self.names = set(names)
        self.region = region
        self.cold_start = cold_start
        self.invoke: Callable[[str, bytes, str, str], Any] = (
            registry.invoke_endpoint if registry is not None else lambda name, *request: invoke(*request))

    def handle(self, name: str, body: bytes, content_type: str, accept: str) -> tuple[int, dict, bytes]:
        request_id = str(uuid.uuid4())
        base = {"x-amzn-RequestId": request_id}
        if self.names and name not in self.names:
            return self._error(base, "ValidationError", 400,
                               f"Endpoint {name} of account {ACCOUNT_ID} not found.")
        if len(body) > INVOKE_LIMIT:
            return self._error(base, "ValidationError", 400,
                               f"Request payload of {len(body)} bytes exceeds the {INVOKE_LIMIT} byte limit "
                               "of InvokeEndpoint.")
        if self.cold_start is None:
            result = self.invoke(name, body, content_type, accept)
        else:
            self.cold_start.enter()
            try:
                result = self.invoke(name, body, content_type, accept)
            finally:
                self.cold_start.leave()
        if 200 <= result.status < 300:
            return 200, {**base, "Content-Type": result.content_type or "application/json",
                         "x-Amzn-Invoked-Production-Variant": "AllTraffic"}, result.body
        original = result.body.decode("utf-8", "replace")
        group = f"/aws/sagemaker/Endpoints/{name}"
        kind = "client" if result.status < 500 else "server"
        message = (f'Received {kind} error ({result.status}) from primary with message "{original}". '
                   f"See https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
                   f"#logEventViewer:group={group} in account {ACCOUNT_ID} for more information.")
        return self._error(base, "ModelError", 424, message, OriginalStatusCode=result.status,
                           OriginalMessage=original,
                           LogStreamArn=f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:{group}",
                           ErrorCode=f"{kind.upper()}_ERROR_FROM_MODEL")

    @staticmethod
    def _error(base: dict, code: str, status: int, message: str, **fields: Any) -> tuple[int, dict, bytes]:
        headers = {**base, "Content-Type": "application/json", "x-amzn-ErrorType": code}
        return status, headers, json.dumps({"message": message, **fields}).encode()
