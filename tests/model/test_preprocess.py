import pytest

from model.preprocess import MAX_CHARS, ReviewError, tokenize


def test_negations_and_contrast_words_survive():
    tokens = tokenize("I didn't like it, but the acting was not bad. Never again!")
    assert tokens.count("not") == 2
    assert "but" in tokens and "never" in tokens and "!" in tokens
    assert "the" not in tokens and "was" not in tokens  # stopwords go


def test_words_are_stemmed():
    assert tokenize("Loved loving lovely movies") == ["love", "love", "love", "movi"]


def test_html_is_stripped_and_script_is_inert_text():
    tokens = tokenize('Great<br /><br />film <b>indeed</b> <script>alert("x")</script> &amp; more')
    assert "br" not in tokens and "b" not in tokens and "script" not in tokens
    assert tokens[:3] == ["great", "film", "inde"]
    assert "alert" not in tokens  # script bodies are code, not review text


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
    ("a\x00b good", ["b", "good"]),
])
def test_any_text_gives_a_defined_result(text, expected):
    assert tokenize(text) == expected


def test_a_megabyte_of_text_is_cut_to_head_and_tail():
    text = "superb " + "plot " * 200_000 + " dreadful"
    tokens = tokenize(text)
    assert tokens[0] == "superb" and tokens[-1] == "dread"
    assert len(tokens) <= MAX_CHARS // 5 + 3
