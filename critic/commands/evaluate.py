"""critic evaluate: the model's quality on IMDB test/ (report it once, for
the model you ship; never tune on it)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from critic.errors import UsageError
from critic.offline import OfflineScorer, score_reviews


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="accuracy, F1, ROC AUC and confusion matrix on IMDB test/")
    p.add_argument("--data", help="aclImdb_v1.tar.gz or its folder (default: download the official one)")
    p.add_argument("--artifact", type=Path, help="model.tar.gz (default: the shipped model)")
    p.add_argument("--out", type=Path, default=Path("runs/evaluation"),
                   help="folder for evaluation.json and confusion.png")
    p.add_argument("--workers", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from model.data import DataError, load_imdb
    from model.report import binary_metrics, plot_confusion

    try:
        test = load_imdb(args.data, splits=("test",)).test
        scorer = OfflineScorer(args.artifact, args.workers)
    except (DataError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    if not test:
        raise UsageError(f"{args.data}: no aclImdb/test reviews found")
    with scorer:
        started = time.perf_counter()
        scores = score_reviews(scorer, [e.text for e in test])
        seconds = time.perf_counter() - started
    metrics = binary_metrics([e.label for e in test], scores)
    metrics["reviews_per_second"] = round(len(test) / seconds, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluation.json").write_text(json.dumps(metrics, indent=2))
    plot_confusion(metrics["confusion_matrix"], args.out / "confusion.png", "IMDB test confusion matrix")
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    print(f"IMDB test: {metrics['reviews']} reviews\n"
          f"  accuracy {metrics['accuracy']:.4f}   F1 {metrics['f1']:.4f}   ROC AUC {metrics['roc_auc']:.4f}   "
          f"ECE {metrics['ece']:.4f}\n"
          f"  confusion (rows true neg/pos, columns predicted neg/pos): [[{tn}, {fp}], [{fn}, {tp}]]\n"
          f"  {metrics['reviews_per_second']} reviews/s\n"
          f"  written: {args.out / 'evaluation.json'}, {args.out / 'confusion.png'}")
    return 0
