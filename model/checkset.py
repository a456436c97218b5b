"""The check set: the labelled reviews `critic deploy` judges a new model on
before it replaces the deployed one.

It is the validation split of the shipped model's training (train/, split by
movie with seed 1337 and 10 %, as model/train.py splits it), never test/. The
IMDB dataset's README gives no licence to redistribute its reviews, so the
project ships only which reviews they are (checkset.json: file names under
aclImdb/train/, and a SHA-256 over their texts); the texts are read from the
user's own aclImdb_v1.tar.gz (or its folder) when needed, and checked.

    python -m model.checkset build aclImdb_v1.tar.gz   # writes model/checkset.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from model.data import LABELS, load_imdb, validation_split

MANIFEST = Path(__file__).resolve().parent / "checkset.json"
SEED, FRACTION = 1337, 0.1  # model/train.py's defaults, with which the shipped model was trained
_NAME = re.compile(r"(?:^|/)aclImdb/train/(pos|neg)/(\d+_\d+)\.txt$")
KIND_LABEL = {"pos": "positive", "neg": "negative"}


class CheckSetError(Exception):
    """The data does not hold the check set's reviews, or holds other texts under their names."""


@dataclass(frozen=True)
class LabelledReviews:
    """Reviews with their labels (1 = positive) and a name for each (to show flips)."""

    texts: list[str]
    labels: list[int]
    names: list[str]
    source: str


def digest(texts: list[str]) -> str:
    sha = hashlib.sha256()
    for text in texts:
        sha.update(text.encode("utf-8"))
        sha.update(b"\0")
    return sha.hexdigest()


def _read_members(data: Path, wanted: set[str]) -> dict[str, str]:
    """'pos/123_8' -> text, for the wanted names of aclImdb/train/ (a tarball, streamed, or its folder)."""
    found: dict[str, str] = {}
    if data.is_dir():
        root = data / "aclImdb" if (data / "aclImdb").is_dir() else data
        for name in wanted:
            path = root / "train" / f"{name}.txt"
            if path.is_file():
                found[name] = path.read_bytes().decode("utf-8", errors="replace")
        return found
    try:
        with tarfile.open(data, "r:*") as tar:
            for member in tar:
                match = _NAME.search(member.name)
                if match and f"{match[1]}/{match[2]}" in wanted:
                    found[f"{match[1]}/{match[2]}"] = tar.extractfile(member).read().decode("utf-8", errors="replace")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise CheckSetError(f"{data}: not a readable tarball ({error})") from None
    return found


def load(data: str | Path, manifest: Path = MANIFEST) -> LabelledReviews:
    """The check set's reviews, read from the user's IMDB tarball or folder and checked against the manifest."""
    data = Path(data)
    spec = json.loads(manifest.read_text())
    names = [f"{kind}/{stem}" for kind in ("pos", "neg") for stem in spec["reviews"][kind]]
    found = _read_members(data, set(names))
    absent = [n for n in names if n not in found]
    if absent:
        raise CheckSetError(f"{data} lacks {len(absent)} of the check set's {len(names)} reviews (e.g. "
                            f"aclImdb/train/{absent[0]}.txt): it is not the official aclImdb_v1.tar.gz; "
                            "pass --check-data with a labelled JSON Lines file instead")
    texts = [found[n] for n in names]
    if digest(texts) != spec["sha256"]:
        raise CheckSetError(f"{data}: the check set's reviews differ from those it was made from "
                            "(SHA-256 mismatch): pass the official aclImdb_v1.tar.gz, or --check-data")
    return LabelledReviews(texts, [LABELS[n.split("/")[0]] for n in names], [f"train/{n}.txt" for n in names],
                           f"the check set ({len(names)} validation reviews of {data.name})")


def build(data: str | Path, manifest: Path = MANIFEST, seed: int = SEED, fraction: float = FRACTION) -> dict:
    """Writes the manifest: the validation split of train/ (by movie), as file names, and their texts' SHA-256."""
    data = Path(data)
    imdb = load_imdb(data, splits=("train",))
    _, valid = validation_split(imdb.train, fraction, seed)
    # load_imdb keeps no file names: find each validation text's name by reading the members once more
    every = _read_all_names(data)
    by_text: dict[tuple[str, int], list[str]] = {}
    for name, text in every.items():
        by_text.setdefault((text, LABELS[name.split("/")[0]]), []).append(name)
    chosen: dict[str, list[str]] = {"pos": [], "neg": []}
    for review in valid:
        name = by_text[(review.text, review.label)].pop(0)
        chosen[name.split("/")[0]].append(name.split("/")[1])
    for kind in chosen:
        chosen[kind].sort(key=lambda stem: int(stem.split("_")[0]))
    names = [f"{kind}/{stem}" for kind in ("pos", "neg") for stem in chosen[kind]]
    spec = {
        "what": "the validation split of aclImdb/train/ (by movie) that model/train.py holds out with these "
                "settings; reviews are named, not copied: the texts come from your aclImdb_v1.tar.gz",
        "source": "Large Movie Review Dataset v1.0 (Maas et al., ACL 2011), https://ai.stanford.edu/~amaas/data/sentiment/",
        "split": {"seed": seed, "fraction": fraction},
        "count": {"positive": len(chosen["pos"]), "negative": len(chosen["neg"])},
        "sha256": digest([every[n] for n in names]),
        "reviews": chosen,
    }
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in spec.items() if key != "reviews"]
    lines += ['  "reviews": {' + ", ".join(f'"{k}": {json.dumps(v)}' for k, v in chosen.items()) + "}"]
    manifest.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    return spec


def _read_all_names(data: Path) -> dict[str, str]:
    if data.is_dir():
        root = data / "aclImdb" if (data / "aclImdb").is_dir() else data
        return {f"{p.parent.name}/{p.stem}": p.read_bytes().decode("utf-8", errors="replace")
                for kind in ("pos", "neg") for p in (root / "train" / kind).glob("*.txt")}
    with tarfile.open(data, "r:*") as tar:
        return {f"{m[1]}/{m[2]}": tar.extractfile(member).read().decode("utf-8", errors="replace")
                for member in tar if (m := _NAME.search(member.name))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model.checkset", description=__doc__.split("\n\n")[0])
    parser.add_argument("verb", choices=["build"])
    parser.add_argument("data", help="aclImdb_v1.tar.gz or its folder")
    args = parser.parse_args(argv)
    spec = build(args.data)
    print(f"wrote {MANIFEST}: {spec['count']} reviews, sha256 {spec['sha256']}")


if __name__ == "__main__":
    main()
