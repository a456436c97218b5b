"""Short training examples for the LSTM, made from IMDB reviews only.

Trained on full reviews alone, the LSTM rarely sees a short text whose
verdict hinges on "not" or "but", and the bag of n-grams, fitted on full
reviews, adds little there (issue 15). So phase two also learns from:

- **clauses** cut from the training reviews (at sentence ends, commas,
  semicolons, colons and "but"), labelled by their review where a teacher
  agrees confidently: the bag branch, fitted in phase one, scores the clause
  alone, and a clause is kept when that score has the review's sign and is at
  least `margin` from 0 (neutral plot lines score near 0 and are dropped);
- **negation flips**: a kept clause whose verdict sits in the word after a
  copula ("was great", "is not funny": without that word the clause scores
  near zero) gets "not" put in after the copula, or taken out, and the
  opposite label; "i loved it" becomes "i did not love it". Each flip is
  trained beside its original. Hedged (training's default), the negation
  put in is "not", "never", "hardly" or "far from", also before "a"/"an"
  ("was hardly a masterpiece");
- **contrast joins**: two confident clauses from different reviews, joined
  as "A , but B" or "although A , B" when their verdicts differ and as
  "A , and B" when they agree, labelled by B (half of each, so that A's
  verdict alone tells nothing).

Rule-based augmentation of IMDB text: no other data, no outside weights. All
of it is a seeded function of the reviews and the bag, so a resumed run
makes the same examples. Validation reviews make a set of their own the same
way, for the length-aware blend (model/train.py).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

CLAUSE_ENDS = frozenset({".", "!", "?", ",", ";", ":", "but", "(", ")", "\""})
COPULAS = frozenset({"is", "was", "are", "were", "seemed", "looks", "looked", "felt"})
# Wide flips also negate after a pronoun's contracted copula (the tokenizer keeps "it's" whole), IMDB's most
# common way to give a verdict: "it's great" / "it's not great".
CONTRACTED_COPULAS = frozenset({"it's", "that's", "they're", "he's", "she's", "remains"})
FLIP_FORMS = ("plain", "hedged", "wide")
NEGATIONS = frozenset({"not", "no", "never", "nothing", "hardly", "nor", "neither", "nobody", "none", "without"})
# After a copula these start no verdict ("is no plot", "was supposed to", "is to die for").
NOT_A_VERDICT = NEGATIONS | {"to", "supposed", "going", "about", "like", "one", "a", "an", "the"}
# Hedged flips (forms "hedged" and "wide"): the negation put in is one of these, so the LSTM learns "hardly", "far from" and
# "never" as it learns "not" (IMDB rarely puts them before a verdict); "not" stays the most common.
HEDGES = (("not",), ("not",), ("never",), ("hardly",), ("far", "from"))
DETERMINERS = frozenset({"a", "an"})  # hedged flips also negate "was a masterpiece" ("was hardly a masterpiece")
INTENSIFIERS = frozenset({"very", "really", "so", "too", "quite", "truly", "pretty", "absolutely", "extremely",
                          "incredibly", "utterly", "totally", "rather", "that", "at", "all", "even"})
# "i loved it" -> "i did not love it": verbs of liking after "i" or "we", negated.
VERB_NEGATIONS = {"liked": ["did", "not", "like"], "loved": ["did", "not", "love"], "enjoyed": ["did", "not", "enjoy"],
                  "hated": ["did", "not", "hate"], "like": ["do", "not", "like"], "love": ["do", "not", "love"],
                  "enjoy": ["do", "not", "enjoy"], "recommend": ["do", "not", "recommend"]}
MIN_TOKENS, MAX_TOKENS = 3, 20


@dataclass
class Clause:
    tokens: list[str]
    label: int


def clauses(tokens: list[str]) -> list[list[str]]:
    """The review's clauses of MIN_TOKENS to MAX_TOKENS tokens."""
    found, current = [], []
    for token in tokens:
        if token in CLAUSE_ENDS:
            if MIN_TOKENS <= len(current) <= MAX_TOKENS:
                found.append(current)
            current = []
        else:
            current.append(token)
    if MIN_TOKENS <= len(current) <= MAX_TOKENS:
        found.append(current)
    return found


class Teacher:
    """The bag branch's weights, read as a scorer of short texts: the sum of
    the weights of a text's features (no intercept: that is fitted to full
    reviews)."""

    def __init__(self, vocabulary, weights: np.ndarray):
        self.vocabulary, self.weights = vocabulary, weights

    def score(self, tokens: list[str]) -> float:
        return float(self.weights[self.vocabulary.bag(self.vocabulary.ids(tokens))].sum())


def confident_clauses(token_lists, labels, teacher: Teacher, margin: float) -> list[Clause]:
    """Clauses whose teacher score has their review's sign, by margin or more."""
    kept = []
    for tokens, label in zip(token_lists, labels):
        sign = 1 if label == 1 else -1
        for clause in clauses(tokens):
            if teacher.score(clause) * sign >= margin:
                kept.append(Clause(clause, label))
    return kept


def negation_flip(clause: Clause, teacher: Teacher, word_margin: float,
                  rng: random.Random | None = None, copulas: frozenset = COPULAS) -> Clause | None:
    """The clause with its copula negated (or un-negated) and its label
    flipped; None when its verdict does not sit right after a copula. With
    rng (hedged flips), the negation put in is drawn from HEDGES, one of them
    (or "never") is also taken out, and a verdict after "a"/"an" counts."""
    tokens, sign = clause.tokens, 1 if clause.label == 1 else -1
    hedged = rng is not None
    cues = HEDGES if hedged else (("not",),)
    skipped = INTENSIFIERS | DETERMINERS if hedged else INTENSIFIERS
    for i, token in enumerate(tokens[:-1]):
        if token not in copulas:
            continue
        cue = next((c for c in (*cues, ("never",)) if tuple(tokens[i + 1 : i + 1 + len(c)]) == c), ())
        j = i + 1 + len(cue)
        while j < len(tokens) and tokens[j] in skipped:
            j += 1
        # One negation at most, the copula's own: "I'm not saying it is not good" does not flip simply.
        others = sum(t in NEGATIONS for t in tokens) - sum(t in NEGATIONS for t in cue)
        if j >= len(tokens) or others or tokens[j] in NOT_A_VERDICT:
            return None
        # The verdict must sit in that word: the clause without it scores near zero (or the other way) and the
        # word (with its n-grams) carries the clause's sign, so negating the copula flips the whole clause.
        rest = teacher.score(tokens[:j] + tokens[j + 1 :]) * sign
        if rest > word_margin / 2 or teacher.score(tokens) * sign - rest < word_margin:
            return None
        put = list(rng.choice(HEDGES)) if hedged else ["not"]
        flipped = tokens[: i + 1] + tokens[i + 1 + len(cue) :] if cue else tokens[: i + 1] + put + tokens[i + 1 :]
        return Clause(flipped, 1 - clause.label)
    for i, token in enumerate(tokens[1:], 1):
        if token in VERB_NEGATIONS and tokens[i - 1] in ("i", "we") and not any(t in NEGATIONS for t in tokens):
            rest = teacher.score(tokens[:i] + tokens[i + 1 :]) * sign
            if rest > word_margin / 2 or teacher.score(tokens) * sign - rest < word_margin:
                return None
            return Clause(tokens[:i] + VERB_NEGATIONS[token] + tokens[i + 1 :], 1 - clause.label)
    return None


def contrast_join(first: Clause, second: Clause, rng: random.Random) -> Clause:
    """Two clauses joined so that the second decides: of opposite verdicts by
    "but" (or "although" before the first), of the same verdict by "and"."""
    if first.label == second.label:
        tokens = [*first.tokens, ",", "and", *second.tokens, "."]
    elif rng.random() < 0.75:
        tokens = [*first.tokens, ",", "but", *second.tokens, "."]
    else:
        tokens = ["although", *first.tokens, ",", *second.tokens, "."]
    return Clause(tokens, second.label)


def short_examples(token_lists, labels, teacher: Teacher, *, clauses_kept: int, flips: int, joins: int,
                   margin: float, word_margin: float, seed: int, filtered: bool = True,
                   forms: str = "plain") -> list[Clause]:
    """Up to clauses_kept clauses (each ends with "."): confident ones, or
    (filtered False) any, labelled by their review; up to flips negation flips
    and joins contrast joins of confident ones; in a seeded order. forms:
    "plain" flips put in "not"; "hedged" ones one of HEDGES, also after
    "a"/"an"; "wide" ones also after CONTRACTED_COPULAS."""
    rng = random.Random(seed)
    confident = confident_clauses(token_lists, labels, teacher, margin)
    rng.shuffle(confident)
    kept = confident
    if not filtered:
        kept = [Clause(c, label) for tokens, label in zip(token_lists, labels) for c in clauses(tokens)]
        rng.shuffle(kept)
    # Each flip comes with its original: the pair, which differs by "not" alone, teaches what "not" does. (Flips
    # alone would teach that a positive word makes a short text negative.)
    flip_rng = random.Random(seed + 1) if forms != "plain" else None  # its own stream: the joins stay as they were
    copulas = COPULAS | CONTRACTED_COPULAS if forms == "wide" else COPULAS
    pairs = [(c, f) for c in confident if (f := negation_flip(c, teacher, word_margin, flip_rng, copulas))][:flips]
    positive = [c for c in confident if c.label == 1]
    negative = [c for c in confident if c.label == 0]
    joined = []
    for _ in range(min(joins, len(confident)) if positive and negative else 0):  # no more joins than clauses
        # Half in contrast ("but"), half alike ("and"): the first clause's verdict alone tells nothing.
        first = rng.choice(positive if rng.random() < 0.5 else negative)
        second = rng.choice(positive if rng.random() < 0.5 else negative)
        joined.append(contrast_join(first, second, rng))
    # As many positive clauses as negative ones: IMDB's confident clauses lean positive, and a short text
    # should not.
    by_label = [[c for c in kept if c.label == label][: clauses_kept // 2] for label in (0, 1)]
    balanced = [c for pair in zip(*by_label) for c in pair]
    examples = [Clause([*c.tokens, "."], c.label) for c in balanced]
    examples += [Clause([*c.tokens, "."], c.label) for pair in pairs for c in pair]
    return examples + joined
