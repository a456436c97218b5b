"""The sentiment network: an LSTM over the review's words, beside a linear bag
of its words, bigrams and trigrams; their logits add up.

The bag branch is NB-weighted logistic regression (Wang & Manning 2012's
NBSVM family): per-feature weights over the set of n-grams a review has,
fitted exactly in training's first phase. It carries the word-level evidence
at almost no cost. The LSTM reads word order (negation scope, "but", the
verdict at the end) from embeddings that word2vec pretrained on the
unlabelled reviews. Training stacks the two (model/train.py): the LSTM learns
alone, then a two-weight blend fitted on validation is folded into each
branch's weights, so serving is still one sum of two logits.

The LSTM reads its batch padded at the end and its output is taken at each
review's own last token, so padding changes nothing (reading the state at a
padded position is the classic bug). Packed sequences would skip the padding,
but their backward pass on the CPU is 8 times slower, and batches of similar
length carry little padding.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

PAD, UNK = 0, 1


@dataclass
class SentimentConfig:
    vocab_size: int = 20_000  # word ids: 0 pad, 1 unknown, then the vocabulary
    ngram_size: int = 0  # bag feature ids: word ids, then hashed n-grams (0 = no bag branch)
    embed_dim: int = 32
    hidden_dim: int = 32
    num_layers: int = 1
    dropout: float = 0.3
    max_len: int = 50  # words the LSTM reads: the head and tail of longer reviews
    use_lstm: bool = True
    # The two branches' weights vary with the review's length (log of the
    # words the LSTM reads): the bag, fitted on full reviews, counts less on a
    # sentence, the LSTM more. False: the weights are folded into the branches.
    length_gate: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SentimentConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class SentimentLSTM(nn.Module):
    def __init__(self, config: SentimentConfig):
        super().__init__()
        self.config = config
        assert config.use_lstm or config.ngram_size, "the network needs the LSTM or the bag branch"
        if config.use_lstm:
            self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD)
            self.lstm = nn.LSTM(
                config.embed_dim,
                config.hidden_dim,
                num_layers=config.num_layers,
                batch_first=True,
                dropout=config.dropout if config.num_layers > 1 else 0.0,
            )
            self.dropout = nn.Dropout(config.dropout)
            self.head = nn.Linear(config.hidden_dim, 1)
        if config.ngram_size:
            # One weight per feature, summed over the features a review has.
            self.bag = nn.EmbeddingBag(config.ngram_size, 1, mode="sum")
            nn.init.zeros_(self.bag.weight)
            self.bag_bias = nn.Parameter(torch.zeros(1))
        if config.length_gate:
            # bag weight = gate[0] + gate[1] * log(length), LSTM weight = gate[2] + gate[3] * log(length);
            # until training's blend sets it, each branch counts once, whatever the length.
            self.gate = nn.Parameter(torch.tensor([1.0, 0.0, 1.0, 0.0]))

    def bag_logits(self, ngrams: torch.Tensor, ngram_offsets: torch.Tensor) -> torch.Tensor:
        return self.bag(ngrams, ngram_offsets).squeeze(1) + self.bag_bias

    def forward(
        self,
        tokens: torch.Tensor,  # (B, T) word ids, padded with PAD
        lengths: torch.Tensor,  # (B,) real lengths, >= 1, on the CPU
        ngrams: torch.Tensor | None = None,  # (N,) bag ids of all reviews, concatenated
        ngram_offsets: torch.Tensor | None = None,  # (B,) where each review's ids start
        bag_logits: torch.Tensor | None = None,  # (B,) given instead of ngrams (training's phase two)
        embedding_noise: torch.Tensor | None = None,  # (B, T, E) added to the embedded words (adversarial training)
    ) -> torch.Tensor:
        """Logits of P(positive), shape (B,)."""
        logits = torch.zeros(len(lengths))
        if bag_logits is None and self.config.ngram_size:
            bag_logits = self.bag_logits(ngrams, ngram_offsets)
        lstm_logits = None
        if self.config.use_lstm:
            embedded = self.embedding(tokens)  # (B, T, E)
            if embedding_noise is not None:
                embedded = embedded + embedding_noise
            states, _ = self.lstm(embedded)  # (B, T, H)
            last = states[torch.arange(len(lengths)), lengths - 1]  # each review's own last token
            lstm_logits = self.head(self.dropout(last)).squeeze(1)
        if self.config.length_gate:
            bag_weight, lstm_weight = self.branch_weights(lengths)
            bag_logits = bag_logits * bag_weight if bag_logits is not None else None
            lstm_logits = lstm_logits * lstm_weight if lstm_logits is not None else None
        if bag_logits is not None:
            logits = bag_logits
        if lstm_logits is not None:
            logits = logits + lstm_logits
        return logits

    def branch_weights(self, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """With the length gate: the bag's and the LSTM's weights for reviews of these lengths."""
        z = torch.log(lengths.float())
        return ((self.gate[0] + self.gate[1] * z).clamp(min=0.0),
                (self.gate[2] + self.gate[3] * z).clamp(min=0.0))
