import json
import os
import subprocess
import sys
import tarfile

import torch

from conftest import REPO_ROOT, TINY_TRAINING_ARGS


def test_training_reports_curves_confusion_matrix_and_validation_metrics(tiny_training):
    metrics = json.loads((tiny_training / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] >= 0.9  # the tiny data is easy: it must learn it
    assert metrics["validation_reviews"] + metrics["train_reviews"] == 300
    assert sum(map(sum, metrics["validation"]["confusion_matrix"])) == metrics["validation_reviews"]
    assert len(metrics["history"]) >= 1 and {"train_loss", "valid_loss", "valid_acc"} <= set(metrics["history"][0])
    png = (tiny_training / "training.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_model_dir_is_a_complete_artifact_without_pickle(tiny_training, tiny_artifact):
    with tarfile.open(tiny_artifact) as tar:
        names = set(tar.getnames())
    assert {"model.pt", "vocab.json", "config.json", "code/inference.py", "code/requirements.txt",
            "code/model/__init__.py", "code/model/preprocess.py", "code/model/stopwords.txt",
            "code/model/network.py", "code/model/encoding.py", "code/model/scorer.py"} <= names
    assert not any(n.endswith((".pkl", ".pickle", ".pyc")) for n in names)
    torch.load(tiny_training / "model" / "model.pt", weights_only=True)  # raises on anything but tensors


def _sagemaker_run(tmp_path, tiny_imdb_tarball, name):
    """Run model/train.py the way SageMaker's PyTorch script mode does."""
    channel = tmp_path / name / "input" / "data" / "training"
    channel.mkdir(parents=True)
    (channel / "aclImdb_v1.tar.gz").symlink_to(tiny_imdb_tarball)
    env = dict(os.environ, SM_MODEL_DIR=str(tmp_path / name / "model"), SM_CHANNEL_TRAINING=str(channel),
               SM_OUTPUT_DATA_DIR=str(tmp_path / name / "output"))
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, str(REPO_ROOT / "model" / "train.py"), *TINY_TRAINING_ARGS],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / name, result.stdout


def test_runs_as_sagemaker_script_mode_entry_point_and_is_reproducible(tmp_path, tiny_imdb_tarball):
    first, log = _sagemaker_run(tmp_path, tiny_imdb_tarball, "first")
    for name in ("model.pt", "vocab.json", "config.json", "code/inference.py", "code/model/network.py"):
        assert (first / "model" / name).is_file(), name
    assert not (first / "model" / "checkpoint.pt").exists()
    assert (first / "output" / "metrics.json").is_file() and (first / "output" / "training.png").is_file()
    assert "valid_acc=" in log  # the line SageMaker's metric definitions read
    second, _ = _sagemaker_run(tmp_path, tiny_imdb_tarball, "second")
    a = torch.load(first / "model" / "model.pt", weights_only=True)
    b = torch.load(second / "model" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
