"""Fixtures for the reliability tests (fuzzing, bad-input corpus, faults).

Hypothesis profiles, chosen by HYPOTHESIS_PROFILE: "default" (a small,
derandomized run inside `make test`) and "fuzz" (`make fuzz`: 1,000 examples
per target, still derandomized so a failure reproduces)."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

from app_support import FakeLambdaContext, handler_environment  # noqa: E402

_COMMON = {"derandomize": True, "deadline": None, "print_blob": True,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("default", max_examples=100, **_COMMON)
settings.register_profile("fuzz", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _handler(service: str, module: str):
    with handler_environment(POWERTOOLS_SERVICE_NAME=service):
        return importlib.import_module(module)


@pytest.fixture(scope="session")
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(scope="session")
def realtime_module():
    return _handler("critic-realtime", "functions.realtime.app")


@pytest.fixture(scope="session")
def batch_module():
    return _handler("critic-batch", "functions.batch.app")


@pytest.fixture(scope="session")
def completion_module():
    return _handler("critic-completion", "functions.completion.app")


@pytest.fixture(scope="session")
def tiny_scorer(tiny_artifact, tmp_path_factory):
    """The tiny model loaded as the SageMaker container does: model.tar.gz
    unpacked, then inference.model_fn on the folder."""
    from model import inference
    from model.package import extract

    return inference.model_fn(str(extract(tiny_artifact, tmp_path_factory.mktemp("tiny-model"))))
