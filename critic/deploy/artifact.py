"""The model.tar.gz to deploy: the shipped one, a local file or model dir,
or an s3:// URI (e.g. what `critic train --sagemaker` printed). Whatever the
source, it is checked to be a Critic inference artifact before anything is
deployed: a SageMaker training job also writes an output.tar.gz (metrics and
pictures) beside its model.tar.gz, and deploying that would only fail later,
inside the endpoint."""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from critic.errors import UsageError
from critic.deploy.buckets import split_s3_uri


def required_members() -> tuple[str, ...]:
    from model.scorer import CONFIG, VOCAB, WEIGHTS

    return (WEIGHTS, VOCAB, CONFIG, "code/inference.py")


def check(path: Path, shown: str | None = None) -> Path:
    """The artifact, if it has the SageMaker PyTorch layout Critic's handler needs."""
    shown = shown or str(path)
    try:
        with tarfile.open(path, "r:gz") as tar:
            names = {member.name.removeprefix("./") for member in tar.getmembers()}
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UsageError(f"{shown} is not a model.tar.gz (gzip tar): {error}") from None
    absent = [name for name in required_members() if name not in names]
    if absent:
        raise UsageError(f"{shown} is not a Critic model artifact: it lacks {', '.join(absent)} "
                         "(a training job writes model.tar.gz and output.tar.gz: deploy model.tar.gz)")
    return path


def local(path: Path, workdir: Path) -> Path:
    """A model.tar.gz, or a model dir packaged into one."""
    if path.is_dir():
        from model.package import package

        try:
            return check(package(path, workdir / "model.tar.gz"), str(path))
        except FileNotFoundError as error:
            raise UsageError(str(error)) from None
    if not path.is_file():
        raise UsageError(f"no such model artifact: {path}")
    return check(path)


def download(s3, uri: str, workdir: Path) -> Path:
    """An s3:// artifact, copied here to be checked and hashed."""
    bucket, key = split_s3_uri(uri)
    target = workdir / "model.tar.gz"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with open(target, "wb") as handle:
        shutil.copyfileobj(body, handle)
    return check(target, uri)
