"""binary_metrics is numpy alone (critic deploy judges models with it, without
scikit-learn): its figures are scikit-learn's."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from model.report import binary_metrics


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1).round(2)  # rounded: many ties
    ours = binary_metrics(labels, scores)
    predicted = (scores > 0.5).astype(int)
    assert ours["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert ours["f1"] == pytest.approx(f1_score(labels, predicted))
    assert ours["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert ours["confusion_matrix"] == confusion_matrix(labels, predicted, labels=[0, 1]).tolist()


def test_one_class_has_no_auc_and_no_positive_prediction_has_f1_zero():
    metrics = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert metrics["roc_auc"] is None and metrics["f1"] == 0.0 and metrics["accuracy"] == 1.0
