"""critic evaluate: the model's quality.

- on IMDB test/ (the default; report it once, for the model you ship, and
  never tune on it);
- `--suite`: the behavioural suite of model/suite.py, pass rate per
  capability (needs no dataset);
- `--sentences`: the development set of sentences cut from the validation
  movies of train/ (model/sentences.py; test/ is not read)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from critic.errors import UsageError
from critic.offline import OfflineScorer, score_reviews


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="accuracy, F1, ROC AUC and confusion matrix on IMDB test/; "
                                               "--suite: the behavioural suite; --sentences: the sentence set")
    p.add_argument("--data", help="aclImdb_v1.tar.gz or its folder (default: download the official one)")
    p.add_argument("--artifact", type=Path, help="model.tar.gz (default: the shipped model)")
    p.add_argument("--out", type=Path, default=Path("runs/evaluation"),
                   help="folder for evaluation.json and confusion.png (suite.json, sentences.json)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--suite", action="store_true",
                   help="the behavioural suite instead of test/: pass rate per capability (no dataset needed)")
    p.add_argument("--sentences", action="store_true",
                   help="the sentence set cut from train/'s validation movies instead of test/")
    p.add_argument("--failures", action="store_true", help="with --suite: also list the failed cases")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.suite or args.sentences:
        try:
            sentence_views = load_sentence_views(args.data) if args.sentences else None
            scorer = OfflineScorer(args.artifact, args.workers)
        except FileNotFoundError as error:
            raise UsageError(str(error)) from None
        args.out.mkdir(parents=True, exist_ok=True)
        with scorer:
            if args.suite:
                run_suite(scorer, args.out, args.failures)
            if sentence_views:
                run_sentences(scorer, sentence_views, args.out)
        return 0
    return run_test(args)


def run_test(args) -> int:
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


def run_suite(scorer: OfflineScorer, out: Path, show_failures: bool) -> dict:
    from model.suite import CAPABILITIES, cases, pass_rates

    suite = cases()
    report = pass_rates(suite, score_reviews(scorer, [c.text for c in suite], desc="suite"))
    (out / "suite.json").write_text(json.dumps(report, indent=2))
    print("| capability | cases | pass rate |\n| --- | --- | --- |")
    for capability in CAPABILITIES:
        row = report["capabilities"].get(capability.name)
        if row:
            note = "" if capability.counted else " (known-hard, not counted)"
            print(f"| {capability.name}{note} | {row['cases']} | {row['pass_rate']:.1%} |")
    total = report["total"]
    print(f"| **total** | {total['cases']} | **{total['pass_rate']:.1%}** (mean of capabilities "
          f"{total['mean_capability_pass_rate']:.1%}) |")
    if show_failures:
        for name, failed in report["failures"].items():
            print(f"\n{name}:")
            for case in failed:
                print(f"  {case['score']:.3f} (want {'positive' if case['label'] else 'negative'}) {case['text']}")
    print(f"written: {out / 'suite.json'}")
    return report


def load_sentence_views(data: str | None) -> dict:
    from model.data import DataError, load_imdb, validation_split
    from model.sentences import development_views
    from model.train import TrainConfig

    try:
        train = load_imdb(data, splits=("train",)).train
    except DataError as error:
        raise UsageError(str(error)) from None
    # The same split by movie as training's (its defaults), so these sentences' movies were never trained on.
    _, valid = validation_split(train, TrainConfig.valid_fraction, TrainConfig.seed)
    return development_views(valid)


def run_sentences(scorer: OfflineScorer, views: dict, out: Path) -> dict:
    from model.sentences import view_figures

    report = {}
    print("| view | texts | positive | accuracy | mean P(positive) |\n| --- | --- | --- | --- | --- |")
    for view, (texts, labels) in views.items():
        row = report[view] = view_figures(score_reviews(scorer, texts, desc=view), labels)
        print(f"| {view} | {row['texts']} | {row['positive_share']:.1%} | {row['accuracy']:.2%} | "
              f"{row['mean_score']:.3f} |")
    (out / "sentences.json").write_text(json.dumps(report, indent=2))
    print(f"written: {out / 'sentences.json'}")
    return report
