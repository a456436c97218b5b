"""Tokens -> the network's inputs: word ids for the LSTM, and the set of the
review's n-gram features for the bag branch. The vocabulary is plain JSON.

Bag features are the known words (their word ids) and every bigram and
trigram, hashed from the word ids into a fixed number of buckets (the hashing
trick): no n-gram table to store or look up, so the artifact stays small and
encoding is a few array operations whatever the number of n-grams.

With `negation_scope` (issue 15), a word that follows a negation ("not",
"never", "hardly", ...) in the same clause is a feature of its own, hashed
into the buckets as "not-<word>" (Das & Chen, 2001; Pang et al., 2002): the
bag then stops reading "not good" as "good". The clause ends at punctuation
or at a contrast word ("but", "though"). Artifacts made before it have no
such key in vocab.json and encode as they always did.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable

import numpy as np

from model.network import UNK

# Odd multipliers for the n-gram hash: fixed, so ids never change between
# processes or machines (Python's str hash does).
_MIX = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D)
_NEGATED = 0x27D4EB2F  # the multiplier that makes "not-<word>" a hashed feature of its own

# Where a negation's scope starts and where it ends (tokens as model/preprocess.py
# makes them: "n't" is already "not").
NEGATIONS = frozenset({"not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "nowhere",
                       "hardly", "barely", "scarcely", "without", "cannot"})
SCOPE_ENDS = frozenset({".", ",", ";", ":", "!", "?", "(", ")", '"', "-",
                        "but", "however", "although", "though", "yet", "except", "whereas"})


def _most_common(counts: Counter, n: int) -> list[tuple[str, int]]:
    # Ties broken by the word itself: set order changes with every process's
    # string hashing, and the vocabulary must not.
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def read_positions(length: int, max_len: int) -> np.ndarray:
    """The positions of the words the LSTM reads in a review of `length`
    words: all of them, or the head and the tail of a longer review."""
    if length <= max_len:
        return np.arange(length)
    half = max_len // 2
    return np.concatenate([np.arange(half), np.arange(length - (max_len - half), length)])


@dataclass
class Vocabulary:
    words: dict[str, int]  # token -> id (ids start at 2: 0 pad, 1 unknown)
    buckets: int  # hashed bigram and trigram features, after the word ids
    negation_scope: bool = False  # words after a negation are features of their own (needs buckets)

    @property
    def vocab_size(self) -> int:
        return len(self.words) + 2

    @property
    def ngram_size(self) -> int:
        """Bag feature ids: word ids, then the n-gram buckets."""
        return self.vocab_size + self.buckets

    @classmethod
    def build(cls, documents: Iterable[list[str]], max_words: int, buckets: int, min_count: int = 2,
              negation_scope: bool = False) -> "Vocabulary":
        counts: Counter[str] = Counter()
        for tokens in documents:
            # Document frequency: one chatty review should not buy a word its place.
            counts.update(set(tokens))
        words = [w for w, c in _most_common(counts, max_words) if c >= min_count]
        return cls({w: i + 2 for i, w in enumerate(words)}, buckets, negation_scope)

    def ids(self, tokens: list[str]) -> np.ndarray:
        """Word ids, one per token; never empty (no known word reads as unknown)."""
        get = self.words.get
        return np.array([get(t, UNK) for t in tokens] or [UNK], dtype=np.int64)

    @cached_property
    def _scope_words(self) -> tuple[np.ndarray, np.ndarray]:
        """Lookup tables by word id: is it a negation, does it end a scope
        (a table read is a tenth of np.isin's cost on a review)."""
        cue, end = np.zeros(self.vocab_size, dtype=bool), np.zeros(self.vocab_size, dtype=bool)
        cue[[self.words[w] for w in NEGATIONS if w in self.words]] = True
        end[[self.words[w] for w in SCOPE_ENDS if w in self.words]] = True
        return cue, end

    def negated(self, ids: np.ndarray) -> np.ndarray:
        """Which tokens sit in a negation's scope: after a negation word, up to
        the clause's end (the negation word itself is not in it)."""
        cue_table, end_table = self._scope_words
        is_cue = cue_table[ids]
        if not is_cue.any():
            return np.zeros(len(ids), dtype=bool)
        is_end = end_table[ids]
        # A token is in scope when the last negation before it comes after the
        # last scope end before it.
        positions = np.arange(len(ids))
        last_cue = np.maximum.accumulate(np.where(is_cue, positions, -1))
        last_end = np.maximum.accumulate(np.where(is_end, positions, -1))
        in_scope = np.empty(len(ids), dtype=bool)
        in_scope[0] = False
        np.greater(last_cue[:-1], last_end[:-1], out=in_scope[1:])
        return in_scope & ~is_cue & ~is_end

    def occurrences(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every bag feature the review's words produce, once per place that
        produces it: (feature ids, the position of its first word, its number
        of words: 1, 2 or 3). `bag` is the distinct features of this; model/
        explain.py shares each feature's weight out over the words that
        produce it. What the bag holds (negation-scoped words among them)
        is decided here alone, so the two cannot disagree."""
        return self._features(ids, with_places=True)

    def _features(self, ids: np.ndarray, with_places: bool = False):
        known = ids != UNK
        unigrams = ids
        if self.negation_scope and self.buckets:
            scoped = self.negated(ids) & known
            if scoped.any():  # the word, read in a negation's scope, is "not-<word>": a hashed feature
                unigrams = ids.copy()
                unigrams[scoped] = (ids[scoped] * _NEGATED + 7) % self.buckets + self.vocab_size
        features = [unigrams[known]]
        if self.buckets:
            a, b, c = _MIX
            bigrams = ids[:-1] * a + ids[1:] * b  # wraps around in int64: still a fixed function
            trigrams = bigrams[:-1] * b + ids[2:] * c + 1  # + 1: "x y" and "x y z" differ
            features.append(np.concatenate([bigrams, trigrams]) % self.buckets + self.vocab_size)
        features = np.concatenate(features)
        if not len(features):  # no known word and no n-gram: the unknown feature, from the first word
            features = np.array([UNK])
            return (features, np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int64)) if with_places else features
        if not with_places:
            return features
        n, positions = len(ids), np.arange(len(ids))
        starts = [positions[known]]
        widths = [np.ones(len(starts[0]), dtype=np.int64)]
        if self.buckets:
            starts += [positions[:-1], positions[:-2]]
            widths += [np.full(max(n - 1, 0), 2, dtype=np.int64), np.full(max(n - 2, 0), 3, dtype=np.int64)]
        return features, np.concatenate(starts), np.concatenate(widths)

    def bag(self, ids: np.ndarray) -> np.ndarray:
        """The review's distinct bag features, sorted: presence, not counts."""
        features = self._features(ids)
        features.sort()  # distinct values: three times faster than np.unique on short arrays
        distinct = np.empty(len(features), dtype=bool)
        distinct[0] = True
        np.not_equal(features[1:], features[:-1], out=distinct[1:])
        return features[distinct]

    def encode(self, tokens: list[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """(word ids for the LSTM, at most max_len of them: the head and the
        tail of a longer review, where sentiment sits; bag feature ids)."""
        ids = self.ids(tokens)
        bag = self.bag(ids)
        if len(ids) > max_len:
            ids = ids[read_positions(len(ids), max_len)]
        return ids, bag

    def save(self, path: Path) -> None:
        data = {"words": self.words, "buckets": self.buckets}
        if self.negation_scope:  # only then: older artifacts' vocab.json stays byte for byte as it was
            data["negation_scope"] = True
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        data = json.loads(Path(path).read_text())
        return cls(data["words"], data["buckets"], data.get("negation_scope", False))
