"""How much a model's lean towards positive on short text costs: accuracy
on each view of the sentence set (`critic evaluate --sentences`) at
thresholds around 0.5, and the mean P(positive). A measurement, not a
choice: a threshold picked here would no longer be measured by this set.

    .venv/bin/python scripts/sentence_lean.py --data ../shared/data/aclImdb_v1.tar.gz ARTIFACT [ARTIFACT ...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from critic.commands.evaluate import load_sentence_views
from critic.offline import OfflineScorer, score_reviews

THRESHOLDS = (0.45, 0.5, 0.55, 0.6)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="aclImdb_v1.tar.gz or its folder")
    p.add_argument("artifacts", nargs="+", type=Path, help="model.tar.gz files")
    args = p.parse_args()
    views = {name: view for name, view in load_sentence_views(args.data).items() if name != "full review"}
    print("| artifact | view | " + " | ".join(f"accuracy at {t}" for t in THRESHOLDS) + " | mean P(positive) |")
    print("| --- | --- |" + " --- |" * (len(THRESHOLDS) + 1))
    for artifact in args.artifacts:
        with OfflineScorer(artifact, 1) as scorer:
            for name, (texts, labels) in views.items():
                scores, truth = np.array(score_reviews(scorer, texts, desc=name)), np.array(labels)
                accuracies = " | ".join(f"{((scores > t) == truth).mean():.2%}" for t in THRESHOLDS)
                print(f"| {artifact} | {name} | {accuracies} | {scores.mean():.3f} |")


if __name__ == "__main__":
    main()
