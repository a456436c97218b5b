"""The IMDB Large Movie Review Dataset (Maas et al., 2011), read as published.

`load_imdb(path)` takes the official aclImdb_v1.tar.gz (streamed: nothing is
unpacked to disk) or its unpacked folder; with no path it downloads the
official tarball once into a cache, with a progress bar and checksum check.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from model.progress import progress

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"  # torchtext and others pin this
OFFICIAL_SIZE = 84_125_825
CACHE_DIR = Path(os.environ.get("CRITIC_CACHE", Path.home() / ".cache" / "critic"))

# aclImdb/<split>/<pos|neg|unsup>/<id>_<rating>.txt
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg|unsup)/\d+_\d+\.txt$")
LABELS = {"neg": 0, "pos": 1}


class DataError(Exception):
    """The data path is missing or is not the IMDB dataset."""


@dataclass
class Imdb:
    train: list[tuple[str, int]] = field(default_factory=list)  # (review, 1 = positive)
    test: list[tuple[str, int]] = field(default_factory=list)
    unsup: list[str] = field(default_factory=list)


def load_imdb(path: str | Path | None = None, splits=("train", "test", "unsup")) -> Imdb:
    path = Path(path) if path else download()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    imdb = Imdb()
    if path.is_dir():
        files = sorted(path.rglob("*.txt"))
        items = ((str(p.relative_to(path.parent)), p.read_bytes) for p in files)
        _collect(imdb, items, splits, total=len(files), desc=path.name)
    else:
        try:
            with tarfile.open(path, "r:*") as tar:  # streamed member by member
                items = (
                    (m.name, lambda m=m: tar.extractfile(m).read()) for m in tar if m.isfile()
                )
                _collect(imdb, items, splits, total=None, desc=path.name)
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DataError(f"{path}: not a readable tarball ({error})") from None
    if "train" in splits and not imdb.train:
        raise DataError(f"{path}: no aclImdb/train/{{pos,neg}}/*.txt reviews found")
    return imdb


def _collect(imdb: Imdb, items, splits, total, desc) -> None:
    for name, read in progress(items, total=total, desc=f"reading {desc}", unit=" files", leave=False):
        match = _MEMBER.search(name)
        if not match:
            continue
        split, kind = match[1], match[2]
        if (kind if kind == "unsup" else split) not in splits:
            continue
        text = read().decode("utf-8", errors="replace")
        if kind == "unsup":
            imdb.unsup.append(text)
        else:
            getattr(imdb, split).append((text, LABELS[kind]))
    # Tar order depends on who packed it: sort so that seeded splits are reproducible.
    imdb.train.sort()
    imdb.test.sort()
    imdb.unsup.sort()


def validation_split(
    examples: list[tuple[str, int]], fraction: float, seed: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Seeded split stratified by label: (train, validation)."""
    rng = random.Random(seed)
    train, valid = [], []
    for label in (0, 1):
        group = [e for e in examples if e[1] == label]
        rng.shuffle(group)
        cut = round(len(group) * fraction)
        valid += group[:cut]
        train += group[cut:]
    rng.shuffle(train)
    return train, valid


def download(url: str = OFFICIAL_URL, cache_dir: Path = CACHE_DIR) -> Path:
    """The official tarball, downloaded once into the cache and checked."""
    target = cache_dir / "aclImdb_v1.tar.gz"
    if target.exists() and target.stat().st_size == OFFICIAL_SIZE:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            size = int(response.headers.get("Content-Length", OFFICIAL_SIZE))
            with progress(total=size, unit="B", unit_scale=True, desc="downloading IMDB") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url} ({error}); pass the path of aclImdb_v1.tar.gz with --data"
        ) from None
    if digest.hexdigest() != OFFICIAL_MD5:
        partial.unlink(missing_ok=True)
        raise DataError(f"{url}: checksum mismatch (got md5 {digest.hexdigest()})")
    partial.replace(target)
    return target
