"""The bag-of-words baseline issue 15 compares the model with, on our own
yardsticks: TF-IDF unigrams + bigrams with logistic regression, trained on
the same training part of train/ (the split by movie) as `critic train`, then
scored on the behavioural suite, the sentence set and validation.

    .venv/bin/python scripts/baseline_tfidf.py --data ../shared/data/aclImdb_v1.tar.gz [--out runs/baseline-tfidf]

Writes suite.json and sentences.json in the same shape as `critic evaluate`,
so scripts/ablate_short.py's table can hold it as a row. test/ is not read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from model.data import load_imdb, validation_split
    from model.preprocess import tokenize
    from model.report import binary_metrics
    from model.sentences import development_views, view_figures
    from model.suite import cases, pass_rates
    from model.train import TrainConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "baseline-tfidf")
    p.add_argument("--c", type=float, default=4.0, help="inverse L2 strength (liblinear)")
    args = p.parse_args()

    train, valid = validation_split(load_imdb(args.data, splits=("train",)).train,
                                    TrainConfig.valid_fraction, TrainConfig.seed)
    # the model's own tokens, so the comparison is of what each does with them
    vectorizer = TfidfVectorizer(tokenizer=tokenize, preprocessor=None, lowercase=False, token_pattern=None,
                                 ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x = vectorizer.fit_transform([r.text for r in train])
    classifier = LogisticRegression(C=args.c, solver="liblinear").fit(x, [r.label for r in train])

    def score(texts: list[str]) -> np.ndarray:
        return classifier.predict_proba(vectorizer.transform(texts))[:, 1]

    args.out.mkdir(parents=True, exist_ok=True)
    suite = cases()
    (args.out / "suite.json").write_text(json.dumps(pass_rates(suite, score([c.text for c in suite]).tolist()),
                                                    indent=2))
    report = {view: view_figures(score(texts), labels) for view, (texts, labels) in development_views(valid).items()}
    (args.out / "sentences.json").write_text(json.dumps(report, indent=2))
    validation = binary_metrics([r.label for r in valid], score([r.text for r in valid]).tolist())
    (args.out / "metrics.json").write_text(json.dumps({"validation": validation, "training_seconds": None},
                                                      indent=2))
    print(json.dumps({"suite": json.loads((args.out / "suite.json").read_text())["total"],
                      "sentences": {k: round(v["accuracy"], 4) for k, v in report.items()},
                      "validation_accuracy": round(validation["accuracy"], 4)}, indent=2))


if __name__ == "__main__":
    main()
