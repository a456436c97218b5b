"""Tokens -> the network's inputs: unigram ids for the LSTM and unigram + bigram
ids for the bag branch. The vocabulary is plain JSON (no pickle)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from model.network import UNK


def _most_common(counts: Counter, n: int) -> list[tuple[str, int]]:
    # Ties broken by the word itself: set order changes with every process's
    # string hashing, and the vocabulary must not.
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


@dataclass
class Vocabulary:
    unigrams: dict[str, int]  # token -> id (ids start at 2: 0 pad, 1 unknown)
    bigrams: dict[str, int]  # "a b" -> bag id (ids start after the unigrams)

    @property
    def vocab_size(self) -> int:
        return len(self.unigrams) + 2

    @property
    def ngram_size(self) -> int:
        return self.vocab_size + len(self.bigrams) if self.bigrams else 0

    @classmethod
    def build(
        cls, documents: Iterable[list[str]], max_unigrams: int, max_bigrams: int, min_count: int = 2
    ) -> "Vocabulary":
        unigram_counts: Counter[str] = Counter()
        bigram_counts: Counter[str] = Counter()
        for tokens in documents:
            # Document frequency, not term frequency: one chatty review should
            # not buy a word its place.
            unigram_counts.update(set(tokens))
            if max_bigrams:
                bigram_counts.update({f"{a} {b}" for a, b in zip(tokens, tokens[1:])})
        unigrams = [w for w, c in _most_common(unigram_counts, max_unigrams) if c >= min_count]
        unigram_ids = {w: i + 2 for i, w in enumerate(unigrams)}
        first_bigram = len(unigram_ids) + 2
        bigrams = [b for b, c in _most_common(bigram_counts, max_bigrams) if c >= min_count]
        return cls(unigram_ids, {b: first_bigram + i for i, b in enumerate(bigrams)})

    def encode(self, tokens: list[str], max_len: int) -> tuple[list[int], list[int]]:
        """(sequence ids for the LSTM, bag ids). Never empty: a review with no
        known word reads as one unknown token."""
        ids = [self.unigrams.get(t, UNK) for t in tokens] or [UNK]
        bag = [i for i in ids if i != UNK]
        if self.bigrams:
            get = self.bigrams.get
            bag += [j for j in (get(f"{a} {b}") for a, b in zip(tokens, tokens[1:])) if j]
        if len(ids) > max_len:  # keep the head and the tail, where sentiment sits
            half = max_len // 2
            ids = ids[:half] + ids[len(ids) - (max_len - half) :]
        return ids, bag or [UNK]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"unigrams": self.unigrams, "bigrams": self.bigrams}))

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        data = json.loads(Path(path).read_text())
        return cls(data["unigrams"], data["bigrams"])

