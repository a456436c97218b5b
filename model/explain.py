"""Why a review got its score: the logit split over the words and phrases
the model read, {"baseline": b, "spans": [{"start", "end", "text",
"contribution"}, ...]}, with b + the contributions = the logit of the score.

- The bag branch is a sum of weights, so its split is exact: each feature's
  weight is shared out equally over the places that produce it and then over
  its words (a word: itself; a bigram or trigram: its two or three words),
  as Vocabulary.occurrences lists them; its bias goes to the baseline.
- The LSTM branch is split by reading steps, exactly: a word's part is how
  much reading it moved the LSTM's logit, head(state after it) - head(state
  before it), which is the LSTM's logit on the review cut after that word
  less its logit on the review cut before it (an occlusion of what follows,
  computed in one forward pass: the head applied to every state). The parts
  telescope to the LSTM's logit less head(zero state) = the head's bias,
  which goes to the baseline. Words the LSTM does not read (the middle of a
  long review) get the bag's part only. Why not integrated gradients over
  the embeddings: on this LSTM the logit along the path from zero to the
  review's embeddings jumps (200 steps of recurrence), so quadrature misses
  the total by up to 3.5 logits at 128 Gauss-Legendre nodes and 0.2 at 1,024
  on IMDB test reviews, and one forward and backward pass alone costs about
  7 ms (scripts/explain_ig.py; docs/explanations.md has the figures).
- With the length gate, each branch's part is scaled by its weight.

Spans are in code points of the review exactly as sent (preprocess.locate).
A word that cannot be placed there (one a character reference spells
together with markup, say) adds its contribution to the span of the word
before it, or after it if it is the first; a review with no word at all
(its one unknown-word slot) is one span from its first to its last
non-space character. Words read from overlapping places (a ligature or a
reference that gave two words) become one span, so spans never overlap.

Plain Python and torch, no AWS: the SageMaker handler calls it per record
that asks, and only then.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import torch

from model.encoding import Vocabulary, read_positions
from model.network import SentimentLSTM
from model.preprocess import locate, tokenize

DIGITS = 6  # decimals of a contribution and of the baseline


class Span(TypedDict):
    start: int
    end: int
    text: str
    contribution: float


class Explanation(TypedDict):
    baseline: float
    spans: list[Span]


@dataclass
class Attribution:
    """The logit split over a review's tokens (one slot, for a review
    without any token), before it is placed on the text."""

    tokens: list[str]
    baseline: float
    per_token: np.ndarray  # one contribution per slot the network read (at least one)
    logit: float  # the network's own, to check completeness against


def explain(network: SentimentLSTM, vocabulary: Vocabulary, text: str) -> Explanation:
    """The explanation of the review `text` (which must be one tokenize reads)."""
    return place(text, attribute(network, vocabulary, text))


def attribute(network: SentimentLSTM, vocabulary: Vocabulary, text: str) -> Attribution:
    config = network.config
    tokens = tokenize(text)
    ids = vocabulary.ids(tokens)  # never empty: a review without words reads as one unknown word
    per_token = np.zeros(len(ids))
    read = read_positions(len(ids), config.max_len)
    bag_weight = lstm_weight = 1.0
    if config.length_gate:
        with torch.no_grad():
            bag_weight, lstm_weight = (float(w) for w in network.branch_weights(torch.tensor([len(read)])))
    baseline = logit = 0.0
    if config.ngram_size:
        features, starts, widths = vocabulary.occurrences(ids)
        weights = network.bag.weight.detach()[torch.from_numpy(features), 0].double().numpy()
        _, inverse, counts = np.unique(features, return_inverse=True, return_counts=True)
        share = weights / counts[inverse] / widths  # per word of each place a feature comes from
        for offset in range(3):
            has = widths > offset
            np.add.at(per_token, starts[has] + offset, share[has] * bag_weight)
        bias = float(network.bag_bias.detach()[0])
        baseline += bias * bag_weight
        logit += (weights[np.unique(features, return_index=True)[1]].sum() + bias) * bag_weight
    if config.use_lstm:
        parts, lstm_baseline, lstm_logit = reading_steps(network, ids[read])
        np.add.at(per_token, read, parts * lstm_weight)
        baseline += lstm_baseline * lstm_weight
        logit += lstm_logit * lstm_weight
    return Attribution(tokens, baseline, per_token, logit)


@torch.inference_mode()
def reading_steps(network: SentimentLSTM, ids: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(per word parts, the LSTM's logit before any word, its logit) of the
    LSTM branch over the word ids it reads: each word's part is the change
    in the logit the head gives the state, from before that word to after
    it. The parts add up to the logit less the head's bias (the logit of the
    zero state the LSTM starts from), exactly."""
    states, _ = network.lstm(network.embedding(torch.from_numpy(ids))[None])  # (1, T, H)
    logits = network.head(states[0]).squeeze(1).double().numpy()  # the logit had the review ended at each word
    start = float(network.head.bias.double()[0])
    return np.diff(logits, prepend=start), start, float(logits[-1])


def place(text: str, attribution: Attribution) -> Explanation:
    """The contributions on spans of the review's text (see the module's docstring)."""
    tokens, per_token = attribution.tokens, attribution.per_token
    whole = (len(text) - len(text.lstrip()), len(text.rstrip()))  # from the first to the last non-space
    located = locate(text, tokens) if tokens else [whole]
    # An unplaced token goes with the one before it; before the first placed one, with that one.
    previous = next((span for span in located if span is not None), whole)
    merged: list[list] = []  # [start, end, contribution]
    for span, contribution in zip(located, per_token.tolist()):
        span = span or previous
        previous = span
        if merged and span[0] < merged[-1][1]:  # the same place, or one overlapping the last
            merged[-1][1] = max(merged[-1][1], span[1])
            merged[-1][2] += contribution
        else:
            merged.append([span[0], span[1], contribution])
    return {
        "baseline": round(attribution.baseline, DIGITS),
        "spans": [{"start": s, "end": e, "text": text[s:e], "contribution": round(c, DIGITS)} for s, e, c in merged],
    }
