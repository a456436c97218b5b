"""The bag's features: n-grams, and words in a negation's scope (issue 15)."""
import json

import numpy as np

from model.encoding import Vocabulary
from model.preprocess import tokenize

WORDS = ["the", "movie", "was", "not", "good", ".", "but", "bad", "never", "boring", "acting", "great", ",",
         "hardly", "a", "masterpiece", "it", "at", "all"]


def vocabulary(negation_scope: bool) -> Vocabulary:
    return Vocabulary({w: i + 2 for i, w in enumerate(WORDS)}, buckets=100_003, negation_scope=negation_scope)


def scoped_words(text: str) -> list[str]:
    tokens = tokenize(text)
    return [t for t, inside in zip(tokens, vocabulary(True).negated(vocabulary(True).ids(tokens))) if inside]


def test_a_negation_reaches_to_the_end_of_its_clause():
    assert scoped_words("The movie was not good at all. The acting was great") == ["good", "at", "all"]
    assert scoped_words("Wasn't bad, but boring") == ["bad"]
    assert scoped_words("Not bad but boring") == ["bad"]
    assert scoped_words("Hardly a masterpiece") == ["a", "masterpiece"]
    assert scoped_words("never boring. never bad") == ["boring", "bad"]
    assert scoped_words("the acting was great") == []


def test_a_negated_word_is_a_feature_of_its_own():
    plain, scoped = vocabulary(False), vocabulary(True)
    good = scoped.words["good"]
    negated = scoped.bag(scoped.ids(tokenize("not good")))
    assert good in plain.bag(plain.ids(tokenize("not good")))
    assert good not in negated  # "not good" no longer counts as "good"...
    assert good in scoped.bag(scoped.ids(tokenize("good , not bad")))  # ...outside the scope it does
    # the n-grams are the same either way; only the scoped words change
    assert len(negated) == len(plain.bag(plain.ids(tokenize("not good"))))
    assert set(scoped.bag(scoped.ids(tokenize("not good")))) != set(scoped.bag(scoped.ids(tokenize("not bad"))))


def test_without_a_negation_the_features_are_unchanged():
    plain, scoped = vocabulary(False), vocabulary(True)
    ids = plain.ids(tokenize("The acting was great, the movie a masterpiece!"))
    assert np.array_equal(plain.bag(ids), scoped.bag(ids))


def test_older_vocabularies_load_and_save_as_they_were(tmp_path):
    path = tmp_path / "vocab.json"
    vocabulary(False).save(path)
    assert set(json.loads(path.read_text())) == {"words", "buckets"}
    assert Vocabulary.load(path).negation_scope is False
    vocabulary(True).save(path)
    assert Vocabulary.load(path).negation_scope is True
