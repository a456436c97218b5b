"""A trained model on disk -> P(positive) for batches of reviews.

Used by the SageMaker handler (inference.py), `critic predict` and
`critic evaluate`: one way to load and run the model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from model.encoding import Vocabulary
from model.network import PAD, SentimentConfig, SentimentLSTM

WEIGHTS, VOCAB, CONFIG = "model.pt", "vocab.json", "config.json"
BATCH_SIZE = 256


def collate(encoded: list[tuple[np.ndarray, np.ndarray]]):
    """Encoded reviews -> (tokens, lengths, ngrams, offsets) tensors."""
    lengths = np.array([len(ids) for ids, _ in encoded])
    tokens = np.full((len(encoded), int(lengths.max())), PAD, dtype=np.int64)
    for row, (ids, _) in enumerate(encoded):
        tokens[row, : len(ids)] = ids
    bags = [bag for _, bag in encoded]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in bags[:-1]], dtype=np.int64)])
    return (torch.from_numpy(tokens), torch.from_numpy(lengths), torch.from_numpy(np.concatenate(bags)),
            torch.from_numpy(offsets))


class Scorer:
    def __init__(self, network: SentimentLSTM, vocabulary: Vocabulary):
        self.network = network.eval()
        self.vocabulary = vocabulary
        self.max_len = network.config.max_len

    @classmethod
    def load(cls, model_dir: str | Path) -> "Scorer":
        model_dir = Path(model_dir)
        config = SentimentConfig.from_dict(json.loads((model_dir / CONFIG).read_text()))
        network = SentimentLSTM(config)
        state = torch.load(model_dir / WEIGHTS, map_location="cpu", weights_only=True)
        network.load_state_dict({k: v.float() for k, v in state.items()})
        return cls(network, Vocabulary.load(model_dir / VOCAB))

    def score(self, token_lists: list[list[str]]) -> list[float]:
        """P(positive) for each review, in order."""
        return score_encoded(self.network, [self.vocabulary.encode(t, self.max_len) for t in token_lists])


@torch.inference_mode()
def score_encoded(network: SentimentLSTM, encoded, batch_size: int = BATCH_SIZE) -> list[float]:
    """P(positive) for encoded reviews, in order. They go through the network in
    batches of similar length, so little work is spent on padding."""
    network.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    scores = [0.0] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        probs = torch.sigmoid(network(*collate([encoded[i] for i in chunk])))
        for i, p in zip(chunk, probs.tolist()):
            scores[i] = p
    return scores
