"""Sentences cut from IMDB reviews: a development set of one-sentence
reviews (from the validation movies) and, in training, short examples for
the LSTM (from the training movies).

IMDB has no one-sentence reviews, so each review lends its sentences,
labelled with the review's verdict. A sentence can be neutral plot, so no
model gets near its full-review accuracy on them: the figures are for
comparing models, and the mean P(positive) beside the true share of positives
shows a drift towards one side.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from model.preprocess import strip_html

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_WORDS = 3
# Tokens (after model.preprocess.tokenize, which makes "n't" "not") that mark
# a negation, and words that join two clauses in contrast.
NEGATIONS = frozenset({"not", "no", "never", "nothing", "hardly", "nor", "neither", "nobody", "none", "without"})
CONTRASTS = frozenset({"but", "though", "although", "however", "yet", "despite", "while", "whereas"})


# The sentences of the views below labelled by reading each one alone (how: the file's "about"), keyed by
# sentence_key, so the dataset's text stays out of the repository.
READ_ALONE = Path(__file__).with_name("sentences_read_alone.json")
VERDICTS = {"positive": 1, "negative": 0}  # "neither" (plot, facts, unclear alone) is left out
SHORT_VIEWS = ("first sentence", "last sentence", "with negation", "with contrast")  # each also read alone


def sentence_key(sentence: str) -> str:
    return hashlib.sha1(sentence.encode()).hexdigest()[:12]


def sentences(text: str) -> list[str]:
    """The review's sentences of MIN_WORDS words or more, markup stripped."""
    return [s.strip() for s in SENTENCE_END.split(strip_html(text)) if len(s.split()) >= MIN_WORDS]


def development_views(reviews) -> dict[str, tuple[list[str], list[int]]]:
    """{view: (texts, labels)} from labelled reviews (model.data.Review), the
    reviews without a sentence of MIN_WORDS words left out:
    - "full review", "first sentence", "last sentence": one text per review;
    - "with negation", "with contrast": the first and last sentences that have
      a negation, and those that have a contrast word but no negation
      (proxies for the held-out sets issue 15 names);
    - "<view>, read alone" for the first sentence, last sentence, negation
      and contrast views: those of their sentences that READ_ALONE labels
      positive or negative, with that label instead of their review's."""
    from model.preprocess import tokenize

    kept = [(r, sentences(r.text)) for r in reviews]
    kept = [(r, s) for r, s in kept if s]
    labels = [r.label for r, _ in kept]
    views = {"full review": ([r.text for r, _ in kept], labels),
             "first sentence": ([s[0] for _, s in kept], labels),
             "last sentence": ([s[-1] for _, s in kept], labels)}
    negation, contrast = ([], []), ([], [])
    for review, cut in kept:
        for sentence in dict.fromkeys([cut[0], cut[-1]]):  # one sentence once
            words = set(tokenize(sentence))
            target = negation if words & NEGATIONS else contrast if words & CONTRASTS else None
            if target:
                target[0].append(sentence)
                target[1].append(review.label)
    views["with negation"], views["with contrast"] = negation, contrast
    if READ_ALONE.exists():
        read_alone = json.loads(READ_ALONE.read_text())["labels"]
        for view in SHORT_VIEWS:
            kept = [(t, VERDICTS[read_alone[k]]) for t in views[view][0]
                    if read_alone.get(k := sentence_key(t)) in VERDICTS]
            views[f"{view}, read alone"] = ([t for t, _ in kept], [label for _, label in kept])
    return views


def view_figures(scores, labels) -> dict:
    """One view's row of the report: its size, the share of positives, the
    accuracy at 0.5 and the mean P(positive) (whose gap from the share is
    the drift)."""
    import numpy as np

    probs, y = np.asarray(scores, dtype=float), np.asarray(labels)
    return {"texts": len(y), "positive_share": float(y.mean()),
            "accuracy": float(np.mean((probs >= 0.5) == (y == 1))), "mean_score": float(probs.mean())}
