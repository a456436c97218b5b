"""Fixtures for the SAM application's tests."""
from __future__ import annotations

import importlib
import json
import logging

import boto3
import pytest

from app_support import ENDPOINT_OVERRIDES, FakeLambdaContext, handler_environment


@pytest.fixture(autouse=True)
def _aws_of_the_tests(monkeypatch):
    """Clients made by a test talk to moto or a Stubber in us-east-1, never to
    a local stack the developer's shell may point AWS_ENDPOINT_URL_* at."""
    for name in ENDPOINT_OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def context() -> FakeLambdaContext:
    return FakeLambdaContext()


def _handler(service: str, module: str):
    with handler_environment(POWERTOOLS_SERVICE_NAME=service):
        return importlib.import_module(module)


@pytest.fixture(scope="session")
def realtime():
    return _handler("critic-realtime", "functions.realtime.app")


@pytest.fixture(scope="session")
def batch_app():
    return _handler("critic-batch", "functions.batch.app")


@pytest.fixture(scope="session")
def completion():
    return _handler("critic-completion", "functions.completion.app")


@pytest.fixture(scope="session")
def uploads_app():
    return _handler("critic-uploads", "functions.uploads.app")


@pytest.fixture
def fresh_client(monkeypatch):
    """Replace a handler module's boto3 client by a new one with the same
    configuration (created now: under moto's mock, or for a Stubber)."""

    def replace(module, attribute: str, service: str):
        old = getattr(module, attribute)
        with handler_environment():
            client = boto3.client(service, config=old.meta.config)
        monkeypatch.setattr(module, attribute, client)
        return client

    return replace


class _JsonLines(logging.Handler):
    def __init__(self, formatter: logging.Formatter):
        super().__init__()
        self.formatter = formatter
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def logs():
    """The JSON log lines a handler module writes during the test, formatted
    when written, as CloudWatch receives them (with the keys appended then)."""
    attached: list[tuple[logging.Logger, _JsonLines]] = []

    def read(module) -> list[dict]:
        for target, handler in attached:
            if target is module.logger._logger:
                return handler.lines
        handler = _JsonLines(module.logger.registered_formatter)
        module.logger._logger.addHandler(handler)
        attached.append((module.logger._logger, handler))
        return handler.lines

    yield read
    for target, handler in attached:
        target.removeHandler(handler)
