"""How models do on one-sentence reviews, measured on train/'s validation
split (by movie, as in training; test/ is not read): the sentence set of
model/sentences.py, for several artifacts or past commits side by side.
`critic evaluate --sentences` gives the same figures for one artifact.

    .venv/bin/python scripts/short_reviews.py --data ../shared/data/aclImdb_v1.tar.gz \
        [--artifact model.tar.gz ...] [--rev GIT_REVISION ...]

--rev scores the model/artifact/model.tar.gz of a past commit, for a
before-and-after comparison. --branches adds each branch taken alone (the
other's logit left out: what the LSTM adds over the bag, issue 15).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from critic import SHIPPED_ARTIFACT  # noqa: E402
from critic.commands.evaluate import load_sentence_views  # noqa: E402
from model.preprocess import tokenize  # noqa: E402
from model.scorer import Scorer  # noqa: E402
from model.train import branch_logits  # noqa: E402


def load(artifact: Path, folder: str) -> Scorer:
    with tarfile.open(artifact) as tar:
        tar.extractall(folder, filter="data")
    return Scorer.load(folder)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="aclImdb_v1.tar.gz or its folder")
    p.add_argument("--artifact", type=Path, nargs="*", default=[])
    p.add_argument("--rev", nargs="*", default=[], help="git revisions whose shipped model to score")
    p.add_argument("--branches", action="store_true", help="also the accuracy of the bag alone and the LSTM alone")
    args = p.parse_args()
    views = load_sentence_views(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        models = {str(a): a for a in (args.artifact or ([] if args.rev else [SHIPPED_ARTIFACT]))}
        for rev in args.rev:
            path = Path(tmp) / f"{rev}.tar.gz"
            path.write_bytes(subprocess.run(["git", "show", f"{rev}:model/artifact/model.tar.gz"], cwd=REPO,
                                            check=True, capture_output=True).stdout)
            models[rev] = path
        extra = (" bag alone | LSTM alone |", " --- | --- |") if args.branches else ("", "")
        print(f"| model | view | texts | positive | accuracy | mean P(positive) |{extra[0]}\n"
              f"| --- | --- | --- | --- | --- | --- |{extra[1]}")
        for i, (name, artifact) in enumerate(models.items()):
            scorer = load(artifact, f"{tmp}/{i}")
            for view, (texts, labels) in views.items():
                probs, labels = np.array(scorer.score([tokenize(t) for t in texts])), np.array(labels)
                cells = ""
                if args.branches:
                    bag, lstm = branch_logits(scorer.network, [scorer.vocabulary.encode(tokenize(t), scorer.max_len)
                                                              for t in texts])
                    cells = f" {np.mean((bag > 0) == (labels == 1)):.2%} | {np.mean((lstm > 0) == (labels == 1)):.2%} |"
                print(f"| {name} | {view} | {len(texts)} | {labels.mean():.1%} | "
                      f"{np.mean((probs >= 0.5) == (labels == 1)):.2%} | {probs.mean():.3f} |{cells}")


if __name__ == "__main__":
    main()
