"""Figures and pictures of a model's quality: metrics from labels and scores,
training curves, confusion matrix."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def binary_metrics(labels, scores, threshold: float = 0.5, bins: int = 10) -> dict:
    """Accuracy, F1, ROC AUC, calibration and the confusion matrix, in numpy
    alone: `critic deploy` judges models with it and needs no scikit-learn
    (tests/model/test_report.py checks it against scikit-learn's figures)."""
    y, p = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    predicted = (p > threshold).astype(int)
    # Expected calibration error: how far the scores are from observed frequencies.
    edges = np.linspace(0, 1, bins + 1)
    confidence = np.where(predicted == 1, p, 1 - p)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (p > lo) & (p <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(y[in_bin].mean() - p[in_bin].mean())
    tp, fp = int(((predicted == 1) & (y == 1)).sum()), int(((predicted == 1) & (y == 0)).sum())
    fn, tn = int(((predicted == 0) & (y == 1)).sum()), int(((predicted == 0) & (y == 0)).sum())
    return {
        "reviews": int(len(y)),
        "accuracy": float((predicted == y).mean()) if len(y) else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "roc_auc": roc_auc(y, p),
        "ece": float(ece),
        "mean_confidence": float(confidence.mean()) if len(y) else 0.0,
        # rows: true negative, positive; columns: predicted negative, positive
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def roc_auc(labels, scores) -> float | None:
    """The probability that a positive review scores above a negative one (ties
    count half): the Mann-Whitney statistic over average ranks. None with one class."""
    y, p = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if not positives or not negatives:
        return None
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based, ties share their mean rank
    ranks = average_rank[inverse]
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _draw_confusion(ax, matrix, title: str) -> None:
    matrix = np.asarray(matrix)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        share = count / max(matrix[i].sum(), 1)
        ax.text(j, i, f"{count}\n{share:.1%}", ha="center", va="center",
                color="white" if count > matrix.max() / 2 else "black")
    ax.set_xticks([0, 1], ["negative", "positive"])
    ax.set_yticks([0, 1], ["negative", "positive"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)


def plot_training(history: list[dict], confusion, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax, cm_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    loss_ax.plot(epochs, [h["valid_loss"] for h in history], "o-", label="validation")
    loss_ax.set(title="loss", xlabel="epoch")
    acc_ax.plot(epochs, [h["train_acc"] for h in history], "o-", label="train")
    acc_ax.plot(epochs, [h["valid_acc"] for h in history], "o-", label="validation")
    acc_ax.set(title="accuracy", xlabel="epoch")
    for ax in (loss_ax, acc_ax):
        if epochs and epochs[0] == 0:  # training's phase one: the bag branch alone, fitted at once
            ax.set_xticks(epochs, ["bag"] + [str(e) for e in epochs[1:]])
            ax.set_xlabel("phase one (bag), then LSTM epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    _draw_confusion(cm_ax, confusion, "validation confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    _draw_confusion(ax, confusion, title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
