"""Runs one SageMaker transform job on this machine, with SageMaker's semantics
(see critic/local/transform.py), against any object store and model.

The store and the model are injected, so this module stays plain Python: the
local stack gives it an S3 client on its own endpoint and the in-process
SageMaker PyTorch serving stack (critic/local/sagemaker.py).

The job's InstanceCount instances share its input objects by key (as
batch transform does: an instance reads whole objects, so one object is one
instance's work, and a job of many objects, e.g. a big upload's shards,
spreads over its instances; elsewhere in SageMaker this is ShardedByS3Key,
which CreateTransformJob does not take as a field): the sorted keys are dealt
round-robin, and each instance is a thread that works through its objects
while the others work through theirs, its requests answered by the model
container's worker processes (one per core, `critic serve --model-workers`).

For each input object: read it, split it into records, send mini-batches to
the model (up to MaxConcurrentTransforms at once per instance), assemble the
results in input order into a temporary file, and upload `<key>.out` only
when the whole object succeeded. An object that fails leaves no output at all; the job goes
on with the other objects, then fails with the first reason (as SageMaker
does).
"""
from __future__ import annotations

import gzip
import logging
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Callable, Protocol

from batch.jobs import readable_reason
from contract.jsonreader import JSONInputError, loads as read_json
from contract.locations import parse_s3_uri, s3_uri, transform_output_key
from contract.transformjob import S3_URI_SCHEMES, TransformJobRequest, input_uri, output_path
from critic.local.transform import (
    DataProcessing,
    TransformError,
    assemble,
    mini_batches,
    payload,
    split_records,
)

LOG = logging.getLogger("critic.transform")

DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_INVOCATION_TIMEOUT = 600
DEFAULT_MAX_RETRIES = 3
SPOOL_BYTES = 16 * 1024 * 1024


class ObjectStore(Protocol):
    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...
    def download(self, bucket: str, key: str, fileobj: IO[bytes]) -> None: ...
    def upload(self, bucket: str, key: str, fileobj: IO[bytes]) -> None: ...


@dataclass
class ModelAnswer:
    status: int
    body: bytes


Invoke = Callable[[bytes, str, str], ModelAnswer]


class JobStopped(Exception):
    """StopTransformJob was called (or the stack is shutting down)."""


class JobFailed(Exception):
    """The job failed; str(self) is its FailureReason."""


def _answer_message(body: bytes) -> str:
    """What a failed model answer says, in one line: the message of a JSON
    {"message": ...} answer (the handler's refusals), else the first line of
    the text (the toolkit follows an unexpected error's message with a Python
    traceback, which must not reach the job's FailureReason)."""
    try:
        document = read_json(body)
    except JSONInputError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        text = document["message"]
    else:
        text = body.decode("utf-8", "replace")
    return (readable_reason(text) or "(no message)")[:400]


@dataclass
class TransformJob:
    """The parts of a CreateTransformJob request that decide what runs."""

    name: str
    input_uri: str
    content_type: str
    compression: str
    split_type: str
    output_uri: str
    accept: str
    assemble_with: str
    strategy: str
    max_payload_mb: int
    max_concurrent: int
    timeout: float
    max_retries: int
    processing: DataProcessing
    instances: int = 1

    @classmethod
    def from_request(cls, request: TransformJobRequest) -> "TransformJob":
        transform_input = request["TransformInput"]
        transform_output = request["TransformOutput"]
        client = request.get("ModelClientConfig") or {}
        return cls(
            name=request["TransformJobName"],
            input_uri=input_uri(request),
            content_type=transform_input.get("ContentType", ""),
            compression=transform_input.get("CompressionType", "None"),
            split_type=transform_input.get("SplitType", "None"),
            output_uri=output_path(request),
            accept=transform_output.get("Accept", ""),
            assemble_with=transform_output.get("AssembleWith", "None"),
            strategy=request.get("BatchStrategy", "MultiRecord"),
            max_payload_mb=request.get("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB),
            max_concurrent=max(1, request.get("MaxConcurrentTransforms") or 1),
            timeout=client.get("InvocationsTimeoutInSeconds", DEFAULT_INVOCATION_TIMEOUT),
            max_retries=client.get("InvocationsMaxRetries", DEFAULT_MAX_RETRIES),
            instances=max(1, (request.get("TransformResources") or {}).get("InstanceCount") or 1),
            processing=DataProcessing.from_request(
                request.get("DataProcessing"),
                transform_input.get("ContentType"),
                transform_output.get("Accept"),
            ),
        )


class TransformRunner:
    def __init__(
        self,
        job: TransformJob,
        store: ObjectStore,
        invoke: Invoke,
        stop: threading.Event,
        progress: Callable[[str, int], None] | None = None,
    ):
        self.job = job
        self.store = store
        self.invoke = invoke
        self.stop = stop
        self.progress = progress or (lambda key, records: None)

    def run(self) -> list[str]:
        """Transform every input object; return the output URIs. Raises
        JobStopped, or JobFailed with the FailureReason."""
        bucket, prefix = parse_s3_uri(self.job.input_uri, S3_URI_SCHEMES)
        out_bucket, out_prefix = parse_s3_uri(self.job.output_uri, S3_URI_SCHEMES)
        keys = [key for key in self.store.list_keys(bucket, prefix) if not key.endswith("/")]
        if not keys:
            raise JobFailed(
                f'ClientError: No S3 objects found under S3 URL "{self.job.input_uri}" given in '
                "input data source. Please ensure that the bucket exists and that objects exist "
                "under that S3 prefix."
            )
        outputs, failures = [], []
        lock = threading.Lock()

        def instance(share: list[str]) -> None:
            for key in share:
                if self.stop.is_set():
                    return
                target = transform_output_key(key, prefix, out_prefix)
                try:
                    self._transform_object(bucket, key, out_bucket, target)
                    with lock:
                        outputs.append(s3_uri(out_bucket, target))
                except TransformError as error:
                    failure = f"{getattr(error, 'kind', 'ClientError')}: s3://{bucket}/{key}: {error}"
                    with lock:
                        failures.append((key, failure))
                    LOG.warning("transform job %s: %s", self.job.name, failure)

        keys.sort()
        shares = [keys[number::self.job.instances] for number in range(min(self.job.instances, len(keys)))]
        with ThreadPoolExecutor(len(shares), thread_name_prefix=f"instance-{self.job.name}") as pool:
            for done in [pool.submit(instance, share) for share in shares]:
                done.result()  # JobStopped and unexpected errors end the job as before
        self._check_stop()
        if failures:
            first = min(failures)[1]  # by key, whichever instance met it first
            more = f" (and {len(failures) - 1} more failed objects)" if len(failures) > 1 else ""
            raise JobFailed((first + more)[:1024])
        return sorted(outputs)

    # -- one object --------------------------------------------------------- #

    def _transform_object(self, bucket: str, key: str, out_bucket: str, target: str) -> None:
        with tempfile.TemporaryFile() as raw, tempfile.SpooledTemporaryFile(SPOOL_BYTES) as out:
            self.store.download(bucket, key, raw)
            raw.seek(0)
            source: IO[bytes] = gzip.GzipFile(fileobj=raw) if self.job.compression == "Gzip" else raw
            try:
                self._transform_stream(source, out, key)
            except (OSError, EOFError) as error:  # a broken gzip stream
                raise TransformError(f"cannot read the object ({error})") from None
            self._check_stop()
            out.seek(0)
            self.store.upload(out_bucket, target, out)

    def _transform_stream(self, source: IO[bytes], out: IO[bytes], key: str) -> None:
        job = self.job
        processing = job.processing
        records = split_records(source, job.split_type)
        batches = mini_batches(records, job.max_payload_mb, job.strategy)
        pending: deque = deque()
        done = 0
        pool = ThreadPoolExecutor(job.max_concurrent, thread_name_prefix=f"transform-{job.name}")
        try:
            first = 1
            for batch in batches:
                self._check_stop()
                body = payload(
                    [processing.filter_input(record, first + i) for i, record in enumerate(batch)]
                )
                pending.append((batch, first, pool.submit(self._call_model, body, first, len(batch))))
                first += len(batch)
                # Bound memory: at most two mini-batches per worker in flight.
                while len(pending) >= 2 * job.max_concurrent:
                    done += self._write_next(pending, out)
                    self.progress(key, done)
            while pending:
                self._check_stop()
                done += self._write_next(pending, out)
                self.progress(key, done)
        finally:
            # On failure, mini-batches not yet sent are dropped, not sent for nothing.
            pool.shutdown(wait=True, cancel_futures=True)

    def _write_next(self, pending: deque, out: IO[bytes]) -> int:
        batch, first, future = pending.popleft()
        answer = future.result()
        out.write(assemble(batch, first, answer, self.job.processing, self.job.assemble_with))
        return len(batch)

    def _call_model(self, body: bytes, first: int, count: int) -> bytes:
        job = self.job
        where = f"records {first}-{first + count - 1}"
        attempts = job.max_retries + 1
        for attempt in range(1, attempts + 1):
            if self.stop.is_set():
                raise JobStopped()
            try:
                answer = self._invoke_with_timeout(body)
            except JobStopped:
                raise
            except TimeoutError:
                problem, kind = f"the model did not answer within {job.timeout} s", "AlgorithmError"
            except Exception as error:  # noqa: BLE001 - any container failure fails the mini-batch
                problem, kind = f"the model container failed: {readable_reason(str(error))}", "AlgorithmError"
            else:
                if 200 <= answer.status < 300:
                    return answer.body
                problem = f"the model answered HTTP {answer.status}: {_answer_message(answer.body)}"
                kind = "ClientError" if answer.status < 500 else "AlgorithmError"
                if answer.status < 500:
                    break  # a client error is not retried: the same request fails the same way
            LOG.info("transform job %s: %s (%s), attempt %d of %d", job.name, problem, where, attempt, attempts)
        error = TransformError(f"{problem} ({where})")
        error.kind = kind  # type: ignore[attr-defined]
        raise error

    def _invoke_with_timeout(self, body: bytes) -> ModelAnswer:
        result: dict = {}

        def call() -> None:
            try:
                result["answer"] = self.invoke(body, self.job.content_type, self.job.accept)
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                result["error"] = error

        thread = threading.Thread(target=call, daemon=True, name=f"invoke-{self.job.name}")
        thread.start()
        deadline = time.monotonic() + self.job.timeout
        while thread.is_alive():
            if self.stop.is_set():
                raise JobStopped()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError()
            thread.join(min(remaining, 0.2))
        if "error" in result:
            raise result["error"]
        return result["answer"]

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise JobStopped()
