"""The inference artifact: a model dir and its model.tar.gz, in the SageMaker
PyTorch layout. Weights, vocabulary and config at the root; code/ holds
inference.py and what it imports (code/model/ and code/contract/). No pickle:
JSON, and weights that load with torch.load(weights_only=True).

code/ has no requirements.txt: the code needs only the standard library,
torch, numpy and the SageMaker inference toolkit, all in AWS's PyTorch
inference image, so the container installs nothing when it starts.

    python -m model.package refresh model/artifact/model.tar.gz

rewrites an artifact's code/ from this source, keeping its weights,
vocabulary and config byte for byte (no retraining).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

from model.scorer import CONFIG, VOCAB, WEIGHTS

MODEL_PACKAGE = Path(__file__).resolve().parent
# Everything inference.py imports, as code/model/<file>, plus the entry point.
SERVING_FILES = ("__init__.py", "preprocess.py", "encoding.py", "network.py", "scorer.py", "explain.py")
# The contract package (contract/*.py) ships whole as code/contract/.
CONTRACT_PACKAGE = MODEL_PACKAGE.parent / "contract"


def write_code_dir(code_dir: Path) -> None:
    """code/ from this source, replacing whatever was there (an older
    artifact's files, such as a requirements.txt, must not survive)."""
    if code_dir.exists():
        shutil.rmtree(code_dir)
    code_dir.mkdir(parents=True)
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


def refresh(artifact: Path) -> Path:
    """Rewrite the code/ of model.tar.gz from this source, without retraining:
    model.pt, vocab.json and config.json come out byte for byte as they went
    in (checked before the artifact is replaced, atomically)."""
    artifact = Path(artifact)
    kept = (WEIGHTS, VOCAB, CONFIG)
    with tempfile.TemporaryDirectory(prefix="critic-refresh-") as tmp:
        model_dir = extract(artifact, Path(tmp) / "model")
        write_code_dir(model_dir / "code")
        fresh = package(model_dir, Path(tmp) / "model.tar.gz")
        changed = [name for name in kept if _digest(artifact, name) != _digest(fresh, name)]
        if changed:  # cannot happen short of a broken tarfile: never ship it
            raise RuntimeError(f"refreshing {artifact} would change {', '.join(changed)}")
        fd, partial = tempfile.mkstemp(dir=artifact.parent, suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(fresh, partial)
            os.chmod(partial, 0o644)
            os.replace(partial, artifact)
        finally:
            Path(partial).unlink(missing_ok=True)
    return artifact


def _digest(artifact: Path, name: str) -> str:
    with tarfile.open(artifact, "r:gz") as tar:
        member = tar.extractfile(name)
        if member is None:
            raise FileNotFoundError(f"{artifact} has no file {name}")
        return hashlib.sha256(member.read()).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.package", description="Inference artifacts.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("refresh", help="rewrite an artifact's code/ from this source, keeping its model",
                            description=refresh.__doc__)
    p.add_argument("artifact", type=Path, help="model.tar.gz")
    args = parser.parse_args(argv)
    if not args.artifact.is_file():
        parser.error(f"{args.artifact}: no such file")
    with tarfile.open(args.artifact, "r:gz") as tar:
        before = sorted(n for n in tar.getnames() if n.startswith("code/"))
    refresh(args.artifact)
    with tarfile.open(args.artifact, "r:gz") as tar:
        after = sorted(n for n in tar.getnames() if n.startswith("code/"))
    gone, added = sorted(set(before) - set(after)), sorted(set(after) - set(before))
    print(f"{args.artifact}: code/ rewritten from {MODEL_PACKAGE} ({len(after)} entries"
          f"{'; removed ' + ', '.join(gone) if gone else ''}{'; added ' + ', '.join(added) if added else ''}); "
          f"{WEIGHTS}, {VOCAB}, {CONFIG} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
