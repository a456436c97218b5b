"""Fixtures shared by every test folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Test modules import these from tiny_imdb: "conftest" names a module in every folder.
from tiny_imdb import REPO_ROOT, TINY_TRAINING_ARGS, make_tiny_imdb  # noqa: E402

# Tests never reach AWS: fake credentials and a region for every boto3 client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


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


@pytest.fixture(scope="session")
def broken_artifact(tiny_training, tmp_path_factory) -> Path:
    """The tiny model with its weights scrambled: it loads and answers, and is
    wrong about half the time (what `critic compare` and `critic deploy` refuse)."""
    import shutil

    import torch

    from model.package import package

    model_dir = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(tiny_training / "model", model_dir)
    state = torch.load(model_dir / "model.pt", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    torch.save({k: torch.randn(v.shape, generator=generator).to(v.dtype) if v.is_floating_point() else v
                for k, v in state.items()}, model_dir / "model.pt")
    return package(model_dir, model_dir.parent / "model.tar.gz")
