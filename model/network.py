"""The sentiment network: an LSTM over the review's tokens, beside a bag of its
unigrams and bigrams, joined by one linear layer.

The LSTM reads packed sequences, so no step is spent on padding and the final
state is taken at each review's own last token (reading the state at a padded
position is the classic bug). The bag branch (fastText-style mean of n-gram
embeddings) gives the word-level evidence cheaply; the LSTM adds order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

PAD, UNK = 0, 1


@dataclass
class SentimentConfig:
    vocab_size: int = 20_000  # unigram ids: 0 pad, 1 unknown, then the vocabulary
    ngram_size: int = 0  # bag ids: unigrams, then the kept bigrams (0 = no bag branch)
    embed_dim: int = 64
    hidden_dim: int = 64
    bag_dim: int = 32
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.3
    max_len: int = 256  # tokens the LSTM reads: the head and tail of longer reviews
    use_lstm: bool = True

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
        features = 0
        if config.use_lstm:
            self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD)
            self.lstm = nn.LSTM(
                config.embed_dim,
                config.hidden_dim,
                num_layers=config.num_layers,
                batch_first=True,
                bidirectional=config.bidirectional,
                dropout=config.dropout if config.num_layers > 1 else 0.0,
            )
            self.lstm_features = config.hidden_dim * (2 if config.bidirectional else 1)
            features += self.lstm_features
        if config.ngram_size:
            self.bag = nn.EmbeddingBag(config.ngram_size, config.bag_dim, mode="mean")
            features += config.bag_dim
        assert features, "the network needs the LSTM or the bag branch"
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(features, 1)

    def forward(
        self,
        tokens: torch.Tensor,  # (B, T) unigram ids, padded with PAD
        lengths: torch.Tensor,  # (B,) real lengths, >= 1, on the CPU
        ngrams: torch.Tensor | None = None,  # (N,) bag ids of all reviews, concatenated
        ngram_offsets: torch.Tensor | None = None,  # (B,) where each review's ids start
        lstm: bool = True,  # False: the LSTM's features read as zeros (first training phase)
    ) -> torch.Tensor:
        """Logits of P(positive), shape (B,)."""
        parts = []
        if self.config.use_lstm and not lstm:
            parts.append(tokens.new_zeros(len(lengths), self.lstm_features, dtype=torch.float))
        elif self.config.use_lstm:
            packed = pack_padded_sequence(
                self.embedding(tokens), lengths, batch_first=True, enforce_sorted=False
            )
            _, (h_n, _) = self.lstm(packed)
            # h_n holds each sequence's state at its own last real token.
            last = h_n[-2:] if self.config.bidirectional else h_n[-1:]
            parts.append(torch.cat(list(last), dim=1))
        if self.config.ngram_size:
            parts.append(self.bag(ngrams, ngram_offsets))
        return self.head(self.dropout(torch.cat(parts, dim=1))).squeeze(1)
