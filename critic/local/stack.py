"""The whole of Critic on one machine (`critic serve`, `make run`).

One process runs, on 127.0.0.1 only:
- the AWS endpoint (S3 from moto, SageMaker and SageMaker Runtime from
  critic/local/sagemaker.py with the model container loaded once);
- the HTTP API of template.yaml, calling its Lambda functions
  (critic/local/api.py, critic/local/lambdas.py), and the web page;
- the event sources: S3 notifications of the template's buckets and the
  EventBridge rules of its functions (transform job state changes), through
  the stack's event bus (critic/local/events.py), and the SQS event sources
  of its functions (critic/local/sqs.py).

State (buckets, objects, queued messages, transform jobs, dead letters) lives
in the data folder and survives a restart.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from moto.moto_server.werkzeug_app import MotoRequestHandler

from critic import REPO_ROOT
from critic.local import s3 as local_s3
from critic.local.api import HttpApiGateway
from critic.local.aws import AwsEndpoint
from critic.local.clients import S3ObjectStore, local_client
from critic.local.events import EventBus
from critic.local.lambdas import LambdaFunction, endpoint_variables, function_environment
from critic.local.models import ModelRegistry
from critic.local.sagemaker import ColdStart, Endpoint, TransformJobs, state_change_event
from critic.local.serving import KeepAliveHandler, Server
from critic.local.sqs import QueueReader, QueueStore, create_queues, queue_url
from critic.local.ids import DEFAULT_REGION
from critic.local.template import LocalStack, read_template

LOG = logging.getLogger("critic.stack")

DEFAULT_AWS_PORT = 4566
DEFAULT_API_PORT = 3000
AWS_PORT_VARIABLE = "CRITIC_AWS_PORT"
API_PORT_VARIABLE = "CRITIC_API_PORT"
# Template parameters the local stack sets unless told otherwise. Its
# transform jobs take seconds, not AWS's minutes, so an upload waiting for
# capacity is tried again after 1 to 4 s instead of 1 to 15 minutes. And this
# machine is the account: no cap of the stack's own on jobs in flight (they
# queue in the local SageMaker, which runs two at once) unless
# `--transform-quota` plays an account's quota; a cap here would only leave the
# cores idle between an upload's tries (ten 10,000-line files: 4.9 s without
# it, 11.8 s with MaxTransformJobsInFlight=2; scripts/load_local.py).
LOCAL_PARAMETER_DEFAULTS = {"CapacityRetrySeconds": "1", "CapacityRetryMaxSeconds": "4",
                            "MaxTransformJobsInFlight": "0"}


class StackError(Exception):
    """The stack cannot start; the message says why and what to change."""


@dataclass
class StackOptions:
    template: Path = REPO_ROOT / "template.yaml"
    artifact: Path | None = None
    data_dir: Path = REPO_ROOT / ".critic"
    host: str = "127.0.0.1"
    aws_port: int = DEFAULT_AWS_PORT
    api_port: int = DEFAULT_API_PORT
    fresh: bool = False
    parameters: dict[str, str] = field(default_factory=dict)
    web_dir: Path | None = REPO_ROOT / "web"
    lambda_concurrency: int = 4
    model_workers: int = 2
    max_jobs: int = 2
    retry_delays: tuple[float, ...] = (1.0, 2.0)
    endpoint_cold_start: float = 0.0  # seconds a cold endpoint holds invocations (0: always warm)
    endpoint_idle_timeout: float | None = None  # seconds idle before it is cold again (None: never)
    transform_quota: int | None = None  # instances running jobs may hold, as an account's quota (None: no limit)
    transform_throttle: float = 0.0  # fraction of CreateTransformJob calls answered ThrottlingException


def check_port(host: str, port: int, variable: str, flag: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the server will: a port whose old connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                raise StackError(
                    f"port {port} on {host} is in use (another `critic serve`, LocalStack or `sam local`?). "
                    f"Stop that program, or choose another port: {variable}={port + 1} make run "
                    f"(or critic serve {flag} {port + 1})") from None
            raise


class _AwsHandler(KeepAliveHandler, MotoRequestHandler):
    """moto's handler keeps S3 metadata headers with underscores."""


class Stack:
    def __init__(self, options: StackOptions):
        self.options = options
        self.template: LocalStack | None = None
        self.container = None
        self.cold_start: ColdStart | None = None
        self.functions: dict[str, LambdaFunction] = {}
        self.servers: list[Server] = []
        self.jobs: TransformJobs | None = None
        self.models: ModelRegistry | None = None
        self.bus: EventBus | None = None
        self.s3_events: local_s3.ObjectEvents | None = None
        self.queue_readers: list[QueueReader] = []

    # -- addresses ---------------------------------------------------------- #

    @property
    def aws_url(self) -> str:
        return f"http://{self.options.host}:{self.options.aws_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.options.host}:{self.options.api_port}"

    @property
    def region(self) -> str:
        return self.template.region if self.template else DEFAULT_REGION

    def client(self, service: str):
        return local_client(service, self.aws_url, self.region)

    def info(self) -> dict:
        template = self.template
        return {
            "aws": self.aws_url,
            "api": self.api_url,
            "region": self.region,
            "buckets": {b.logical_id: b.name for b in template.buckets.values()} if template else {},
            "endpoints": template.endpoints if template else [],
            "models": template.models if template else [],
            "functions": {logical_id: {"name": f.spec.name, "environment": f.spec.environment}
                          for logical_id, f in self.functions.items()},
            "loadedModels": self.models.loaded() if self.models else [],
            "notifications": [
                {"bucket": n.bucket, "function": n.function, "prefix": n.prefix, "suffix": n.suffix, "queue": n.queue}
                for n in template.s3_notifications] if template else [],
            "queues": self._queue_roles(),
            "transformJobs": {"quota": self.options.transform_quota, "throttle": self.options.transform_throttle,
                              "peakInProgress": self.jobs.peak_in_progress if self.jobs else 0,
                              "throttled": self.jobs.throttled if self.jobs else 0},
            "data": str(self.options.data_dir),
        }

    def _queue_roles(self) -> dict[str, str]:
        """The URLs of the uploads queue (S3 notifications go there) and of the
        failed-events queue (its dead-letter queue), for `critic redrive`."""
        template = self.template
        if template is None:
            return {}
        roles = {}
        uploads = next((n.queue for n in template.s3_notifications if n.queue), None)
        if uploads:
            roles["uploads"] = queue_url(self.aws_url, uploads)
            failed = next((q.dead_letter_queue for q in template.queues if q.name == uploads), None)
            if failed:
                roles["failedEvents"] = queue_url(self.aws_url, failed)
        return roles

    # -- start and stop ------------------------------------------------------ #

    def start(self) -> None:
        options = self.options
        check_port(options.host, options.aws_port, AWS_PORT_VARIABLE, "--aws-port")
        check_port(options.host, options.api_port, API_PORT_VARIABLE, "--api-port")
        try:
            self.template = read_template(options.template, parameters=self._parameters())
        except Exception as error:
            raise StackError(str(error)) from error
        artifact = Path(options.artifact) if options.artifact else None
        if artifact is None or not artifact.is_file():
            raise StackError(
                f"no model artifact at {artifact}: train one (`critic train`, see README) or pass "
                "--artifact PATH to a model.tar.gz")
        if options.fresh and options.data_dir.exists():
            shutil.rmtree(options.data_dir)
        options.data_dir.mkdir(parents=True, exist_ok=True)
        (options.data_dir / ".gitignore").write_text("*\n")

        from critic.local.container import ContainerError, ModelContainer

        loaded: dict = {}

        def load_model() -> None:
            try:
                loaded["container"] = ModelContainer(artifact, workers=options.model_workers)
            except ContainerError as error:
                loaded["error"] = StackError(f"{artifact}: {error}")
            except BaseException as error:  # noqa: BLE001 - raised in the caller's thread
                loaded["error"] = error

        # The model loads (seconds) while the Lambda environments start.
        loader = threading.Thread(target=load_model, name="model-load", daemon=True)
        loader.start()
        try:
            self._prepare()
            loader.join()
            if "error" in loaded:
                raise loaded["error"]
            self.container = loaded["container"]
            self._start_services()
        except BaseException:
            loader.join()
            self.container = self.container or loaded.get("container")
            self.stop()
            raise

    def _parameters(self) -> dict[str, str]:
        from critic.cfn_yaml import load_yaml

        declared = load_yaml(self.options.template).get("Parameters") or {}
        local = {k: v for k, v in LOCAL_PARAMETER_DEFAULTS.items() if k in declared}
        return {**local, **self.options.parameters}

    def _prepare(self) -> None:
        """The Lambda functions, each with one warm execution environment."""
        options, template = self.options, self.template
        endpoints = endpoint_variables(self.aws_url)
        for logical_id, spec in template.functions.items():
            env = function_environment(spec, endpoints, template.region)
            self.functions[logical_id] = LambdaFunction(spec, env, options.lambda_concurrency, _log_line)
        warming = [threading.Thread(target=f.warm, daemon=True) for f in self.functions.values()]
        for thread in warming:
            thread.start()
        for thread in warming:
            thread.join()

    def _start_services(self) -> None:
        options, template = self.options, self.template
        region = template.region

        # S3: what was saved, then the template's buckets.
        store = local_s3.S3Store(options.data_dir / "s3", region)
        restored = store.restore()
        s3 = local_s3.backend()
        for bucket in template.buckets.values():
            if bucket.name not in s3.buckets:
                s3.create_bucket(bucket.name, region)
            if bucket.versioned and not s3.buckets[bucket.name].is_versioned:
                s3.put_bucket_versioning(bucket.name, "Enabled")
            if bucket.cors_rules:  # the web page's uploads (critic/local/s3browser.py answers by them)
                s3.put_bucket_cors(bucket.name, [_moto_cors_rule(rule) for rule in bucket.cors_rules])
        store.sync_buckets()
        LOG.info("S3: %d objects restored from %s", restored, store.folder)

        # The event bus (and Lambda's event queue behind it).
        data = options.data_dir
        self.bus = EventBus(template, self.functions, data / "dead-letter", options.retry_delays,
                            lambda: self.client("sqs"))

        # SageMaker: the template's model, endpoint config and endpoint, served
        # by the container loaded at start; other models load when used.
        self.models = ModelRegistry(region, self._fetch_model, self._load_model)
        artifact_url = str(Path(options.artifact).resolve())
        self.models.preload(artifact_url, self.container)
        self.container = None  # the registry closes it when nothing uses it
        for model in template.models:
            self.models.register_model(model, artifact_url)
        for endpoint_name in template.endpoints if template.models else []:
            self.models.register_endpoint(endpoint_name, f"{endpoint_name}-config", template.models[0])
        self.jobs = TransformJobs(data / "transform-jobs", region, self.models,
                                  lambda: S3ObjectStore(self.client("s3")), None,
                                  self._job_changed, options.max_jobs, quota=options.transform_quota,
                                  throttle=options.transform_throttle)
        if options.endpoint_cold_start > 0:
            self.cold_start = ColdStart(options.endpoint_cold_start, options.endpoint_idle_timeout)
        endpoint = Endpoint(template.endpoints, region, None, self.cold_start, registry=self.models)

        # Servers.
        def after_s3_change(method: str) -> None:
            store.sync_buckets()
            if method in ("DELETE", "POST"):  # DeleteObject(s)
                store.sync_deletions()

        def on_s3_event(event_name: str, bucket, key) -> None:
            store.on_object_event(event_name, bucket, key)
            if event_name.startswith("s3:ObjectCreated"):
                self.bus.object_created(event_name, bucket, key)

        self.s3_events = local_s3.ObjectEvents(on_s3_event)
        queues = QueueStore(data / "sqs", region)
        aws_app = self.s3_events.serve(AwsEndpoint(self.jobs, endpoint, after_s3_change, self.info,
                                                   after_sqs_change=queues.save, invoke_function=self._invoke,
                                                   registry=self.models, configure_function=self._configure))
        self.servers.append(Server("aws-endpoint", options.host, options.aws_port, aws_app, _AwsHandler))
        functions = self.functions
        api = template.apis[0] if template.apis else None
        if len(template.apis) > 1:
            LOG.warning("the template has %d HTTP APIs; serving %s", len(template.apis), api.logical_id)
        if api is not None:
            gateway = HttpApiGateway(api, functions, region, options.web_dir)
            self.servers.append(Server("http-api", options.host, options.api_port, gateway, KeepAliveHandler))
        for server in self.servers:
            server.start()
        sqs = self.client("sqs")
        create_queues(sqs, template.queues, region)  # e.g. the uploads queue and the failed-events queue
        LOG.info("SQS: %d messages restored from %s", queues.restore(), queues.folder)

        # Event sources, once everything they call is up.
        self.s3_events.install()
        for name in self.jobs.load():
            LOG.warning("transform job %s was interrupted by a restart: marked Failed", name)
        for source in template.queue_sources:
            reader = QueueReader(source, self.client("sqs"), queue_url(self.aws_url, source.queue), region,
                                 self.functions[source.function].invoke)
            self.queue_readers.append(reader)
            reader.start()

    def stop(self) -> None:
        for reader in self.queue_readers:
            reader.stop()
        if self.s3_events:
            self.s3_events.remove()
        if self.jobs:
            self.jobs.close()
        if self.cold_start:
            self.cold_start.close()  # invocations held by a warm-up end now
        for server in self.servers:
            server.stop()
        if self.bus:
            self.bus.close()
        for function in self.functions.values():
            function.close()
        if self.models:
            self.models.close()  # the endpoints' models; the jobs' were let go as they stopped
        if self.container:
            self.container.close()
            self.container = None

    # -- event sources -------------------------------------------------------- #

    def _invoke(self, name: str, event, asynchronous: bool):
        """Lambda's Invoke API (what `critic redrive` calls): the function by
        name or ARN; None if there is no such function."""
        function = self._function(name)
        if function is None:
            return None
        if asynchronous:
            self.bus.invoke_async(function.spec.logical_id, event, "Lambda Invoke (Event)")
            return True
        return function.invoke(event)

    def _configure(self, name: str, changes: dict | None) -> dict | None:
        """Lambda's Get/UpdateFunctionConfiguration (the Environment) of a
        function by name or ARN; None if there is no such function."""
        function = self._function(name)
        if function is None:
            return None
        if changes is None:
            return function.configuration()
        return function.configure((changes.get("Environment") or {}).get("Variables") or {})

    def _function(self, name: str) -> LambdaFunction | None:
        short = name.split(":")[6] if name.startswith("arn:") and name.count(":") >= 6 else name
        return next((f for f in self.functions.values() if short in (f.spec.name, f.spec.logical_id)), None)

    def _fetch_model(self, url: str) -> Path:
        """A model's artifact on this machine: a path as it is; an s3:// one
        (the local S3) copied once into the data folder's models/."""
        if not url.startswith("s3://"):
            return Path(url)
        bucket, _, key = url.removeprefix("s3://").partition("/")
        target = self.options.data_dir / "models" / hashlib.sha256(url.encode()).hexdigest()[:32] / "model.tar.gz"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            self.client("s3").download_file(bucket, key, str(partial))
            partial.replace(target)
        return target

    def _load_model(self, artifact: Path):
        from critic.local.container import ModelContainer

        return ModelContainer(artifact, workers=self.options.model_workers)

    def _job_changed(self, job: dict) -> None:
        LOG.info("transform job %s: %s%s", job["TransformJobName"], job["TransformJobStatus"],
                 f" ({job['FailureReason']})" if job.get("FailureReason") else "")
        self.bus.publish(state_change_event(job, self.region))

    # -- what runs where ------------------------------------------------------ #

    def banner(self) -> str:
        template = self.template
        buckets = {b.logical_id: b.name for b in template.buckets.values()}
        lines = [
            "Critic is running on this machine (development and evaluation; deploy to AWS for scale).",
            "",
            f"  Web page       {self.api_url}/",
            f"  HTTP API       {self.api_url}" + "".join(
                f"\n                   {r.route_key}  ->  {r.function}" for api in template.apis for r in api.routes),
            f"  AWS endpoint   {self.aws_url}   (S3, SageMaker, SageMaker Runtime)",
        ]
        for logical_id, name in buckets.items():
            lines.append(f"  Bucket         {name}   ({logical_id})")
        for endpoint in template.endpoints:
            lines.append(f"  Endpoint       {endpoint}   (model {self.options.artifact})")
            if self.options.endpoint_cold_start > 0:
                idle = self.options.endpoint_idle_timeout
                lines.append(f"                   cold: the first invocation waits {self.options.endpoint_cold_start:g} s"
                             + (f", and again after {idle:g} s idle" if idle else ""))
        for notification in template.s3_notifications:
            filt = " ".join(x for x in (notification.prefix and f"prefix {notification.prefix}",
                                        notification.suffix and f"suffix {notification.suffix}") if x)
            via = f"{notification.queue} -> " if notification.queue else ""
            lines.append(f"  On upload      s3://{notification.bucket}/ {filt} -> {via}{notification.function}")
        for rule in template.rules:
            lines.append(f"  On event       {_pattern_summary(rule.pattern)} -> {rule.function}")
        readers = {source.queue: source.function for source in template.queue_sources}
        for queue in template.queues:
            role = (f"uploads waiting for a transform job, read by {readers[queue.name]}" if queue.name in readers
                    else "what could not be handled after retries; `critic redrive` sends it back")
            lines.append(f"  Queue          {queue.name}   (SQS; {role})")
        if self.options.transform_quota is not None or self.options.transform_throttle:
            lines.append(f"  Transform jobs at most {self.options.transform_quota} instances of a type at once"
                         if self.options.transform_quota is not None else "  Transform jobs no quota")
            if self.options.transform_throttle:
                lines[-1] += f"; {self.options.transform_throttle:.0%} of CreateTransformJob calls throttled"
        lines.append(f"  Data folder    {self.options.data_dir}   (`critic serve --fresh` starts clean)")
        notification = next(iter(template.s3_notifications), None)
        route = next((r for api in template.apis for r in api.routes if r.method == "POST"), None)
        aws = f"AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test aws --endpoint-url {self.aws_url}"
        lines += ["", "Try it:"]
        if route is not None:
            lines.append(f"  curl -s {self.api_url}{route.path} -H 'content-type: application/json' "
                         "-d '{\"review\": \"A wonderful, moving film.\"}'")
        if notification is not None:
            key = notification.prefix + "reviews" + (notification.suffix or ".txt")
            lines.append(f"  printf 'A wonderful, moving film.\\nAn awful, boring mess.\\n' | {aws} "
                         f"s3 cp - s3://{notification.bucket}/{key}")
            output = template.functions[notification.function].environment.get("OUTPUT_BUCKET")
            if output:
                lines.append(f"  {aws} s3 cp s3://{output}/{key}.out -      (a few seconds later)")
            critic = ".venv/bin/critic" if Path(sys.executable).is_relative_to(REPO_ROOT) else "critic"
            lines.append(f"  {critic} score reviews.txt reviews.jsonl reviews.csv      "
                         "(uploads, waits, downloads FILE.out beside each file)")
        lines.append(f"  open {self.api_url}/ in a browser")
        lines += ["", "Ctrl-C stops everything."]
        return "\n".join(lines)


def _moto_cors_rule(rule: dict) -> dict:
    """A CloudFormation CorsRule as moto's S3 takes it (PutBucketCors's XML, parsed)."""
    moto_rule = {"AllowedOrigin": list(rule["AllowedOrigins"]), "AllowedMethod": list(rule["AllowedMethods"])}
    for cfn, moto in (("AllowedHeaders", "AllowedHeader"), ("ExposedHeaders", "ExposeHeader")):
        if rule.get(cfn):
            moto_rule[moto] = list(rule[cfn])
    if rule.get("MaxAge") is not None:
        moto_rule["MaxAgeSeconds"] = str(rule["MaxAge"])
    if rule.get("Id"):
        moto_rule["ID"] = rule["Id"]
    return moto_rule


def _pattern_summary(pattern: dict) -> str:
    parts = [", ".join(map(str, pattern.get(key, []))) for key in ("source", "detail-type") if pattern.get(key)]
    status = (pattern.get("detail") or {}).get("TransformJobStatus")
    if status:
        parts.append("/".join(map(str, status)))
    return " ".join(parts) or json.dumps(pattern)


def _log_line(function: str, text: str) -> None:
    prefix = f"[{function}] "
    sys.stderr.write(prefix + text.replace("\n", "\n" + prefix) + "\n")
    sys.stderr.flush()
