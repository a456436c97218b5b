"""How far averaging many trained models moves the short views: each
artifact's accuracy on the sentence set (model/sentences.py, the validation
movies of train/; test/ is not read) and that of their mean logit.

An ensemble is not served (one artifact, one LSTM); it measures a ceiling:
if the mean of many runs barely beats one run, the runs share their errors
and no choice among them (or distillation of them into one) buys more.

    .venv/bin/python scripts/ensemble_short.py --data ../shared/data/aclImdb_v1.tar.gz RUN/model.tar.gz ...
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from critic.commands.evaluate import load_sentence_views  # noqa: E402
from model.package import extract  # noqa: E402
from model.preprocess import tokenize  # noqa: E402
from model.scorer import Scorer  # noqa: E402
from model.sentences import SHORT_VIEWS  # noqa: E402


def logits(artifact: Path, texts: list[str]) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        probs = np.clip(Scorer.load(extract(artifact, Path(folder))).score([tokenize(t) for t in texts]), 1e-7, 1 - 1e-7)
    return np.log(probs / (1 - probs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="aclImdb_v1.tar.gz or its folder")
    p.add_argument("artifacts", type=Path, nargs="+", help="model.tar.gz of each run")
    args = p.parse_args()
    views = load_sentence_views(args.data)
    names = [*SHORT_VIEWS, *(f"{v}, read alone" for v in SHORT_VIEWS)]
    texts = [t for view in names for t in views[view][0]]
    positive = np.concatenate([np.array(views[view][1]) == 1 for view in names])
    bounds = np.cumsum([0, *(len(views[view][0]) for view in names)])
    every = np.stack([logits(a, texts) for a in args.artifacts])  # (runs, texts)

    def accuracies(z: np.ndarray) -> np.ndarray:  # one per view
        right = (z >= 0) == positive
        return np.array([right[a:b].mean() for a, b in zip(bounds[:-1], bounds[1:])])

    def row(name: str, figures: np.ndarray) -> str:
        return f"| {name} | " + " | ".join(f"{f:.2%}" for f in figures) + " |"

    print(f"| model | {' | '.join(names)} |\n|{' --- |' * (len(names) + 1)}")
    for artifact, z in zip(args.artifacts, every):
        print(row(artifact.parent.name or str(artifact), accuracies(z)))
    print(row(f"mean of the {len(every)} runs' figures", np.mean([accuracies(z) for z in every], axis=0)))
    print(row("**ensemble**: their mean logit", accuracies(every.mean(0))))


if __name__ == "__main__":
    main()
