"""The inference artifact: a model dir and its model.tar.gz, in the SageMaker
PyTorch layout. Weights, vocabulary and config at the root; code/ holds
inference.py, what it imports (code/model/ and code/contract/), and
requirements.txt. No pickle: JSON, and
weights that load with torch.load(weights_only=True)."""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import torch

from model.scorer import CONFIG, VOCAB, WEIGHTS

MODEL_PACKAGE = Path(__file__).resolve().parent
# Everything inference.py imports, as code/model/<file>, plus the entry point.
SERVING_FILES = ("__init__.py", "preprocess.py", "encoding.py", "network.py", "scorer.py")
# The contract package (contract/*.py) ships whole as code/contract/.
CONTRACT_PACKAGE = MODEL_PACKAGE.parent / "contract"
# What the SageMaker PyTorch container installs before loading the model.
SERVING_REQUIREMENTS = "beautifulsoup4>=4.12,<5\n"


def write_code_dir(code_dir: Path) -> None:
    code_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(MODEL_PACKAGE / "inference.py", code_dir / "inference.py")
    (code_dir / "model").mkdir(exist_ok=True)
    for name in SERVING_FILES:
        shutil.copy2(MODEL_PACKAGE / name, code_dir / "model" / name)
    contract = sorted(CONTRACT_PACKAGE.glob("*.py"))
    if not contract:  # inference.py imports it: an artifact without it would fail to serve
        raise FileNotFoundError(f"{CONTRACT_PACKAGE}: no contract package beside model/")
    (code_dir / "contract").mkdir(exist_ok=True)
    for source in contract:
        shutil.copy2(source, code_dir / "contract" / source.name)
    (code_dir / "requirements.txt").write_text(SERVING_REQUIREMENTS)


def write_model_dir(model_dir: Path, network, vocabulary) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    # float16 halves the artifact; the scorer loads it back as float32.
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in network.state_dict().items()},
               model_dir / WEIGHTS)
    vocabulary.save(model_dir / VOCAB)
    (model_dir / CONFIG).write_text(json.dumps(network.config.to_dict(), indent=2))
    write_code_dir(model_dir / "code")


def package(model_dir: Path, artifact: Path) -> Path:
    """model.tar.gz from a model dir, written whole or not at all."""
    model_dir, artifact = Path(model_dir), Path(artifact)
    missing = [n for n in (WEIGHTS, VOCAB, CONFIG, "code/inference.py") if not (model_dir / n).exists()]
    if missing:
        raise FileNotFoundError(f"{model_dir} is not a model dir: missing {', '.join(missing)}")
    artifact.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=artifact.parent, suffix=".tmp")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for name in (WEIGHTS, VOCAB, CONFIG, "code"):
                tar.add(model_dir / name, arcname=name, filter=_clean)
        os.chmod(tmp, 0o644)
        os.replace(tmp, artifact)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return artifact


def _clean(info: tarfile.TarInfo):
    if "__pycache__" in info.name or info.name.endswith(".pyc"):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def extract(artifact: Path, target: Path) -> Path:
    """Unpack model.tar.gz safely (no paths outside target)."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(artifact, "r:gz") as tar:
        tar.extractall(target, filter="data")
    return target
