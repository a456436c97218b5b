"""Ablation and accuracy/speed trade-off of the model's design choices.

Trains one variant per design choice with `critic train` (validation accuracy
on the movie-grouped split of train/; test/ is never read for a choice), then
measures each artifact with `critic bench` (reviews/s of `critic predict`,
single-review p50). Writes RUNS/ablation.json, RUNS/ablation.md (the model
card's table) and RUNS/tradeoff.png (validation accuracy against reviews/s).

    .venv/bin/python scripts/ablation.py --data ../shared/data/aclImdb_v1.tar.gz

A variant whose run folder already holds metrics.json and bench.json is not
run again, so an interrupted ablation continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# (name, what it shows, options of `critic train` on top of the defaults)
VARIANTS = [
    ("shipped", "bag + LSTM (64 units, 200 words, word2vec embeddings), stacked (the defaults)", []),
    ("bag-only", "the bag branch alone (phase one)", ["--no-lstm"]),
    ("lstm-only", "the LSTM alone (400 words), no bag branch", ["--no-bag", "--max-len", "400"]),
    ("no-word2vec", "400 words, embeddings from scratch: the unlabelled reviews unused",
     ["--word2vec-epochs", "0", "--max-len", "400"]),
    ("offset", "400 words, the LSTM learning on top of the bag's out-of-fold logits instead of alone",
     ["--combine", "offset", "--max-len", "400"]),
    ("lstm-50", "the LSTM reads 50 words", ["--max-len", "50"]),
    ("lstm-400", "the LSTM reads 400 words", ["--max-len", "400"]),
    ("previous", "the previous model: 32 units over 50 words on the bag's offset, no word2vec",
     ["--combine", "offset", "--word2vec-epochs", "0", "--hidden-dim", "32", "--max-len", "50"]),
]


def critic(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "critic", *args], cwd=REPO, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"critic {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def arguments(description: str, runs: Path) -> argparse.ArgumentParser:
    """The options every ablation script takes: the data, its run folders, which variants."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", required=True, help="aclImdb_v1.tar.gz or its folder")
    p.add_argument("--runs", type=Path, default=runs)
    p.add_argument("--only", nargs="*", help="variant names (default: all)")
    return p


def main() -> None:
    args = arguments(__doc__.splitlines()[0], REPO / "runs" / "ablation").parse_args()
    rows = []
    for name, meaning, options in VARIANTS:
        if args.only and name not in args.only:
            continue
        run = args.runs / name
        if not (run / "metrics.json").exists():
            print(f"training {name}: {' '.join(options) or 'defaults'}", file=sys.stderr, flush=True)
            critic("train", "--out", str(run), "--data", args.data, *options)
        if not (run / "bench.json").exists():
            print(f"benchmarking {name}", file=sys.stderr, flush=True)
            critic("bench", "--data", args.data, "--artifact", str(run / "model.tar.gz"), "--json", str(run / "bench.json"))
        metrics = json.loads((run / "metrics.json").read_text())
        bench = json.loads((run / "bench.json").read_text())
        rows.append({"name": name, "meaning": meaning, "options": options,
                     "valid_acc": metrics["validation"]["accuracy"], "valid_auc": metrics["validation"]["roc_auc"],
                     "reviews_per_second": bench["predict_reviews_per_second"],
                     "p50_ms": bench["single_review_ms"]["p50"], "training_seconds": metrics["training_seconds"]})
    args.runs.mkdir(parents=True, exist_ok=True)
    (args.runs / "ablation.json").write_text(json.dumps(rows, indent=2))
    lines = ["| variant | validation acc. | ROC AUC | reviews/s | p50 ms | training s | `critic train` options |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['meaning']} | {r['valid_acc'] * 100:.2f} % | {r['valid_auc']:.4f} | {r['reviews_per_second']:,.0f} "
              f"| {r['p50_ms']} | {r['training_seconds']:.0f} | `{' '.join(r['options']) or '(defaults)'}` |" for r in rows]
    (args.runs / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, args.runs / "tradeoff.png")


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r["reviews_per_second"], r["valid_acc"] * 100, color="C1" if r["name"] == "shipped" else "C0")
        ax.annotate(r["name"], (r["reviews_per_second"], r["valid_acc"] * 100), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.axvline(4000, color="grey", linestyle="--", linewidth=1)
    ax.text(4000, ax.get_ylim()[0], " 4,000 reviews/s target", fontsize=8, color="grey", va="bottom")
    ax.set_xlabel("critic predict, reviews/s on this machine (preprocessing included)")
    ax.set_ylabel("validation accuracy, % (split by movie)")
    ax.set_title("Accuracy against speed of each design choice")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
