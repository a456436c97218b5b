import pytest

from model.preprocess import MAX_CHARS, ReviewError, tokenize


def test_every_word_is_kept_and_negations_are_spelt_out():
    # "the worst", "not even", "a must": function words are evidence in n-grams.
    assert tokenize("I didn't like it, but the acting was not bad. Never again!") == [
        "i", "did", "not", "like", "it", ",", "but", "the", "acting", "was", "not", "bad", ".", "never", "again",
        "!"]


def test_words_are_not_stemmed():
    assert tokenize("Loved loving lovely movies") == ["loved", "loving", "lovely", "movies"]


def test_unicode_is_normalised():
    # full-width letters, ligatures and curly quotes read as their plain forms
    assert tokenize("\uff27\uff2f\uff2f\uff24 \ufb01lm, it\u2019s `fine`") == ["good", "film", ",", "it's", "fine"]


def test_html_is_stripped_and_script_is_inert_text():
    tokens = tokenize('Great<br /><br />film <b>indeed</b> <script>alert("x")</script> &amp; more')
    assert "br" not in tokens and "b" not in tokens and "script" not in tokens
    assert tokens == ["great", "film", "indeed", "more"]  # script bodies are code, not review text


def test_curly_apostrophes_count_as_negation():
    assert "not" in tokenize("It isn\u2019t good")


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", b"", b"  \n"])
def test_empty_review_is_a_clear_error(text):
    with pytest.raises(ReviewError, match="empty"):
        tokenize(text)


def test_invalid_utf8_is_a_clear_error():
    with pytest.raises(ReviewError, match="UTF-8"):
        tokenize(b"good \xff\xfe film")


def test_non_text_is_a_clear_error():
    with pytest.raises(ReviewError, match="text"):
        tokenize(12)


@pytest.mark.parametrize("text, expected", [
    ("😀😀😀", []),  # no word: an empty token list, which the scorer reads as unknown
    ("Отличный фильм", ["отличный", "фильм"]),  # other scripts are kept as words
    ("映画は素晴らしい", ["映画は素晴らしい"]),
    ("فيلم رائع", ["فيلم", "رائع"]),
    ("a\x00b good", ["a", "b", "good"]),
])
def test_any_text_gives_a_defined_result(text, expected):
    assert tokenize(text) == expected


def test_a_megabyte_of_text_is_cut_to_head_and_tail():
    text = "superb " + "plot " * 200_000 + " dreadful"
    tokens = tokenize(text)
    assert tokens[0] == "superb" and tokens[-1] == "dreadful"
    assert len(tokens) <= MAX_CHARS // 5 + 3
