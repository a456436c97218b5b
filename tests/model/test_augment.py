"""The short training examples of model/augment.py: clauses the teacher is
sure of, negation flips, contrast joins."""
import random

import numpy as np

from model.augment import COPULAS, CONTRACTED_COPULAS, HEDGES, Clause, Teacher, clauses, contrast_join, negation_flip, short_examples
from model.encoding import Vocabulary


def _teacher():
    words = ["the", "film", "was", "is", "great", "awful", "plot", "long", "i", "liked", "it", "not", "a",
             "masterpiece", "hardly", "far", "from", "never"]
    vocabulary = Vocabulary({w: i + 2 for i, w in enumerate(words)}, buckets=0)
    weights = np.zeros(vocabulary.ngram_size, dtype=np.float32)
    weights[vocabulary.words["great"]], weights[vocabulary.words["awful"]] = 2.0, -2.0
    weights[vocabulary.words["liked"]] = 1.5
    weights[vocabulary.words["masterpiece"]] = 2.0
    return Teacher(vocabulary, weights)


def test_negation_flips_only_where_the_verdict_follows_the_copula():
    teacher = _teacher()
    assert negation_flip(Clause("the film was great".split(), 1), teacher, 0.5) == Clause(
        "the film was not great".split(), 0)
    assert negation_flip(Clause("the film was not awful".split(), 1), teacher, 0.5) is None  # rest scores -2
    assert negation_flip(Clause("the film is awful".split(), 0), teacher, 0.5) == Clause(
        "the film is not awful".split(), 1)
    assert negation_flip(Clause("the film was long".split(), 1), teacher, 0.5) is None  # no verdict there
    assert negation_flip(Clause("i liked it".split(), 1), teacher, 0.5) == Clause("i did not like it".split(), 0)


def test_hedged_flips_vary_the_negation_and_read_past_a_determiner():
    teacher, rng = _teacher(), random.Random(0)
    put = {" ".join(negation_flip(Clause("the film was great".split(), 1), teacher, 0.5, rng).tokens)
           for _ in range(200)}
    assert put == {"the film was not great", "the film was never great", "the film was hardly great",
                   "the film was far from great"}
    # Taken out, with a teacher that reads a word after a negation as a feature of its own (the scoped bag).
    scoped = Vocabulary(teacher.vocabulary.words, buckets=1009, negation_scope=True)
    weights = np.zeros(scoped.ngram_size, dtype=np.float32)
    weights[scoped.words["masterpiece"]] = 2.0
    plain = np.union1d(scoped.bag(scoped.ids(["not"])), scoped.bag(scoped.ids(["masterpiece"])))
    weights[np.setdiff1d(scoped.bag(scoped.ids("not masterpiece".split())), plain)] = -1.0  # "not-masterpiece", n-grams
    for hedge in ("hardly", "never", "not"):
        assert negation_flip(Clause(f"it was {hedge} a masterpiece".split(), 0), Teacher(scoped, weights), 0.5,
                             rng) == Clause("it was a masterpiece".split(), 1), hedge
    flipped = negation_flip(Clause("it was a masterpiece".split(), 1), teacher, 0.5, rng)
    assert flipped.label == 0 and flipped.tokens[-2:] == ["a", "masterpiece"] and len(flipped.tokens) > 4
    # Wide: also after a pronoun's contracted copula.
    assert negation_flip(Clause("it's great".split(), 1), teacher, 0.5, rng) is None
    wide = negation_flip(Clause("it's great".split(), 1), teacher, 0.5, rng, COPULAS | CONTRACTED_COPULAS)
    assert wide.label == 0 and wide.tokens[0] == "it's" and tuple(wide.tokens[1:-1]) in HEDGES
    # Without hedges, as before: "not" only, and no verdict after a determiner.
    assert negation_flip(Clause("it was a masterpiece".split(), 1), teacher, 0.5) is None
    assert negation_flip(Clause("it was hardly great".split(), 0), teacher, 0.5) is None


def test_short_examples_keep_confident_clauses_and_join_opposites_by_the_second():
    teacher = _teacher()
    assert clauses("the film was great . the plot , long".split()) == [["the", "film", "was", "great"]]
    join = contrast_join(Clause(["great"], 1), Clause(["awful"], 0), random.Random(0))
    assert join.label == 0 and join.tokens[-2] == "awful" and "but" in join.tokens or "although" in join.tokens
    same = contrast_join(Clause(["great"], 1), Clause(["superb"], 1), random.Random(0))
    assert same == Clause(["great", ",", "and", "superb", "."], 1)
    reviews = [("the film was great . the plot was long".split(), 1), ("the film is awful".split(), 0),
               ("the plot was great".split(), 0)]  # the teacher disagrees with this review: dropped
    examples = short_examples([t for t, _ in reviews], [label for _, label in reviews], teacher, clauses_kept=10,
                              flips=10, joins=2, margin=1.0, word_margin=0.5, seed=0)
    texts = {(" ".join(e.tokens), e.label) for e in examples}
    assert {("the film was great .", 1), ("the film is awful .", 0), ("the film was not great .", 0),
            ("the film is not awful .", 1)} <= texts
    assert ("the plot was great .", 0) not in texts
