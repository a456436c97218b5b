"""What every explanation must satisfy, checked the same way wherever it is
met (the handler, the realtime API, batch output, the local stack)."""
from __future__ import annotations

import math

import pytest

from contract import reviews
from model import explain


def assert_explains(review: str, result: dict) -> None:
    """Spans index the review as sent, in order, without overlap, and the
    baseline plus the contributions is the logit of the score."""
    explanation = result[reviews.EXPLANATION]
    end = 0
    for span in explanation["spans"]:
        assert end <= span["start"] < span["end"] <= len(review)
        assert review[span["start"]:span["end"]] == span["text"]
        end = span["end"]
    total = explanation["baseline"] + sum(span["contribution"] for span in explanation["spans"])
    score = result[reviews.SCORE]
    # The score is rounded to SCORE_DIGITS decimals: its logit is that precise only away from 0 and 1.
    if 1e-4 <= score <= 1 - 1e-4:
        assert total == pytest.approx(math.log(score / (1 - score)), abs=0.01)
    # Each span's contribution and the baseline are rounded to explain.DIGITS decimals, so their sum may be off
    # the exact logit by half a unit of that digit each; P(positive) moves at most a quarter as much.
    rounding = (len(explanation["spans"]) + 1) * 0.5 * 10 ** -explain.DIGITS / 4
    assert 1 / (1 + math.exp(-total)) == pytest.approx(score, abs=10 ** -reviews.SCORE_DIGITS + rounding)
