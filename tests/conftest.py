"""Fixtures shared by every test folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_imdb import make_tiny_imdb  # noqa: E402

# Tests never reach AWS: fake credentials and a region for every boto3 client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)

TINY_TRAINING_ARGS = ["--epochs", "6", "--batch-size", "16", "--lr", "0.01", "--embed-dim", "16",
                      "--hidden-dim", "16", "--bag-dim", "8", "--patience", "6", "--threads", "1",
                      "--bigrams", "200", "--dropout", "0.1"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_imdb_tarball(tmp_path_factory) -> Path:
    return make_tiny_imdb(tmp_path_factory.mktemp("imdb") / "aclImdb_v1.tar.gz")


@pytest.fixture(scope="session")
def tiny_training(tmp_path_factory, tiny_imdb_tarball) -> Path:
    """A run folder: model/ (the model dir), metrics.json, training.png."""
    from model import train

    run = tmp_path_factory.mktemp("tiny-run")
    train.main(["--data", str(tiny_imdb_tarball), "--model-dir", str(run / "model"),
                "--output-dir", str(run), *TINY_TRAINING_ARGS])
    return run


@pytest.fixture(scope="session")
def tiny_artifact(tiny_training) -> Path:
    """model.tar.gz of a small model trained on the tiny dataset: it tells
    praise from scorn ("a wonderful, moving film" / "an awful, boring mess")."""
    from model.package import package

    return package(tiny_training / "model", tiny_training / "model.tar.gz")
