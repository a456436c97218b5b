"""How a model does on one-sentence reviews, measured on train/'s validation
split (by movie, as in training; test/ is not read).

IMDB has no one-sentence reviews, so each validation review lends its first
and its last sentence (of three words or more), labelled with the review's
verdict. A sentence can be neutral plot, so no model gets near its full-
review accuracy; the figures are for comparing models, and the mean
P(positive) beside the true share of positives shows a drift.

    .venv/bin/python scripts/short_reviews.py --data ../shared/data/aclImdb_v1.tar.gz \
        [--artifact model.tar.gz ...] [--rev GIT_REVISION ...]

--rev scores the model/artifact/model.tar.gz of a past commit, for a
before-and-after comparison.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from critic import SHIPPED_ARTIFACT  # noqa: E402
from model.data import load_imdb, validation_split  # noqa: E402
from model.preprocess import strip_html, tokenize  # noqa: E402
from model.scorer import Scorer  # noqa: E402
from model.train import parse_args  # noqa: E402

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(strip_html(text)) if len(s.split()) >= 3]


def load(artifact: Path, folder: str) -> Scorer:
    with tarfile.open(artifact) as tar:
        tar.extractall(folder, filter="data")
    return Scorer.load(folder)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="aclImdb_v1.tar.gz or its folder")
    p.add_argument("--artifact", type=Path, nargs="*", default=[])
    p.add_argument("--rev", nargs="*", default=[], help="git revisions whose shipped model to score")
    args = p.parse_args()
    defaults = parse_args([])
    _, valid = validation_split(load_imdb(args.data, splits=("train",)).train, defaults.valid_fraction, defaults.seed)
    valid = [e for e in valid if sentences(e.text)]
    labels = np.array([e.label for e in valid])
    views = {"full review": [e.text for e in valid], "first sentence": [sentences(e.text)[0] for e in valid],
             "last sentence": [sentences(e.text)[-1] for e in valid]}
    with tempfile.TemporaryDirectory() as tmp:
        models = {str(a): a for a in (args.artifact or ([] if args.rev else [SHIPPED_ARTIFACT]))}
        for rev in args.rev:
            path = Path(tmp) / f"{rev}.tar.gz"
            path.write_bytes(subprocess.run(["git", "show", f"{rev}:model/artifact/model.tar.gz"], cwd=REPO,
                                            check=True, capture_output=True).stdout)
            models[rev] = path
        print(f"{len(valid)} validation reviews, {labels.mean():.1%} positive")
        print("| model | view | accuracy | mean P(positive) |\n| --- | --- | --- | --- |")
        for i, (name, artifact) in enumerate(models.items()):
            scorer = load(artifact, f"{tmp}/{i}")
            for view, texts in views.items():
                probs = np.array(scorer.score([tokenize(t) for t in texts]))
                print(f"| {name} | {view} | {np.mean((probs > 0.5) == (labels == 1)):.2%} | {probs.mean():.3f} |")


if __name__ == "__main__":
    main()
