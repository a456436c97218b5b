"""The local SageMaker's models: which artifact a model name stands for, and
which loaded model container serves a transform job or an endpoint.

The record is moto's SageMaker backend, as for any other resource moto keeps:
CreateModel, CreateEndpointConfig and their Describe/List calls go to moto
(critic/local/aws.py), and this module reads ModelName -> ModelDataUrl and
EndpointName -> EndpointConfigName -> ModelName from it. What moto does not
keep, and this module does, is what runs: the model containers loaded now
(one per artifact, shared by everything using it, closed when the last user
lets go) and UpdateEndpoint, which moto does not implement.

As on AWS:
- a transform job names its model at CreateTransformJob and loads that
  model's artifact when it starts; it keeps that container to its end,
  whatever happens to the endpoint or the model name meanwhile (lease());
- an endpoint serves the model of its current endpoint config; UpdateEndpoint
  loads the new config's model while the old one goes on serving (status
  Updating), then switches: requests from then on get the new model, requests
  already in flight finish on the old one (invoke_endpoint()).

ModelDataUrl is an s3:// URI in the local S3 (what `critic deploy --local`
uploads; `fetch` copies it to this machine) or the path of a model.tar.gz
(the artifact `critic serve --artifact` starts with).

Nothing here outlives the stack: a restart registers the template's model
again from --artifact, and a transform job interrupted by it is failed, so
no job needs a model of the previous run.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from critic.local.ids import ACCOUNT_ID

LOG = logging.getLogger("critic.models")

LOCAL_IMAGE = "critic-local/pytorch-inference"  # what critic/local/container.py plays
# The production variant of template.yaml's default endpoint (serverless, its
# default size); here, whatever it says, the endpoint is the model container.
LOCAL_VARIANT = {"VariantName": "AllTraffic", "InitialVariantWeight": 1.0,
                 "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 5}}


class ModelNotFound(Exception):
    """No such model (or endpoint, or endpoint config) in the record."""


@dataclass
class _Loaded:
    """One artifact's container and how many hold it (jobs, endpoints, requests)."""

    url: str
    users: int = 0
    container: Any = None
    error: BaseException | None = None
    ready: threading.Event = field(default_factory=threading.Event)


def sagemaker_backend(region: str):
    """moto's SageMaker records for the local account, the ones its server answers from."""
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT_ID][region]


class ModelRegistry:
    """`fetch(url) -> Path`: the artifact on this machine; `load(path) ->
    container` (with .invoke(body, content_type, accept) and .close())."""

    def __init__(self, region: str, fetch: Callable[[str], Path], load: Callable[[Path], Any]):
        self.region = region
        self.fetch = fetch
        self.load = load
        self._lock = threading.Lock()
        self._loaded: dict[str, _Loaded] = {}
        self._serving: dict[str, _Loaded] = {}  # endpoint name -> what it serves now
        self.switches = 0  # UpdateEndpoint calls completed

    @property
    def backend(self):
        return sagemaker_backend(self.region)

    # -- the record (moto) ----------------------------------------------------- #

    def known(self, model_name: str) -> bool:
        return any(model.model_name == model_name for model in self.backend.list_models())

    def artifact(self, model_name: str) -> str:
        for model in self.backend.list_models():
            if model.model_name == model_name:
                return (model.primary_container or {}).get("ModelDataUrl") or ""
        raise ModelNotFound(model_name)

    def model_of_config(self, config_name: str) -> str:
        config = self.backend.endpoint_configs.get(config_name)
        if config is None:
            raise ModelNotFound(config_name)
        return config.production_variants[0]["ModelName"]

    def register_model(self, model_name: str, artifact: str, tags: list[dict] | None = None) -> None:
        """CreateModel, as CloudFormation makes it from the template."""
        self.backend.create_model(model_name, f"arn:aws:iam::{ACCOUNT_ID}:role/{model_name}-execution",
                                  {"Image": LOCAL_IMAGE, "ModelDataUrl": artifact}, None, None, tags)

    def register_endpoint(self, endpoint_name: str, config_name: str, model_name: str) -> None:
        """CreateEndpointConfig and CreateEndpoint, as CloudFormation makes
        them from the template; the endpoint's model is loaded now (or was,
        see preload)."""
        backend = self.backend
        backend.create_endpoint_config(config_name, [{**LOCAL_VARIANT, "ModelName": model_name}], None, None, [],
                                       None)
        backend.create_endpoint(endpoint_name, config_name, [])
        self._serving[endpoint_name] = self._acquire(self.artifact(model_name))

    def preload(self, artifact: str, container: Any) -> None:
        """A container already loaded for `artifact` (the stack loads its model
        while the Lambda environments start); held until its users let go."""
        with self._lock:
            entry = self._loaded.setdefault(artifact, _Loaded(artifact))
            entry.container = container
            entry.ready.set()

    # -- containers ----------------------------------------------------------- #

    def _acquire(self, url: str) -> _Loaded:
        with self._lock:
            entry = self._loaded.get(url)
            loader = entry is None
            if loader:
                entry = self._loaded[url] = _Loaded(url)
            entry.users += 1
        if loader:
            try:
                LOG.info("loading the model %s", url)
                entry.container = self.load(self.fetch(url))
            except BaseException as error:  # noqa: BLE001 - every user waiting on it is told
                entry.error = error
                with self._lock:
                    self._loaded.pop(url, None)
            finally:
                entry.ready.set()
        entry.ready.wait()
        if entry.error is not None:
            raise entry.error
        return entry

    def _release(self, entry: _Loaded) -> None:
        with self._lock:
            entry.users -= 1
            if entry.users > 0 or entry.container is None or self._loaded.get(entry.url) is not entry:
                return  # still used, never loaded, or closed already (close())
            del self._loaded[entry.url]
        LOG.info("closing the model %s: nothing uses it any more", entry.url)
        entry.container.close()

    @contextmanager
    def lease(self, model_name: str) -> Iterator[Callable[[bytes, str, str], Any]]:
        """The invoke of `model_name`'s container, loaded if it is not, and
        kept for as long as the caller (a transform job) holds it."""
        entry = self._acquire(self.artifact(model_name))
        try:
            yield entry.container.invoke
        finally:
            self._release(entry)

    def loaded(self) -> list[str]:
        """The artifacts loaded now."""
        with self._lock:
            return sorted(url for url, entry in self._loaded.items() if entry.container is not None)

    # -- endpoints ------------------------------------------------------------- #

    def invoke_endpoint(self, endpoint_name: str, body: bytes, content_type: str, accept: str):
        """One request, answered by the model the endpoint serves as it arrives."""
        with self._lock:
            entry = self._serving[endpoint_name]
            entry.users += 1
        try:
            return entry.container.invoke(body, content_type, accept)
        finally:
            self._release(entry)

    def update_endpoint(self, endpoint_name: str, config_name: str) -> None:
        """UpdateEndpoint's work, after the request was accepted (status
        Updating): load the new config's model, then switch to it. A model that
        cannot load leaves the endpoint on the old one, InService, with the
        FailureReason, as a failed update does on AWS."""
        endpoint = self.backend.endpoints[endpoint_name]
        try:
            entry = self._acquire(self.artifact(self.model_of_config(config_name)))
        except Exception as error:  # noqa: BLE001 - reported in DescribeEndpoint
            LOG.warning("endpoint %s: update to %s failed: %s", endpoint_name, config_name, error)
            endpoint.failure_reason = f"The model of {config_name} could not be loaded: {error}"[:1024]
            endpoint.endpoint_status = "InService"
            return
        config = self.backend.endpoint_configs[config_name]
        with self._lock:
            old, self._serving[endpoint_name] = self._serving.get(endpoint_name), entry
            endpoint.endpoint_config_name = config_name
            endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
            endpoint.failure_reason = None
            endpoint.endpoint_status = "InService"
            self.switches += 1
        LOG.info("endpoint %s now serves %s (%s)", endpoint_name, config_name, entry.url)
        if old is not None:
            self._release(old)

    def close(self) -> None:
        """The stack stops (its jobs have stopped): every container closes."""
        with self._lock:
            self._serving = {}
            loaded, self._loaded = list(self._loaded.values()), {}
        for entry in loaded:
            if entry.container is not None:
                entry.container.close()
