"""model/explain.py on small random networks of every shape (bag only, LSTM
only, both, with the length gate): spans index the review as sent, in order,
without overlap, and the baseline plus the contributions is the network's
logit."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from model.encoding import Vocabulary, read_positions
from model.explain import attribute, explain
from model.network import SentimentConfig, SentimentLSTM
from model.preprocess import ReviewError, tokenize
from model.scorer import collate

WORDS = ["great", "awful", "film", "not", "the", "plot", "café", "οδος", "שלום", "!", "."]
VOCABULARY = Vocabulary({w: i + 2 for i, w in enumerate(WORDS)}, buckets=97)
# The shipped encoding: a word after "not" in its clause is a bag feature of its own.
NEGATING = Vocabulary(VOCABULARY.words, buckets=97, negation_scope=True)
FRAGMENTS = st.sampled_from([
    "great ", "awful ", "film", " the plot ", "don't", "isn’t ", "<br />", "<b>bold</b>", "<img src=x onerror=alert(1)>",
    "<script>great</script>", "&amp;", "&eacute;", "caf&eacute;", "&#x27;", "&frac12;", "&", "<", "\x00", "ﬁne",
    "e\u0301", "ΟΔΟΣ ", "שלום ", "مرحبا", "😀", "👍🏽", "\u202e", "Ⅻ", "`", " ", "\n", "!", ".",
])
REVIEWS = st.one_of(st.text(max_size=80), st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=25).map("".join))


def network(use_lstm: bool = True, bag: bool = True, gate: bool = False, seed: int = 0) -> SentimentLSTM:
    torch.manual_seed(seed)
    config = SentimentConfig(vocab_size=VOCABULARY.vocab_size, ngram_size=VOCABULARY.ngram_size if bag else 0,
                             embed_dim=8, hidden_dim=8, max_len=12, use_lstm=use_lstm, length_gate=gate)
    net = SentimentLSTM(config)
    with torch.no_grad():
        if bag:
            net.bag.weight.normal_()
            net.bag_bias.fill_(0.3)
        if gate:
            net.gate.copy_(torch.tensor([0.5, 0.2, 1.5, -0.1]))
    return net.eval()


NETWORKS = [network(), network(bag=False), network(use_lstm=False), network(gate=True)]


def logit(net: SentimentLSTM, text: str, vocabulary: Vocabulary = VOCABULARY) -> float:
    with torch.no_grad():
        return float(net(*collate([vocabulary.encode(tokenize(text), net.config.max_len)]))[0])


def check(text: str, explanation) -> None:
    end = 0
    for span in explanation["spans"]:
        assert end <= span["start"] < span["end"] <= len(text)
        assert text[span["start"]:span["end"]] == span["text"]
        end = span["end"]


@pytest.mark.parametrize("net, vocabulary", [*((net, VOCABULARY) for net in NETWORKS), (NETWORKS[0], NEGATING)],
                         ids=["both", "lstm", "bag", "gate", "negation-scoped"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=REVIEWS)
def test_spans_index_the_review_and_add_up_to_the_logit(net, vocabulary, text):
    try:
        explanation = explain(net, vocabulary, text)
    except ReviewError:
        assume(False)
    check(text, explanation)
    assert explanation["spans"]
    total = explanation["baseline"] + sum(span["contribution"] for span in explanation["spans"])
    assert total == pytest.approx(logit(net, text, vocabulary), abs=0.01)


@pytest.mark.parametrize("vocabulary", [VOCABULARY, NEGATING], ids=["plain", "negation-scoped"])
@given(ids=st.lists(st.integers(1, VOCABULARY.vocab_size - 1), min_size=1, max_size=30).map(np.array))
def test_occurrences_are_the_bag_and_its_places(vocabulary, ids):
    features, starts, widths = vocabulary.occurrences(ids)
    assert np.array_equal(np.unique(features), vocabulary.bag(ids))
    assert ((starts >= 0) & (starts + widths <= len(ids))).all()


def test_a_negated_word_carries_its_negated_feature_not_the_plain_one():
    net = network(use_lstm=False)
    weight = net.bag.weight.detach()[:, 0].double().numpy()
    plain, negated = (v.occurrences(v.ids(["not", "great"]))[0] for v in (VOCABULARY, NEGATING))
    assert plain[1] == VOCABULARY.words["great"] and negated[1] != plain[1]  # same place, its own feature
    parts = attribute(net, NEGATING, "not great").per_token
    assert parts[1] == pytest.approx(weight[negated[1]] + weight[negated[-1]] / 2)


def test_a_words_bag_weight_lands_on_it_and_an_ngrams_on_its_words():
    net = network(use_lstm=False)
    ids = VOCABULARY.ids(["great", "film"])
    weight = net.bag.weight.detach()[:, 0].double().numpy()
    bigram = VOCABULARY.occurrences(ids)[0][-1]
    parts = attribute(net, VOCABULARY, "great film").per_token
    assert parts[0] == pytest.approx(weight[ids[0]] + weight[bigram] / 2)
    assert parts[1] == pytest.approx(weight[ids[1]] + weight[bigram] / 2)


def test_words_the_lstm_skips_get_the_bags_part_only():
    text = " ".join(["great"] * 5 + ["awful"] * 10 + ["film"] * 5)  # 20 words, the LSTM reads 12
    lstm_only = attribute(network(bag=False), VOCABULARY, text).per_token
    unread = np.setdiff1d(np.arange(20), read_positions(20, 12))
    assert len(unread) == 8 and (lstm_only[unread] == 0).all()


def test_spans_of_markup_references_and_normalised_text():
    text = "Caf&eacute; <b>wasn't</b> ﬁne, ΟΔΟΣ!"
    spans = [span["text"] for span in explain(network(), VOCABULARY, text)["spans"]]
    assert spans == ["Caf&eacute;", "was", "n't", "ﬁne", ",", "ΟΔΟΣ", "!"]


def test_a_review_without_words_is_one_span():
    text = "  <b></b> \u200b "
    explanation = explain(network(), VOCABULARY, text)
    assert [span["text"] for span in explanation["spans"]] == ["<b></b> \u200b"]
    assert explanation["baseline"] + explanation["spans"][0]["contribution"] == pytest.approx(logit(network(), text),
                                                                                             abs=1e-5)


@pytest.mark.parametrize("text, expected", [
    ("<script>great</script> awful <STYLE>x</style>film", ["awful", "film"]),  # hidden text is not read
    ("ΟΔΟΣ film", ["ΟΔΟΣ", "film"]),  # a final sigma, read a character at a time as a plain one
    ("\u1100\u1161\u11a8 film", ["\u1100\u1161\u11a8", "film"]),  # jamo NFKC composes only together
    ("x&frac12;y film", ["x&frac12;y", "film"]),  # one reference, two words: one span
])
def test_words_read_otherwise_still_land_on_their_text(text, expected):
    assert [span["text"] for span in explain(network(), VOCABULARY, text)["spans"]] == expected


def test_a_review_over_max_chars_is_placed_from_its_head_and_tail():
    from model.preprocess import MAX_CHARS
    text = "great " * (MAX_CHARS // 6) + "awful"  # over MAX_CHARS: the middle is cut
    explanation = explain(network(), VOCABULARY, text)
    check(text, explanation)
    assert explanation["spans"][-1]["text"] == "awful" and explanation["spans"][-1]["end"] == len(text)
    assert explanation["baseline"] + sum(s["contribution"] for s in explanation["spans"]) == pytest.approx(
        logit(network(), text), abs=0.01)


@pytest.mark.parametrize("text, expected", [
    ("<!-- good", ["!", "-", "-", "good"]),  # an unclosed comment is text to html.parser
    ("<x good", ["x", "good"]),  # so is a tag never closed
])
def test_markup_the_parser_reads_as_text_is_placed_on_its_words(text, expected):
    from model.preprocess import locate
    assert [text[s:e] for s, e in locate(text, tokenize(text))] == expected
