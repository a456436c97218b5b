"""What each change of issue 15 buys on short reviews: the behavioural suite
(`critic evaluate --suite`), the sentence set cut from the validation movies
(`critic evaluate --sentences`) and IMDB validation, with speed.

Trains one variant per change with `critic train` (test/ is never read),
reusing the word2vec vectors between runs (--word2vec-cache: the same
vectors a run without it makes), then measures each artifact. The model
shipped before issue 15 is measured from its artifact and its
training-metrics.json at BEFORE_REVISION; "shipped" is trained by today's
defaults (model/artifact's weights), "look7" by those of the model shipped
before it. Variants marked repeated also run with other initial weights
and batch order (--init-seed): the second table gives each figure's mean
and range over those runs. Writes RUNS/ablation_short.json and .md.

    .venv/bin/python scripts/ablate_short.py --data ../shared/data/aclImdb_v1.tar.gz [--bench]

A variant whose run folder already holds what a step writes is not run
again, so an interrupted ablation continues where it stopped.
"""
from __future__ import annotations

import json
import subprocess
import sys

from ablation import REPO, arguments, critic

sys.path.insert(0, str(REPO))
from model.sentences import SHORT_VIEWS  # noqa: E402

READ_ALONE_VIEWS = [f"{view}, read alone" for view in SHORT_VIEWS]

# Look 7's defaults (the first model issue 15 shipped): the rows measured against them say so on top of today's.
LOOK7 = ["--flip-forms", "plain", "--epochs", "6", "--average-from", "0"]
# The defaults before issue 15 shipped its changes.
BEFORE = [*LOOK7, "--negation-scope", "false", "--negation-flips", "0", "--contrast-joins", "0"]
EXAMPLES = [*BEFORE, "--short-clauses", "60000", "--negation-flips", "30000", "--contrast-joins", "30000"]
SEEDS = ("2", "3")  # --init-seed of the repeated runs (NAME-init2, NAME-init3): how far a figure moves by chance


def repeated(name: str, meaning: str, options: list[str]) -> list[tuple[str, str, list[str]]]:
    """A variant and its runs with other initial weights and batch order."""
    return [(name, meaning, options), *((f"{name}-init{seed}", f"{meaning}; --init-seed {seed}",
                                         [*options, "--init-seed", seed]) for seed in SEEDS)]


# (name, what it shows, options of `critic train` on top of the defaults; None: the artifact shipped before)
VARIANTS = [
    ("before", "shipped before issue 15: full reviews only, fixed blend", None),
    ("clauses", "+ 60,000 teacher-filtered clauses", [*BEFORE, "--short-clauses", "60000"]),
    ("augmented", "+ negation flips (with originals) and contrast joins", EXAMPLES),
    ("augmented-gate", "+ length-aware blend", [*EXAMPLES, "--blend", "length"]),
    ("synthetic-only", "full reviews + negation flips (with originals) and 10,000 joins, no clauses, fixed blend",
     [*BEFORE, "--negation-flips", "30000", "--contrast-joins", "10000"]),
    ("synthetic-3k", "the same with 3,000 joins", [*BEFORE, "--negation-flips", "30000", "--contrast-joins", "3000"]),
    ("negscope", "the bag reads words after a negation as features of their own, full reviews only",
     [*LOOK7, "--negation-flips", "0", "--contrast-joins", "0"]),
    *repeated("look7", "look 7: the negation-scoped bag, and the LSTM with negation flips and 3,000 joins, "
              "the best epoch", LOOK7),
    ("negscope-synthetic", "look 7 with 10,000 joins", [*LOOK7, "--contrast-joins", "10000"]),
    *repeated("hedges", "look 7 + hedged flips (\"never\", \"hardly\", \"far from\"; verdicts after \"a\")",
              [*LOOK7, "--flip-forms", "hedged"]),
    ("wide", "look 7 + wide flips (hedged, and after \"it's\", \"that's\", \"they're\")",
     [*LOOK7, "--flip-forms", "wide"]),
    *repeated("avg", "look 7, the LSTM's weights averaged over epochs 2-4",
              ["--flip-forms", "plain", "--epochs", "4", "--average-from", "2"]),
    *repeated("avg13", "look 7, the LSTM's weights averaged over epochs 1-3",
              ["--flip-forms", "plain", "--epochs", "3", "--average-from", "1"]),
    *repeated("avg5", "look 7, the LSTM's weights averaged over epochs 2-5",
              ["--flip-forms", "plain", "--epochs", "5", "--average-from", "2"])[:2],
    *repeated("shipped", "shipped (the defaults): look 7 + hedged flips, the LSTM's weights averaged over "
              "epochs 2-4", []),
    *repeated("joins10k", "shipped with 10,000 joins", ["--contrast-joins", "10000"]),
    *repeated("hidden128", "shipped with an LSTM of 128 units", ["--hidden-dim", "128"]),
    *repeated("hidden96", "shipped with an LSTM of 96 units", ["--hidden-dim", "96"]),
    *repeated("hidden128-len100", "shipped with an LSTM of 128 units reading 100 words",
              ["--hidden-dim", "128", "--max-len", "100"]),
    *repeated("hidden256", "shipped with an LSTM of 256 units (what a looser speed target would buy)",
              ["--hidden-dim", "256"])[:2],
    *repeated("embed64", "shipped with 64-dimensional word2vec embeddings", ["--embed-dim", "64"]),
    *repeated("dropout5", "shipped with dropout 0.5", ["--dropout", "0.5"]),
    ("hedges-avg13", "hedged flips, the LSTM's weights averaged over epochs 1-3", ["--epochs", "3", "--average-from", "1"]),
    ("adversarial-2", "look 7 + adversarial training on the embeddings, norm 2 per text", [*LOOK7, "--adversarial", "2"]),
    ("adversarial-5", "look 7 + adversarial training on the embeddings, norm 5 per text", [*LOOK7, "--adversarial", "5"]),
]
BEFORE_REVISION = "4836df5"


def main() -> None:
    p = arguments(__doc__.splitlines()[0], REPO / "runs" / "ablation-short")
    p.add_argument("--bench", action="store_true", help="also `critic bench` each artifact")
    p.add_argument("--threads", default="1", help="torch threads for training (1 is fastest on a busy machine)")
    args = p.parse_args()
    rows = []
    args.runs.mkdir(parents=True, exist_ok=True)
    for name, meaning, options in VARIANTS:
        if args.only and name not in args.only:
            continue
        run = args.runs / name
        run.mkdir(exist_ok=True)
        if options is None:
            metrics_text = git_show(f"{BEFORE_REVISION}:model/artifact/training-metrics.json")
            (run / "metrics.json").write_text(metrics_text.decode())
            (run / "model.tar.gz").write_bytes(git_show(f"{BEFORE_REVISION}:model/artifact/model.tar.gz"))
        elif not (run / "metrics.json").exists():
            print(f"training {name}: {' '.join(options) or 'defaults'}", file=sys.stderr, flush=True)
            critic("train", "--out", str(run), "--data", args.data, "--word2vec-cache",
                   str(args.runs / "word2vec.npz"), "--threads", args.threads, *options)
        artifact = str(run / "model.tar.gz")
        if not (run / "suite.json").exists():
            critic("evaluate", "--suite", "--artifact", artifact, "--out", str(run), "--workers", "1")
        if not (run / "sentences.json").exists() or READ_ALONE_VIEWS[0] not in (run / "sentences.json").read_text():
            critic("evaluate", "--sentences", "--data", args.data, "--artifact", artifact, "--out", str(run),
                   "--workers", "1")
        if args.bench and not (run / "bench.json").exists():
            critic("bench", "--data", args.data, "--artifact", artifact, "--json", str(run / "bench.json"))
        metrics = json.loads((run / "metrics.json").read_text())
        suite = json.loads((run / "suite.json").read_text())
        sentences = json.loads((run / "sentences.json").read_text())
        bench = json.loads((run / "bench.json").read_text()) if (run / "bench.json").exists() else {}
        rows.append({"name": name, "meaning": meaning, "options": options,
                     "valid_acc": metrics["validation"]["accuracy"], "valid_auc": metrics["validation"]["roc_auc"],
                     "suite": suite["total"]["pass_rate"],
                     "suite_capabilities": {k: v["pass_rate"] for k, v in suite["capabilities"].items()},
                     "sentences": {k: v["accuracy"] for k, v in sentences.items()},
                     "reviews_per_second": bench.get("predict_reviews_per_second"),
                     "p50_ms": bench.get("single_review_ms", {}).get("p50"),
                     "training_seconds": metrics["training_seconds"]})
    (args.runs / "ablation_short.json").write_text(json.dumps(rows, indent=2))
    lines = ["| variant | suite | negated pos. / neg. | contrast | first / last sentence | negation / contrast "
             "sentences | first / last / negation / contrast, read alone | validation acc. (ROC AUC) | reviews/s | "
             "`critic train` options |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        caps, sents = r["suite_capabilities"], r["sentences"]
        speed = f"{r['reviews_per_second']:,.0f}" if r["reviews_per_second"] else "–"
        opts = (f"`{' '.join(r['options'])}`" if r["options"] else "(defaults)") if r["options"] is not None \
            else f"model/artifact at {BEFORE_REVISION}"
        lines.append(f"| {r['meaning']} | {r['suite']:.1%} | {caps['negated positive']:.0%} / "
                     f"{caps['negated negative']:.0%} | {caps['contrast']:.0%} | {sents['first sentence']:.2%} / "
                     f"{sents['last sentence']:.2%} | {sents['with negation']:.2%} / {sents['with contrast']:.2%} | "
                     f"{read_alone(sents)} | "
                     f"{r['valid_acc']:.2%} ({r['valid_auc']:.4f}) | {speed} | {opts} |")
    lines += ["", *spread_table(rows)]
    (args.runs / "ablation_short.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def read_alone(sentences: dict) -> str:
    """The hand-labelled views' cell (runs measured before they existed have none)."""
    if not all(view in sentences for view in READ_ALONE_VIEWS):
        return "–"
    return " / ".join(f"{sentences[view]:.2%}" for view in READ_ALONE_VIEWS)


def spread_table(rows: list[dict]) -> list[str]:
    """Variants run with several --init-seed values (NAME, NAME-init2, ...):
    the mean of each figure and its range over the runs, which is how far one
    run's figure can move by chance alone."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["name"].split("-init")[0], []).append(r)
    columns = {"suite": lambda r: r["suite"],
               **{view: (lambda r, view=view: r["sentences"][view]) for view in (*SHORT_VIEWS, *READ_ALONE_VIEWS)},
               "validation": lambda r: r["valid_acc"]}
    lines = ["| variant | runs | " + " | ".join(columns) + " |", "| --- | --- |" + " --- |" * len(columns)]
    for name, runs in groups.items():
        if len(runs) < 2:
            continue
        cells = []
        for figure in columns.values():
            values = [figure(r) for r in runs]
            cells.append(f"{sum(values) / len(values):.2%} ({min(values):.1%}–{max(values):.1%})")
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return lines


def git_show(spec: str) -> bytes:
    return subprocess.run(["git", "show", spec], cwd=REPO, check=True, capture_output=True).stdout


if __name__ == "__main__":
    main()
